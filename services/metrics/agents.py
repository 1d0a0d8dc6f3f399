"""The Faust side: one agent over every event topic, per-key state in a changelogged table.

Events arrive keyed by person (or entity), so one person's events meet in one partition and one table
key. The counters are derived from the table (see domain.py): they are rebuilt after every table
recovery and updated in step with each table write, so a crash can never make them drift. The table also
holds each source partition's position (positions.py), so a kill -9 can neither lose nor double an event.

With the persistent store (RocksDB, the default) a restart reads the table from local disk and only the
changelog's tail. The local store is written before the changelog, so after a kill -9 it may hold writes the
changelog never got; two rules keep both copies right (docs/metrics-recovery.md):
- a position is stored only once the broker acknowledged every changelog write made until it was due (counted
  per changelog partition, without waiting: it is written with a later event of its partition), so whichever
  copy the state comes back from, it holds every event before the position it holds;
- an event applied again that changes nothing writes its key's state again, so a write the changelog
  missed reaches it when the events after the position are applied again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.types import TP

from services.metrics import domain, snapshot
from services.metrics.gauges import LAG, NEWEST_AGE
from services.metrics.partials import (
    PartitionCounters,
    encode_group,
    encode_position,
    encode_spans,
    merged,
    partials_topic,
    partition_of,
    wall_clock_epoch,
)
from services.metrics.positions import ChangelogAcks, PositionedApp, Rewind, SourcePositions, is_position_key
from services.metrics.settings import MetricsSettings
from shared.kafka import dead_letter_value
from shared.serde import InvalidEvent, decode_record
from shared.topics import DEAD_LETTER, EVENT_TOPICS

__all__ = ["MetricsWorker"]

log = logging.getLogger(__name__)
SOURCE_TOPICS = frozenset(t.name for t in EVENT_TOPICS)


# Measured with `make bench` (docs/benchmarks.md). Faust's default fetch of 1 MiB per partition left the
# agent waiting ~300 ms for every fetch when catching up; 2 MiB keeps it busy. Changelog writes go out in
# batches of up to 1 MiB, lingering 5 ms, instead of 16 KiB batches sent at once. Safe since positions are
# stored with the state (positions.py): an offset committed ahead of its changelog write is never trusted.
THROUGHPUT_SETTINGS: dict[str, Any] = {
    "consumer_max_fetch_size": 2 * 1024 * 1024,
    "producer_max_batch_size": 1024 * 1024,
    "producer_linger": 0.005,
}


HEARTBEAT_S = 5.0  # a partition's position record is published at least this often, changed or not


class MetricsWorker:
    """Builds the Faust app; each source partition it owns has its own counters (`ledgers`), published as that
    partition's partial (partials.py) for the API instances to sum."""

    def __init__(self, settings: MetricsSettings, partitions: int) -> None:
        self.settings = settings
        self.partitions = partitions
        self.dead_lettered = 0
        self.processed = 0
        self.recovered = False
        self._keys = 0
        self._stopping = False
        self._applying = asyncio.Lock()  # held while an event is applied: a stop waits for it
        self._first_recovery = True
        self.counters_from = "none"  # "saved" (at the last clean stop) or "table" (derived from every key)
        self._stored_at_recovery: dict[str, int] = {}
        # Each worker has its own local store (RocksDB locks it) and its own counters saved at stop.
        datadir = settings.data_dir / settings.app_id / f"worker-{settings.worker_id}"
        datadir.mkdir(parents=True, exist_ok=True)
        self.saved_path = settings.data_dir / f"{settings.app_id}.worker-{settings.worker_id}.counters-at-stop.json"
        self.persistent = settings.store == "rocksdb"
        self.app = PositionedApp(
            settings.app_id,
            broker=f"kafka://{settings.kafka_bootstrap_servers}",
            store="rocksdb://" if self.persistent else "memory://",
            datadir=str(datadir),
            topic_partitions=partitions,
            topic_replication_factor=1,
            producer_acks=-1,
            web_enabled=False,
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=0,
            stream_wait_empty=False,
            # A worker killed with -9 holds its partitions until its session expires: a restart waits that long.
            broker_session_timeout=settings.session_timeout,
            broker_heartbeat_interval=settings.session_timeout / 3,
            **THROUGHPUT_SETTINGS,
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
        self.states = self.app.Table("key_facts", default=None, partitions=partitions)
        self.states.on_recover(self._rebuild)
        # With the persistent store each stored position waits for a flush of the changelog: fewer of them
        # (after a crash, at most `every` events per partition are applied again).
        self.positions = SourcePositions(every=1000, interval=2.0) if self.persistent else SourcePositions()
        self.app.position_table = self.states
        self.acks = ChangelogAcks(self.states)
        self._pending: dict[TP, deque[tuple[int, int]]] = {}  # positions due, with the writes sent until then
        self._earliest: dict[TP, int] = {}  # the log's beginning per source partition, asked once per assignment
        self.ledgers: dict[int, domain.Ledger] = {}  # per source partition owned
        self.epoch = 0  # when the counters were last derived: the epoch of the partials published since
        self.partials = partials_topic(settings.app_id, partitions)
        self._producer: AIOKafkaProducer | None = None
        self._published: dict[int, tuple[dict[str, int], float]] = {}  # positions and time of the last publish
        self.published_records = 0
        self.app.agent(self.source, name="count")(self._count)
        self.app.timer(2.0, name="metrics_health")(self._refresh_health)
        self.app.task(self._publish_partials_for_ever)

    def _ledger(self, partition: int) -> domain.Ledger:
        ledger = self.ledgers.get(partition)
        if ledger is None:
            ledger = self.ledgers[partition] = domain.Ledger(self.states)
            ledger.counters = PartitionCounters()
        return ledger

    def _part(self, partition: int) -> PartitionCounters:
        part = self._ledger(partition).counters
        assert isinstance(part, PartitionCounters)
        return part

    @property
    def counters(self) -> domain.Counters:
        """The counters of every partition this worker owns, summed (its own /v1/snapshot)."""
        return merged(ledger.counters for ledger in self.ledgers.values())

    async def _rebuild(self) -> None:
        started = time.monotonic()
        self.positions.forget()
        self._pending.clear()
        self._earliest = {}
        self._stored_at_recovery = self._table_positions()
        owned = sorted({tp.partition for tp in self._assigned() if tp.topic in SOURCE_TOPICS})
        self.ledgers = {}
        self._published.clear()
        saved = snapshot.take(self.saved_path) if self._first_recovery else None
        self._first_recovery = False
        if saved is not None and saved.stored == self._stored_at_recovery and set(saved.parts) == set(owned):
            for p, counters in saved.parts.items():
                part = self._part(p)
                part.cells, part.partnerships = counters.cells, counters.partnerships
                part.reindex()
            self._keys = saved.keys
            self.counters_from = "saved"
            self._recovered()
            log.info("counters read as saved at the last clean stop", extra={"keys": saved.keys})
            return
        if saved is not None:
            differ = {
                k: (saved.stored.get(k), self._stored_at_recovery.get(k))
                for k in saved.stored.keys() | self._stored_at_recovery.keys()
                if saved.stored.get(k) != self._stored_at_recovery.get(k)
            }
            log.info(
                "counters saved at stop no longer match the table: deriving them again",
                extra={"positions_saved_vs_table": differ, "partitions_saved": sorted(saved.parts), "owned": owned},
            )
        keys = 0
        for p, states in self._owned_states(owned):
            keys += self._part(p).derive((k, domain.compact(v)) for k, v in states if v and not is_position_key(k))
        self._keys = keys
        self.counters_from = "table"
        self._recovered()
        log.info(
            "counters rebuilt from table",
            extra={"keys": keys, "partitions": owned, "seconds": round(time.monotonic() - started, 2)},
        )

    def _owned_states(self, owned: list[int]) -> Iterator[tuple[int, Iterable[tuple[str, domain.State]]]]:
        """The owned partitions' key states, partition by partition. The RocksDB store keeps a database per
        partition: each is read alone. The memory store has all keys together (and may still hold those of
        partitions given to another worker): each key goes to its hash's partition, as the producers'
        partitioner gives it."""
        store: Any = self.states.data  # faust's RocksDB store: its databases and codecs are not public
        dbs = getattr(store, "_dbs", None) if self.persistent else None
        if isinstance(dbs, dict):
            for p in owned:
                db = dbs.get(p)
                raw = store._visible_items(db) if db is not None else ()
                yield p, ((store._decode_key(k), store._decode_value(v)) for k, v in raw)
            return
        groups: dict[int, list[tuple[str, domain.State]]] = {p: [] for p in owned}
        for k, v in self.states.items():
            group = groups.get(partition_of(k, self.partitions)) if isinstance(k, str) else None
            if group is not None:
                group.append((k, v))
        yield from groups.items()

    def _recovered(self) -> None:
        self.epoch = wall_clock_epoch()  # a new epoch: every group is published again (partials.py)
        self.recovered = True

    async def _count(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            if self._stopping:
                continue  # not applied, so not stored: read again at the next start
            async with self._applying:
                await self._apply(event)

    async def _apply(self, event: faust.types.EventT) -> None:
        message = event.message
        if message.tp not in self.positions.applied:
            await self._start_partition(message.tp)
        verdict = self.positions.check(message)
        if isinstance(verdict, Rewind):
            log.info("rewinding to the position stored with the state", extra={"offset": verdict.offset})
            await self.app.consumer.seek(verdict.tp, verdict.offset)
            return
        if not verdict:
            return
        try:
            envelope = decode_record(event.message.key, event.value)
            if is_position_key(envelope.key):
                raise InvalidEvent("the key is reserved for source positions")
            home = partition_of(envelope.key, self.partitions)
            if home != message.partition:
                # Its partition's partial would count this key apart from its other events (partials.py).
                raise InvalidEvent(
                    f"key belongs to partition {home} (Kafka's default partitioner), found on {message.partition}"
                )
        except InvalidEvent as exc:
            await self._dead_letter(event.message, str(exc))
        else:
            self.processed += 1
            known = envelope.key in self.states
            if self._ledger(message.partition).add(envelope):
                self._keys += not known
            elif self.persistent and known:
                self.states[envelope.key] = self.states[envelope.key]  # see the module's docstring
        due = self.positions.after(message)
        if not self.persistent:
            if due is not None:
                self.positions.store(message.tp, due, self.states)
            return
        # Stored once the changelog holds every write made until it was due (see the module's docstring).
        pending = self._pending.setdefault(message.tp, deque())
        if due is not None:
            pending.append((due, self.acks.sent[message.partition]))
        ready = None
        while pending and self.acks.acked[message.partition] >= pending[0][1]:
            ready = pending.popleft()[0]
        if ready is not None:
            self.positions.store(message.tp, ready, self.states)

    async def save_at_stop(self) -> bool:
        """Stop applying events and save the counters (snapshot.py) once the changelog holds every write."""
        self._stopping = True
        async with self._applying:
            if not self.recovered:
                return False
            try:
                await asyncio.wait_for(self._flush_changelog(), timeout=10)
            except Exception as exc:  # noqa: BLE001 - the broker is away: derive the counters at the next start
                log.warning("changelog not flushed at stop: counters not saved", extra={"error": str(exc)})
                return False
            try:
                await asyncio.wait_for(self.publish_partials(final=True), timeout=5)
            except Exception as exc:  # noqa: BLE001 - the next owner publishes them
                log.warning("last partials not published at stop", extra={"error": str(exc)})
            stored = self._table_positions()  # what the next start reads back, read the same way
            parts = {p: ledger.counters for p, ledger in self.ledgers.items()}
            snapshot.save(self.saved_path, parts, self._keys, stored)
            log.info("counters saved for the next start", extra={"keys": self._keys})
            return True

    async def _publish_partials_for_ever(self) -> None:
        """Publish the owned partitions' partials every `partials_interval` seconds, or less often when a publish
        takes long (catching up): at most a fifth of the worker's time goes to it."""
        interval = self.settings.partials_interval
        while True:
            started = time.monotonic()
            try:
                await self.publish_partials()
            except Exception as exc:  # noqa: BLE001 - the broker is away: published again at the next round
                log.warning("partials not published", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
            await asyncio.sleep(max(interval, 4 * (time.monotonic() - started)))

    async def publish_partials(self, *, final: bool = False) -> int:
        """Send the changed groups of every owned partition, then its position record (partials.py).

        Everything sent is read first, in one step with no await: each position record names exactly the
        source offsets the groups sent before it reflect."""
        if not self.recovered or (self._stopping and not final):
            return 0
        producer = await self._partials_producer()
        now = time.time()
        owned = {tp.partition for tp in self._assigned() if tp.topic in SOURCE_TOPICS}
        records: list[tuple[int, bytes, bytes]] = []
        newest = self.positions.newest_timestamp
        for p in sorted(owned & self.ledgers.keys()):
            part = self._part(p)
            positions = {t: self.positions.position(TP(t, p), self.states) for t in sorted(SOURCE_TOPICS)}
            last = self._published.get(p)
            changed = part.dirty or part.spans_dirty
            if not changed and last is not None and last[0] == positions and now - last[1] < HEARTBEAT_S:
                continue
            groups, spans = part.take_changes()
            records.extend((p, *encode_group(p, self.epoch, g, values)) for g, values in groups.items())
            if spans is not None:
                records.append((p, *encode_spans(p, self.epoch, spans)))
            position = {
                "positions": positions,
                "worker": self.settings.worker_id,
                "published_at": now,
                "newest_event_timestamp": newest,
                "processed": self.processed,
                "dead_lettered": self.dead_lettered,
                "keys": self._keys,
                "store": "rocksdb" if self.persistent else "memory",
                "counters_from": self.counters_from,
            }
            records.append((p, *encode_position(p, self.epoch, position)))
            self._published[p] = (positions, now)
        sent = [await producer.send(self.partials.name, value, key=key, partition=p) for p, key, value in records]
        if sent:
            await asyncio.gather(*sent)
        self.published_records += len(records)
        return len(records)

    async def _partials_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                client_id=f"{self.settings.app_id}-partials-{self.settings.worker_id}",
                acks="all",
                enable_idempotence=True,  # in order within a partition, even across retries
                compression_type="gzip",
                linger_ms=5,
                max_batch_size=1024 * 1024,
            )
            try:
                await producer.start()
            except Exception:
                await producer.stop()  # the broker is away: nothing left open until the next round tries again
                raise
            self._producer = producer
        return self._producer

    async def close_partials(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def _table_positions(self) -> dict[str, int]:
        """The positions stored in the table for the assigned source partitions."""
        out = {}
        for tp in self._assigned():
            if tp.topic in SOURCE_TOPICS:
                stored = self.positions.stored_in(self.states, tp)
                if stored is not None:
                    out[_tp_name(tp)] = stored
        return out

    async def _flush_changelog(self) -> None:
        """Wait until every table write queued so far is acknowledged by the broker."""
        producer = self.app.producer
        await producer.flush()
        while producer.buffer.size:  # faust's buffer flush gives up after 0.1 s without progress
            await producer.flush()

    async def _start_partition(self, tp: TP) -> None:
        """The state holds every event of `tp` before its stored position, or before the log's beginning."""
        stored = self.positions.stored_in(self.states, tp)
        if tp not in self._earliest:
            # One request for every owned source partition: asked one by one, each waited for the consumer's
            # fetch (about 1.5 s), which held a restarted worker back by half a minute with 24 partitions.
            sources = sorted(t for t in self._assigned() if t.topic in SOURCE_TOPICS)
            self._earliest = dict(await self.app.consumer.earliest_offsets(*sources, tp))
        earliest = self._earliest.get(tp) or 0
        self.positions.start(tp, max(stored or 0, earliest))
        log.info("source partition resumed from the state", extra={"tp": f"{tp.topic}:{tp.partition}", "at": stored})

    async def broker_answers(self, timeout_s: float = 2.0) -> bool:
        """Ask the broker for its metadata now, through the worker's own producer (what /readyz relies on)."""
        producer = getattr(self.app.producer, "_producer", None)  # faust's aiokafka producer, once started
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout_s)
        except Exception:  # noqa: BLE001 - refused, timed out: away
            return False
        return True

    def recovery(self) -> dict[str, Any]:
        """How far the table's recovery is: changelog records still to read, and the counters' rebuild."""
        if self.recovered:
            return {"state": "done"}
        try:
            left = self.app.tables.recovery.active_remaining_total()  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - not started yet, or between two assignments
            left = None
        store = "rocksdb" if self.persistent else "memory"
        return {"state": "recovering", "changelog_records_left": left, "store": store}

    def applied_positions(self) -> list[dict[str, Any]]:
        """Per assigned source partition, the next offset the counters reflect (synchronous: no event is applied
        between this and a read of the counters in the same call)."""
        tps = sorted(tp for tp in self._assigned() if tp.topic in SOURCE_TOPICS)
        return [
            {"topic": tp.topic, "partition": tp.partition, "applied": self.positions.position(tp, self.states)}
            for tp in tps
        ]

    def keys(self) -> int:
        """People and entities in the table (source positions left out), without reading the table."""
        return self._keys

    async def health(self) -> dict[str, Any]:
        """Lag per source partition (end offset minus the next offset applied) and the newest event's age;
        the Prometheus gauges follow."""
        tps = sorted(tp for tp in self._assigned() if tp.topic in SOURCE_TOPICS)
        ends: dict[TP, int] = dict(await self.app.consumer.highwaters(*tps)) if tps else {}
        lag = self.positions.lag(ends, self.states)
        rows = []
        for tp in tps:
            LAG.labels(tp.topic, str(tp.partition)).set(lag.get(tp, 0))
            rows.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "applied": self.positions.position(tp, self.states),
                    "stored": self.positions.stored.get(tp),
                    "end": ends.get(tp),
                    "lag": lag.get(tp, 0),
                }
            )
        newest = self.positions.newest_timestamp
        age = None if newest is None else max(0.0, time.time() - newest)
        if age is not None:
            NEWEST_AGE.set(age)
        return {"lag": sum(lag.values()), "partitions": rows, "newest_event_age_seconds": age}

    async def _refresh_health(self) -> None:
        """Keeps the Prometheus gauges current between two reads of /v1/worker."""
        try:
            await self.health()
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not stop the timer
            log.debug("health refresh failed", extra={"error": str(exc)})

    def _assigned(self) -> set[TP]:
        try:
            return set(self.app.consumer.assignment())
        except Exception:  # noqa: BLE001 - not started, or between two assignments
            return set()

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


def _tp_name(tp: TP) -> str:
    return f"{tp.topic}|{tp.partition}"
