"""The versioned store on the real database server and broker: concurrent writers from two instances lose
nothing, every acknowledged event reaches its topic (with the relay running), also across a kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from shared.aggregates import Aggregates, Change
from shared.docstore import MongoDocuments
from shared.events import VenueOpened, new_event
from shared.kafka import Publisher, ensure_topics
from shared.outbox import NOTES, Outbox
from shared.topics import Topic
from tests.conftest import KAFKA, MONGODB_URI, ROOT, SUFFIX
from tests.kafka_tools import read_all

pytestmark = pytest.mark.integration
NS = uuid.UUID("0b5c8a53-54a6-4f0e-9e43-2f2b1d7c3a10")
DB = f"test_aggregates{SUFFIX}"


def counter_event(aggregate: str, tag: str):
    """One event per change, its id derived from the change (the idempotency key of the test)."""
    data = VenueOpened(
        venue_id=aggregate,
        kind="post_office_room",
        newly_equipped=False,
        opened_on=date(2026, 1, 1),
        departement="93",
        region="11",
        qpv=False,
        rural=False,
        timezone="Europe/Paris",
    )
    return new_event(data, source="/tests", time=datetime(2026, 1, 1, tzinfo=UTC), event_id=uuid.uuid5(NS, tag))


def fresh_topic() -> str:
    name = f"test.aggregates.{uuid.uuid4().hex[:8]}"
    ensure_topics(KAFKA, [Topic(name, retention_ms=3600 * 1000)])
    return name


def ids_on(topic: str) -> Counter:
    return Counter(dict(r.headers)["ce_id"].decode() for r in read_all(topic, timeout_s=20))


async def _instances(n: int, topic: str):
    clients = [AsyncMongoClient(MONGODB_URI, tz_aware=True) for _ in range(n)]
    publishers = [Publisher(KAFKA, client_id=f"test-aggregates-{i}") for i in range(n)]
    for p in publishers:
        await p.start()
    stores = []
    for client, publisher in zip(clients, publishers, strict=True):
        docs = MongoDocuments(client[DB])
        outbox = Outbox(docs, publisher, topic=topic)
        stores.append((Aggregates(docs, "counters", outbox), outbox))
    return clients, publishers, stores


async def test_concurrent_writers_on_two_instances_lose_no_change_and_no_event(stack: None) -> None:
    topic = fresh_topic()
    clients, publishers, stores = await _instances(2, topic)
    await clients[0].drop_database(DB)
    try:
        (first, _), (second, _) = stores
        await first.create("c-1", Change({"n": 0, "tags": []}))
        relays = [asyncio.create_task(o.relay_forever(0.2)) for _, o in stores]
        acked: list[str] = []

        async def writer(i: int) -> None:
            for j in range(15):
                tag = f"two-{i}-{j}"

                def decide(version, tag=tag):
                    state = {"n": version.state["n"] + 1, "tags": [*version.state["tags"], tag]}
                    return Change(state, [counter_event("c-1", tag)])

                version, changed = await (first if i % 2 else second).change("c-1", decide, what="counter")
                assert changed
                acked.append(str(version.events[0].id))

        await asyncio.gather(*(writer(i) for i in range(16)))
        for relay in relays:
            relay.cancel()
        # Whatever is still noted now would be published a second time: a loser's note must not outlive it.
        await stores[0][1].relay_once(grace=timedelta(0))
        latest = await second.get("c-1")
        assert latest is not None
        assert latest.state["n"] == 240 and len(set(latest.state["tags"])) == 240, "every change kept"
        assert latest.number == 241
        on_topic = ids_on(topic)
        assert set(acked) <= set(on_topic), f"{len(set(acked) - set(on_topic))} acknowledged events missing"
        assert len(on_topic) == 240 and set(on_topic.values()) == {1}, "each event exactly once"
    finally:
        for p in publishers:
            await p.stop()
        for c in clients:
            await c.close()


def test_kill_9_mid_burst_then_relay_every_acknowledged_event_reaches_kafka(stack: None) -> None:
    topic = fresh_topic()
    asyncio.run(_prepare_counter(topic, "c-9"))
    cmd = [
        sys.executable,
        "-m",
        "tests.integration.aggregate_writer",
        *("--uri", MONGODB_URI, "--db", DB, "--kafka", KAFKA, "--topic", topic, "--aggregate", "c-9"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        deadline = time.monotonic() + 60
        while len(acked) < 150 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("ACK "):
                acked.append(line.split()[1])
        os.killpg(proc.pid, signal.SIGKILL)
        acked.extend(line.split()[1] for line in proc.stdout.read().splitlines() if line.startswith("ACK "))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(acked) >= 150
    stored, left = asyncio.run(_relay_after_crash(topic, "c-9"))
    assert stored >= len(acked), "every acknowledged change is stored"
    assert left == 0, "no note of a stored version is left once the relay ran"
    missing = set(acked) - set(ids_on(topic))
    assert not missing, f"{len(missing)} acknowledged events never reached Kafka"


async def _prepare_counter(topic: str, aggregate: str) -> None:
    clients, publishers, stores = await _instances(1, topic)
    try:
        await clients[0].drop_database(DB)
        await stores[0][0].create(aggregate, Change({"n": 0}))
    finally:
        await publishers[0].stop()
        await clients[0].close()


async def _relay_after_crash(topic: str, aggregate: str) -> tuple[int, int]:
    """A restarted side: a relay over the same database (any instance's relay would do). Returns (changes
    stored, notes of stored versions left)."""
    clients, publishers, stores = await _instances(1, topic)
    counters, outbox = stores[0]
    try:
        await outbox.relay_once(grace=timedelta(0))
        latest = await counters.get(aggregate)
        assert latest is not None
        notes = await clients[0][DB][NOTES].find({}).to_list(None)
        # A note whose version was never inserted (killed between the two inserts) waits for ORPHAN_AFTER.
        left = [n for n in notes if await clients[0][DB]["counters_versions"].find_one({"_id": n["_id"]})]
        return latest.number - 1, len(left)
    finally:
        await publishers[0].stop()
        await clients[0].close()
