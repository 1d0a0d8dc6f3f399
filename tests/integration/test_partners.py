"""Partners service against the real broker and database server: lifecycle, counting, who sees what, CSV."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from services.partners.domain import partner_id_for, partnership_id_for
from shared.identity import Role, verify_token
from shared.serde import decode
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from shared.topics import PARTNERS
from tests.conftest import DBS, KAFKA, TEST_ENV, Service, wait_until
from tests.integration.test_partners_support import (
    ADMIN,
    fake_rna,
    fake_siret,
    new_partner,
    new_user,
    partner_body,
    partnership_body,
    sign_in,
)
from tests.kafka_tools import tail

pytestmark = pytest.mark.integration
YEAR = 2031  # far from the demo data and the live year: progress for it moves only by these tests


@pytest.fixture(scope="module")
def partners(services: dict[str, Service]) -> Service:
    return services["partners"]


@pytest.fixture(scope="module")
def admin(partners: Service) -> dict[str, str]:
    return sign_in(partners.http, ADMIN["username"], ADMIN["password"])


def events_for(records: list[Any], key: str) -> list[Any]:
    return [decode(r.value) for r in records if r.key == key.encode()]


def indicator(metrics: Service, name: str, year: int = YEAR) -> float:
    body = metrics.http.get("/v1/progress", params={"year": year}).json()
    return next(i["value"] for i in body["indicators"] if i["id"] == name)


def metrics_caught_up() -> None:
    """Wait until the test metrics worker has committed everything already on partners.events, so that a value
    read now is not still moving with older records (e.g. earlier runs' events replayed after a restart)."""
    consumer = KafkaConsumer(bootstrap_servers=KAFKA)
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    try:
        parts = [TopicPartition(PARTNERS.name, p) for p in consumer.partitions_for_topic(PARTNERS.name) or ()]
        ends = consumer.end_offsets(parts)
        group = TEST_ENV["METRICS_APP_ID"]

        def done() -> bool:
            offsets = admin.list_group_offsets(group).get(group, {})
            return all(offsets.get(tp) is not None and offsets[tp].offset >= end for tp, end in ends.items() if end)

        wait_until(done, 60, "the metrics worker to catch up with partners.events", interval=0.5)
    finally:
        consumer.close()
        admin.close()


def draft(partners: Service, admin: dict[str, str], partner_id: str, **over: Any) -> dict[str, Any]:
    r = partners.http.post("/v1/partnerships", json=partnership_body(partner_id, **over), headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft"
    return r.json()


def test_lifecycle_publishes_one_event_per_step_and_refuses_the_rest(partners: Service, admin: dict) -> None:
    http = partners.http
    org = new_partner(http, admin)
    ps = draft(partners, admin, org["id"])
    url = f"/v1/partnerships/{ps['id']}"
    with tail(PARTNERS.name) as records:
        # Refusals before signing: a draft cannot be activated, renewed or ended.
        for action, body in [
            ("activate", {"activated_on": "2031-04-01"}),
            ("renew", {"renewed_on": "2031-05-01", "ends_on": "2033-03-31"}),
            ("end", {"ended_on": "2031-05-01", "reason": "objectives_met"}),
        ]:
            r = http.post(f"{url}/{action}", json=body, headers=admin)
            assert r.status_code == 409, (action, r.text)
            assert "draft" in r.json()["detail"]
        assert http.patch(url, json={"title": "Ateliers numériques"}, headers=admin).status_code == 200

        signed = http.post(f"{url}/sign", json={"signed_on": "2031-03-15"}, headers=admin)
        assert signed.status_code == 200, signed.text
        assert signed.json()["status"] == "signed" and signed.json()["published"] is True
        # The same command again is a harmless retry; another date is a conflict.
        assert http.post(f"{url}/sign", json={"signed_on": "2031-03-15"}, headers=admin).status_code == 200
        again = http.post(f"{url}/sign", json={"signed_on": "2031-03-16"}, headers=admin)
        assert again.status_code == 409 and "signed" in again.json()["detail"]
        locked = http.patch(url, json={"title": "changed after signing"}, headers=admin)
        assert locked.status_code == 409 and "only a draft" in locked.json()["detail"]
        early = http.post(f"{url}/activate", json={"activated_on": "2031-03-01"}, headers=admin)
        assert early.status_code == 422 and "before signed_on" in early.json()["detail"]

        assert http.post(f"{url}/activate", json={"activated_on": "2031-04-01"}, headers=admin).json()["status"] == (
            "active"
        )
        shorter = http.post(f"{url}/renew", json={"renewed_on": "2031-12-01", "ends_on": "2032-01-31"}, headers=admin)
        assert shorter.status_code == 422 and "later than" in shorter.json()["detail"]
        renewed = http.post(f"{url}/renew", json={"renewed_on": "2032-02-01", "ends_on": "2033-03-31"}, headers=admin)
        assert renewed.status_code == 200, renewed.text
        assert renewed.json()["status"] == "active" and renewed.json()["ends_on"] == "2033-03-31"
        assert renewed.json()["renewals"] == [
            {"renewed_on": "2032-02-01", "previous_ends_on": "2032-03-31", "ends_on": "2033-03-31"}
        ]
        bad_reason = http.post(f"{url}/end", json={"ended_on": "2032-06-30", "reason": "bored"}, headers=admin)
        assert bad_reason.status_code == 422
        ended = http.post(
            f"{url}/end",
            json={"ended_on": "2032-06-30", "reason": "partner_withdrew", "note": "internal note, never published"},
            headers=admin,
        )
        assert ended.status_code == 200 and ended.json()["status"] == "ended"
        for action, body in [
            ("renew", {"renewed_on": "2032-07-01", "ends_on": "2034-03-31"}),
            ("activate", {"activated_on": "2032-07-01"}),
            ("sign", {"signed_on": "2032-07-01"}),
        ]:
            r = http.post(f"{url}/{action}", json=body, headers=admin)
            assert r.status_code == 409 and "ended" in r.json()["detail"], (action, r.text)

        expected = ["partnership.signed", "partnership.activated", "partnership.renewed", "partnership.ended"]
        got = wait_until(lambda: len(events_for(records(0.3), ps["id"])) >= 4 and records(0), 10, "four events")
        mine = events_for(got, ps["id"])
        records(1.0)  # anything late (a duplicate would show here)
        mine = events_for(records(0), ps["id"])
    assert [e.type for e in mine] == expected
    assert len({e.id for e in mine}) == 4
    signed_event, _, renewed_event, ended_event = (e.data for e in mine)
    assert signed_event.signed_on.isoformat() == "2031-03-15" and signed_event.partner_id == org["id"]
    assert renewed_event.ends_on.isoformat() == "2033-03-31"
    assert ended_event.reason == "partner_withdrew"
    raw = b"".join(r.value for r in records(0) if r.key == ps["id"].encode())
    assert b"internal note" not in raw and b"Contact Fictif" not in raw and b"example.invalid" not in raw


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"legal_id": "12345678901234"}, "checksum"),
        ({"legal_id": "W12345"}, "RNA"),
        ({"address": {"street": "x", "postcode": "20000", "city": "Ajaccio", "commune_insee": "20004"}}, "2A"),
        ({"address": {"street": "x", "postcode": "99000", "city": "Nowhere", "commune_insee": "99123"}}, "INSEE"),
        ({"departements": ["75", "75"]}, "repeat"),
        ({"kind": "club"}, "kind"),
    ],
)
def test_bad_partner_is_refused_with_a_reason(partners: Service, admin: dict, body: dict, reason: str) -> None:
    r = partners.http.post("/v1/partners", json=partner_body() | body, headers=admin)
    assert r.status_code == 422
    assert reason in r.text


