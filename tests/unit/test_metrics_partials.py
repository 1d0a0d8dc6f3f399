"""Per-partition partials: their sum equals one count over every event, through deltas, owner changes, a dead
owner's unfinished publish and the topic's compaction."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest

from services.metrics import domain
from services.metrics.partials import (
    PartialsView,
    PartitionCounters,
    encode_group,
    encode_position,
    encode_spans,
    partition_of,
)
from shared import events as ev
from tests import samples

pytestmark = pytest.mark.unit
PARTITIONS = 4
YEAR = datetime.now(UTC).year

Record = tuple[bytes, bytes]


class Owner:
    """One worker's side for some partitions: a ledger per partition, publishing what changed (as agents.py)."""

    def __init__(self, epoch: int, states: dict | None = None) -> None:
        self.epoch = epoch
        self.states: dict = {} if states is None else states
        self.ledgers: dict[int, domain.Ledger] = {}

    def ledger(self, p: int) -> domain.Ledger:
        if p not in self.ledgers:
            self.ledgers[p] = domain.Ledger(self.states)
            self.ledgers[p].counters = PartitionCounters()
        return self.ledgers[p]

    def derive(self, partitions: range) -> None:
        """A new owner derives its partitions' counters from the states (after a table recovery)."""
        for p in partitions:
            self.ledger(p)
        for key, state in self.states.items():
            p = partition_of(key, PARTITIONS)
            if p in self.ledgers:
                self.ledgers[p].counters.replace(key, None, state)
        for ledger in self.ledgers.values():
            ledger.counters.everything_dirty()  # type: ignore[attr-defined]

    def add(self, event: ev.Envelope) -> None:
        self.ledger(partition_of(event.key, PARTITIONS)).add(event)

    def publish(self, *, position: bool = True) -> list[Record]:
        out: list[Record] = []
        for p, ledger in sorted(self.ledgers.items()):
            part = ledger.counters
            assert isinstance(part, PartitionCounters)
            groups, spans = part.take_changes()
            out.extend(encode_group(p, self.epoch, g, values) for g, values in groups.items())
            if spans is not None:
                out.append(encode_spans(p, self.epoch, spans))
            if position:
                out.append(encode_position(p, self.epoch, {"positions": {}, "worker": "w"}))
        return out


def _signed(partnership_id: str, partner_id: str) -> ev.Envelope:
    data = ev.PartnershipSigned(
        partnership_id=partnership_id,
        partner_id=partner_id,
        partnership_type="skills_sponsorship",
        commitments=["digital_inclusion"],
        departements=["75"],
        signed_on=date(YEAR, 3, 1),
        starts_on=date(YEAR, 4, 1),
    )
    return ev.new_event(data, source="/tests", time=datetime.now(UTC))


def _events(n: int, seed: int) -> list[ev.Envelope]:
    rng = random.Random(seed)
    out: list[ev.Envelope] = []
    for i in range(n):
        ref = samples.ref(f"partial-{seed}-{rng.randrange(n // 2)}")
        kind = rng.random()
        if kind < 0.5:
            out.append(samples.attended(ref))
        elif kind < 0.8:
            out.append(samples.detected(ref))
        else:
            out.append(_signed(f"pship-{seed}-{i}", f"partner-{i % 3}"))
    return out


def _read(records: list[Record]) -> PartialsView:
    view = PartialsView(PARTITIONS)
    for key, value in records:
        view.add(key, value)
    return view


def _expected(events: list[ev.Envelope]) -> dict:
    ledger = domain.Ledger()
    for e in events:
        ledger.add(e)
    return ledger.counters.snapshot()


def test_the_sum_of_the_partials_is_one_count_over_every_event_through_deltas() -> None:
    events = _events(400, seed=1)
    owner = Owner(epoch=1)
    owner.derive(range(PARTITIONS))
    log: list[Record] = owner.publish()
    for chunk in range(0, len(events), 50):
        for e in events[chunk : chunk + 50]:
            owner.add(e)
        log += owner.publish()
        assert _read(log).counters.snapshot() == _expected(events[: chunk + 50])
    # A retraction empties cells: the group's values go, the sum follows.
    retracted = samples.retraction(next(e for e in events if isinstance(e.data, ev.WorkshopAttended)))
    owner.add(retracted)
    log += owner.publish()
    assert _read(log).counters.snapshot() == _expected([*events, retracted])
    assert len({partition_of(e.key, PARTITIONS) for e in events}) == PARTITIONS


def test_groups_wait_for_their_position_record() -> None:
    owner = Owner(epoch=1)
    owner.derive(range(PARTITIONS))
    log = owner.publish()
    view = _read(log)
    owner.add(samples.attended(samples.ref("waiting")))
    for key, value in owner.publish(position=False):
        view.add(key, value)
    assert view.counters.value("people_helped", YEAR) == 0  # not served before its position
    for key, value in owner.publish():  # nothing new but the positions
        view.add(key, value)
    assert view.counters.value("people_helped", YEAR) == 1


def test_a_new_owner_replaces_a_dead_ones_unfinished_publish_and_its_late_records() -> None:
    first = _events(200, seed=2)
    states: dict = {}
    dead = Owner(epoch=1, states=states)
    dead.derive(range(PARTITIONS))
    for e in first:
        dead.add(e)
    log = dead.publish()
    # The dead owner applied more, published the groups but not the positions, then died; the state it
    # wrote was lost with it (the new owner's table holds only the first events).
    kept = {k: v for k, v in states.items()}
    lost = [samples.attended(samples.ref(f"lost-{n}")) for n in range(30)]
    for e in lost:
        dead.add(e)
    orphans = dead.publish(position=False)
    log += orphans
    heir = Owner(epoch=2, states=kept)
    heir.derive(range(PARTITIONS))
    log += heir.publish()
    assert _read(log).counters.snapshot() == _expected(first)
    # A record or position of the dead owner arriving late changes nothing.
    late = dead.publish()
    assert _read(log + orphans + late).counters.snapshot() == _expected(first)


def test_reading_the_compacted_topic_gives_the_same_sums() -> None:
    events = _events(300, seed=3)
    states: dict = {}
    owner = Owner(epoch=1, states=states)
    owner.derive(range(PARTITIONS))
    log = owner.publish()
    for e in events[:150]:
        owner.add(e)
        log += owner.publish() if random.Random(len(log)).random() < 0.2 else []
    log += owner.publish()
    heir = Owner(epoch=2, states=states)
    heir.derive(range(PARTITIONS))
    log += heir.publish()
    for e in events[150:]:
        heir.add(e)
    log += heir.publish()
    # Compaction keeps the last record of each key, in the order of those last records.
    last = {key: n for n, (key, _) in enumerate(log)}
    compacted = [log[n] for n in sorted(last.values())]
    assert len(compacted) < len(log)
    assert _read(compacted).counters.snapshot() == _read(log).counters.snapshot() == _expected(events)
