"""Faust's own ceilings on this machine, over the same records as the metrics worker and with its settings.

    python -m bench.faust_ceiling noop <records>    an agent that does nothing with each record
    python -m bench.faust_ceiling table <records>   an agent that only writes each record's key into a
                                                    changelogged table (what the worker must do per event)
    python -m bench.faust_ceiling packed <records>  the worker's own steps (decode, apply, count, table write)
                                                    on the same events packed 500 per record into a topic of
                                                    the bench's own, so faust's per-message cost is shared

Prints "<records/s>". Each run uses a consumer group and a table of its own.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.contrib.asgi import faust_app_running
from kafka import KafkaAdminClient

from bench.common import KAFKA
from services.metrics import domain
from shared.serde import InvalidEvent, decode
from shared.topics import EVENT_TOPICS, PARTITIONS


def main() -> int:
    mode, total = sys.argv[1], int(sys.argv[2])
    if mode not in ("noop", "table", "packed"):
        raise SystemExit(f"unknown mode {mode!r} (noop, table or packed)")
    names = [t.name for t in EVENT_TOPICS]
    if mode == "packed":
        names = [asyncio.run(_pack(total))]
    app = faust.App(
        f"bench-{mode}-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{KAFKA}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        datadir=tempfile.mkdtemp(),
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        producer_acks=-1,
        stream_wait_empty=False,
    )
    source = app.topic(*names, key_serializer="raw", value_serializer="raw")
    table = app.Table("seen", default=None, partitions=PARTITIONS) if mode != "noop" else None
    counters = domain.Counters()
    seen = {"n": 0, "t0": 0.0}
    done = asyncio.Event()

    async def agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if not seen["n"]:
                seen["t0"] = time.perf_counter()
            if mode == "packed":
                for key, value in orjson.loads(event.value):
                    try:
                        envelope = decode(value)
                    except InvalidEvent:
                        seen["n"] += 1
                        continue
                    if envelope.key == key:
                        old = table.get(key)
                        new = domain.apply(old, envelope)
                        if new is not None:
                            table[key] = new
                            counters.replace(key, old, new)
                    seen["n"] += 1
            elif table is not None:
                key = event.message.key.decode() if event.message.key else ""
                table[key] = [seen["n"]]
                seen["n"] += 1
            else:
                seen["n"] += 1
            if seen["n"] >= total:
                done.set()

    app.agent(source, name=mode)(agent)

    async def run() -> float:
        async with faust_app_running(app):
            await done.wait()
            return seen["n"] / (time.perf_counter() - seen["t0"])

    try:
        print(f"{asyncio.run(run()):.0f}")
    finally:
        if mode == "packed":
            admin = KafkaAdminClient(bootstrap_servers=KAFKA)
            admin.delete_topics(names)
            admin.close()
    return 0


async def _pack(total: int, per_record: int = 500) -> str:
    """Copy the event topics into a new topic, `per_record` events per record, partition for partition."""
    name = f"bench.packed-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.create_topics({name: {"num_partitions": PARTITIONS, "replication_factor": 1}})
    admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", max_request_size=4 * 1024 * 1024)
    await consumer.start()
    await producer.start()
    try:
        parts = [TopicPartition(t.name, p) for t in EVENT_TOPICS for p in range(PARTITIONS)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        pending: dict[int, list[tuple[str, str]]] = {p: [] for p in range(PARTITIONS)}
        remaining, copied = {tp for tp in parts if ends[tp] > 0}, 0
        while remaining:
            for tp, records in (await consumer.getmany(*remaining, timeout_ms=500)).items():
                for r in records:
                    if r.offset < ends[tp] and r.value is not None:
                        pending[tp.partition].append(((r.key or b"").decode(), r.value.decode()))
                        copied += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
            for partition, items in pending.items():
                while len(items) >= per_record or (items and not remaining):
                    chunk, items[:] = items[:per_record], items[per_record:]
                    await producer.send_and_wait(name, orjson.dumps(chunk), partition=partition)
        if copied != total:
            raise SystemExit(f"expected {total} records in the event topics, found {copied}")
        return name
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    sys.exit(main())