def test_same_legal_identifier_is_one_partner(partners: Service, admin: dict) -> None:
    rna = fake_rna()
    first = new_partner(partners.http, admin, legal_id=rna.lower())
    assert first["legal_id"] == rna and first["id"] == partner_id_for(rna)
    r = partners.http.post("/v1/partners", json={**first, "legal_id": rna}, headers=admin)
    assert r.status_code in (409, 422)


def test_bad_partnership_terms_are_refused(partners: Service, admin: dict) -> None:
    org = new_partner(partners.http, admin)
    for over, reason in [
        ({"starts_on": "2031-04-01", "ends_on": "2031-03-01"}, "after starts_on"),
        ({"commitments": []}, "commitments"),
        ({"partnership_type": "charity"}, "partnership_type"),
        ({"departements": ["00"]}, "departements"),
    ]:
        r = partners.http.post("/v1/partnerships", json=partnership_body(org["id"], **over), headers=admin)
        assert r.status_code == 422, over
        assert reason in r.text


def _same_partition_ref(target_key: str) -> str:
    """An external_ref whose partnership id lands in the partition of `target_key` (so it is read after it)."""

    def partition(key: str) -> int:
        return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTNERS.partitions

    while True:
        ref = f"test-{uuid.uuid4()}"
        if partition(partnership_id_for(ref)) == partition(target_key):
            return ref


