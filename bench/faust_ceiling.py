"""Faust's own ceiling on this machine: a no-op agent over the same records as the metrics worker.

python -m bench.faust_ceiling <records>     (prints "<records/s>")
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
from shared.topics import EVENT_TOPICS


def main() -> int:
    total = int(sys.argv[1])
    app = faust.App(
        f"bench-noop-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{KAFKA}",
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        datadir=tempfile.mkdtemp(),
    )
    source = app.topic(*(t.name for t in EVENT_TOPICS), key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "t0": 0.0}
    done = asyncio.Event()

    async def noop(stream: faust.StreamT) -> None:
        async for _ in stream.events():
            if not seen["n"]:
                seen["t0"] = time.perf_counter()
            seen["n"] += 1
            if seen["n"] >= total:
                done.set()

    app.agent(source, name="noop")(noop)

    async def run() -> float:
        async with faust_app_running(app):
            await done.wait()
            return seen["n"] / (time.perf_counter() - seen["t0"])

    print(f"{asyncio.run(run()):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
