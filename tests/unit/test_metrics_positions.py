"""Source positions stored with the state: when they are written, when the consumer must go back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from faust.types import TP

from services.metrics.domain import Ledger
from services.metrics.positions import Rewind, SourcePositions, is_position_key, position_key
from tests import samples

pytestmark = pytest.mark.unit

TOPIC = "workshops.events"
TP1 = TP(TOPIC, 1)


@dataclass
class Message:
    offset: int
    tp: TP = TP1
    timestamp: float = 1_700_000_000.0


class Table(dict):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[Any, Any]] = []

    def __setitem__(self, key: Any, value: Any) -> None:
        self.writes.append((key, value))
        super().__setitem__(key, value)


def applied(positions: SourcePositions, message: Message, table: Table) -> None:
    """What the agent does once an event's effect is in the table."""
    due = positions.after(message)
    if due is not None:
        positions.store(message.tp, due, table)


def test_a_position_is_written_after_the_event_and_at_most_every_n_offsets() -> None:
    positions, table = SourcePositions(every=3, interval=3600), Table()
    positions.start(TP1, 10)
    for offset in range(10, 17):
        assert positions.check(Message(offset)) is True
        applied(positions, Message(offset), table)
    assert table.writes == [(position_key(TOPIC, 1), 13), (position_key(TOPIC, 1), 16)]
    assert positions.applied[TP1] == 17 and positions.stored[TP1] == 16
    assert positions.lag({TP1: 20}, table) == {TP1: 3}
    assert positions.newest_timestamp == 1_700_000_000.0


def test_an_event_past_the_stored_position_sends_the_consumer_back_once() -> None:
    """The group committed offset 50 but the state holds events before 42 only: 42..49 must be applied."""
    positions, table = SourcePositions(every=1), Table()
    positions.start(TP1, positions.stored_in({position_key(TOPIC, 1): 42}, TP1) or 0)
    assert positions.check(Message(50)) == Rewind(TP1, 42)
    assert positions.check(Message(51)) is False  # fetched before the seek: skipped, no second seek
    assert table.writes == []
    assert positions.check(Message(42)) is True
    applied(positions, Message(42), table)
    assert table.writes == [(position_key(TOPIC, 1), 43)]
    assert positions.rewinds == 1


def test_an_event_before_the_stored_position_is_applied_again_without_moving_it() -> None:
    positions, table = SourcePositions(every=1), Table()
    positions.start(TP1, 42)
    assert positions.check(Message(40)) is True
    applied(positions, Message(40), table)
    assert positions.applied[TP1] == 42 and table.writes == []


def test_position_keys_are_apart_from_every_event_key() -> None:
    keys = [e.key for e in samples.every_event_type()] + [samples.attended(None).key]
    assert keys and not any(is_position_key(k) for k in keys)
    assert is_position_key(position_key(TOPIC, 0))
    # Applying an event again after a restart (from a stored position behind the state) changes nothing.
    event = samples.attended(samples.ref("again"))
    ledger = Ledger()
    assert ledger.add(event) is True
    assert ledger.add(event) is False
