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
import contextlib
import sys
import tempfile
import time
import uuid

import faust
import orjson
from aiokafka import AIOKafkaProducer
from faust.contrib.asgi import faust_app_running
from kafka import KafkaAdminClient

from bench.common import KAFKA
from services.metrics import domain, replay
from shared.serde import InvalidEvent, decode_record
from shared.topics import EVENT_TOPICS, PARTITIONS


def main() -> int:
    mode, total = sys.argv[1], int(sys.argv[2])
    if mode not in ("noop", "table", "packed"):
        raise SystemExit(f"unknown mode {mode!r} (noop, table or packed)")
    names = [t.name for t in EVENT_TOPICS]
    if mode == "packed":
        name, total = asyncio.run(_pack())  # what the log holds now (it may have moved since the caller looked)
        names = [name]
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
    ledger = domain.Ledger(table) if table is not None else None
    seen = {"n": 0, "t0": 0.0}
    done = asyncio.Event()

    async def agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if not seen["n"]:
                seen["t0"] = time.perf_counter()
            if ledger is not None and mode == "packed":
                for key, value in orjson.loads(event.value):
                    with contextlib.suppress(InvalidEvent):
                        ledger.add(decode_record(key.encode(), value))
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


async def _pack(per_record: int = 500) -> tuple[str, int]:
    """Copy the event topics into a new topic, `per_record` events per record, partition for partition."""
    name = f"bench.packed-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.create_topics({name: {"num_partitions": PARTITIONS, "replication_factor": 1}})
    admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        pending: dict[int, list[tuple[str, str]]] = {p: [] for p in range(PARTITIONS)}
        copied = 0

        async def send(partition: int, items: list[tuple[str, str]]) -> None:
            await producer.send_and_wait(name, orjson.dumps(items), partition=partition)

        async for records in replay.read_log(KAFKA, replay.end_offsets(KAFKA)):
            for r in records:
                if r.value is not None:
                    items = pending[r.partition]
                    items.append(((r.key or b"").decode(), r.value.decode()))
                    copied += 1
                    if len(items) >= per_record:
                        await send(r.partition, items)
                        items.clear()
        for partition, items in pending.items():
            if items:
                await send(partition, items)
        return name, copied
    finally:
        await producer.stop()


if __name__ == "__main__":
    sys.exit(main())
