"""How the latest version of an aggregate is read on this database server, against the raw look-up by `_id`:
which query shapes use the `_id` index (FerretDB's SQLite backend pushes down only `{"_id": <string>}`), and
what `Aggregates.get` costs warm (cache hint), cold (head hint) and behind (head lagging 3 versions).

    .venv/bin/python -m bench.reads [--sizes 1000,50000] [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pymongo import AsyncMongoClient

from bench.common import machine
from shared.aggregates import Aggregates, version_id
from shared.docstore import MongoDocuments
from shared.outbox import Outbox

URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
DB = "bench_reads"


async def _median_ms(call: Callable[[int], Awaitable[object]], samples: int) -> float:
    times = []
    for i in range(samples):
        started = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _fill(client: AsyncMongoClient, size: int) -> None:
    """`size` aggregates of 4 versions each; heads lag 3 versions behind on purpose (the worst case a crash
    between the version insert and the head write leaves)."""
    db = client[DB]
    await db["things_versions"].drop()
    await db["things"].drop()
    now = datetime.now(UTC)
    for start in range(0, size, 1000):
        ids = [f"thing-{i:07d}" for i in range(start, min(size, start + 1000))]
        versions = [
            {
                "_id": version_id(a, n),
                "a": a,
                "n": n,
                "state": {"status": "scheduled", "seats": n},
                "events": [],
                "at": now,
            }  # fmt: skip
            for a in ids
            for n in range(1, 5)
        ]
        await db["things_versions"].insert_many(versions, ordered=False)
        heads = [{"_id": a, "status": "scheduled", "seats": 1, "version": 1, "updated_at": now} for a in ids]
        await db["things"].insert_many(heads, ordered=False)


async def _shapes(client: AsyncMongoClient, size: int, samples: int) -> tuple[float, list[tuple[str, float]]]:
    """Median latency of each query shape over `size` aggregates, and of find_one by `_id` (the baseline)."""
    coll = client[DB]["things_versions"]
    docs = MongoDocuments(client[DB])

    def key(i: int) -> str:
        return f"thing-{(i * 7919) % size:07d}"

    def by_id(i: int) -> Awaitable[object]:
        return coll.find_one({"_id": version_id(key(i), 4)})

    def by_in(i: int) -> Awaitable[object]:
        return coll.find_one({"_id": {"$in": [version_id(key(i), 4)]}})

    def by_id_and_field(i: int) -> Awaitable[object]:
        return coll.find_one({"_id": version_id(key(i), 4), "a": key(i)})

    def by_range(i: int) -> Awaitable[object]:
        return coll.find_one({"a": key(i)}, sort=[("n", -1)])

    def series() -> Aggregates:
        return Aggregates(docs, "things", Outbox(docs, None))

    behind, warm = series(), series()

    def cold_get(i: int) -> Awaitable[object]:
        return series().get(key(i))

    base = await _median_ms(by_id, samples)
    scans = max(5, samples // 20)
    figures = [
        ("find_one {_id: {$in: [id]}}", await _median_ms(by_in, scans)),
        ("find_one {_id: id, a: aggregate}", await _median_ms(by_id_and_field, scans)),
        ("latest by range: {a: x}, sort n desc, limit 1", await _median_ms(by_range, scans)),
        ("Aggregates.get, head 3 behind (mends it)", await _median_ms(lambda i: behind.get(key(i)), samples)),
        ("Aggregates.get, cold cache (head hint)", await _median_ms(cold_get, samples)),
    ]
    for i in range(samples):
        await warm.get(key(i))
    figures.append(("Aggregates.get, warm cache (one probe)", await _median_ms(lambda i: warm.get(key(i)), samples)))
    return base, figures


async def _run(sizes: list[int], samples: int) -> None:
    client = AsyncMongoClient(URI, tz_aware=True)
    rows = []
    try:
        for size in sizes:
            started = time.monotonic()
            await _fill(client, size)
            filled = time.monotonic() - started
            base, figures = await _shapes(client, size, samples)
            rows.append((size, filled, base, figures))
    finally:
        await client.drop_database(DB)
        await client.close()
    print("reading the latest version: median latency per call, against find_one {_id: id} in the same run")
    for size, filled, base, figures in rows:
        print(
            f"\n{size:,} aggregates ({size * 4:,} versions, filled in {filled:.1f} s); find_one by _id: {base:.2f} ms"
        )
        print(f"{'query':<48}{'ms':>9}{'x _id':>9}")
        for label, ms in figures:
            print(f"{label:<48}{ms:>9.2f}{ms / base:>9.1f}")
    print("\n" + machine())


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench.reads` and bench/run.py (`make bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,50000")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    asyncio.run(_run([int(s) for s in args.sizes.split(",")], args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
