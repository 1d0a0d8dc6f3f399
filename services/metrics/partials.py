"""Per-partition counter partials: what each metrics worker publishes, and what every API instance sums.

One person's events share a partition number on every event topic (they are keyed by person reference and the
topics are co-partitioned), so the counters of the whole country are the sum of each source partition's
counters, and every distinct count stays exact. A worker owns some partitions; for each one it publishes, a few
times a second, the groups of cells that changed (a group is one indicator, year and dimension with all its
values) and then a position record naming the source offsets those cells reflect. All the records of source
partition `p` go to partition `p` of the partials topic, in order; the topic is compacted, keyed by group, so it
keeps the latest value of each group and reading it from the start gives every partition's latest partial.

Ownership changes (a worker restarted, a second one added) are told apart by an epoch: the time at which the
owner derived its counters. A new owner first publishes every group it has, so the groups of its epoch are the
partition's whole partial; a reader keeps a partition's records aside until the position record of their epoch
comes, then applies them at once (so what it serves always matches the positions it names), and ignores records
of an older epoch (a killed worker's last, unfinished publish).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from services.metrics.domain import Cell, Counters
from shared.kafka import ensure_topics, event_partitions
from shared.topics import Topic

__all__ = [
    "Group",
    "PartitionCounters",
    "PartialsView",
    "PartialsReader",
    "partition_of",
    "ensure_metrics_topics",
    "partials_topic",
    "encode_group",
    "encode_position",
    "encode_spans",
    "merged",
]

log = logging.getLogger(__name__)

Group = tuple[str, int, str]  # (indicator, year, dimension)
SPANS = "~partnerships"  # the record of a partition's partnership spans
POSITION = "~position"  # the record naming the source offsets a partition's published groups reflect


def partition_of(key: str, partitions: int) -> int:
    """The partition the producers' default partitioner (Kafka's murmur2) gives this key."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def partials_topic(app_id: str, partitions: int) -> Topic:
    """One compacted topic per metrics application (a test copy never mixes with the real one)."""
    return Topic(f"{app_id}-partials", partitions=partitions, compacted=True)


def ensure_metrics_topics(bootstrap: str, app_id: str) -> int:
    """Every topic the metrics app reads or writes exists (synchronous); returns the event topics' partition count."""
    ensure_topics(bootstrap)
    partitions = event_partitions(bootstrap)
    ensure_topics(bootstrap, [partials_topic(app_id, partitions)])
    return partitions


class PartitionCounters(Counters):
    """One source partition's counters, which also know the groups changed since they were last published."""

    def __init__(self) -> None:
        super().__init__()
        self.values: defaultdict[Group, set[str]] = defaultdict(set)  # every value ever seen, per group
        self.dirty: set[Group] = set()
        self.spans_dirty = False

    _deriving = False

    def derive(self, states: Iterable[tuple[str, Any]]) -> int:
        """Add these keys' states (after a recovery), indexing the values once at the end rather than per key;
        returns how many keys were added."""
        self._deriving = True
        added = 0
        try:
            for key, state in states:
                self.replace(key, None, state)
                added += 1
        finally:
            self._deriving = False
        self.reindex()
        return added

    def touched(self, *changes: Iterable[Cell]) -> None:
        if self._deriving:
            return
        for cells in changes:
            for cell in cells:
                group = cell[:3]
                self.values[group].add(cell[3])
                self.dirty.add(group)

    def spans_changed(self) -> None:
        self.spans_dirty = True

    def rebuild(self, states: Iterable[tuple[str, Any]]) -> None:
        self.values = defaultdict(set)
        super().rebuild(states)
        self.everything_dirty()

    def reindex(self) -> None:
        """After the cells were set whole (counters saved at a clean stop)."""
        self.values = defaultdict(set)
        self.touched(c for c, n in self.cells.items() if n)
        self.everything_dirty()

    def everything_dirty(self) -> None:
        self.dirty = set(self.values)
        self.spans_dirty = True

    def take_changes(self) -> tuple[dict[Group, dict[str, int]], dict[str, list[Any]] | None]:
        """The changed groups with all their non-zero values, and the spans if they changed; then clean."""
        groups = {}
        for group in self.dirty:
            indicator, year, dimension = group
            values = {}
            for value in self.values[group]:
                n = self.cells.get((indicator, year, dimension, value), 0)
                if n:
                    values[value] = n
            groups[group] = values
        spans = {k: list(s) for k, s in self.partnerships.items()} if self.spans_dirty else None
        self.dirty = set()
        self.spans_dirty = False
        return groups, spans


def merged(parts: Iterable[Counters]) -> Counters:
    """The sum of some partitions' counters (the cells add up; the partnership keys never overlap)."""
    out = Counters()
    for part in parts:
        out.cells.update(part.cells)
        out.partnerships.update(part.partnerships)
    out.version = 1
    return out


def _group_key(partition: int, group: Group) -> bytes:
    return orjson.dumps([partition, *group])


def encode_group(partition: int, epoch: int, group: Group, values: dict[str, int]) -> tuple[bytes, bytes]:
    return _group_key(partition, group), orjson.dumps({"epoch": epoch, "values": values})


def encode_spans(partition: int, epoch: int, spans: dict[str, list[Any]]) -> tuple[bytes, bytes]:
    return orjson.dumps([partition, SPANS]), orjson.dumps({"epoch": epoch, "spans": spans})


def encode_position(partition: int, epoch: int, position: dict[str, Any]) -> tuple[bytes, bytes]:
    return orjson.dumps([partition, POSITION]), orjson.dumps({**position, "epoch": epoch})