def test_renewal_is_not_a_new_partnership(services: dict[str, Service], partners: Service, admin: dict) -> None:
    metrics = services["metrics"]
    org = new_partner(partners.http, admin)
    first = draft(partners, admin, org["id"], external_ref=f"test-{uuid.uuid4()}")
    metrics_caught_up()
    before = indicator(metrics, "new_partnerships")
    url = f"/v1/partnerships/{first['id']}"
    with tail(PARTNERS.name) as records:
        assert partners.http.post(f"{url}/sign", json={"signed_on": f"{YEAR}-02-01"}, headers=admin).status_code == 200
        wait_until(lambda: indicator(metrics, "new_partnerships") == before + 1, 60, "the signing to be counted")
        renew = {"renewed_on": f"{YEAR}-06-01", "ends_on": f"{YEAR + 2}-03-31"}
        assert partners.http.post(f"{url}/renew", json=renew, headers=admin).status_code == 200
        # A second signing keyed into the same partition: once it is counted, the renewal before it was read.
        second = draft(partners, admin, org["id"], external_ref=_same_partition_ref(first["id"]))
        signed = partners.http.post(
            f"/v1/partnerships/{second['id']}/sign", json={"signed_on": f"{YEAR}-07-01"}, headers=admin
        )
        assert signed.status_code == 200
        wait_until(lambda: indicator(metrics, "new_partnerships") >= before + 2, 60, "the second signing")
        got = records(0.5)
    assert indicator(metrics, "new_partnerships") == before + 2
    first_events = [e.type for e in events_for(got, first["id"])]
    assert first_events == ["partnership.signed", "partnership.renewed"]
    parts = {r.partition for r in got if r.key in (first["id"].encode(), second["id"].encode())}
    assert len(parts) == 1, "both partnerships were meant to share a partition"


