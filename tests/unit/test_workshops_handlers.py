"""The workshops handlers over the in-memory document store: rules, retries, access, and two replicas racing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.workshops import checkins, handlers
from services.workshops.schemas import (
    AccompanimentCreate,
    AttendanceCreate,
    CheckIn,
    RegistrationCreate,
    VenueCreate,
    WorkshopCreate,
)
from services.workshops.store import Store
from shared.aggregates import version_id
from shared.docstore import MemoryDocuments
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import Envelope
from shared.identity import Principal, Role
from shared.kafka import PublishError
from shared.privacy import person_ref

pytestmark = pytest.mark.unit

KEY = b"unit-test-person-reference-key!!"
ADMIN = Principal("admin-1", Role.ADMIN)
OWNER = Principal("partner-user-1", Role.PARTNER, partner_id="p-own")
STRANGER = Principal("partner-user-2", Role.PARTNER, partner_id="p-other")
MONITOR = Principal("monitor-1", Role.MONITORING)


class Recorder:
    """A publisher that records what it is asked to publish (or refuses, like a broker that is away)."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self.down = False

    async def publish_many(self, events: Sequence[Envelope], *, topic: str | None = None) -> None:
        await asyncio.sleep(0)
        if self.down:
            raise PublishError("broker away")
        self.events.extend(events)

    def ids(self, type_: str | None = None) -> Counter[str]:
        return Counter(str(e.id) for e in self.events if type_ is None or e.type == type_)


class Interleaved(MemoryDocuments):
    """The in-memory store, but every call lets other tasks run first: concurrent writers really interleave
    between their read and their insert, as two processes on one database do."""

    async def get(self, collection: str, doc_id: Any) -> dict[str, Any] | None:
        await asyncio.sleep(random.random() / 1000)
        return await super().get(collection, doc_id)

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> None:
        await asyncio.sleep(random.random() / 1000)
        await super().insert(collection, doc)

    async def put(self, collection: str, doc: Mapping[str, Any]) -> None:
        await asyncio.sleep(random.random() / 1000)
        await super().put(collection, doc)


@pytest.fixture
def kafka() -> Recorder:
    return Recorder()


@pytest.fixture
def store(kafka: Recorder) -> Store:
    return Store.in_memory(kafka)  # type: ignore[arg-type]


def venue_cmd(**over: Any) -> VenueCreate:
    body = {
        "venue_id": "v-1",
        "name": "Bureau de poste, salle numérique",
        "kind": "post_office_room",
        "commune_insee": "93066",
        "qpv": True,
        "opened_on": "2022-04-01",
    }
    return VenueCreate.model_validate(body | over)


def workshop_cmd(workshop_id: str = "w-1", **over: Any) -> WorkshopCreate:
    # An hour ago at the venue: the session has started, so check-in is open.
    starts = (datetime.now(ZoneInfo("Europe/Paris")) - timedelta(hours=1)).replace(tzinfo=None, microsecond=0)
    body = {"workshop_id": workshop_id, "theme": "online_banking", "venue_id": "v-1", "starts_local": starts}
    return WorkshopCreate.model_validate(body | {"capacity": 10, "partner_id": "p-own"} | over)


def walk_in(client: str | None = None, registration_id: str | None = None) -> RegistrationCreate:
    return RegistrationCreate(origin="walk_in", client_reference=client, registration_id=registration_id)


async def venue(store: Store, **over: Any) -> None:
    """Opens the venue (v-1 unless told) if it is not there yet."""
    cmd = venue_cmd(**over)
    if await store.venues.get(cmd.venue_id) is None:
        await handlers.open_venue(store, ADMIN, cmd)


async def workshop(store: Store, workshop_id: str = "w-1", **over: Any) -> handlers.Result:
    await venue(store)
    return await handlers.schedule_workshop(store, ADMIN, workshop_cmd(workshop_id, **over))


