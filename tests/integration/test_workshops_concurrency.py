"""The workshops service under concurrent writers, over two instances on one database and through a kill -9:
nothing acknowledged is lost, nothing is doubled, every acknowledged event reaches Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.privacy import person_ref
from shared.settings import DEV_PERSON_REF_KEY
from shared.topics import WORKSHOPS
from tests.conftest import DBS, PORT_BASE, Service, start_service, stop_service, wait_ready, wait_until
from tests.integration.test_workshops import ADMIN, new_venue, new_workshop, uid
from tests.kafka_tools import tail

pytestmark = pytest.mark.integration
SECOND_PORT = PORT_BASE + 12  # a second workshops instance beside the shared fixture's, on the same database
CRASH_PORT = PORT_BASE + 13
CRASH_DB = f"{DBS['workshops']}_crash"  # the crash test's own database: no other instance's relay may help it
KEY = DEV_PERSON_REF_KEY.encode()

Call = tuple[str, str, dict[str, Any]]  # (base URL, path, JSON body)


@pytest.fixture(scope="module")
def pair(services: dict[str, Service]) -> Iterator[tuple[Service, Service]]:
    second = start_service("workshops", SECOND_PORT)
    try:
        wait_ready(second)
        yield services["workshops"], second
    finally:
        stop_service(second)


async def _post_all(calls: list[Call], limit: int = 64) -> list[httpx.Response | Exception]:
    gate = asyncio.Semaphore(limit)
    async with httpx.AsyncClient(timeout=60, headers=ADMIN) as client:

        async def one(base: str, path: str, body: dict[str, Any]) -> httpx.Response | Exception:
            async with gate:
                try:
                    return await client.post(base + path, json=body)
                except httpx.HTTPError as exc:
                    return exc

        return await asyncio.gather(*(one(*c) for c in calls))


def post_all(calls: list[Call]) -> list[httpx.Response]:
    """Send every call at once; a `Busy` answer (409 with Retry-After) is retried, as a client would."""
    answers: list[httpx.Response | Exception | None] = [None] * len(calls)
    todo = list(range(len(calls)))
    for _ in range(10):
        got = asyncio.run(_post_all([calls[i] for i in todo]))
        for i, answer in zip(todo, got, strict=True):
            answers[i] = answer
        todo = [i for i, a in zip(todo, got, strict=True) if isinstance(a, httpx.Response) and _busy(a)]
        if not todo:
            break
    assert all(isinstance(a, httpx.Response) for a in answers), [
        a for a in answers if not isinstance(a, httpx.Response)
    ]
    return [a for a in answers if isinstance(a, httpx.Response)]


def _busy(r: httpx.Response) -> bool:
    return r.status_code == 409 and "Retry-After" in r.headers


def ce_ids(records: list[Any]) -> Counter[str]:
    return Counter(dict(r.headers).get("ce_id", b"").decode() for r in records)


def test_forty_registrations_on_two_instances_seat_exactly_ten(pair: tuple[Service, Service]) -> None:
    first, second = pair
    w = new_workshop(first, new_venue(first)["venue_id"], capacity=10)
    path = f"/v1/workshops/{w['id']}/registrations"
    clients = [uid("conc") for _ in range(44)]
    bases = [first.url, second.url]
    answers = post_all(
        [(bases[n % 2], path, {"origin": "referral", "client_reference": c}) for n, c in enumerate(clients)]
    )
    assert [r.status_code for r in answers] == [201] * len(clients), [r.text for r in answers if r.status_code != 201]
    acknowledged = {r.json()["registration_id"] for r in answers}
    assert len(acknowledged) == len(clients)
    seated = [r.json() for r in answers if r.json()["registration_status"] == "registered"]
    waiting = sorted(r.json()["waiting_position"] for r in answers if r.json()["registration_status"] == "waiting")
    assert len(seated) == 10 and waiting == list(range(1, len(clients) - 10 + 1))
    for svc in pair:  # both instances read the same latest version
        body = svc.http.get(f"/v1/workshops/{w['id']}", headers=ADMIN).json()
        kept = {r["registration_id"]: r for r in body["registrations"]}
        assert set(kept) == acknowledged, "every acknowledged registration is kept"
        assert body["registered"] == 10 and body["waiting"] == len(clients) - 10
        assert sorted(r["waiting_position"] for r in kept.values() if r["waiting_position"]) == waiting
        assert all("person_ref" not in r for r in body["registrations"])
    # Retried on the other instance: the same registration, nothing added.
    again = post_all(
        [(bases[(n + 1) % 2], path, {"origin": "referral", "client_reference": c}) for n, c in enumerate(clients[:8])]
    )
    assert {r.status_code for r in again} == {200} and {r.json()["status"] for r in again} == {"duplicate"}
    assert [r.json()["registration_id"] for r in again] == [r.json()["registration_id"] for r in answers[:8]]
    assert first.http.get(f"/v1/workshops/{w['id']}", headers=ADMIN).json()["version"] == 1 + len(clients)


def test_retractions_check_ins_and_a_cancellation_racing_registrations(pair: tuple[Service, Service]) -> None:
    first, second = pair
    bases = [first.url, second.url]
    venue = new_venue(first)["venue_id"]
    held, doomed = new_workshop(first, venue, capacity=50), new_workshop(first, venue, capacity=10)
    earlier = [
        first.http.post(f"/v1/workshops/{held['id']}/attendances", json={"seat": str(n)}, headers=ADMIN).json()
        for n in range(1, 16)
    ]
    retractions = [
        (b, f"/v1/attendances/{a['attendance_id']}/retraction", {"reason": "wrong sheet"})
        for a in earlier
        for b in bases
    ]
    check_ins = [(b, f"/v1/workshops/{held['id']}/attendances", {"seat": str(n)}) for n in range(16, 31) for b in bases]
    clients = [uid("race") for _ in range(24)]
    registrations = [
        (bases[n % 2], f"/v1/workshops/{doomed['id']}/registrations", {"origin": "referral", "client_reference": c})
        for n, c in enumerate(clients)
    ]
    cancellations = [(b, f"/v1/workshops/{doomed['id']}/cancellation", {"reason": "facilitator ill"}) for b in bases]
    calls = registrations[:12] + cancellations[:1] + retractions + check_ins + cancellations[1:] + registrations[12:]
    with tail(WORKSHOPS.name) as records:
        by_call = dict(enumerate(zip(calls, post_all(calls), strict=True)))
        ok = [r for _, r in by_call.values() if r.is_success]
        expected: set[str] = set()
        for r in ok:
            body = r.json()
            expected.update([body["event_id"]] if "event_id" in body else body.get("event_ids", []))
        seen = wait_until(lambda: expected <= set(ce_ids(records(0.5))) and records(0), 60, "every acknowledged event")
    # Retractions: each won once, retried once.
    for a in earlier:
        statuses = sorted(
            r.json()["status"] for (_, p, _), r in by_call.values() if p.endswith(f"{a['attendance_id']}/retraction")
        )
        assert statuses == ["duplicate", "retracted"]
    # Check-ins of the same seat on both instances: one attendance, recorded once.
    stored = first.http.get(f"/v1/workshops/{held['id']}/attendances", headers=ADMIN).json()
    assert len(stored) == 30 == len({a["id"] for a in stored})
    assert sorted(a["version"] for a in stored) == [1] * 15 + [2] * 15
    assert {a["id"] for a in stored if a["retracted"]} == {a["attendance_id"] for a in earlier}
    # The cancellation won once; it names exactly the people whose registration was acknowledged before it,
    # and every later registration was refused.
    cancelled = [r.json() for (_, p, _), r in by_call.values() if p.endswith("/cancellation") and r.is_success]
    assert sorted(c["status"] for c in cancelled) == ["cancelled", "duplicate"]
    registered = [(b, r) for (_, p, b), r in by_call.values() if p.endswith("/registrations")]
    refused = [r for _, r in registered if not r.is_success]
    assert all(r.status_code == 409 and "cancelled" in r.text for r in refused)
    event_of = {
        dict(rec.headers)["ce_id"].decode(): rec
        for rec in seen
        if dict(rec.headers).get("ce_type") == b"workshop.cancelled"
    }
    refs = set(json.loads(event_of[cancelled[0]["event_ids"][0]].value)["data"]["registered_person_refs"])
    assert refs == {person_ref(b["client_reference"], KEY) for b, r in registered if r.is_success}
    state = first.http.get(f"/v1/workshops/{doomed['id']}", headers=ADMIN).json()
    assert state["status"] == "cancelled"
    assert {r["registration_id"] for r in state["registrations"]} == {
        r.json()["registration_id"] for _, r in registered if r.is_success
    }


def _crash_writes(run: str) -> list[list[tuple[str, dict[str, Any]]]]:
    """Each task: an attendance (some then retracted: two events on one record) or an accompaniment, at the
    session `w-<run>` and the venue `v-<run>` (see `_session`)."""
    now = datetime.now(UTC).isoformat()
    tasks: list[list[tuple[str, dict[str, Any]]]] = []
    for n in range(160):
        body = {
            "attendance_id": f"att-{run}-{n}",
            "workshop_id": f"w-{run}",
            "attended_at": now,
            "client_reference": f"crash-{run}-{n}",
        }
        steps = [("/v1/attendances", body)]
        if n % 2:
            steps.append((f"/v1/attendances/{body['attendance_id']}/retraction", {"reason": "wrong sheet"}))
        tasks.append(steps)
    for n in range(80):
        body = {
            "accompaniment_id": f"acc-{run}-{n}",
            "channel": "partner",
            "partner_id": "p-crash",
            "need": "taxes",
            "duration_minutes": 30,
            "completed_at": now,
            "venue_id": f"v-{run}",
        }
        tasks.append([("/v1/accompaniments", body)])
    return tasks


def _session(svc: Service, run: str) -> None:
    """The venue and the session in progress that the crash test's attendances and accompaniments name."""
    new_venue(svc, venue_id=f"v-{run}")
    new_workshop(svc, f"v-{run}", workshop_id=f"w-{run}")