def test_authorisation_matrix(partners: Service, admin: dict) -> None:
    http = partners.http
    org_a, org_b = new_partner(http, admin), new_partner(http, admin)
    as_a = new_user(http, admin, "partner", org_a["id"])
    as_b = new_user(http, admin, "partner", org_b["id"])
    monitoring = new_user(http, admin, "monitoring")
    ps_a = draft(partners, admin, org_a["id"])
    ps_b = draft(partners, admin, org_b["id"])
    b_url = f"/v1/partnerships/{ps_b['id']}"

    # The token is the platform's: any service verifies it with the shared key.
    token_a = as_a["Authorization"].removeprefix("Bearer ")
    principal = verify_token(token_a, DEV_PLATFORM_TOKEN_KEY)
    assert principal.role == Role.PARTNER and principal.partner_id == org_a["id"]

    # Partner A never reads, lists, changes or exports B's data, whatever id it sends: B's records "do not exist".
    assert http.get(b_url, headers=as_a).status_code == 404
    assert http.get(f"/v1/partners/{org_b['id']}", headers=as_a).status_code == 404
    assert http.patch(b_url, json={"title": "hijack"}, headers=as_a).status_code == 404
    assert http.delete(b_url, headers=as_a).status_code == 404
    assert http.patch(f"/v1/partners/{org_b['id']}", json={"name": "hijack"}, headers=as_a).status_code == 404
    assert http.post("/v1/partnerships", json=partnership_body(org_b["id"]), headers=as_a).status_code == 404
    listed = http.get("/v1/partnerships", params={"partner_id": org_b["id"], "page_size": 500}, headers=as_a).json()
    assert {p["partner_id"] for p in listed["items"]} <= {org_a["id"]}
    assert ps_b["id"] not in {p["id"] for p in listed["items"]}
    own = http.get("/v1/partnerships", params={"page_size": 500}, headers=as_a).json()
    assert ps_a["id"] in {p["id"] for p in own["items"]} and {p["partner_id"] for p in own["items"]} == {org_a["id"]}
    exported = http.get("/v1/partnerships/export.csv", params={"partner_id": org_b["id"]}, headers=as_a)
    assert exported.status_code == 200 and ps_b["id"] not in exported.text
    rows = list(csv.DictReader(io.StringIO(http.get("/v1/partnerships/export.csv", headers=as_a).text)))
    assert rows and {r["partner_id"] for r in rows} == {org_a["id"]}
    partners_seen = http.get("/v1/partners", headers=as_a).json()
    assert [p["id"] for p in partners_seen["items"]] == [org_a["id"]]
    assert org_b["id"] not in http.get("/v1/partners/export.csv", headers=as_a).text
    # B still reads its own; A can edit its own draft but lifecycle decisions are La Poste's.
    assert http.get(b_url, headers=as_b).status_code == 200
    assert http.patch(f"/v1/partnerships/{ps_a['id']}", json={"title": "ours"}, headers=as_a).status_code == 200
    own_sign = http.post(f"/v1/partnerships/{ps_a['id']}/sign", json={"signed_on": "2031-03-01"}, headers=as_a)
    assert own_sign.status_code == 403
    assert http.post(f"{b_url}/sign", json={"signed_on": "2031-03-01"}, headers=as_a).status_code == 403
    csv_body = as_a | {"content-type": "text/csv"}
    assert http.post("/v1/partnerships/import", content=b"external_ref\n", headers=csv_body).status_code == 403
    assert http.post("/v1/users", json={}, headers=as_a).status_code == 403

    # Monitoring reads everything (not contacts) and writes nothing.
    assert http.get(b_url, headers=monitoring).status_code == 200
    seen = http.get(f"/v1/partners/{org_b['id']}", headers=monitoring).json()
    assert seen["contacts"] is None
    assert http.get(f"/v1/partners/{org_b['id']}", headers=as_b).json()["contacts"][0]["name"] == "Contact Fictif"
    for method, url, body in [
        ("POST", "/v1/partnerships", partnership_body(org_b["id"])),
        ("PATCH", b_url, {"title": "x"}),
        ("DELETE", b_url, None),
        ("POST", f"{b_url}/sign", {"signed_on": "2031-03-01"}),
        ("POST", "/v1/partners", {}),
        ("PATCH", f"/v1/partners/{org_b['id']}", {"name": "x"}),
        ("POST", "/v1/missions", {}),
    ]:
        r = http.request(method, url, json=body, headers=monitoring)
        assert r.status_code == 403, (method, url, r.status_code)
    assert http.get(b_url, headers=monitoring).json()["title"] is None

    # No token, a forged token, a wrong password.
    assert http.get(b_url).status_code == 401
    assert http.get(b_url, headers={"Authorization": "Bearer forged"}).status_code == 401
    wrong = http.post("/v1/auth/token", json={"username": "admin", "password": "not-the-password"})
    assert wrong.status_code == 401


def test_passwords_are_stored_hashed(partners: Service, admin: dict, mongo) -> None:
    org = new_partner(partners.http, admin)
    new_user(partners.http, admin, "partner", org["id"])
    users = list(mongo[DBS["partners"]]["users"].find({"partner_id": org["id"]}))
    assert len(users) == 1
    assert users[0]["password_hash"].startswith("$argon2") and "test-only-password" not in str(users[0])


