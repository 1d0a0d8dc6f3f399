"""The walking skeleton, end to end over the real broker and database server:
an attendance recorded by the workshops service moves the live counter of the metrics service."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import pytest

from services.workshops.store import Store
from shared.aggregates import Change, version_id
from shared.identity import Principal, Role, issue_token
from shared.mongo import mongo_client
from shared.outbox import NOTES
from shared.privacy import person_ref
from shared.serde import encode
from shared.settings import DEV_PERSON_REF_KEY, DEV_PLATFORM_TOKEN_KEY
from shared.topics import DEAD_LETTER, WORKSHOPS
from tests import samples
from tests.conftest import DBS, MONGODB_URI, TEST_ENV, Service, wait_until
from tests.integration.test_workshops import new_venue, new_workshop
from tests.kafka_tools import dead_letters_with_key, produce, tail

pytestmark = pytest.mark.integration
YEAR = datetime.now(UTC).year
ME = TEST_ENV["METRICS_APP_ID"]  # the test metrics worker (others may dead-letter the same records)
# Recording attendance needs a platform token (issued by the partners service; minted here with the dev key).
ADMIN = {"Authorization": "Bearer " + issue_token(Principal("test-admin", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}


def indicator(metrics: Service, name: str, year: int = YEAR) -> int:
    body = metrics.http.get("/v1/progress", params={"year": year}).json()
    return next(i["value"] for i in body["indicators"] if i["id"] == name)


SESSION: dict[str, str] = {}  # the session every attendance of this module is at (made by `session`)


@pytest.fixture(scope="module", autouse=True)
def session(services: dict[str, Service]) -> None:
    """A session in progress at a post office in Seine-Saint-Denis (QPV): attendances name it, and the registry
    gives their venue, département and time zone."""
    venue = new_venue(services["workshops"])["venue_id"]
    SESSION["workshop_id"] = new_workshop(services["workshops"], venue)["id"]


def attendance(client_reference: str | None, **over) -> dict:
    body = {
        "attendance_id": f"att-{uuid.uuid4()}",
        "workshop_id": SESSION["workshop_id"],
        "attended_at": datetime.now(UTC).isoformat(),
        "client_reference": client_reference,
    }
    return body | over


def test_every_service_answers_its_probes(services: dict[str, Service]) -> None:
    for svc in services.values():
        assert svc.http.get("/healthz").json()["status"] == "ok"
        ready = svc.http.get("/readyz").json()
        assert {k: ready[k] for k in ("ready", "checks")} == {"ready": True, "checks": {"kafka": True, "mongodb": True}}
        if svc.name == "metrics":  # what a starting worker is still doing, here nothing
            assert ready["progress"] == {"recovery": {"state": "done"}}
        assert "http_requests_total" in svc.http.get("/metrics").text
        assert svc.http.get("/openapi.json").json()["info"]["title"].startswith("Alliance Dynamique")


def test_attendance_moves_people_helped_once(services: dict[str, Service], mongo) -> None:
    workshops, metrics = services["workshops"], services["metrics"]
    helped0 = indicator(metrics, "people_helped")
    attended0 = indicator(metrics, "workshop_attendances")
    client = f"client-{uuid.uuid4()}"

    first = attendance(client)
    started = time.monotonic()
    r = workshops.http.post("/v1/attendances", json=first, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "accepted" and r.json()["published"] is True
    wait_until(lambda: indicator(metrics, "people_helped") == helped0 + 1, 5, "people_helped + 1")
    print(f"attendance visible in /v1/progress after {time.monotonic() - started:.2f}s")

    # The same attendance again: recognised, not recorded twice.
    again = workshops.http.post("/v1/attendances", json=first, headers=ADMIN)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["event_id"] == r.json()["event_id"]

    # The same event (same id) delivered twice more by the broker, then a new attendance of the same person
    # (same key, same partition: processed after the duplicates).
    stored = mongo[DBS["workshops"]]["attendances"].find_one({"_id": first["attendance_id"]})
    ref = person_ref(client, DEV_PERSON_REF_KEY.encode())
    assert stored["person_ref"] == ref
    assert client not in json.dumps(stored, default=str), "the raw client reference must never be stored"
    assert mongo[DBS["workshops"]][NOTES].find_one({"_id": version_id(first["attendance_id"], 1)}) is None
    duplicate = samples.attended(ref, event_id=uuid.UUID(stored["event_id"]))
    produce(WORKSHOPS.name, encode(duplicate), ref.encode())
    produce(WORKSHOPS.name, encode(duplicate), ref.encode())
    second_visit = workshops.http.post("/v1/attendances", json=attendance(client), headers=ADMIN)
    assert second_visit.status_code == 201
    wait_until(lambda: indicator(metrics, "workshop_attendances") >= attended0 + 2, 5, "second visit counted")
    assert indicator(metrics, "workshop_attendances") == attended0 + 2
    assert indicator(metrics, "people_helped") == helped0 + 1

    # A second person moves it again.
    assert (
        workshops.http.post("/v1/attendances", json=attendance(f"client-{uuid.uuid4()}"), headers=ADMIN).status_code
        == 201
    )
    wait_until(lambda: indicator(metrics, "people_helped") == helped0 + 2, 5, "people_helped + 2")


def test_retraction_takes_the_person_back_out(services: dict[str, Service]) -> None:
    workshops, metrics = services["workshops"], services["metrics"]
    helped0 = indicator(metrics, "people_helped")
    body = attendance(f"client-{uuid.uuid4()}")
    assert workshops.http.post("/v1/attendances", json=body, headers=ADMIN).status_code == 201
    wait_until(lambda: indicator(metrics, "people_helped") == helped0 + 1, 5, "people_helped + 1")
    r = workshops.http.post(
        f"/v1/attendances/{body['attendance_id']}/retraction", json={"reason": "wrong sheet"}, headers=ADMIN
    )
    assert r.status_code == 200 and r.json()["status"] == "retracted"
    wait_until(lambda: indicator(metrics, "people_helped") == helped0, 5, "people_helped back down")


def test_anonymous_attendance_counts_as_one_person_each(services: dict[str, Service]) -> None:
    workshops, metrics = services["workshops"], services["metrics"]
    helped0 = indicator(metrics, "people_helped")
    for _ in range(2):
        assert workshops.http.post("/v1/attendances", json=attendance(None), headers=ADMIN).status_code == 201
    wait_until(lambda: indicator(metrics, "people_helped") == helped0 + 2, 5, "two anonymous people")


@pytest.mark.parametrize(
    "body, reason",
    [
        ({"departement": "99"}, "unknown département"),
        ({"attended_at": "2999-01-01T00:00:00Z"}, "future"),
        ({"attended_at": "2022-01-01T00:00:00"}, "timezone"),
        ({"surprise": 1}, "Extra inputs"),
        ({"theme": "knitting"}, "theme"),
    ],
)
def test_bad_attendance_is_refused_with_a_reason(services: dict[str, Service], body: dict, reason: str) -> None:
    r = services["workshops"].http.post("/v1/attendances", json=attendance("client-x") | body, headers=ADMIN)
    assert r.status_code == 422
    assert reason in r.text


def test_reusing_an_attendance_id_with_other_details_is_a_conflict(services: dict[str, Service]) -> None:
    body = attendance(f"client-{uuid.uuid4()}")
    assert services["workshops"].http.post("/v1/attendances", json=body, headers=ADMIN).status_code == 201
    other = body | {"client_reference": f"client-{uuid.uuid4()}"}
    r = services["workshops"].http.post("/v1/attendances", json=other, headers=ADMIN)
    assert r.status_code == 409


def test_malformed_record_goes_to_dead_letter_and_counting_goes_on(services: dict[str, Service]) -> None:
    metrics = services["metrics"]
    helped0 = indicator(metrics, "people_helped")
    bad_key = f"bad-{uuid.uuid4()}".encode()
    wrong_key = f"wrong-{uuid.uuid4()}".encode()
    valid_but_invalid = json.loads(encode(samples.attended(samples.ref(uuid.uuid4()))))
    valid_but_invalid["data"]["departement"] = "00"
    with tail(DEAD_LETTER.name) as records:
        produce(WORKSHOPS.name, b"{this is not json", bad_key)
        produce(WORKSHOPS.name, json.dumps(valid_but_invalid).encode(), bad_key)
        produce(WORKSHOPS.name, encode(samples.attended(samples.ref(uuid.uuid4()))), wrong_key)
        got = wait_until(
            lambda: (
                len(dead_letters_with_key(records(0.3), bad_key, ME)) >= 2
                and dead_letters_with_key(records(0), wrong_key, ME)
            ),
            10,
            "dead letters",
        )
        assert got
        letters = dead_letters_with_key(records(0), bad_key, ME)
        assert "not JSON" in letters[0]["reason"]
        assert "departement" in letters[1]["reason"]
        assert letters[0]["source"]["topic"] == WORKSHOPS.name
        assert "does not match" in dead_letters_with_key(records(0), wrong_key, ME)[0]["reason"]
    # The worker keeps counting after the bad records.
    good = samples.attended(samples.ref(uuid.uuid4()))
    produce(WORKSHOPS.name, encode(good), good.key.encode())
    wait_until(lambda: indicator(metrics, "people_helped") == helped0 + 1, 5, "counting after dead letters")


def test_outbox_relay_publishes_what_a_crash_left_behind(services: dict[str, Service], mongo) -> None:
    """A version written with its event and its outbox note but never published (the writer died in between):
    the running service's relay publishes it and forgets the note."""
    metrics = services["metrics"]
    helped0 = indicator(metrics, "people_helped")
    event = samples.attended(samples.ref(uuid.uuid4()))
    attendance_id = event.data.attendance_id
    state = {**event.data.model_dump(mode="json"), "event_id": str(event.id), "retracted": False}

    async def write_without_publishing() -> None:
        client = mongo_client(MONGODB_URI, app_name="test-crashed-writer")
        try:
            store = Store.open(client[DBS["workshops"]], None, publish_now=False)
            version = await store.attendances.create(attendance_id, Change(state, [event]))
            assert not await store.attendances.published(version), "nothing was published: the writer 'died'"
        finally:
            await client.close()

    asyncio.run(write_without_publishing())
    wait_until(lambda: indicator(metrics, "people_helped") == helped0 + 1, 30, "relay to publish")
    wait_until(
        lambda: mongo[DBS["workshops"]][NOTES].find_one({"_id": version_id(attendance_id, 1)}) is None,
        10,
        "outbox note forgotten",
    )


