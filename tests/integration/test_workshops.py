"""The workshops service over the real broker and database server: venues, advisers, sessions with a waiting list,
check-in one by one and by sheet, accompaniments, retractions, and the link with detection."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from shared.events import IllectronismDetected, new_event
from shared.identity import Principal, Role, issue_token
from shared.privacy import person_ref
from shared.serde import decode, encode
from shared.settings import DEV_PERSON_REF_KEY, DEV_PLATFORM_TOKEN_KEY
from shared.topics import DETECTION, EVENT_TOPICS, WORKSHOPS
from tests.conftest import DBS, KAFKA, TEST_ENV, Service, wait_until
from tests.kafka_tools import produce, tail

pytestmark = pytest.mark.integration
PARIS = ZoneInfo("Europe/Paris")


def bearer(role: Role, partner_id: str | None = None, adviser_id: str | None = None) -> dict[str, str]:
    token = issue_token(Principal(f"test-{role.value}", role, partner_id, adviser_id), DEV_PLATFORM_TOKEN_KEY)
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(Role.ADMIN)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def indicator(metrics: Service, name: str, year: int) -> int:
    body = metrics.http.get("/v1/progress", params={"year": year}).json()
    return next(i["value"] for i in body["indicators"] if i["id"] == name)


def _committed_past(ends: dict[TopicPartition, int]) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    try:
        done = admin.list_group_offsets(TEST_ENV["METRICS_APP_ID"]).get(TEST_ENV["METRICS_APP_ID"], {})
    finally:
        admin.close()
    return all(done.get(tp) is not None and done[tp].offset >= end for tp, end in ends.items() if end > 0)


def baseline(metrics: Service, name: str, year: int) -> int:
    """The indicator once the metrics worker has caught up with everything already in the log (the topics are
    shared with other test runs: a worker still reading history would move the baseline under the test)."""
    consumer = KafkaConsumer(bootstrap_servers=KAFKA)
    try:
        parts = [TopicPartition(t.name, p) for t in EVENT_TOPICS for p in consumer.partitions_for_topic(t.name) or ()]
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
    wait_until(lambda: _committed_past(ends), 60, "the metrics worker to catch up with the log", interval=0.5)
    return indicator(metrics, name, year)


def events_on(records: list[Any], **match: Any) -> list[dict[str, Any]]:
    """Decoded events among `records` whose envelope or payload has the given values."""
    out = []
    for r in records:
        doc = json.loads(r.value)
        flat = {**doc.get("data", {}), **{k: v for k, v in doc.items() if k != "data"}}
        if all(flat.get(k) == v for k, v in match.items()):
            out.append(doc)
    return out


def new_venue(ws: Service, headers: dict = ADMIN, **over: Any) -> dict:
    body = {
        "venue_id": uid("v"),
        "name": "Bureau de poste, salle numérique",
        "kind": "post_office_room",
        "commune_insee": "93066",
        "qpv": True,
        "opened_on": "2022-04-01",
    } | over
    r = ws.http.post("/v1/venues", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return body


def new_workshop(ws: Service, venue_id: str, headers: dict = ADMIN, **over: Any) -> dict:
    # An hour ago, at the venue's wall-clock time: the session has started, so check-in is open.
    starts = (datetime.now(PARIS) - timedelta(hours=1)).replace(tzinfo=None, second=0, microsecond=0)
    body = {
        "workshop_id": uid("w"),
        "theme": "online_banking",
        "venue_id": venue_id,
        "starts_local": starts.isoformat(),
        "capacity": 10,
    } | over
    r = ws.http.post("/v1/workshops", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["record"]


@pytest.fixture
def ws(services: dict[str, Service]) -> Service:
    return services["workshops"]


def test_a_request_without_a_valid_token_is_refused(ws: Service) -> None:
    assert ws.http.get("/v1/workshops").status_code == 401
    assert ws.http.get("/v1/workshops", headers={"Authorization": "Bearer forged"}).status_code == 401


def test_new_equipped_place_and_adviser_publish_their_events_once(ws: Service, services: dict[str, Service]) -> None:
    metrics = services["metrics"]
    year = datetime.now(PARIS).year
    venues0, advisers0 = baseline(metrics, "venues_opened", year), indicator(metrics, "advisers_deployed", year)
    today = datetime.now(PARIS).date().isoformat()
    venue = {
        "venue_id": uid("v"),
        "name": "Bureau de poste rénové",
        "kind": "post_office_room",
        "commune_insee": "97411",  # Saint-Denis de La Réunion: its own time zone
        "rural": False,
        "newly_equipped": True,
        "opened_on": today,
    }
    adviser = {"facilitator_id": uid("cn"), "kind": "adviser", "departement": "2A", "deployed_on": today}
    with tail(WORKSHOPS.name) as records:
        first = ws.http.post("/v1/venues", json=venue, headers=ADMIN)
        assert first.status_code == 201, first.text
        assert ws.http.post("/v1/facilitators", json=adviser, headers=ADMIN).status_code == 201
        again = ws.http.post("/v1/venues", json=venue, headers=ADMIN)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        assert again.json()["event_ids"] == first.json()["event_ids"]
        conflict = ws.http.post("/v1/venues", json=venue | {"commune_insee": "75056"}, headers=ADMIN)
        assert conflict.status_code == 409
        opened = wait_until(lambda: events_on(records(0.3), venue_id=venue["venue_id"]), 10, "venue.opened")
        deployed = wait_until(lambda: events_on(records(0.3), adviser_id=adviser["facilitator_id"]), 10, "adviser")
    assert opened[0]["type"] == "venue.opened" and str(opened[0]["id"]) == first.json()["event_ids"][0]
    assert {"departement": "974", "region": "04", "timezone": "Indian/Reunion"}.items() <= opened[0]["data"].items()
    assert opened[0]["data"]["newly_equipped"] is True
    assert deployed[0]["type"] == "adviser.deployed" and deployed[0]["data"]["departement"] == "2A"
    wait_until(lambda: indicator(metrics, "venues_opened", year) == venues0 + 1, 10, "venues_opened + 1")
    wait_until(lambda: indicator(metrics, "advisers_deployed", year) == advisers0 + 1, 10, "advisers_deployed + 1")


def test_schedule_in_the_venues_local_time(ws: Service) -> None:
    venue = new_venue(ws, commune_insee="97209")  # Fort-de-France
    with tail(WORKSHOPS.name) as records:
        w = new_workshop(ws, venue["venue_id"], starts_local="2026-03-12T14:00:00", capacity=8)
        got = wait_until(lambda: events_on(records(0.3), workshop_id=w["id"]), 10, "workshop.scheduled")
    assert got[0]["type"] == "workshop.scheduled"
    assert got[0]["data"]["timezone"] == "America/Martinique" and got[0]["data"]["departement"] == "972"
    # 14:00 in Martinique (UTC-4) is 18:00 UTC.
    assert datetime.fromisoformat(got[0]["data"]["starts_at"]).astimezone(UTC).hour == 18
    gap = {"venue_id": new_venue(ws)["venue_id"], "starts_local": "2026-03-29T02:30:00"}  # Paris skips 02:00-03:00
    r = ws.http.post(
        "/v1/workshops", json={"workshop_id": uid("w"), "theme": "tablet_basics", "capacity": 5} | gap, headers=ADMIN
    )
    assert r.status_code == 422 and "does not exist" in r.text


def test_capacity_and_waiting_list_with_promotion(ws: Service) -> None:
    w = new_workshop(ws, new_venue(ws)["venue_id"], capacity=2)
    path = f"/v1/workshops/{w['id']}/registrations"
    regs = []
    for n in range(4):
        r = ws.http.post(path, json={"origin": "walk_in", "client_reference": f"cap-{w['id']}-{n}"}, headers=ADMIN)
        assert r.status_code == 201, r.text
        regs.append(r.json())
    assert [r["registration_status"] for r in regs] == ["registered", "registered", "waiting", "waiting"]
    assert [r["waiting_position"] for r in regs] == [None, None, 1, 2]
    # Registering the same person again changes nothing.
    again = ws.http.post(path, json={"origin": "walk_in", "client_reference": f"cap-{w['id']}-2"}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["registration_id"] == regs[2]["registration_id"]
    # A registered person cancels: the first on the waiting list gets the seat.
    cancel = ws.http.post(f"{path}/{regs[0]['registration_id']}/cancellation", headers=ADMIN)
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["promoted_registration_id"] == regs[2]["registration_id"]
    body = ws.http.get(f"/v1/workshops/{w['id']}", headers=ADMIN).json()
    assert body["registered"] == 2 and body["waiting"] == 1
    states = {r["registration_id"]: (r["status"], r["waiting_position"]) for r in body["registrations"]}
    assert states[regs[2]["registration_id"]] == ("registered", None)
    assert states[regs[3]["registration_id"]] == ("waiting", 1)
    # A waiting person cancelling frees no seat.
    cancel = ws.http.post(f"{path}/{regs[3]['registration_id']}/cancellation", headers=ADMIN)
    assert cancel.json()["promoted_registration_id"] is None
    assert ws.http.get(f"/v1/workshops/{w['id']}", headers=ADMIN).json()["waiting"] == 0


def test_cancelling_a_workshop_tells_the_registered_people_through_an_event(ws: Service) -> None:
    w = new_workshop(ws, new_venue(ws)["venue_id"], capacity=1)
    path = f"/v1/workshops/{w['id']}/registrations"
    clients = [f"cancel-{w['id']}-{n}" for n in range(2)]
    for c in clients:
        assert ws.http.post(path, json={"origin": "referral", "client_reference": c}, headers=ADMIN).status_code == 201
    anonymous = {"origin": "walk_in", "registration_id": uid("anon")}
    assert ws.http.post(path, json=anonymous, headers=ADMIN).status_code == 201
    with tail(WORKSHOPS.name) as records:
        r = ws.http.post(f"/v1/workshops/{w['id']}/cancellation", json={"reason": "facilitator ill"}, headers=ADMIN)
        assert r.status_code == 200, r.text
        got = wait_until(
            lambda: [e for e in events_on(records(0.3), workshop_id=w["id"]) if e["type"] == "workshop.cancelled"],
            10,
            "workshop.cancelled",
        )
    refs = [person_ref(c, DEV_PERSON_REF_KEY.encode()) for c in clients]
    assert sorted(got[0]["data"]["registered_person_refs"]) == sorted(refs)  # registered and waiting; anonymous: none
    assert ws.http.post(path, json={"origin": "walk_in", "client_reference": "late"}, headers=ADMIN).status_code == 409
    assert ws.http.post(f"/v1/workshops/{w['id']}/attendances", json={"seat": "1"}, headers=ADMIN).status_code == 409


def test_attendance_sheet_reports_each_row_and_records_good_rows_once(ws: Service, mongo) -> None:
    w = new_workshop(ws, new_venue(ws)["venue_id"], capacity=5)
    reg = ws.http.post(
        f"/v1/workshops/{w['id']}/registrations",
        json={"origin": "walk_in", "registration_id": uid("r")},
        headers=ADMIN,
    ).json()["registration_id"]
    sheet = "\n".join(
        [
            "seat,client_reference,registration_id,attended_at",
            f"1,sheet-{w['id']}-a,,",  # line 2: a known person
            "2,,,",  # line 3: anonymous
            f"3,,{reg},",  # line 4: an anonymous registration
            "",  # blank line: ignored
            f"4,,,{(datetime.now(UTC) + timedelta(days=2)).isoformat()}",  # line 6: in the future
            "2,,,",  # line 7: seat used twice
            f"5,sheet-{w['id']}-a,,",  # line 8: the same person twice
            "6,,no-such-registration,",  # line 9
            ",,,",  # line 10: blank again
            "7,,,yesterday",  # line 11: not a date
            "8,,,,extra",  # line 12: too many values
        ]
    )
    url = f"/v1/workshops/{w['id']}/attendance-sheet"
    files = {"sheet": ("sheet.csv", sheet.encode(), "text/csv")}
    first = ws.http.post(url, files=files, headers=ADMIN)
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["recorded"], report["duplicates"], report["rejected"]) == (3, 0, 6)
    by_line = {row["line"]: row for row in report["rows"]}
    assert [by_line[n]["status"] for n in (2, 3, 4)] == ["recorded"] * 3
    assert "future" in by_line[6]["reason"]
    assert "already used on line 3" in by_line[7]["reason"]
    assert "already on line 2" in by_line[8]["reason"]
    assert "no active registration" in by_line[9]["reason"]
    assert "ISO 8601" in by_line[11]["reason"]
    assert "more values" in by_line[12]["reason"]
    # Uploaded a second time: nothing new is recorded, the same rows are refused again.
    second = ws.http.post(url, files=files, headers=ADMIN).json()
    assert (second["recorded"], second["duplicates"], second["rejected"]) == (0, 3, 6)
    assert [r.get("event_id") for r in second["rows"]] == [r.get("event_id") for r in report["rows"]]
    stored = list(mongo[DBS["workshops"]]["attendances"].find({"workshop_id": w["id"]}))
    assert len(stored) == 3 and sum(1 for d in stored if d["person_ref"] is None) == 2
    # A known person checked in one by one afterwards is the same attendance.
    single = ws.http.post(
        f"/v1/workshops/{w['id']}/attendances", json={"client_reference": f"sheet-{w['id']}-a"}, headers=ADMIN
    )
    assert single.status_code == 200 and single.json()["status"] == "duplicate"
    listed = ws.http.get(f"/v1/workshops/{w['id']}/attendances", headers=ADMIN).json()
    assert len(listed) == 3 and all("person_ref" not in a for a in listed)
    bad = ws.http.post(url, files={"sheet": ("x.csv", b"name,phone\nA,B\n", "text/csv")}, headers=ADMIN)
    assert bad.status_code == 422 and "seat" in bad.text


def test_retracted_attendance_publishes_the_retraction_and_people_helped_goes_back_down(
    ws: Service, services: dict[str, Service]
) -> None:
    metrics = services["metrics"]
    w = new_workshop(ws, new_venue(ws)["venue_id"])
    year = datetime.fromisoformat(w["starts_at"]).astimezone(PARIS).year
    helped0 = baseline(metrics, "people_helped", year)
    r = ws.http.post(f"/v1/workshops/{w['id']}/attendances", json={"client_reference": uid("c")}, headers=ADMIN)
    assert r.status_code == 201, r.text
    attended = r.json()
    wait_until(lambda: indicator(metrics, "people_helped", year) == helped0 + 1, 10, "people_helped + 1")
    with tail(WORKSHOPS.name) as records:
        url = f"/v1/attendances/{attended['attendance_id']}/retraction"
        out = ws.http.post(url, json={"reason": "signed the wrong sheet"}, headers=ADMIN)
        assert out.status_code == 200 and out.json()["status"] == "retracted"
        got = wait_until(lambda: events_on(records(0.3), attendance_id=attended["attendance_id"]), 10, "retraction")
    assert got[0]["type"] == "attendance.retracted"
    assert got[0]["data"]["retracted_event_id"] == attended["event_id"]
    assert got[0]["data"]["reason"] == "signed the wrong sheet"
    wait_until(lambda: indicator(metrics, "people_helped", year) == helped0, 10, "people_helped back down")
    # Retracting again is harmless, and the record itself was never edited away.
    again = ws.http.post(url, json={"reason": "signed the wrong sheet"}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["event_id"] == out.json()["event_id"]
    listed = ws.http.get(f"/v1/workshops/{w['id']}/attendances", headers=ADMIN).json()
    assert listed[0]["retracted"] is True and listed[0]["retraction_reason"] == "signed the wrong sheet"


def test_anonymous_attendees_count_each_but_are_not_linkable(ws: Service, services: dict[str, Service]) -> None:
    metrics = services["metrics"]
    w = new_workshop(ws, new_venue(ws)["venue_id"])
    year = datetime.fromisoformat(w["starts_at"]).astimezone(PARIS).year
    helped0 = baseline(metrics, "people_helped", year)
    url = f"/v1/workshops/{w['id']}/attendances"
    with tail(WORKSHOPS.name) as records:
        ids = [ws.http.post(url, json={"seat": s}, headers=ADMIN).json()["attendance_id"] for s in ("1", "2")]
        assert ws.http.post(url, json={"seat": "1"}, headers=ADMIN).json()["status"] == "duplicate"
        assert ws.http.post(url, json={}, headers=ADMIN).status_code == 422  # no seat, no person: no idempotency key
        got = wait_until(lambda: len(events_on(records(0.3), workshop_id=w["id"])) == 2 and records(0), 10, "events")
    attended = events_on(got, workshop_id=w["id"])
    assert {e["data"]["attendance_id"] for e in attended} == set(ids)
    assert all(e["data"]["person_ref"] is None for e in attended)
    # Other events share the topic (venues, accompaniments …): only this session's attendances are looked at.
    mine = [r for r in got if json.loads(r.value)["data"].get("workshop_id") == w["id"]]
    assert all(r.key.decode().startswith("anon:") for r in mine)
    wait_until(lambda: indicator(metrics, "people_helped", year) == helped0 + 2, 10, "two anonymous people")


def test_a_person_detected_at_a_counter_then_attending_is_linked_by_the_same_reference(ws: Service) -> None:
    client = uid("client")  # what the counter terminal and the workshop both know the client by
    ref = person_ref(client, DEV_PERSON_REF_KEY.encode())
    detected = new_event(
        IllectronismDetected(
            detection_id=uid("d"),
            office_id="o-93-1",
            terminal_id="t-1",
            person_ref=ref,
            consent=True,
            needs=["online_banking"],
            qpv=True,
            departement="93",
            region="11",
            timezone="Europe/Paris",
            referral={"theme": "online_banking"},
        ),
        source="/tests/detection",
        time=datetime.now(UTC) - timedelta(days=3),
    )
    produce(DETECTION.name, encode(detected), ref.encode())
    w = new_workshop(ws, new_venue(ws)["venue_id"])
    reg = ws.http.post(
        f"/v1/workshops/{w['id']}/registrations",
        json={"origin": "referral", "client_reference": f"  {client.upper()} "},  # typed differently at the venue
        headers=ADMIN,
    )
    assert reg.status_code == 201, reg.text
    with tail(WORKSHOPS.name) as records:
        r = ws.http.post(
            f"/v1/workshops/{w['id']}/attendances",
            json={"registration_id": reg.json()["registration_id"]},
            headers=ADMIN,
        )
        assert r.status_code == 201, r.text
        got = wait_until(lambda: events_on(records(0.3), workshop_id=w["id"]), 10, "workshop.attended")
    event = decode(json.dumps(got[0]))
    assert event.type == "workshop.attended"
    assert event.data.person_ref == ref == detected.data.person_ref
    assert event.key == ref  # same key as the detection: same partition for the funnel
    assert client not in json.dumps(got[0])


def test_one_to_one_accompaniments_and_their_retraction(ws: Service, services: dict[str, Service]) -> None:
    metrics = services["metrics"]
    year = datetime.now(PARIS).year
    fs = new_venue(ws, kind="france_services", commune_insee="23096", rural=True, qpv=False)
    acc0 = baseline(metrics, "accompaniments", year)
    fs0 = baseline(metrics, "france_services_clients", year)
    body = {
        "accompaniment_id": uid("acc"),
        "channel": "france_services",
        "need": "taxes",
        "duration_minutes": 45,
        "completed_at": datetime.now(UTC).isoformat(),
        "venue_id": fs["venue_id"],
        "client_reference": uid("client"),
    }
    with tail(WORKSHOPS.name) as records:
        first = ws.http.post("/v1/accompaniments", json=body, headers=ADMIN)
        assert first.status_code == 201, first.text
        assert ws.http.post("/v1/accompaniments", json=body, headers=ADMIN).json()["status"] == "duplicate"
        got = wait_until(lambda: events_on(records(0.3), accompaniment_id=body["accompaniment_id"]), 10, "event")
    data = got[0]["data"]
    assert got[0]["type"] == "accompaniment.completed"
    assert (data["channel"], data["departement"], data["rural"], data["need"]) == (
        "france_services",
        "23",
        True,
        "taxes",
    )
    wait_until(lambda: indicator(metrics, "france_services_clients", year) == fs0 + 1, 10, "france services + 1")
    assert indicator(metrics, "accompaniments", year) >= acc0 + 1
    wrong_place = body | {"accompaniment_id": uid("acc"), "venue_id": new_venue(ws)["venue_id"]}
    assert ws.http.post("/v1/accompaniments", json=wrong_place, headers=ADMIN).status_code == 422
    r = ws.http.post(
        f"/v1/accompaniments/{body['accompaniment_id']}/retraction", json={"reason": "duplicate entry"}, headers=ADMIN
    )
    assert r.status_code == 200 and r.json()["status"] == "retracted"
    wait_until(lambda: indicator(metrics, "france_services_clients", year) == fs0, 10, "france services back down")


def test_an_adviser_session_needs_a_known_adviser(ws: Service) -> None:
    adviser = {"facilitator_id": uid("cn"), "kind": "adviser", "departement": "59", "deployed_on": "2022-04-01"}
    assert ws.http.post("/v1/facilitators", json=adviser, headers=ADMIN).status_code == 201
    body = {
        "accompaniment_id": uid("acc"),
        "channel": "adviser",
        "need": "benefits",
        "duration_minutes": 60,
        "completed_at": datetime.now(UTC).isoformat(),
        "venue_id": new_venue(ws, commune_insee="59350")["venue_id"],  # a post office in Lille
        "adviser_id": adviser["facilitator_id"],
    }
    own = bearer(Role.ADVISER, adviser_id=adviser["facilitator_id"])
    assert ws.http.post("/v1/accompaniments", json=body, headers=own).status_code == 201
    unknown = body | {"accompaniment_id": uid("acc"), "adviser_id": "cn-nobody"}
    assert ws.http.post("/v1/accompaniments", json=unknown, headers=ADMIN).status_code == 422
