"""Rebuild every counter from the Kafka log alone and compare it with the live metrics service.

    python -m services.metrics.replay [--url http://127.0.0.1:8004] [--year 2026]

Takes the live service's snapshot, which names the source positions its counters reflect, reads the event
topics from the beginning up to exactly those positions with no consumer group (empty state), applies the same
counting rules as the worker and compares every counter cell. The log may keep moving meanwhile (the simulator,
live traffic): the comparison is of the same records on both sides. Exit status 0 when identical.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka import TopicPartition as AioPartition
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from tqdm import tqdm

from services.metrics import domain
from services.metrics.settings import MetricsSettings
from shared.serde import InvalidEvent, decode_record
from shared.topics import EVENT_TOPICS

__all__ = ["rebuild", "read_log", "end_offsets", "compare", "applied", "wait_applied", "snapshot", "main"]


def _partitions(consumer: KafkaConsumer) -> list[TopicPartition]:
    return [
        TopicPartition(t.name, p) for t in EVENT_TOPICS for p in sorted(consumer.partitions_for_topic(t.name) or ())
    ]


def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        return consumer.end_offsets(_partitions(consumer))
    finally:
        consumer.close()


def rebuild(bootstrap: str, until: dict[TopicPartition, int], *, progress: bool = True) -> tuple[domain.Counters, int]:
    """Counters from the log up to (not including) the given offsets; returns them and the records read."""
    return asyncio.run(_rebuild(bootstrap, until, progress))


async def read_log(bootstrap: str, until: Mapping[Any, int]) -> AsyncIterator[list[ConsumerRecord]]:
    """The records of the given partitions from their beginning up to (not including) the given offsets, in
    batches as fetched. aiokafka parses record batches in C: several times faster than kafka-python."""
    ends = {AioPartition(tp.topic, tp.partition): end for tp, end in until.items() if end > 0}
    if not ends:
        return  # an empty log (a consumer stopped right after its start raises CancelledError in aiokafka)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(ends))
        starts = await consumer.beginning_offsets(list(ends))
        await consumer.seek_to_beginning(*ends)
        remaining = {tp for tp, end in ends.items() if end > starts[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                yield [r for r in records if r.offset < ends[tp]]
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()


async def _rebuild(bootstrap: str, until: dict[TopicPartition, int], progress: bool) -> tuple[domain.Counters, int]:
    ledger = domain.Ledger()
    done = 0
    bar = tqdm(total=sum(until.values()), unit="ev", desc="replaying the log", disable=not progress, file=sys.stderr)
    async for records in read_log(bootstrap, until):
        for record in records:
            try:
                ledger.add(decode_record(record.key, record.value))
            except InvalidEvent:
                pass  # the worker dead-letters it: it counts nothing either
        done += len(records)
        bar.update(len(records))
    bar.close()
    return ledger.counters, done


def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        admin.close()


def compare(live: dict[str, Any], rebuilt: dict[str, Any], year: int | None = None) -> list[str]:
    """Human-readable differences (empty when identical); restricted to one year if given."""

    def keep(cell: str) -> bool:
        return year is None or (not cell.startswith("partnership|") and cell.split("|")[1] == str(year))

    diffs = []
    for cell in sorted({c for c in (*live, *rebuilt) if keep(c)}):
        if live.get(cell) != rebuilt.get(cell):
            diffs.append(f"{cell}: live={live.get(cell)} replay={rebuilt.get(cell)}")
    return diffs


def wait_caught_up(bootstrap: str, group: str, until: dict[TopicPartition, int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = committed(bootstrap, group)
        if all(done.get(tp, 0) >= end for tp, end in until.items() if end > 0):
            return True
        time.sleep(0.5)
    return False


def applied(url: str) -> dict[TopicPartition, int]:
    """The next offset the live worker has applied, per source partition (from /v1/worker)."""
    body = httpx.get(f"{url}/v1/worker", timeout=10).json()
    return {TopicPartition(p["topic"], p["partition"]): p["applied"] for p in body.get("partitions") or ()}


def wait_applied(url: str, until: Mapping[TopicPartition, int], timeout: float) -> bool:
    """True once the live worker has applied every record before `until` (False after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done = applied(url)
        except (httpx.HTTPError, ValueError):
            done = {}
        if all(done.get(tp, 0) >= end for tp, end in until.items() if end > 0):
            return True
        time.sleep(0.3)
    return False


def snapshot(url: str) -> tuple[dict[str, Any], dict[TopicPartition, int]]:
    """The live counters and the source positions they reflect (every record before each offset)."""
    body = httpx.get(f"{url}/v1/snapshot", timeout=30).json()
    return body["cells"], {TopicPartition(p["topic"], p["partition"]): p["applied"] for p in body["positions"]}


def run(url: str, settings: MetricsSettings, year: int | None, attempts: int = 3) -> tuple[bool, list[str], int]:
    """Compare the live counters with a rebuild of the same records. A worker that has just recovered may hold
    the effect of a few events past the positions it reports until it applies them again; a difference is
    therefore confirmed on later snapshots before it is reported."""
    bootstrap = settings.kafka_bootstrap_servers
    diffs: list[str] = []
    for attempt in range(attempts):
        if attempt:
            time.sleep(5)
        live, until = snapshot(url)
        missing = [tp for tp, end in end_offsets(bootstrap).items() if end > 0 and tp not in until]
        if missing:
            diffs = [f"the live worker reports no position for {len(missing)} partitions (still starting?)"]
            continue
        started = time.perf_counter()
        rebuilt, records = rebuild(bootstrap, until)
        elapsed = time.perf_counter() - started
        print(
            f"rebuilt {records} records (the positions of the live snapshot) in {elapsed:.1f}s "
            f"({records / max(elapsed, 1e-9):,.0f} records/s)",
            file=sys.stderr,
        )
        diffs = compare(live, rebuilt.snapshot(), year)
        if not diffs:
            return True, [], records
        print(f"{len(diffs)} cells differ; comparing again on a later snapshot", file=sys.stderr)
    return False, diffs, 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8004", help="the live metrics service")
    parser.add_argument("--year", type=int, default=None, help="compare one year only (default: every cell)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    identical, diffs, records = run(args.url, MetricsSettings(), args.year)
    if identical:
        print(f"IDENTICAL: every counter rebuilt from {records} records matches the live state")
        return 0
    print(f"DIFFERENT: {len(diffs)} cells differ")
    for line in diffs[:50]:
        print("  " + line)
    return 1


if __name__ == "__main__":
    sys.exit(main())