def test_lists_filter_and_paginate(partners: Service, admin: dict) -> None:
    http = partners.http
    org = new_partner(http, admin)
    made = []
    for i, (ptype, commitment, dep) in enumerate(
        [
            ("inclusive_purchasing", "social_inclusion", "13"),
            ("economic_cooperation", "ecological_transition", "2A"),
            ("social_innovation", "territorial_cohesion", "13"),
        ]
    ):
        ps = draft(
            partners, admin, org["id"], partnership_type=ptype, commitments=[commitment], departements=[dep, "69"]
        )
        made.append(ps)
        if i < 2:
            signed_on = f"{2029 + i}-01-15"
            http.post(f"/v1/partnerships/{ps['id']}/sign", json={"signed_on": signed_on}, headers=admin)

    def ids(**params: Any) -> list[str]:
        r = http.get("/v1/partnerships", params={"partner_id": org["id"], **params}, headers=admin)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert sorted(ids()) == sorted(p["id"] for p in made)
    assert ids(departement="13") == sorted([made[0]["id"], made[2]["id"]])
    assert ids(partnership_type="economic_cooperation") == [made[1]["id"]]
    assert ids(commitment="territorial_cohesion") == [made[2]["id"]]
    assert ids(status="signed") == sorted([made[0]["id"], made[1]["id"]])
    assert ids(signed_year=2030) == [made[1]["id"]]
    assert ids(status="draft", departement="2A") == []
    pages = [
        http.get("/v1/partnerships", params={"partner_id": org["id"], "page": n, "page_size": 2}, headers=admin)
        for n in (1, 2)
    ]
    assert [p.json()["total"] for p in pages] == [3, 3]
    assert sorted(i["id"] for p in pages for i in p.json()["items"]) == sorted(p["id"] for p in made)
    assert http.get("/v1/partnerships", params={"page_size": 0}, headers=admin).status_code == 422
    export = http.get(
        "/v1/partnerships/export.csv", params={"partner_id": org["id"], "status": "signed"}, headers=admin
    )
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(r["id"] for r in rows) == sorted([made[0]["id"], made[1]["id"]])
    assert {r["partner_legal_id"] for r in rows} == {org["legal_id"]}
    assert "Contact Fictif" not in export.text and "example.invalid" not in export.text


def _import_csv(org_siret: str, refs: list[str]) -> str:
    header = (
        "external_ref,partner_legal_id,partner_name,partner_kind,partner_street,partner_postcode,partner_city,"
        "partner_commune_insee,partnership_type,commitments,departements,title,status,starts_on,ends_on,signed_on,"
        "activated_on,ended_on,end_reason"
    )
    addr = "Fédération Test,federation,2 place Fictive,13001,Marseille,13055"
    rows = [
        f"{refs[0]},{org_siret},{addr},inclusive_purchasing,social_inclusion;digital_inclusion,13;84,,active,"
        f"2031-01-01,2033-12-31,2030-12-01,,,",
        f"{refs[1]},{org_siret},,,,,,,economic_cooperation,ecological_transition,13,,signed,2031-02-01,,2031-01-20,,,",
        f"{refs[2]},{org_siret},,,,,,,social_innovation,territorial_cohesion,2B,,ended,2030-01-01,,2030-01-01,,"
        f"2031-06-30,expired",
        f"{refs[3]},12345678901234,,,,,,,social_innovation,territorial_cohesion,13,,draft,2031-01-01,,,,,",  # 5
        f"{refs[4]},{org_siret},,,,,,,knitting,territorial_cohesion,13,,signed,2031-01-01,,2031-01-02,,,",  # 6
        f"{refs[5]},{org_siret},,,,,,,social_innovation,territorial_cohesion,13,,active,2031-01-01,,,,,",  # 7
        f"{refs[6]},{org_siret},,,,,,,social_innovation,territorial_cohesion,13,,ended,2031-01-01,,2031-01-01,,"
        f"2030-12-01,expired",  # 8
        f"{refs[0]},{org_siret},,,,,,,social_innovation,territorial_cohesion,13,,draft,2031-01-01,,,,,",  # 9
        f",{org_siret},,,,,,,social_innovation,territorial_cohesion,13,,draft,2031-01-01,,,,,",  # 10
        f"{refs[7]},{fake_siret()},,,,,,,social_innovation,territorial_cohesion,13,,draft,2031-01-01,,,,,",  # 11
    ]
    return "\n".join([header, *rows]) + "\n"