def test_goals_are_data_and_only_an_admin_changes_them(services: dict[str, Service]) -> None:
    metrics = services["metrics"]
    goals = metrics.http.get("/v1/goals").json()
    assert {"indicator": "people_helped", "year": 2022, "goal": 500000.0, "territory": None} in goals["goals"]
    new = {"indicator": "skills_missions", "year": 2031, "goal": 130}
    assert metrics.http.put("/v1/goals", json=new).status_code == 401
    assert metrics.http.put("/v1/goals", json=new, headers={"Authorization": "Bearer nope"}).status_code == 401
    # The former fixed development string is no admin mechanism any more, in development or in production.
    dev = {"Authorization": "Bearer dev-metrics-admin-token"}
    assert metrics.http.put("/v1/goals", json=new, headers=dev).status_code == 401
    partner = issue_token(Principal("u-1", Role.PARTNER, partner_id="p-1"), DEV_PLATFORM_TOKEN_KEY)
    assert metrics.http.put("/v1/goals", json=new, headers={"Authorization": f"Bearer {partner}"}).status_code == 403
    infinite = metrics.http.put(
        "/v1/goals",
        content=b'{"indicator": "skills_missions", "year": 2031, "goal": Infinity}',
        headers={**ADMIN, "content-type": "application/json"},
    )
    assert infinite.status_code in (400, 422), infinite.text
    ok = metrics.http.put("/v1/goals", json=new, headers=ADMIN)
    assert ok.status_code == 200
    body = metrics.http.get("/v1/progress", params={"year": 2031}).json()
    missions = next(i for i in body["indicators"] if i["id"] == "skills_missions")
    assert missions["goal"] == 130 and missions["goal_inherited"] is False
    helped = next(i for i in body["indicators"] if i["id"] == "people_helped")
    assert helped["goal"] == 500000 and helped["goal_inherited"] is True and helped["goal_year"] == 2022
