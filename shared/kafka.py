"""Kafka plumbing: topic creation, the publisher (idempotent, acks=all) and a dead-lettering consumer."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from shared.events import Envelope
from shared.serde import InvalidEvent, decode, encode
from shared.topics import ALL_TOPICS, DEAD_LETTER, EVENT_TOPICS, Topic, topic_for

__all__ = ["ensure_topics", "Publisher", "PublishError", "dead_letter_value", "DeadLetteringConsumer"]

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, topics: Iterable[Topic] = ALL_TOPICS) -> None:
    """Create the project's topics if missing and give existing ones the configs of the contracts (e.g. a
    retention added since they were created); synchronous, call once at start-up."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="alliance-admin")
    try:
        topics = list(topics)
        existing = set(admin.list_topics())
        missing = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, topic_configs=t.configs)
            for t in topics
            if t.name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another service created it first
        present = [t for t in topics if t.name in existing]
        if present:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.name, configs=t.configs) for t in present])
    finally:
        admin.close()


def event_partitions(bootstrap: str) -> int:
    """The partition count the event topics share on this broker (created with `PARTITIONS`, or earlier with
    another count, which they keep); an error when they differ, since people would not meet in one partition."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="alliance-admin")
    try:
        described = admin.describe_topics([t.name for t in EVENT_TOPICS])
    finally:
        admin.close()
    counts = {d["name"]: len(d["partitions"]) for d in described}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise RuntimeError(f"the event topics must share one partition count (co-partitioned), found {counts}")
    return next(iter(counts.values()))


class PublishError(RuntimeError):
    """The broker did not acknowledge the event: nothing may be reported as accepted."""


class Publisher:
    """Publishes envelopes keyed for their consumers; returns only once all in-sync replicas have them."""

    def __init__(
        self, bootstrap: str, *, client_id: str, request_timeout_ms: int = 10_000, deadline_s: float = 3.0
    ) -> None:
        # Every publish answers within `deadline_s` (3 s: with the database writes around it, a request answers within
        # 5 s): a caller waiting on a broker that is away gets PublishError and a prompt answer, never an open wait.
        self.deadline_s = deadline_s
        self.bootstrap = bootstrap
        self._options = {"client_id": client_id, "request_timeout_ms": request_timeout_ms}
        self._producer = self._new_producer()
        self._started = False
        self._healthy = True  # the last publish or probe reached the broker

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            compression_type=None,
            **self._options,
        )

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def start_when_reachable(
        self, retry_s: float = 2.0, then: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Start once the broker answers, trying again every `retry_s` (a service starts while Kafka is away:
        until then every publish fails at once and /readyz says so). `then` runs once connected (topic creation;
        after the connection, so that a broker that is away costs a quick refusal, not an admin client's long
        bootstrap timeout); if it fails, the publisher starts over."""
        while not self._started:
            try:
                await self._producer.start()
                if then is not None:
                    await then()
                self._started = True
                log.info("connected to Kafka", extra={"bootstrap": self.bootstrap})
            except asyncio.CancelledError:
                await self._discard()
                raise
            except Exception as exc:  # noqa: BLE001 - Kafka away: keep trying
                log.warning("Kafka not reachable; retrying", extra={"error": str(exc)})
                await self._discard()
                await asyncio.sleep(retry_s)

    async def _discard(self) -> None:
        """Drop a producer whose start failed (it cannot be started again) for a fresh one."""
        try:
            await self._producer.stop()
        except Exception:  # noqa: BLE001 - it never connected
            pass
        self._producer = self._new_producer()

    async def stop(self) -> None:
        if self._started:
            await self._producer.stop()
            self._started = False

    @property
    def ready(self) -> bool:
        """Started, and the broker answered the last publish or probe."""
        return self._started and self._healthy

    async def reachable(self, timeout_s: float = 2.0) -> bool:
        """Ask the broker for its metadata now (what /readyz and a caller after a failure rely on)."""
        if not self._started:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout_s)
        except (TimeoutError, KafkaError):
            self._healthy = False
        else:
            self._healthy = True
        return self._healthy

    async def publish(self, event: Envelope, *, topic: str | None = None) -> None:
        await self.publish_many([event], topic=topic)

    async def publish_many(self, events: Sequence[Envelope], *, topic: str | None = None) -> None:
        """Send all, then wait for every acknowledgement; raises PublishError if any failed or if the broker
        did not acknowledge them all within the deadline. Fails at once when not connected, and after a quick
        probe when the last publish or probe did not reach the broker (a caller answers in seconds, not after a
        full deadline each time, while Kafka is away)."""
        if not self._started:
            raise PublishError("not connected to Kafka yet")
        if not self._healthy and not await self.reachable(timeout_s=min(2.0, self.deadline_s)):
            raise PublishError("Kafka does not answer")
        try:
            # A large batch gets time in proportion (bulk loads publish thousands at once).
            await asyncio.wait_for(self._send_all(events, topic), self.deadline_s + len(events) / 2000)
        except TimeoutError:
            self._healthy = False
            raise PublishError(f"Kafka did not acknowledge within {self.deadline_s:g} s") from None
        except KafkaError as exc:
            self._healthy = False
            raise PublishError(f"Kafka did not acknowledge: {exc}") from exc
        self._healthy = True

    async def _send_all(self, events: Sequence[Envelope], topic: str | None) -> None:
        futures = [
            await self._producer.send(
                topic or topic_for(e.type).name,
                value=encode(e),
                key=e.key.encode("utf-8"),
                headers=[("ce_type", e.type.encode()), ("ce_id", str(e.id).encode())],
            )
            for e in events
        ]
        await asyncio.gather(*futures)

    async def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if not self._started:
            raise PublishError("not connected to Kafka yet")
        try:
            await self._producer.send_and_wait(topic, value=value, key=key)
        except KafkaError as exc:
            raise PublishError(f"Kafka did not acknowledge: {exc}") from exc