def _event_ids(r: httpx.Response) -> list[str]:
    body = r.json()
    return [body["event_id"]] if "event_id" in body else body["event_ids"]


def test_every_acknowledged_write_reaches_kafka_through_a_kill_9(stack: None, mongo) -> None:
    mongo.drop_database(CRASH_DB)
    env = {"WORKSHOPS_DB": CRASH_DB}
    run = uuid.uuid4().hex[:8]
    tasks = _crash_writes(run)
    acknowledged: list[httpx.Response] = []
    failed: list[list[tuple[str, dict[str, Any]]]] = []  # what is left of each task that got no answer

    async def burst(base: str) -> None:
        gate = asyncio.Semaphore(24)
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=ADMIN) as client:

            async def one(steps: list[tuple[str, dict[str, Any]]]) -> None:
                async with gate:
                    for n, (path, body) in enumerate(steps):
                        try:
                            r = await client.post(path, json=body)
                        except httpx.HTTPError:
                            r = None
                        if r is None or not r.is_success:
                            failed.append(steps[n:])
                            return
                        acknowledged.append(r)

            await asyncio.gather(*(one(t) for t in tasks))

    doomed = start_service("workshops", CRASH_PORT, env)
    with tail(WORKSHOPS.name) as records:
        try:
            wait_ready(doomed)
            _session(doomed, run)
            writer = threading.Thread(target=lambda: asyncio.run(burst(doomed.url)))
            writer.start()
            wait_until(lambda: len(acknowledged) >= 60, 60, "the burst to be under way", interval=0.01)
            os.killpg(doomed.proc.pid, 9)  # in the middle of the burst: no shutdown, no flush
            writer.join(120)
            doomed.proc.wait(timeout=10)
        finally:
            stop_service(doomed)
        assert failed, "the kill struck while writes were in flight"
        print(f"kill -9 after {len(acknowledged)} acknowledged writes; {len(failed)} tasks cut short")
        expected = {e for r in acknowledged for e in _event_ids(r)}
        revived = start_service("workshops", CRASH_PORT, env)
        try:
            wait_ready(revived)
            wait_until(
                lambda: expected <= set(ce_ids(records(0.5))), 60, "the relay to publish every acknowledged event"
            )
            # The writes that got no answer, sent again: stored once whatever the crash left, and published.
            retried = [revived.http.post(path, json=body, headers=ADMIN) for rest in failed for path, body in rest]
            assert all(r.is_success for r in retried), [r.text for r in retried if not r.is_success]
            every = expected | {e for r in retried for e in _event_ids(r)}
            wait_until(lambda: every <= set(ce_ids(records(0.5))), 60, "every write's event")
        finally:
            stop_service(revived)
    attendances = [f"att-{run}-{n}" for n in range(160)]
    versions = Counter(d["a"] for d in mongo[CRASH_DB]["attendances_versions"].find({"a": {"$in": attendances}}))
    assert versions == Counter({a: 1 + n % 2 for n, a in enumerate(attendances)}), "each write stored once"
    accompaniments = [f"acc-{run}-{n}" for n in range(80)]
    assert mongo[CRASH_DB]["accompaniments_versions"].count_documents({"a": {"$in": accompaniments}}) == 80
