"""Aggregates as immutable versions over the in-memory store: exact under interleaved writers, outbox notes
published once and relayed after a failure, heads mended, layout refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.aggregates import Aggregates, Change, version_id
from shared.docstore import DuplicateKey, MemoryDocuments, matches
from shared.errors import Busy, Conflict, NotFound
from shared.events import VenueOpened, new_event
from shared.kafka import PublishError
from shared.layout import LayoutMismatch, ensure_layout
from shared.outbox import NOTES, ORPHAN_AFTER, Outbox

pytestmark = pytest.mark.unit


class FakePublisher:
    def __init__(self) -> None:
        self.events: list = []
        self.down = False

    async def publish_many(self, events, topic=None) -> None:
        await asyncio.sleep(0)
        if self.down:
            raise PublishError("broker away")
        self.events.extend(events)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def venue_event(n: int):
    data = VenueOpened(
        venue_id=f"v-{n}",
        kind="post_office_room",
        newly_equipped=False,
        opened_on=datetime(2026, 1, 1).date(),
        departement="93",
        region="11",
        qpv=False,
        rural=False,
        timezone="Europe/Paris",
    )
    return new_event(data, source="/tests", time=datetime(2026, 1, 1, tzinfo=UTC))


def store(docs: MemoryDocuments, publisher: FakePublisher | None = None, clock: Clock | None = None):
    outbox = Outbox(docs, publisher or FakePublisher(), clock=clock or Clock())
    return Aggregates(docs, "things", outbox), outbox


def bump(tag: str):
    def decide(version):
        return Change({"n": version.state["n"] + 1, "tags": [*version.state["tags"], tag]}, [venue_event(0)])

    return decide


async def test_interleaved_writers_on_two_stores_lose_nothing() -> None:
    docs = MemoryDocuments()
    publisher = FakePublisher()
    a, _ = store(docs, publisher)
    b, _ = store(docs, publisher)
    await a.create("t-1", Change({"n": 0, "tags": []}))

    async def writer(i: int) -> None:
        for j in range(10):
            await (a if i % 2 else b).change("t-1", bump(f"{i}-{j}"), what="thing")

    await asyncio.gather(*(writer(i) for i in range(12)))
    latest = await b.get("t-1")
    assert latest is not None
    assert latest.state["n"] == 120 and len(set(latest.state["tags"])) == 120
    assert latest.number == 121
    assert len(await a.history("t-1")) == 121
    assert len(publisher.events) == 120  # one event per won version, none doubled
    assert await docs.count(NOTES) == 0


async def test_create_twice_is_a_duplicate_and_missing_is_not_found() -> None:
    things, _ = store(MemoryDocuments())
    await things.create("t-1", Change({"n": 0}))
    with pytest.raises(DuplicateKey):
        await things.create("t-1", Change({"n": 5}))
    assert (await things.require("t-1", "thing")).state == {"n": 0}
    with pytest.raises(NotFound, match="no thing t-2"):
        await things.change("t-2", lambda v: None, what="thing")


async def test_decide_refuses_or_does_nothing() -> None:
    things, _ = store(MemoryDocuments())
    await things.create("t-1", Change({"status": "signed"}))

    def sign(version):
        if version.state["status"] == "signed":
            return None
        return Change({"status": "signed"})

    def end(version):
        raise Conflict("a signed thing cannot end today")

    version, changed = await things.change("t-1", sign, what="thing")
    assert not changed and version.number == 1
    with pytest.raises(Conflict):
        await things.change("t-1", end, what="thing")


async def test_a_writer_that_always_loses_gets_busy() -> None:
    docs = MemoryDocuments()
    things, _ = store(docs)
    await things.create("t-1", Change({"n": 0}))
    rival, _ = store(docs)

    def decide(version):
        return Change({"n": version.state["n"] + 1})

    original = docs.insert

    async def insert_after_rival(collection, doc):
        if collection == "things_versions" and doc["n"] > 1:
            # Someone else wins this very number first, every time.
            await original(collection, {**doc, "state": {"n": -1}})
        await original(collection, doc)

    docs.insert = insert_after_rival  # type: ignore[method-assign]
    with pytest.raises(Busy):
        await things.change("t-1", decide, what="thing", patience_s=0.05)
    docs.insert = original  # type: ignore[method-assign]
    rival_wins = (await rival.get("t-1")).number - 1
    assert rival_wins >= 1
    assert all(v.state == {"n": -1} for v in (await rival.history("t-1"))[1:]), "nothing of ours was written"


async def test_kafka_down_leaves_notes_that_the_relay_publishes_once_back() -> None:
    docs = MemoryDocuments()
    publisher, clock = FakePublisher(), Clock()
    things, outbox = store(docs, publisher, clock)
    publisher.down = True
    version = await things.create("t-1", Change({"n": 0}, [venue_event(1)]))
    assert not await things.published(version)
    assert await outbox.relay_once() == 0  # too fresh: its writer may still publish it
    clock.now += timedelta(seconds=6)
    assert await outbox.relay_once() == 0  # still down: the note stays
    publisher.down = False
    assert await outbox.relay_once() == 1
    assert [e.id for e in publisher.events] == [version.events[0].id]
    assert await things.published(version)
    assert await outbox.relay_once() == 0


async def test_relay_mends_a_head_left_behind_by_a_crash() -> None:
    docs = MemoryDocuments()
    publisher, clock = FakePublisher(), Clock()
    things, outbox = store(docs, publisher, clock)
    await things.create("t-1", Change({"n": 0}))
    # A crash after inserting version 2 and its note, before the head and the publish.
    event = venue_event(2)
    vid = version_id("t-1", 2)
    await docs.insert(NOTES, {"_id": f"{vid}~crashed", "v": vid, "a": "t-1", "kind": "things", "at": clock.now})
    await docs.insert(
        "things_versions",
        {
            "_id": version_id("t-1", 2),
            "a": "t-1",
            "n": 2,
            "state": {"n": 1},
            "events": [event.model_dump(mode="json")],
            "at": clock.now,
        },
    )
    assert (await docs.get("things", "t-1"))["version"] == 1
    clock.now += timedelta(seconds=6)
    fresh, outbox2 = store(docs, publisher, clock)  # a restarted service: empty cache
    assert await outbox2.relay_once() == 1
    assert (await docs.get("things", "t-1"))["version"] == 2
    assert [e.id for e in publisher.events] == [event.id]


async def test_a_note_without_its_version_is_forgotten_only_when_orphaned() -> None:
    docs = MemoryDocuments()
    clock = Clock()
    _, outbox = store(docs, FakePublisher(), clock)
    vid = version_id("t-9", 1)
    await docs.insert(NOTES, {"_id": f"{vid}~died", "v": vid, "a": "t-9", "kind": "things", "at": clock.now})
    clock.now += timedelta(seconds=30)
    await outbox.relay_once()
    assert await docs.count(NOTES) == 1  # its writer may still insert the version
    clock.now += ORPHAN_AFTER
    await outbox.relay_once()
    assert await docs.count(NOTES) == 0
    assert not outbox.fresh(clock.now - ORPHAN_AFTER / 2)


async def test_get_follows_versions_written_by_another_instance() -> None:
    docs = MemoryDocuments()
    a, _ = store(docs)
    b, _ = store(docs)
    await a.create("t-1", Change({"n": 0, "tags": []}))
    assert (await a.get("t-1")).number == 1  # cached in a
    await b.change("t-1", bump("x"), what="thing")
    await b.change("t-1", bump("y"), what="thing")
    assert (await a.get("t-1")).state["tags"] == ["x", "y"]


async def test_create_many_reports_existing_ones() -> None:
    docs = MemoryDocuments()
    publisher = FakePublisher()
    things, _ = store(docs, publisher)
    await things.create("t-2", Change({"n": 2}))
    made = await things.create_many([(f"t-{i}", Change({"n": i}, [venue_event(i)])) for i in range(1, 4)])
    assert [v is not None for v in made] == [True, False, True]
    assert len(publisher.events) == 2
    assert [h["_id"] for h in await things.find({"n": {"$gte": 2}}, sort=[("n", -1)])] == ["t-3", "t-2"]


def test_query_subset_matches_like_mongodb() -> None:
    doc = {"a": 1, "tags": ["x", "y"], "sub": {"k": "v"}, "none": None}
    assert matches(doc, {"tags": "x", "sub.k": "v", "a": {"$in": [1, 2]}})
    assert matches(doc, {"missing": None, "none": None, "a": {"$ne": 2}, "tags": {"$nin": ["z"]}})
    assert not matches(doc, {"tags": "z"})
    assert matches(doc, {"$or": [{"a": 2}, {"sub.k": "v"}]})
    assert not matches(doc, {"a": {"$gt": 1}})


async def test_unique_field_holds_in_the_fake() -> None:
    docs = MemoryDocuments()
    await docs.ensure_index("users", "username", unique=True)
    await docs.insert("users", {"_id": "u-1", "username": "ana"})
    with pytest.raises(DuplicateKey):
        await docs.insert("users", {"_id": "u-2", "username": "ana"})


async def test_layout_marks_an_empty_database_and_refuses_an_old_one() -> None:
    fresh = MemoryDocuments()
    await ensure_layout(fresh, "workshops")
    await ensure_layout(fresh, "workshops")  # idempotent
    old = MemoryDocuments()
    await old.insert("workshops", {"_id": "w-1", "outbox": []})
    with pytest.raises(LayoutMismatch, match="make reset"):
        await ensure_layout(old, "workshops")


async def test_relay_stops_when_kafka_refuses_a_full_batch() -> None:
    docs = MemoryDocuments()
    publisher, clock = FakePublisher(), Clock()
    things, outbox = store(docs, publisher, clock)
    publisher.down = True
    await things.create_many([(f"t-{i}", Change({"n": i}, [venue_event(i)])) for i in range(6)])
    clock.now += timedelta(seconds=6)
    assert await outbox.relay_once(batch=3) == 0  # returns (does not spin) while the broker is away
    publisher.down = False
    assert await outbox.relay_once(batch=3) == 6


async def test_create_many_refuses_one_id_twice() -> None:
    things, _ = store(MemoryDocuments())
    with pytest.raises(ValueError, match="twice"):
        await things.create_many([("t-1", Change({"n": 1})), ("t-1", Change({"n": 2}))])