def accompaniment_cmd(accompaniment_id: str = "acc-1", **over: Any) -> AccompanimentCreate:
    body = {
        "accompaniment_id": accompaniment_id,
        "channel": "partner",
        "partner_id": "p-own",
        "need": "taxes",
        "duration_minutes": 30,
        "completed_at": datetime.now(UTC) - timedelta(hours=1),
        "venue_id": "v-1",
        "client_reference": "client-acc",
    }
    return AccompanimentCreate.model_validate(body | over)


# --- scheduling -------------------------------------------------------------------------------------


async def test_scheduling_publishes_once_and_a_retry_is_a_duplicate(store: Store, kafka: Recorder) -> None:
    first = await workshop(store, capacity=8)
    assert (first.outcome, first.published, first.record["status"]) == ("created", True, "scheduled")
    assert first.record["starts_at"].utcoffset() is not None and first.record["version"] == 1
    again = await handlers.schedule_workshop(store, ADMIN, workshop_cmd(capacity=8))
    assert again.outcome == "duplicate" and again.event_ids == first.event_ids and again.published
    assert kafka.ids("workshop.scheduled") == Counter({first.event_ids[0]: 1})
    with pytest.raises(Conflict, match="other details"):
        await handlers.schedule_workshop(store, ADMIN, workshop_cmd(capacity=9))
    assert await store.outbox.pending() == 0


async def test_rules_the_pure_layer_refuses_are_invalid(store: Store) -> None:
    await handlers.open_venue(store, ADMIN, venue_cmd())
    with pytest.raises(Invalid, match="does not exist"):  # Paris skips 02:00-03:00 that night
        await handlers.schedule_workshop(store, ADMIN, workshop_cmd(starts_local="2026-03-29T02:30:00"))
    with pytest.raises(Invalid, match="no venue"):
        await handlers.schedule_workshop(store, ADMIN, workshop_cmd(venue_id="v-nowhere"))
    await workshop(store)
    with pytest.raises(Invalid, match="seat number or a registration id"):
        await checkins.check_in(store, ADMIN, "w-1", CheckIn(), key=KEY)


# --- registrations ----------------------------------------------------------------------------------


async def test_seats_then_waiting_list_then_promotion(store: Store) -> None:
    await workshop(store, capacity=2)
    regs = [await handlers.register(store, ADMIN, "w-1", walk_in(f"client-{n}"), key=KEY) for n in range(4)]
    assert [r.outcome for r in regs] == ["created"] * 4
    statuses = [r.record["registrations"][r.id]["status"] for r in regs]
    assert statuses == ["registered", "registered", "waiting", "waiting"]
    cancelled = await handlers.cancel_registration(store, ADMIN, "w-1", regs[0].id)
    assert (cancelled.outcome, cancelled.promoted) == ("changed", regs[2].id)
    state = (await store.workshops.require("w-1", "workshop")).state["registrations"]
    assert [state[r.id]["status"] for r in regs] == ["cancelled", "registered", "registered", "waiting"]
    waiting_leaves = await handlers.cancel_registration(store, ADMIN, "w-1", regs[3].id)
    assert waiting_leaves.promoted is None
    retried = await handlers.cancel_registration(store, ADMIN, "w-1", regs[0].id)
    assert (retried.outcome, retried.promoted) == ("duplicate", None)
    with pytest.raises(NotFound):
        await handlers.cancel_registration(store, ADMIN, "w-1", "reg-nobody")


async def test_a_retried_registration_is_a_duplicate(store: Store) -> None:
    await workshop(store)
    first = await handlers.register(store, ADMIN, "w-1", walk_in("client-a"), key=KEY)
    same_person = await handlers.register(store, ADMIN, "w-1", walk_in("  CLIENT-A "), key=KEY)
    assert (same_person.outcome, same_person.id) == ("duplicate", first.id)
    anonymous = await handlers.register(store, ADMIN, "w-1", walk_in(registration_id="r-anon"), key=KEY)
    again = await handlers.register(store, ADMIN, "w-1", walk_in(registration_id="r-anon"), key=KEY)
    assert (anonymous.outcome, again.outcome, again.id) == ("created", "duplicate", "r-anon")
    with pytest.raises(Conflict, match="another person's"):
        await handlers.register(store, ADMIN, "w-1", walk_in("client-b", registration_id="r-anon"), key=KEY)
    assert len((await store.workshops.require("w-1", "workshop")).state["registrations"]) == 2