@dataclass
class _Partial:
    epoch: int = -1
    groups: dict[Group, dict[str, int]] = field(default_factory=dict)
    spans: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Pending:
    groups: dict[Group, dict[str, int]] = field(default_factory=dict)
    spans: dict[str, tuple[str, str | None]] | None = None


class PartialsView:
    """The sum of the latest partial of every source partition, read from the partials topic.

    `counters` is a plain `Counters` that the API's views read; it changes only when a partition's position
    record is applied, all its pending groups at once.
    """

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.counters = Counters()
        self._parts: dict[int, _Partial] = {}
        self._pending: dict[int, dict[int, _Pending]] = defaultdict(dict)  # partition -> epoch -> records

    def add(self, key: bytes, value: bytes | None) -> bool:
        """One record of the partials topic; True when the served counters changed."""
        if value is None:
            return False
        try:
            partition, *rest = orjson.loads(key)
            body = orjson.loads(value)
            epoch = int(body["epoch"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("unreadable partials record ignored", extra={"key": key[:80]})
            return False
        current = self._parts.get(partition)
        if current is not None and epoch < current.epoch:
            return False  # an earlier owner's, superseded
        pending = self._pending[partition].setdefault(epoch, _Pending())
        if rest == [POSITION]:
            self._apply(partition, epoch, pending, body)
            return True
        if rest == [SPANS]:
            pending.spans = {k: (s, e) for k, (s, e) in body["spans"].items()}
        else:
            indicator, year, dimension = rest
            pending.groups[(indicator, int(year), dimension)] = {str(v): int(n) for v, n in body["values"].items()}
        return False

    def _apply(self, partition: int, epoch: int, pending: _Pending, position: dict[str, Any]) -> None:
        part = self._parts.get(partition)
        if part is None or epoch > part.epoch:
            # A new owner: the groups of its epoch are the partition's whole partial (it published them all).
            if part is not None:
                self._retract(part.groups, part.spans)
            part = self._parts[partition] = _Partial(epoch=epoch)
        for group, values in pending.groups.items():
            self._retract({group: part.groups.get(group, {})}, None)
            self._credit(group, values)
            if values:
                part.groups[group] = values
            else:
                part.groups.pop(group, None)
        if pending.spans is not None:
            self._retract({}, part.spans)
            part.spans = pending.spans
            self.counters.partnerships.update(part.spans)
        part.position = position
        self._pending[partition] = {e: p for e, p in self._pending[partition].items() if e > epoch}
        self.counters.version += 1

    def _retract(self, groups: dict[Group, dict[str, int]], spans: dict[str, Any] | None) -> None:
        cells = self.counters.cells
        for (indicator, year, dimension), values in groups.items():
            for value, n in values.items():
                cell = (indicator, year, dimension, value)
                left = cells[cell] - n
                if left:
                    cells[cell] = left
                else:
                    del cells[cell]
        for key in spans or ():
            self.counters.partnerships.pop(key, None)

    def _credit(self, group: Group, values: dict[str, int]) -> None:
        indicator, year, dimension = group
        cells = self.counters.cells
        for value, n in values.items():
            cells[(indicator, year, dimension, value)] += n

    def reported(self) -> list[int]:
        """The source partitions whose partial has been applied."""
        return sorted(self._parts)

    def positions(self) -> dict[int, dict[str, Any]]:
        """Per source partition, its latest position record (source offsets, worker, figures)."""
        return {p: part.position for p, part in sorted(self._parts.items())}


def wall_clock_epoch() -> int:
    """A new owner's epoch: later than any earlier owner's (it starts after the earlier one lost the partition)."""
    return time.time_ns()


class PartialsReader:
    """Reads the partials topic from its beginning, for ever, into a `PartialsView` (one per API instance, no
    consumer group: every instance reads every partition)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, on_change: Callable[[], None]) -> None:
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.view = PartialsView(partitions)
        self.on_change = on_change
        self.caught_up = False
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._ends_at_start: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id="alliance-metrics-api",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,  # a partial shows in the API within tens of milliseconds
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._ends_at_start = await consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._run(), name="partials-reader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            except Exception as exc:  # noqa: BLE001 - the broker is away: read again, never stop serving
                log.warning("partials not read", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
                continue
            changed = False
            for records in batch.values():
                for record in records:
                    changed |= self.view.add(record.key, record.value)
            if not self.caught_up:
                positions = [await consumer.position(tp) for tp in self._ends_at_start]
                self.caught_up = all(n >= end for n, end in zip(positions, self._ends_at_start.values(), strict=True))
            if changed:
                self.on_change()

    def ready(self) -> bool:
        """Caught up with what the topic held at start, and every source partition reported."""
        return self.caught_up and len(self.view.reported()) == self.partitions

    async def source_ends(self, topics: Iterable[str], timeout_s: float = 2.0) -> dict[tuple[str, int], int]:
        """The end offsets of the source partitions (for the lag), {} when the broker does not answer in time."""
        if self._consumer is None:
            return {}
        tps = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(tps), timeout_s)
        except (KafkaError, TimeoutError):
            return {}
        return {(tp.topic, tp.partition): n for tp, n in ends.items()}

    async def broker_answers(self, timeout_s: float = 2.0) -> bool:
        if self._consumer is None:
            return False
        try:
            await asyncio.wait_for(self._consumer._client.fetch_all_metadata(), timeout_s)  # noqa: SLF001
        except Exception:  # noqa: BLE001 - refused, timed out: away
            return False
        return True
