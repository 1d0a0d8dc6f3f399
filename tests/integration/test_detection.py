"""The detection service over the real broker and database server: registry, terminal auth, idempotent batches,
the direct Kafka door with its dead letters, the relay, and no raw client reference anywhere."""

from __future__ import annotations

import base64
import json
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from shared.identity import Principal, Role, issue_token
from shared.privacy import person_ref
from shared.serde import decode
from shared.settings import DEV_PERSON_REF_KEY, DEV_PLATFORM_TOKEN_KEY
from shared.terminal_sdk import SIGNATURE_HEADER, TerminalProducer, detection_event_id, ingest_record
from shared.topics import DEAD_LETTER, DETECTION
from tests.conftest import DBS, KAFKA, PORT_BASE, SUFFIX, Service, start_service, stop_service, wait_ready, wait_until
from tests.kafka_tools import produce, tail

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
INGEST_TOPIC = f"detection.ingest.test{SUFFIX}"
ADMIN = {"Authorization": "Bearer " + issue_token(Principal("test-admin", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}
PARTNER = {
    "Authorization": "Bearer " + issue_token(Principal("u", Role.PARTNER, partner_id="p-1"), DEV_PLATFORM_TOKEN_KEY)
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fake_client() -> str:
    return f"FAKE-CLIENT-{uuid.uuid4().hex}"


def item(**over: Any) -> dict[str, Any]:
    body = {
        "detection_id": f"d-{uuid.uuid4().hex}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "needs": ["online_banking", "admin_procedures"],
        "client_reference": fake_client(),
        "consent": True,
        "referral": {"theme": "online_banking"},
    }
    return body | over


def events_by_id(records: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for r in records:
        try:
            event = decode(r.value)
        except ValueError:
            continue
        out.setdefault(str(event.id), []).append((r, event))
    return out


@pytest.fixture(scope="module")
def detection(stack: None) -> Iterator[Service]:
    """The detection service on its own port, with an ingest topic of its own (other copies share the broker)."""
    svc = start_service(
        "detection",
        PORT_BASE + 5,
        {
            "DETECTION_DB": DBS["detection"],
            "DETECTION_INGEST_TOPIC": INGEST_TOPIC,
            "DETECTION_RELAY_INTERVAL_S": "0.5",
            "DETECTION_MAX_BATCH": "500",
        },
    )
    try:
        wait_ready(svc)
        yield svc
    finally:
        stop_service(svc)


def office(dep: str, commune: str, **flags: bool) -> dict[str, Any]:
    return {"office_id": f"o-{dep}-{RUN}", "name": f"Bureau de test {dep}", "commune_insee": commune, **flags}


@pytest.fixture(scope="module")
def offices(detection: Service) -> dict[str, dict[str, Any]]:
    made = {
        "qpv": office("93", "93066", qpv=True),
        "reunion": office("974", "97411", rural=True, france_services=True),
    }
    for o in made.values():
        r = detection.http.put(f"/v1/offices/{o['office_id']}", json=o, headers=ADMIN)
        assert r.status_code in (200, 201), r.text
    return made


def register(detection: Service, office_id: str) -> dict[str, Any]:
    r = detection.http.post("/v1/terminals", json={"office_id": office_id, "label": "guichet 1"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def terminal(detection: Service, offices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return register(detection, offices["qpv"]["office_id"])


@pytest.fixture(scope="module")
def reunion_terminal(detection: Service, offices: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return register(detection, offices["reunion"]["office_id"])


# --- office registry and terminals -----------------------------------------------------------------


def test_office_registry_is_enriched_and_admin_only(detection: Service, offices: dict) -> None:
    body = offices["reunion"]
    got = detection.http.get(f"/v1/offices/{body['office_id']}", headers=ADMIN).json()
    assert got["departement"] == "974" and got["region"] == "04" and got["timezone"] == "Indian/Reunion"
    assert got["france_services"] is True and got["rural"] is True and got["qpv"] is False
    again = detection.http.put(f"/v1/offices/{body['office_id']}", json=body, headers=ADMIN)
    assert again.status_code == 200 and again.json()["status"] == "replaced"
    path = f"/v1/offices/o-x-{RUN}"
    assert detection.http.put(path, json=body | {"office_id": f"o-x-{RUN}"}).status_code == 401
    assert detection.http.put(path, json=body | {"office_id": f"o-x-{RUN}"}, headers=PARTNER).status_code == 403
    mismatch = body | {"office_id": f"o-x-{RUN}", "departement": "75"}
    r = detection.http.put(path, json=mismatch, headers=ADMIN)
    assert r.status_code == 422 and "not in département" in r.text
    csv_text = f"office_id,name,commune_insee,qpv,rural,france_services\no-csv-{RUN},Bureau CSV,2A004,0,1,1\n"
    r = detection.http.post(
        "/v1/offices/import", content=csv_text, headers=ADMIN | {"content-type": "text/csv; charset=utf-8"}
    )
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    corsica = detection.http.get(f"/v1/offices/o-csv-{RUN}", headers=ADMIN).json()
    assert corsica["departement"] == "2A" and corsica["region"] == "94" and corsica["france_services"] is True


def test_terminal_token_is_shown_once_and_stored_hashed(detection: Service, terminal: dict, mongo) -> None:
    stored = mongo[DBS["detection"]]["terminals"].find_one({"_id": terminal["terminal_id"]})
    secret = terminal["token"].split(".", 1)[1]
    assert secret not in json.dumps(stored, default=str)
    listed = detection.http.get("/v1/terminals", params={"office_id": terminal["office_id"]}, headers=ADMIN).json()
    assert terminal["terminal_id"] in {t["terminal_id"] for t in listed}
    assert all("token" not in t and "token_hash" not in t for t in listed)


def test_auth_matrix(detection: Service, offices: dict, terminal: dict) -> None:
    url = "/v1/detections"
    assert detection.http.post(url, json=item()).status_code == 401
    assert detection.http.post(url, json=item(), headers=bearer("nonsense")).status_code == 401
    forged = terminal["terminal_id"] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    assert detection.http.post(url, json=item(), headers=bearer(forged)).status_code == 401
    assert detection.http.post(url, json=item(), headers=ADMIN).status_code == 401  # a platform token is no terminal
    # A terminal only submits for its own office.
    other = offices["reunion"]["office_id"]
    r = detection.http.post(url, json={"office_id": other, "detections": [item()]}, headers=bearer(terminal["token"]))
    assert r.status_code == 403 and "own office" in r.text
    r = detection.http.post(url, json=item(office_id=other), headers=bearer(terminal["token"]))
    assert r.status_code == 403
    # Admin routes refuse terminals.
    assert detection.http.get("/v1/terminals", headers=bearer(terminal["token"])).status_code == 401
    # Revoked: refused at once.
    doomed = register(detection, offices["qpv"]["office_id"])
    assert detection.http.post(url, json=item(), headers=bearer(doomed["token"])).status_code == 201
    assert detection.http.post(f"/v1/terminals/{doomed['terminal_id']}/revocation", headers=PARTNER).status_code == 403
    r = detection.http.post(f"/v1/terminals/{doomed['terminal_id']}/revocation", headers=ADMIN)
    assert r.status_code == 200 and r.json()["revoked"] is True
    r = detection.http.post(url, json=item(), headers=bearer(doomed["token"]))
    assert r.status_code == 401 and "revoked" in r.text


# --- HTTP door --------------------------------------------------------------------------------------


def test_single_detection_is_published_enriched_and_keyed_by_person(detection: Service, terminal: dict) -> None:
    body = item()
    with tail(DETECTION.name) as records:
        r = detection.http.post("/v1/detections", json=body, headers=bearer(terminal["token"]))
        assert r.status_code == 201, r.text
        result = r.json()["results"][0]
        assert result["status"] == "accepted" and r.json()["published"] is True
        assert result["event_id"] == str(detection_event_id(terminal["office_id"], body["detection_id"]))
        got = wait_until(lambda: events_by_id(records(0.3)).get(result["event_id"]), 10, "the event")
    record, event = got[0]
    ref = person_ref(body["client_reference"], DEV_PERSON_REF_KEY.encode())
    assert record.key == ref.encode() and event.data.person_ref == ref
    assert event.type == "illectronism.detected" and event.source == "/services/detection"
    d = event.data
    assert (d.departement, d.region, d.timezone, d.qpv, d.office_id) == (
        "93",
        "11",
        "Europe/Paris",
        True,
        terminal["office_id"],
    )
    assert d.terminal_id == terminal["terminal_id"] and d.referral.theme == "online_banking"
    assert event.time == datetime.fromisoformat(body["occurred_at"])


def test_an_anonymous_detection_is_accepted_on_both_doors_keyed_by_its_own_id(
    detection: Service, terminal: dict
) -> None:
    """No client reference: published with no person reference, keyed `anon:<event id>` (spread over partitions)."""
    over_http = {k: v for k, v in item(referral=None).items() if k != "client_reference"}
    over_kafka = {k: v for k, v in item(referral=None).items() if k != "client_reference"}
    with tail(DETECTION.name) as records:
        r = detection.http.post("/v1/detections", json=over_http, headers=bearer(terminal["token"]))
        assert r.status_code == 201 and r.json()["results"][0]["status"] == "accepted", r.text
        with TerminalProducer(KAFKA, terminal["token"], terminal["office_id"], topic=INGEST_TOPIC) as producer:
            producer.send_many([over_kafka])
        wanted = {str(detection_event_id(terminal["office_id"], b["detection_id"])) for b in (over_http, over_kafka)}

        def both() -> dict[str, list[Any]] | None:
            seen = events_by_id(records(0.3))
            return seen if wanted <= set(seen) else None

        found = wait_until(both, 15, "both events")
    for eid in wanted:
        ((record, event),) = found[eid]
        assert event.data.person_ref is None and record.key == f"anon:{eid}".encode()
    again = detection.http.post("/v1/detections", json=over_http, headers=bearer(terminal["token"]))
    assert again.status_code == 200 and again.json()["results"][0]["status"] == "duplicate"


def test_same_batch_three_times_publishes_each_detection_once(detection: Service, terminal: dict) -> None:
    batch = {"detections": [item() for _ in range(120)]}
    answers = []
    with tail(DETECTION.name) as records:
        for _ in range(3):
            r = detection.http.post("/v1/detections", json=batch, headers=bearer(terminal["token"]))
            assert r.status_code == 200, r.text
            answers.append(r.json())
        ids = {res["event_id"] for res in answers[0]["results"]}
        wait_until(lambda: ids <= set(events_by_id(records(0.3))), 15, "all 120 events")
        seen = events_by_id(records(2.0))  # and a little longer, for any second copy
    assert answers[0]["accepted"] == 120 and answers[0]["duplicates"] == 0
    assert answers[1]["accepted"] == 0 and answers[1]["duplicates"] == 120
    assert answers[2]["duplicates"] == 120
    assert [r["event_id"] for r in answers[2]["results"]] == [r["event_id"] for r in answers[0]["results"]]
    assert all(len(seen[i]) == 1 for i in ids), "each detection published exactly once"


def test_partial_batch_accepts_the_good_and_says_why_the_bad_are_refused(
    detection: Service, terminal: dict, mongo
) -> None:
    now = datetime.now(UTC)
    good = [item(), item(referral=None, consent=False)]
    bad = [
        (item(occurred_at=(now + timedelta(hours=2)).isoformat()), "in the future"),
        (item(occurred_at=(now - timedelta(days=45)).isoformat()), "older than the accepted window"),
        (item(occurred_at="2026-01-01T10:00:00"), "timezone"),
        (item(needs=["knitting"]), "needs"),
        (item(needs=[]), "needs"),
        (item(surprise=1), "Extra inputs"),
        ({k: v for k, v in item().items() if k != "client_reference"}, "referral needs a client_reference"),
        (item(consent=False), "consent"),
        (item(detection_id="has/slash"), "detection_id"),
        ("not an object", "JSON object"),
    ]
    dup = dict(good[0])
    body = {"office_id": terminal["office_id"], "detections": [good[0], *[b for b, _ in bad], good[1], dup]}
    with tail(DETECTION.name) as records:
        r = detection.http.post("/v1/detections", json=body, headers=bearer(terminal["token"]))
        assert r.status_code == 200, r.text
        report = r.json()
        results = report["results"]
        assert [x["status"] for x in results] == ["accepted"] + ["rejected"] * len(bad) + ["accepted", "duplicate"]
        for (_, reason), res in zip(bad, results[1:-2], strict=True):
            assert reason in res["reason"], (reason, res)
        assert (report["accepted"], report["rejected"], report["duplicates"]) == (2, len(bad), 1)
        wanted = {results[0]["event_id"], results[-2]["event_id"]}
        wait_until(lambda: wanted <= set(events_by_id(records(0.3))), 10, "the two good events")
        published = events_by_id(records(1.0))
    refused_ids = {str(detection_event_id(terminal["office_id"], b["detection_id"])) for b, _ in bad[:-2]}
    assert not refused_ids & set(published)
    keys = mongo[DBS["detection"]]["detections"]
    for b, _ in bad[:-1]:
        assert keys.find_one({"_id": f"{terminal['office_id']}/{b.get('detection_id')}"}) is None


def test_late_detection_keeps_its_event_time_and_office_time_zone(detection: Service, reunion_terminal: dict) -> None:
    when = (datetime.now(UTC) - timedelta(days=12)).replace(microsecond=0).astimezone(timezone(timedelta(hours=4)))
    body = item(occurred_at=when.isoformat())
    with tail(DETECTION.name) as records:
        r = detection.http.post(
            "/v1/detections", json={"detections": [body]}, headers=bearer(reunion_terminal["token"])
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        eid = r.json()["results"][0]["event_id"]
        (_, event), *_ = wait_until(lambda: events_by_id(records(0.3)).get(eid), 10, "the late event")
    assert event.time == when
    assert event.data.timezone == "Indian/Reunion" and event.data.region == "04" and event.data.france_services


@pytest.mark.parametrize(
    "content, status, says",
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 422, "object"),
        (b'{"detections": [], "office_id": null}', 422, "detections"),
        (b'{"detections": [{}], "extra": true}', 422, "extra"),
        (b'{"detections": "many"}', 422, "detections"),
    ],
)
def test_malformed_bodies_are_refused_whole(
    detection: Service, terminal: dict, content: bytes, status: int, says: str
) -> None:
    r = detection.http.post(
        "/v1/detections", content=content, headers=bearer(terminal["token"]) | {"content-type": "application/json"}
    )
    assert r.status_code == status and says.lower() in r.text.lower(), r.text


def test_oversized_batches_and_bodies_write_nothing(detection: Service, terminal: dict, mongo) -> None:
    batch = [item() for _ in range(501)]
    r = detection.http.post("/v1/detections", json={"detections": batch}, headers=bearer(terminal["token"]))
    assert r.status_code == 413 and "at most 500" in r.text
    huge = item(client_reference="x" * (3 * 1024 * 1024))
    r = detection.http.post("/v1/detections", json=huge, headers=bearer(terminal["token"]))
    assert r.status_code == 413
    single_future = item(occurred_at=(datetime.now(UTC) + timedelta(days=3)).isoformat())
    r = detection.http.post("/v1/detections", json=single_future, headers=bearer(terminal["token"]))
    assert r.status_code == 422 and "future" in r.text
    keys = mongo[DBS["detection"]]["detections"]
    for b in (batch[0], batch[-1], huge, single_future):
        assert keys.find_one({"_id": f"{terminal['office_id']}/{b['detection_id']}"}) is None


# --- Kafka door -------------------------------------------------------------------------------------


def test_kafka_path_validates_enriches_and_dead_letters(
    detection: Service, terminal: dict, reunion_terminal: dict, offices: dict
) -> None:
    good = [item(), item(occurred_at=(datetime.now(UTC) - timedelta(days=3)).isoformat())]
    future = item(occurred_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    with tail(DETECTION.name) as events, tail(DEAD_LETTER.name) as letters:
        with TerminalProducer(KAFKA, terminal["token"], terminal["office_id"], topic=INGEST_TOPIC) as producer:
            producer.send_many([*good, future, good[0]])  # the first one twice: published once
        # A record naming another office, one with a forged signature, one unsigned, one that is not JSON.
        with TerminalProducer(KAFKA, terminal["token"], offices["reunion"]["office_id"], topic=INGEST_TOPIC) as p:
            wrong_office = item()
            p.send_many([wrong_office])
        forged = terminal["terminal_id"] + ".BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
        with TerminalProducer(KAFKA, forged, terminal["office_id"], topic=INGEST_TOPIC) as p:
            forged_item = item()
            p.send_many([forged_item])
        unsigned = item()
        key, value = ingest_record(terminal["terminal_id"], terminal["office_id"], unsigned)
        produce(INGEST_TOPIC, value, key)
        not_json_key = f"junk-{RUN}".encode()
        produce(INGEST_TOPIC, b"{oops", not_json_key)

        wanted = {str(detection_event_id(terminal["office_id"], g["detection_id"])) for g in good}
        wait_until(lambda: wanted <= set(events_by_id(events(0.3))), 15, "the Kafka-path events")
        mine = {
            f"{terminal['office_id']}/{future['detection_id']}": "in the future",
            f"{offices['reunion']['office_id']}/{wrong_office['detection_id']}": "not registered to office",
            f"{terminal['office_id']}/{forged_item['detection_id']}": "bad terminal signature",
            f"{terminal['office_id']}/{unsigned['detection_id']}": "missing terminal-signature",
            not_json_key.decode(): "not JSON",
        }

        def dead() -> dict[str, dict]:
            got = {}
            for r in letters(0.3):
                doc = json.loads(r.value)
                if doc["consumer"].endswith(DBS["detection"]) and doc["key"] in mine:
                    got[doc["key"]] = doc
            return got if len(got) == len(mine) else {}

        letters_by_key = wait_until(dead, 15, "five dead letters")
        seen = events_by_id(events(1.0))
    for key, reason in mine.items():
        letter = letters_by_key[key]
        assert reason in letter["reason"], (reason, letter)
        assert letter["source"]["topic"] == INGEST_TOPIC
        raw = base64.b64decode(letter["value_base64"]) if letter["value_base64"] else b""
        assert b"FAKE-CLIENT-" not in raw, "the dead letter keeps no client reference"
    assert all(len(seen[i]) == 1 for i in wanted)
    for _, event in (seen[i][0] for i in wanted):
        assert event.data.office_id == terminal["office_id"] and event.data.departement == "93" and event.data.qpv
    # The same detection later over HTTP is a duplicate: one idempotency key for both doors.
    r = detection.http.post("/v1/detections", json=good[1], headers=bearer(terminal["token"]))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "duplicate"


# --- nothing lost, nothing leaked -------------------------------------------------------------------


def test_a_dead_letter_redacts_a_client_reference_whatever_the_escaping(detection: Service, terminal: dict) -> None:
    """The key written `client\\u005freference` in the record's text is the same key once parsed: blanked out."""
    from kafka import KafkaProducer

    marker = f"FAKE-CLIENT-ESCAPED-{uuid.uuid4().hex}"
    body = item()
    del body["client_reference"]
    detection_text = json.dumps(body)[:-1] + f', "client\\u005freference": "{marker}"}}'
    assert json.loads(detection_text)["client_reference"] == marker
    value = (
        f'{{"v": 1, "terminal_id": "{terminal["terminal_id"]}", "office_id": "{terminal["office_id"]}", '
        f'"detection": {detection_text}}}'
    ).encode()
    key = f"{terminal['office_id']}/{body['detection_id']}".encode()
    with tail(DEAD_LETTER.name) as letters:
        producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all")
        try:
            producer.send(INGEST_TOPIC, value=value, key=key, headers=[(SIGNATURE_HEADER, b"forged")]).get(timeout=10)
        finally:
            producer.close()
        found = wait_until(lambda: [r for r in letters(0.3) if r.key == key], 15, "the dead letter")
    letter = json.loads(found[0].value)
    assert "signature" in letter["reason"]
    kept = base64.b64decode(letter["value_base64"])
    assert marker.encode() not in kept and marker.encode() not in found[0].value
    assert json.loads(kept)["detection"]["client_reference"] == "[redacted]"


def test_relay_publishes_what_a_crash_left_behind(detection: Service, terminal: dict, mongo) -> None:
    """A batch stored with its events whose publication never happened (the service died in between)."""
    from services.detection.domain import check_item, office_from_doc
    from services.detection.store import pending_doc

    db = mongo[DBS["detection"]]
    office_doc = db["offices"].find_one({"_id": terminal["office_id"]})
    rules = {"key": DEV_PERSON_REF_KEY.encode(), "window": timedelta(days=30), "skew": timedelta(minutes=5)}
    now = datetime.now(UTC)
    mine, stolen = (
        check_item(item(), office_from_doc(office_doc), terminal["terminal_id"], now=now, **rules) for _ in range(2)
    )
    batch = f"crashed-{RUN}"
    with tail(DETECTION.name) as records:
        db["pending"].insert_one(pending_doc(batch, now - timedelta(hours=1), [mine.event, stolen.event]))
        db["detections"].insert_one({"_id": mine.record_id, "b": batch})
        # `stolen` was recorded by another batch (which published it): this one must not publish it again.
        db["detections"].insert_one({"_id": stolen.record_id, "b": "other"})
        wait_until(lambda: events_by_id(records(0.3)).get(str(mine.event.id)), 15, "the relay to publish")
        wait_until(lambda: db["pending"].find_one({"_id": batch}) is None, 10, "the pending batch to be cleared")
        assert str(stolen.event.id) not in events_by_id(records(1.0))


def test_kafka_down_answers_503_and_records_nothing(stack: None, detection: Service, terminal: dict, mongo) -> None:
    """A copy of the service whose broker is away: alive, not ready, and it accepts nothing."""
    svc = start_service(
        "detection",
        PORT_BASE + 6,
        {"DETECTION_DB": DBS["detection"], "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "DETECTION_INGEST_ENABLED": "0"},
    )
    try:

        def alive() -> bool:
            try:
                return svc.http.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(alive, 60, "the broker-less copy to answer")
        assert svc.http.get("/readyz").json()["checks"] == {"kafka": False, "mongodb": True}
        body = item()
        started = time.monotonic()
        r = svc.http.post("/v1/detections", json={"detections": [body]}, headers=bearer(terminal["token"]))
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert time.monotonic() - started < 5, "a write answers within seconds while Kafka is away"
        keys = mongo[DBS["detection"]]["detections"]
        assert keys.find_one({"_id": f"{terminal['office_id']}/{body['detection_id']}"}) is None
        # The same item once the broker answers: accepted, so nothing was half-written before.
        r = detection.http.post("/v1/detections", json={"detections": [body]}, headers=bearer(terminal["token"]))
        assert r.json()["accepted"] == 1
    finally:
        stop_service(svc)


def test_no_raw_client_reference_in_kafka_or_mongodb(detection: Service, terminal: dict, mongo) -> None:
    marker = f"FAKE-CLIENT-LEAKCHECK-{uuid.uuid4().hex}"
    http_item, kafka_item, bad_item = item(client_reference=marker), item(client_reference=marker), item()
    bad_item.update(client_reference=marker, needs=["knitting"])
    topics = [DETECTION.name, DEAD_LETTER.name, "workshops.events", "partners.events"]
    with tail(DETECTION.name) as events, tail(DEAD_LETTER.name) as letters, tail("workshops.events") as ws:
        r = detection.http.post(
            "/v1/detections", json={"detections": [http_item, bad_item]}, headers=bearer(terminal["token"])
        )
        assert r.json()["accepted"] == 1 and r.json()["rejected"] == 1
        assert marker not in r.text
        bad_kafka = bad_item | {"detection_id": f"bad-{uuid.uuid4().hex}"}
        with TerminalProducer(KAFKA, terminal["token"], terminal["office_id"], topic=INGEST_TOPIC) as producer:
            producer.send_many([kafka_item, bad_kafka])
        eid = str(detection_event_id(terminal["office_id"], kafka_item["detection_id"]))
        wait_until(lambda: events_by_id(events(0.3)).get(eid), 15, "the Kafka-path event")
        bad_key = f"{terminal['office_id']}/{bad_kafka['detection_id']}".encode()
        wait_until(lambda: any(r.key == bad_key for r in letters(0.3)), 15, "the dead letter")
        everything = [*events(0.5), *letters(0.5), *ws(0.1)]
    assert topics  # (the four topics the platform publishes on; detection.ingest is the terminals' raw input)
    needles = [marker.encode(), marker.casefold().encode(), base64.b64encode(marker.encode())]
    for record in everything:
        blob = (record.key or b"") + (record.value or b"") + b"".join(v for _, v in record.headers or ())
        assert not any(n in blob for n in needles), f"raw client reference in {record.topic}"
        if record.topic == DEAD_LETTER.name:
            inner = json.loads(record.value).get("value_base64")
            assert not inner or marker.encode() not in base64.b64decode(inner)
    db = mongo[DBS["detection"]]
    # Every collection, outbox blobs (compressed JSON lines of events) opened.
    for name in db.list_collection_names():
        for doc in db[name].find():
            blob = zlib.decompress(bytes(doc["blob"])).decode() if "blob" in doc else ""
            text = json.dumps(doc, default=str) + blob
            assert marker not in text and marker.casefold() not in text, f"raw client reference in {name}"