async def test_a_cancelled_workshop_tells_its_people_once_and_takes_nothing_more(store: Store, kafka: Recorder) -> None:
    await workshop(store, capacity=1)
    for client in ("client-a", "client-b"):
        await handlers.register(store, ADMIN, "w-1", walk_in(client), key=KEY)
    first = await handlers.cancel_workshop(store, ADMIN, "w-1", "room flooded")
    again = await handlers.cancel_workshop(store, ADMIN, "w-1", "room flooded")
    assert (first.outcome, again.outcome) == ("changed", "duplicate") and first.event_ids == again.event_ids
    cancelled = [e for e in kafka.events if e.type == "workshop.cancelled"]
    assert len(cancelled) == 1
    assert sorted(cancelled[0].data.registered_person_refs) == sorted(  # type: ignore[attr-defined]
        person_ref(c, KEY) for c in ("client-a", "client-b")
    )
    with pytest.raises(Conflict, match="the workshop is cancelled"):
        await handlers.register(store, ADMIN, "w-1", walk_in("client-c"), key=KEY)
    with pytest.raises(Conflict, match="the workshop is cancelled"):
        await checkins.check_in(store, ADMIN, "w-1", CheckIn(seat="1"), key=KEY)


# --- attendance and accompaniments ------------------------------------------------------------------


async def test_check_in_once_and_retract_once(store: Store, kafka: Recorder) -> None:
    await workshop(store)
    reg = await handlers.register(store, ADMIN, "w-1", walk_in("client-a"), key=KEY)
    first = await checkins.check_in(store, ADMIN, "w-1", CheckIn(registration_id=reg.id), key=KEY)
    by_person = await checkins.check_in(store, ADMIN, "w-1", CheckIn(client_reference="client-a"), key=KEY)
    assert (first.outcome, by_person.outcome, by_person.id) == ("created", "duplicate", first.id)
    assert first.record["person_ref"] == person_ref("client-a", KEY) and first.published
    out = await checkins.retract_attendance(store, ADMIN, first.id, "signed the wrong sheet")
    again = await checkins.retract_attendance(store, ADMIN, first.id, "signed the wrong sheet")
    assert (out.outcome, again.outcome) == ("changed", "duplicate") and out.event_ids == again.event_ids
    assert again.record["retracted"] is True and again.record["version"] == 2
    assert list(kafka.ids("workshop.attended").values()) == [1]
    assert kafka.ids("attendance.retracted") == Counter({out.event_ids[0]: 1})
    # Checked in again after the retraction: the same attendance, still retracted (it is not recorded twice).
    after = await checkins.check_in(store, ADMIN, "w-1", CheckIn(registration_id=reg.id), key=KEY)
    assert after.outcome == "duplicate" and after.record["retracted"] is True


async def test_attendance_with_the_same_id_and_other_details_is_a_conflict(store: Store) -> None:
    await workshop(store)
    body = {
        "attendance_id": "att-1",
        "workshop_id": "w-1",
        "attended_at": datetime.now(UTC) - timedelta(minutes=30),
        "client_reference": "client-a",
    }
    first = await checkins.record_attendance(store, ADMIN, AttendanceCreate.model_validate(body), key=KEY)
    again = await checkins.record_attendance(store, ADMIN, AttendanceCreate.model_validate(body), key=KEY)
    assert (first.outcome, again.outcome) == ("created", "duplicate")
    with pytest.raises(Conflict, match="other details"):
        await checkins.record_attendance(
            store, ADMIN, AttendanceCreate.model_validate(body | {"client_reference": "client-b"}), key=KEY
        )


