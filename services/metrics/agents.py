"""The Faust side: one agent over every event topic, per-key state in a changelogged table.

Events arrive keyed by person (or entity), so one person's events meet in one partition and one table
key. The counters are derived from the table (see domain.py): they are rebuilt after every table
recovery and updated in step with each table write, so a crash can never make them drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import faust

from services.metrics import domain
from services.metrics.settings import MetricsSettings
from shared.kafka import dead_letter_value
from shared.serde import InvalidEvent, decode_record
from shared.topics import DEAD_LETTER, EVENT_TOPICS, PARTITIONS

__all__ = ["MetricsWorker"]

log = logging.getLogger(__name__)


class MetricsWorker:
    """Builds the Faust app; `counters` is what the API reads."""

    def __init__(self, settings: MetricsSettings, *, on_change: Callable[[], None] | None = None) -> None:
        self.dead_lettered = 0
        self.processed = 0
        self.recovered = False
        self._on_change = on_change or (lambda: None)
        datadir = settings.data_dir / settings.app_id
        datadir.parent.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.kafka_bootstrap_servers}",
            store="memory://",
            datadir=str(datadir),
            topic_partitions=PARTITIONS,
            topic_replication_factor=1,
            producer_acks=-1,
            web_enabled=False,
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=0,
            stream_wait_empty=False,
        )
        self.source = self.app.topic(
            *(t.name for t in EVENT_TOPICS),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.dead_letter = self.app.topic(DEAD_LETTER.name, key_serializer="raw", value_serializer="raw")
        # Keys and values both JSON (faust's default): the changelog is read back with the same codec.
        self.states = self.app.Table("key_facts", default=None, partitions=PARTITIONS)
        self.states.on_recover(self._rebuild)
        self.ledger = domain.Ledger(self.states)
        self.counters = self.ledger.counters
        self.app.agent(self.source, name="count")(self._count)

    async def _rebuild(self) -> None:
        self.counters.rebuild((k, domain.compact(v)) for k, v in self.states.items() if v)
        self.recovered = True
        self._on_change()
        log.info("counters rebuilt from table", extra={"keys": len(self.states)})

    async def _count(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                envelope = decode_record(event.message.key, event.value)
            except InvalidEvent as exc:
                await self._dead_letter(event.message, str(exc))
                continue
            self.processed += 1
            if self.ledger.add(envelope):
                self._on_change()

    async def _dead_letter(self, message: faust.types.Message, reason: str) -> None:
        log.warning("dead-lettering record", extra={"topic": message.topic, "offset": message.offset, "reason": reason})
        sent = await self.dead_letter.send(
            key=message.key,
            value=dead_letter_value(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                reason=reason,
                consumer=self.app.conf.id,
            ),
        )
        await sent  # acknowledged before the offset of the bad record can be committed
        self.dead_lettered += 1