def test_csv_import_reports_by_line_and_reimport_changes_nothing(partners: Service, admin: dict, mongo) -> None:
    http = partners.http
    refs = [f"IMP-{uuid.uuid4().hex[:12]}" for _ in range(8)]
    body = _import_csv(fake_siret(), refs).encode()
    headers = admin | {"content-type": "text/csv"}
    with tail(PARTNERS.name) as records:
        r = http.post("/v1/partnerships/import", content=body, headers=headers)
        assert r.status_code == 200, r.text
        report = r.json()
        assert (report["rows"], report["imported"], report["unchanged"], report["rejected"]) == (10, 3, 0, 7)
        assert report["partners_created"] == 1
        reasons = {p["line"]: " ".join(p["reasons"]) for p in report["problems"]}
        assert sorted(reasons) == [5, 6, 7, 8, 9, 10, 11]
        assert "checksum" in reasons[5]
        assert "partnership_type" in reasons[6]
        assert "needs signed_on" in reasons[7]
        assert "before signed_on" in reasons[8]
        assert "repeats line 2" in reasons[9]
        assert "external_ref is required" in reasons[10]
        assert "no partner with legal identifier" in reasons[11]
        ids = [partnership_id_for(ref) for ref in refs[:3]]
        stored = {d["_id"]: d for d in mongo[DBS["partners"]]["partnerships"].find({"_id": {"$in": ids}})}
        assert [stored[i]["status"] for i in ids] == ["active", "signed", "ended"]
        wait_until(lambda: sum(len(events_for(records(0.3), i)) for i in ids) >= 5, 10, "imported events")
        first_pass = Counter(r.key for r in records(0.5))

        again = http.post("/v1/partnerships/import", content=body, headers=headers).json()
        assert (again["imported"], again["unchanged"], again["rejected"], again["partners_created"]) == (0, 3, 7, 0)
        assert again["problems"] == report["problems"]
        after = Counter(r.key for r in records(1.0))
    assert after == first_pass, "re-importing published nothing new"
    types = {i: [e.type for e in events_for(records(0), i)] for i in ids}
    assert types[ids[0]] == ["partnership.signed", "partnership.activated"]
    assert types[ids[1]] == ["partnership.signed"]
    assert types[ids[2]] == ["partnership.signed", "partnership.ended"]
    assert mongo[DBS["partners"]]["partnerships"].count_documents({"external_ref": {"$in": refs}}) == 3


def test_import_needs_the_required_columns(partners: Service, admin: dict) -> None:
    r = partners.http.post(
        "/v1/partnerships/import", content=b"ref;name\nx;y\n", headers=admin | {"content-type": "text/csv"}
    )
    assert r.status_code == 200
    assert r.json()["problems"][0]["line"] == 1 and "header misses" in r.json()["problems"][0]["reasons"][0]