async def test_accompaniment_retraction_retried_is_a_duplicate(store: Store, kafka: Recorder) -> None:
    await venue(store)
    done = await checkins.record_accompaniment(store, OWNER, accompaniment_cmd(), key=KEY)
    assert done.outcome == "created" and done.published
    retried = await checkins.record_accompaniment(store, OWNER, accompaniment_cmd(), key=KEY)
    assert retried.outcome == "duplicate"
    out = await checkins.retract_accompaniment(store, OWNER, "acc-1", "entered twice")
    again = await checkins.retract_accompaniment(store, OWNER, "acc-1", "entered twice")
    assert (out.outcome, again.outcome) == ("changed", "duplicate")
    assert sum(kafka.ids("accompaniment.retracted").values()) == 1
    assert sum(kafka.ids("accompaniment.completed").values()) == 1


# --- access -----------------------------------------------------------------------------------------


async def test_another_partner_and_monitoring_may_not_act(store: Store) -> None:
    await workshop(store)
    att = await checkins.check_in(store, ADMIN, "w-1", CheckIn(seat="1"), key=KEY)
    await checkins.record_accompaniment(store, OWNER, accompaniment_cmd(), key=KEY)
    named = AttendanceCreate(attendance_id="att-x", workshop_id="w-1", attended_at=datetime.now(UTC))
    with pytest.raises(NotFound, match="no workshop w-1"):  # another partner's session: as if there were none
        await checkins.record_attendance(store, STRANGER, named, key=KEY)
    with pytest.raises(Forbidden):  # monitoring sees every session, and writes none
        await checkins.record_attendance(store, MONITOR, named, key=KEY)
    # Another partner's records are unknown to it (404); monitoring sees them and may change none (403).
    for who, refused in ((STRANGER, NotFound), (MONITOR, Forbidden)):
        with pytest.raises(refused):
            await handlers.register(store, who, "w-1", walk_in("client-x"), key=KEY)
        with pytest.raises(refused):
            await checkins.check_in(store, who, "w-1", CheckIn(seat="2"), key=KEY)
        with pytest.raises(refused):
            await checkins.retract_attendance(store, who, att.id, "not mine")
        with pytest.raises(refused):
            await checkins.retract_accompaniment(store, who, "acc-1", "not mine")
        with pytest.raises(refused):
            await handlers.cancel_workshop(store, who, "w-1", "not mine")
        with pytest.raises(Forbidden):  # a new record naming another partner: refused, nothing to hide
            await handlers.schedule_workshop(store, who, workshop_cmd("w-2"))
    with pytest.raises(Forbidden):
        await handlers.open_venue(store, OWNER, venue_cmd(venue_id="v-2"))
    mine = venue_cmd(venue_id="v-3", kind="partner_premises", partner_id="p-own")
    assert (await handlers.open_venue(store, OWNER, mine)).outcome == "created"
    state = (await store.workshops.require("w-1", "workshop")).state
    assert state["status"] == "scheduled" and state["registrations"] == {}
    assert (await store.attendances.require(att.id, "attendance")).state["retracted"] is False


# --- publishing -------------------------------------------------------------------------------------


async def test_events_wait_in_the_outbox_when_the_broker_is_away(store: Store, kafka: Recorder) -> None:
    await venue(store)
    kafka.events.clear()
    kafka.down = True
    done = await checkins.record_accompaniment(store, OWNER, accompaniment_cmd(), key=KEY)
    assert done.outcome == "created" and done.published is False and kafka.events == []
    assert await store.outbox.notes_of(version_id("acc-1", 1))  # noted for the relay
    kafka.down = False
    assert await store.outbox.relay_once(grace=timedelta(0)) == 1
    assert kafka.ids() == Counter({done.event_ids[0]: 1}) and await store.outbox.pending() == 0


async def test_a_bulk_load_defers_every_event_to_one_relay_pass(kafka: Recorder) -> None:
    docs = MemoryDocuments()
    await venue(Store.in_memory(kafka, docs))  # type: ignore[arg-type]
    kafka.events.clear()
    bulk = Store.in_memory(kafka, docs, publish_now=False)  # type: ignore[arg-type]
    results = [
        await checkins.record_accompaniment(bulk, OWNER, accompaniment_cmd(f"acc-{n}"), key=KEY) for n in range(5)
    ]
    assert not any(r.published for r in results) and kafka.events == []
    assert await bulk.outbox.relay_once(grace=timedelta(0)) == 5
    assert set(kafka.ids()) == {r.event_ids[0] for r in results}


