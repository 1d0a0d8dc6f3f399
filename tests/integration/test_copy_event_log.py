"""Moving a deployment to another partition count: the event log copied to a broker of the test's own, whose
event topics have 5 partitions, holds every record once, each on its key's partition in its key's order, and
counts the same."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from scripts.copy_event_log import copy_log
from scripts.soak_metrics import Publisher, soak_events, year_cells
from services.metrics import replay
from services.metrics.partials import partition_of
from shared.kafka import event_partitions
from shared.topics import EVENT_TOPICS
from tests.conftest import INSTANCE, KAFKA, PORT_BASE
from tests.kafka_tools import PrivateStack

pytestmark = pytest.mark.integration
YEAR = 2046
TARGET_PARTITIONS = 5


@pytest.fixture(scope="module")
def target(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with PrivateStack(tmp_path_factory.mktemp("copy-target"), PORT_BASE + 76).running() as own:
        yield own


def _keys_in_order(bootstrap: str, keys: set[bytes]) -> tuple[dict[bytes, list[tuple[str, bytes]]], list[str]]:
    """Per key of `keys`, its records (topic, value) in log order, topic by topic; and every record of the log
    found off its key's partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    by_key: dict[bytes, list[tuple[str, bytes]]] = defaultdict(list)
    misplaced = []
    try:
        for topic in (t.name for t in EVENT_TOPICS):
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            for p in parts:
                tp = TopicPartition(topic, p)
                consumer.assign([tp])
                consumer.seek_to_beginning(tp)
                for r in consumer:
                    if r.key in keys:
                        by_key[r.key].append((topic, r.value))
                    if partition_of(r.key.decode(), len(parts)) != p:
                        misplaced.append(f"{topic}:{p}:{r.offset}")
    finally:
        consumer.close()
    return by_key, misplaced


@pytest.mark.timeout(900)
def test_the_copied_log_has_every_record_on_its_keys_partition_and_counts_the_same(
    target: PrivateStack, tmp_path: Path
) -> None:
    events = soak_events(200, YEAR, seed=INSTANCE)
    publisher = Publisher(events, rate=1e9)
    publisher.run()
    assert publisher.failures == []
    counts = asyncio.run(copy_log(KAFKA, target.bootstrap, TARGET_PARTITIONS, progress=False))
    assert all(read == written for read, written in counts.values()), counts
    assert sum(read for read, _ in counts.values()) >= publisher.sent
    assert event_partitions(target.bootstrap) == TARGET_PARTITIONS

    keys = {e.key.encode() for e in events}
    source, _ = _keys_in_order(KAFKA, keys)
    copied, misplaced = _keys_in_order(target.bootstrap, keys)
    assert misplaced == []
    assert len(copied) == len(keys) and copied == source  # every record of each key, once, in the same order

    def cells(bootstrap: str) -> dict[str, int]:
        counters, _ = replay.rebuild(bootstrap, replay.end_offsets(bootstrap), progress=False)
        return year_cells(counters.snapshot(), (YEAR, YEAR + 1))

    assert cells(target.bootstrap) == cells(KAFKA) != {}