def test_skills_mission_published_volunteered_completed(
    services: dict[str, Service], partners: Service, admin: dict
) -> None:
    http, metrics = partners.http, services["metrics"]
    labelled, plain = new_partner(http, admin), new_partner(http, admin)
    as_labelled = new_user(http, admin, "partner", labelled["id"])
    as_plain = new_user(http, admin, "partner", plain["id"])
    r = http.put(
        f"/v1/partners/{labelled['id']}/skills-label",
        json={"labelled": True, "labelled_on": "2031-01-10"},
        headers=admin,
    )
    assert r.status_code == 200 and r.json()["skills_label"] is True
    mission = {
        "title": "Former des bénévoles aux démarches en ligne",
        "departement": "69",
        "commitment": "digital_inclusion",
        "published_on": f"{YEAR}-02-01",
        "places": 2,
        "skills": ["pédagogie"],
    }
    refused = http.post("/v1/missions", json=mission, headers=as_plain)
    assert refused.status_code == 409 and "labelled" in refused.json()["detail"]
    metrics_caught_up()
    before = indicator(metrics, "skills_missions")
    with tail(PARTNERS.name) as records:
        created = http.post("/v1/missions", json=mission, headers=as_labelled)
        assert created.status_code == 201, created.text
        mid = created.json()["id"]
        assert http.get(f"/v1/missions/{mid}", headers=as_plain).status_code == 404
        done = {"completed_on": f"{YEAR}-03-01", "hours": 14}
        assert http.post(f"/v1/missions/{mid}/completion", json=done, headers=as_labelled).status_code == 409
        for staff in ("FAKE-0001", "FAKE-0002", "FAKE-0001"):
            assert (
                http.post(f"/v1/missions/{mid}/volunteers", json={"staff_id": staff}, headers=admin).status_code == 200
            )
        full = http.post(f"/v1/missions/{mid}/volunteers", json={"staff_id": "FAKE-0003"}, headers=admin)
        assert full.status_code == 409 and "full" in full.json()["detail"]
        completed = http.post(f"/v1/missions/{mid}/completion", json=done, headers=as_labelled)
        assert completed.status_code == 200 and completed.json()["volunteers"] == 2
        assert http.post(f"/v1/missions/{mid}/completion", json=done, headers=as_labelled).status_code == 200
        wait_until(lambda: indicator(metrics, "skills_missions") == before + 1, 60, "the mission to be counted")
        mine = events_for(records(0.5), mid)
    assert [e.type for e in mine] == ["skills_mission.published", "skills_mission.completed"]
    assert mine[1].data.volunteers == 2 and mine[1].data.hours == 14
    assert b"FAKE-000" not in b"".join(r.value for r in records(0))
    assert indicator(metrics, "skills_missions") == before + 1


def test_null_for_a_required_field_is_refused_and_nothing_stored(partners: Service, admin: dict) -> None:
    http = partners.http
    org = new_partner(http, admin)
    for body in ({"kind": None}, {"name": None}, {"departements": None}, {"contacts": None}, {"address": None}):
        r = http.patch(f"/v1/partners/{org['id']}", json=body, headers=admin)
        assert r.status_code == 422 and "may not be null" in r.text, (body, r.text)
    assert http.get(f"/v1/partners/{org['id']}", headers=admin).json() == org
    ps = draft(partners, admin, org["id"])
    for body in ({"partnership_type": None}, {"commitments": None}, {"starts_on": None}, {"departements": None}):
        r = http.patch(f"/v1/partnerships/{ps['id']}", json=body, headers=admin)
        assert r.status_code == 422 and "may not be null" in r.text, (body, r.text)
    open_ended = http.patch(f"/v1/partnerships/{ps['id']}", json={"ends_on": None, "title": None}, headers=admin)
    assert open_ended.status_code == 200 and open_ended.json()["ends_on"] is None
    assert http.get(f"/v1/partnerships/{ps['id']}", headers=admin).json() == open_ended.json()


def test_a_deleted_draft_is_gone_from_reads_and_lists(partners: Service, admin: dict) -> None:
    http = partners.http
    org = new_partner(http, admin)
    ps = draft(partners, admin, org["id"])
    assert http.delete(f"/v1/partnerships/{ps['id']}", headers=admin).status_code == 204
    assert http.get(f"/v1/partnerships/{ps['id']}", headers=admin).status_code == 404
    assert http.delete(f"/v1/partnerships/{ps['id']}", headers=admin).status_code == 404
    listed = http.get("/v1/partnerships", params={"partner_id": org["id"]}, headers=admin).json()
    assert listed["total"] == 0 and listed["items"] == []