# --- two replicas racing on one database ------------------------------------------------------------


async def test_two_replicas_seat_exactly_the_capacity_and_queue_the_rest_in_order(kafka: Recorder) -> None:
    docs = Interleaved()
    first, second = Store.in_memory(kafka, docs), Store.in_memory(kafka, docs)  # type: ignore[arg-type]
    await workshop(first, capacity=10)
    clients = [f"client-{n}" for n in range(40)]
    calls = [
        handlers.register((first, second)[n % 2], ADMIN, "w-1", walk_in(c), key=KEY) for n, c in enumerate(clients)
    ]
    retries = [
        handlers.register((second, first)[n % 2], ADMIN, "w-1", walk_in(c), key=KEY) for n, c in enumerate(clients[:10])
    ]
    results = await asyncio.gather(*calls, *retries)
    created = [r for r in results if r.outcome == "created"]
    assert len(created) == 40 and len({r.id for r in results}) == 40  # the retries found their registration
    latest = await Store.in_memory(kafka, docs).workshops.require("w-1", "workshop")  # a third, cold reader
    regs = latest.state["registrations"]
    assert set(regs) == {r.id for r in created} and latest.number == 41
    by_arrival = sorted(regs.values(), key=lambda r: r["seq"])
    assert [r["seq"] for r in by_arrival] == list(range(1, 41))
    assert [r["status"] for r in by_arrival] == ["registered"] * 10 + ["waiting"] * 30
    # Cancellations racing on both replicas promote the first waiting, in order, once each.
    seated = [rid for rid, r in regs.items() if r["status"] == "registered"][:5]
    cancels = [handlers.cancel_registration((first, second)[n % 2], ADMIN, "w-1", rid) for n, rid in enumerate(seated)]
    twice = [handlers.cancel_registration((second, first)[n % 2], ADMIN, "w-1", rid) for n, rid in enumerate(seated)]
    outcomes = await asyncio.gather(*cancels, *twice)
    promoted = [o.promoted for o in outcomes if o.promoted]
    assert len([o for o in outcomes if o.outcome == "changed"]) == 5
    waiting_ids = [rid for rid, r in sorted(regs.items(), key=lambda kv: kv[1]["seq"]) if r["status"] == "waiting"]
    assert sorted(promoted, key=waiting_ids.index) == waiting_ids[:5]
    final = (await first.workshops.require("w-1", "workshop")).state["registrations"]
    assert Counter(r["status"] for r in final.values()) == Counter(registered=10, waiting=25, cancelled=5)


async def test_a_cancellation_racing_registrations_names_every_acknowledged_person(kafka: Recorder) -> None:
    docs = Interleaved()
    first, second = Store.in_memory(kafka, docs), Store.in_memory(kafka, docs)  # type: ignore[arg-type]
    await workshop(first, capacity=5)

    async def attempt(n: int) -> handlers.Result | None:
        try:
            return await handlers.register((first, second)[n % 2], ADMIN, "w-1", walk_in(f"client-{n}"), key=KEY)
        except Conflict:
            return None

    cancels = [handlers.cancel_workshop(s, ADMIN, "w-1", "facilitator ill") for s in (first, second)]
    results = await asyncio.gather(*(attempt(n) for n in range(30)), *cancels)
    registered = [r for r in results[:30] if r is not None]
    assert sorted(r.outcome for r in results[30:]) == ["changed", "duplicate"]  # type: ignore[union-attr]
    events = [e for e in kafka.events if e.type == "workshop.cancelled"]
    assert len(events) == 1
    refs = set(events[0].data.registered_person_refs)  # type: ignore[attr-defined]
    state = (await first.workshops.require("w-1", "workshop")).state
    assert refs == {r["person_ref"] for r in state["registrations"].values()}
    assert {state["registrations"][r.id]["person_ref"] for r in registered} == refs
