"""Faust's own ceilings on this machine, over the same records as the metrics worker and with its settings.

    python -m bench.faust_ceiling noop <records>    an agent that does nothing with each record
    python -m bench.faust_ceiling table <records>   an agent that only writes each record's key into a
                                                    changelogged table (what the worker must do per event)

Prints "<records/s>". Each run uses a consumer group and a table of its own.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid

import faust
from faust.contrib.asgi import faust_app_running

from bench.common import KAFKA
from services.metrics.agents import THROUGHPUT_SETTINGS
from shared.topics import EVENT_TOPICS, PARTITIONS


def main() -> int:
    mode, total = sys.argv[1], int(sys.argv[2])
    if mode not in ("noop", "table"):
        raise SystemExit(f"unknown mode {mode!r} (noop or table)")
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
        **THROUGHPUT_SETTINGS,
    )
    source = app.topic(*(t.name for t in EVENT_TOPICS), key_serializer="raw", value_serializer="raw")
    table = app.Table("seen", default=None, partitions=PARTITIONS) if mode == "table" else None
    seen = {"n": 0, "t0": 0.0}
    done = asyncio.Event()

    async def agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if not seen["n"]:
                seen["t0"] = time.perf_counter()
            if table is not None:
                key = event.message.key.decode() if event.message.key else ""
                table[key] = [seen["n"]]
            seen["n"] += 1
            if seen["n"] >= total:
                done.set()

    app.agent(source, name=mode)(agent)

    async def run() -> float:
        async with faust_app_running(app):
            await done.wait()
            return seen["n"] / (time.perf_counter() - seen["t0"])

    print(f"{asyncio.run(run()):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
