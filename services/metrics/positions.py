"""Source positions kept in the table itself, so that an event's effect and its offset are durable together.

Faust commits a source offset while the changelog write of that event may still sit in its producer buffer:
a kill -9 then loses the event. Instead, after applying events of a source partition the worker writes that
partition's next offset into the same table, from within the event, hence into the same changelog partition
and after the event's own write (one producer, one queue, one in-flight batch per partition). Whatever prefix
of the changelog survives a crash, the position it holds is never ahead of the state it holds.

The agent then trusts only that position, never the group's committed offsets: the first event of a partition
after a (re)assignment is compared with the position stored with the state. An event past it means the events
in between never reached the state: the agent skips it and sends the consumer back to the stored position
(`Rewind`). An event before it is applied again, which changes nothing since facts are kept by event id.
Only events that follow the stored position without a gap move it forward.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from shared.topics import EVENT_TOPICS

__all__ = [
    "POSITION_PREFIX",
    "is_position_key",
    "position_key",
    "Rewind",
    "SourcePositions",
    "PositionedApp",
    "ChangelogAcks",
]

SOURCES = frozenset(t.name for t in EVENT_TOPICS)

log = logging.getLogger(__name__)

# No producer's key can start with NUL (keys are person references, `anon:<uuid>` or entity ids), and the
# worker dead-letters any event whose key does.
POSITION_PREFIX = "\x00source|"


def position_key(topic: str, partition: int) -> str:
    return f"{POSITION_PREFIX}{topic}|{partition}"


def is_position_key(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(POSITION_PREFIX)


REWIND_AGAIN_AFTER = 5.0  # seconds


@dataclass(frozen=True)
class Rewind:
    """The consumer must go back to `offset` on `tp`: the event seen is past what the state holds."""

    tp: TP
    offset: int


@dataclass
class SourcePositions:
    """Per source partition: the next offset the state holds (`applied`), the one last stored in the table
    (`stored`), and the broker time of the newest applied record.

    A position is stored at most every `every` offsets or `interval` seconds per partition: after a crash the
    worker applies again at most that many events, and each stored position costs one changelog record.
    """

    every: int = 100
    interval: float = 0.5
    applied: dict[TP, int] = field(default_factory=dict)
    stored: dict[TP, int] = field(default_factory=dict)
    newest_timestamp: float | None = None
    rewinds: int = 0
    _rewinding: dict[TP, tuple[int, float]] = field(default_factory=dict)
    _due: dict[TP, tuple[int, float]] = field(default_factory=dict)  # the last position due, and when

    def forget(self) -> None:
        """After a table recovery (a new assignment): every partition starts again from the table."""
        self.applied.clear()
        self.stored.clear()
        self._due.clear()
        self._rewinding.clear()

    def stored_in(self, table: Mapping[Any, Any], tp: TP) -> int | None:
        return table.get(position_key(tp.topic, tp.partition))

    def start(self, tp: TP, offset: int) -> None:
        """What the state holds for `tp`, read from the table (or the log's beginning when nothing is stored)."""
        self.applied[tp] = self.stored[tp] = offset
        self._due[tp] = (offset, time.monotonic())

    def check(self, message: Any) -> Rewind | bool:
        """True: apply the event. False: skip it (a rewind is under way). Rewind: skip it and seek back."""
        tp, offset = message.tp, message.offset
        nxt = self.applied[tp]
        if offset <= nxt:
            self._rewinding.pop(tp, None)
            return True
        now = time.monotonic()
        pending = self._rewinding.get(tp)
        # Events fetched before the seek still arrive for a while; ask again only if the seek seems lost.
        if pending is not None and pending[0] == nxt and now - pending[1] < REWIND_AGAIN_AFTER:
            return False
        self._rewinding[tp] = (nxt, now)
        self.rewinds += 1
        return Rewind(tp, nxt)

    def after(self, message: Any) -> int | None:
        """Call once an event's effect is in the table; the position to store now when one is due."""
        tp = message.tp
        if message.offset != self.applied[tp]:
            return None  # an event applied again: the position is already past it
        nxt = self.applied[tp] = message.offset + 1
        if message.timestamp and (self.newest_timestamp is None or message.timestamp > self.newest_timestamp):
            self.newest_timestamp = message.timestamp
        now = time.monotonic()
        last, at = self._due.get(tp, (0, 0.0))
        if nxt - last >= self.every or now - at >= self.interval:
            self._due[tp] = (nxt, now)
            return nxt
        return None

    def store(self, tp: TP, offset: int, table: MutableMapping[Any, Any]) -> None:
        """Write `tp`'s position from within its event: same changelog partition, after the event's write."""
        table[position_key(tp.topic, tp.partition)] = offset
        self.stored[tp] = offset

    def lag(self, ends: Mapping[TP, int], table: Mapping[Any, Any]) -> dict[TP, int]:
        return {tp: max(0, end - self.position(tp, table)) for tp, end in ends.items()}

    def position(self, tp: TP, table: Mapping[Any, Any]) -> int:
        """The next offset the state holds (from the table for a partition that has seen no event yet)."""
        if tp in self.applied:
            return self.applied[tp]
        return self.stored_in(table, tp) or 0


class _SourcesUnfiltered(dict[TP, Any]):
    """faust's read offsets, with none for the source partitions.

    faust drops any fetched message below the last offset it delivered on a partition. After a seek back
    to the stored position, messages fetched before the seek would raise that mark again and the events
    right after the position would be dropped. The agent filters source messages itself (`check`).
    """

    def __init__(self, sources: frozenset[str], current: Mapping[TP, Any]) -> None:
        super().__init__(current)
        self.sources = sources

    def __getitem__(self, tp: TP) -> Any:
        if tp.topic in self.sources:
            return None
        return self.get(tp)


class PositionedConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, delivering every fetched message of the source partitions, and sent to the
    positions stored in the table when faust would send it to the committed offsets (after a recovery).

    The seek is what makes a worker whose group committed the end of the log go back at all (no event would
    arrive to show the gap); the agent's `check` stays the guard, whatever faust seeks and when.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _SourcesUnfiltered(SOURCES, self._read_offset)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = dict(await super().seek_to_committed())
        table = getattr(self.app, "position_table", None)
        sources = sorted(tp for tp in self.assignment() if tp.topic in SOURCES)
        if table is None or not sources:
            return committed
        earliest = await self.earliest_offsets(*sources)
        for tp in sources:
            target = max(table.get(position_key(tp.topic, tp.partition)) or 0, earliest.get(tp) or 0)
            if committed.get(tp) != target:
                await self._seek(tp, target)
            committed[tp] = target
        return committed


class PositionedTransport(faust_aiokafka.Transport):
    Consumer = PositionedConsumer


class PositionedApp(faust.App):
    """A faust app with the consumer above; `position_table` is the table holding the positions."""

    position_table: Mapping[Any, Any] | None = None

    def _new_transport(self) -> Any:
        return PositionedTransport(self.conf.broker_consumer, self)


class ChangelogAcks:
    """Per changelog partition, how many writes of `table` were sent and how many the broker acknowledged
    (in order: one producer, one batch in flight per partition). "Acknowledged >= sent at that moment" means
    every write made until that moment is in the changelog, without waiting for it (no flush)."""

    def __init__(self, table: Any) -> None:
        self.sent: Counter[int] = Counter()
        self.acked: Counter[int] = Counter()
        send, done = table.send_changelog, table._on_changelog_sent

        def send_changelog(partition: int | None, *args: Any, **kwargs: Any) -> Any:
            fut = send(partition, *args, **kwargs)
            self.sent[fut.message.partition] += 1
            return fut

        def on_sent(fut: Any) -> None:
            done(fut)
            self.acked[fut.message.partition] += 1

        # faust looks both up on the table at each write, so the instance's own attributes are used.
        table.send_changelog, table._on_changelog_sent = send_changelog, on_sent