def dead_letter_value(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str, consumer: str
) -> bytes:
    """The dead-letter record: where the record came from, why it was refused, and its bytes untouched."""
    doc: dict[str, Any] = {
        "reason": reason,
        "consumer": consumer,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "value_base64": base64.b64encode(value).decode("ascii") if value is not None else None,
        "dead_lettered_at": datetime.now(UTC).isoformat(),
    }
    return json.dumps(doc).encode("utf-8")


Handler = Callable[[Envelope, ConsumerRecord], Awaitable[None]]


class DeadLetteringConsumer:
    """Consumes event topics in a group; unparseable or invalid records go to the dead-letter topic.

    A handler error is not a bad record: the offset is not committed and the error propagates, so the
    record is read again after a restart (at-least-once; handlers are idempotent on event ids).
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        *,
        group_id: str,
        handler: Handler,
        publisher: Publisher,
        validate: Callable[[Envelope], None] | None = None,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        self._group_id = group_id
        self._handler = handler
        self._publisher = publisher
        self._validate = validate
        self.dead_lettered = 0
        self.handled = 0

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        log.warning("dead-lettering record", extra={"topic": record.topic, "offset": record.offset, "reason": reason})
        value = dead_letter_value(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            reason=reason,
            consumer=self._group_id,
        )
        await self._publisher.send_raw(DEAD_LETTER.name, value, record.key)
        self.dead_lettered += 1

    async def process(self, record: ConsumerRecord) -> None:
        try:
            event = decode(record.value)
            if self._validate:
                self._validate(event)
        except (InvalidEvent, ValueError) as exc:
            await self._dead_letter(record, str(exc))
            return
        await self._handler(event, record)
        self.handled += 1

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=500)
            for records in batches.values():
                for record in records:
                    await self.process(record)
            if batches:
                await self._consumer.commit()
