"""Transactional outbox on unique inserts only: the events of a change live inside its immutable version.

A writer inserts a note of its own (`<version id>~<nonce>`) into the database's `outbox` collection *before*
inserting the version (both are inserts: nothing can be overwritten by a concurrent writer), publishes the version's
events once the insert is acknowledged, then deletes its note. A writer that loses the race for the version deletes
its own note at once: the note is its own, so it can never be the one the winner relies on. The relay publishes the
events of every note older than a grace period: after a crash, a Kafka outage or a lost delete. A note whose version
never appeared (the writer died between its two inserts) is forgotten once it is older than `ORPHAN_AFTER`; writers
give up before inserting a version whose note is that old. A republished event keeps its id: consumers absorb it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.docstore import DocumentStore
from shared.events import Envelope
from shared.kafka import Publisher, PublishError
from shared.serde import decode_json

__all__ = ["NOTES", "Outbox", "Series", "RELAY_GRACE", "ORPHAN_AFTER", "run_relay", "events_of", "Clock"]

log = logging.getLogger(__name__)

NOTES = "outbox"
# The writer publishes right after its insert; the relay takes over what is still noted after this long, so in
# normal operation each event reaches the topic once.
RELAY_GRACE = timedelta(seconds=5)
ORPHAN_AFTER = timedelta(minutes=2)
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class Series(Protocol):
    """What the relay needs of a kind of aggregate: where its versions are, and how to mend its head."""

    kind: str
    versions: str

    async def repair(self, aggregate_id: str, number: int) -> None: ...


class Outbox:
    def __init__(
        self, docs: DocumentStore, publisher: Publisher | None, *, clock: Clock = _now, topic: str | None = None
    ) -> None:
        self.docs = docs
        self.publisher = publisher
        self.clock = clock
        self.topic = topic  # None: each event's own topic (tests of the plumbing pass one of their own)
        self.series: dict[str, Series] = {}

    def register(self, series: Series) -> None:
        self.series[series.kind] = series

    async def note(self, kind: str, version_ids: Sequence[str]) -> tuple[list[str], datetime]:
        """Say these versions may carry unpublished events (before inserting them); returns this writer's own
        note ids (one per version) and the note time."""
        at = self.clock()
        nonce = uuid.uuid4().hex[:12]
        notes = [
            {"_id": f"{vid}~{nonce}", "v": vid, "a": vid.rsplit("@", 1)[0], "kind": kind, "at": at}
            for vid in version_ids
        ]
        if len(notes) == 1:
            await self.docs.insert(NOTES, notes[0])
        elif notes:
            await self.docs.insert_many(NOTES, notes)
        return [str(n["_id"]) for n in notes], at

    async def forget(self, note_ids: Sequence[str]) -> None:
        """Delete notes (published, or their writer lost the race for the version)."""
        try:
            await self.docs.delete(NOTES, note_ids)
        except Exception:  # noqa: BLE001 - a note left behind only means one more publish by the relay
            log.exception("could not forget outbox notes")

    async def notes_of(self, version_id: str) -> list[str]:
        """Every note still standing for one version (the outbox is small: reading it whole is cheap)."""
        return [n["_id"] for n in await self.docs.find(NOTES, {"v": version_id})]

    def fresh(self, noted_at: datetime) -> bool:
        """Whether a version noted at `noted_at` may still be inserted (its note cannot have been forgotten)."""
        return self.clock() - noted_at < ORPHAN_AFTER / 2

    async def publish(self, note_ids: Sequence[str], events: Sequence[Envelope]) -> bool:
        """Publish these events and forget the notes of their versions; False if Kafka did not acknowledge in
        time (the notes stay: the relay sends them later)."""
        if events:
            if self.publisher is None:
                return False
            try:
                await self.publisher.publish_many(events, topic=self.topic)
            except PublishError as exc:
                log.warning("publish deferred to the outbox relay", extra={"error": str(exc)})
                return False
        await self.forget(note_ids)
        return True

    async def pending(self) -> int:
        return await self.docs.count(NOTES)

    async def relay_once(self, grace: timedelta = RELAY_GRACE, batch: int = 500) -> int:
        """Publish the events of every version noted more than `grace` ago; returns how many were sent. Stops
        at the first batch Kafka does not acknowledge (the next pass tries again)."""
        sent = 0
        skip = 0
        while True:
            notes = await self.docs.find(NOTES, sort=[("at", 1), ("_id", 1)], skip=skip, limit=batch)
            now = self.clock()
            due = [n for n in notes if n["at"] <= now - grace]
            if due:
                published = await self._relay(due, now)
                if published is None:
                    return sent
                sent += published
            skip += len(notes) - len(due)
            if len(notes) < batch or not due:
                return sent

    async def _relay(self, notes: list[dict[str, Any]], now: datetime) -> int | None:
        """Publish these notes' versions; the number of events sent, or None if Kafka did not acknowledge."""
        events: dict[Any, Envelope] = {}  # by event id: two notes of one version publish it once
        done: list[str] = []
        repairs: dict[tuple[str, str], tuple[Series, int]] = {}
        for note in notes:
            series = self.series.get(note["kind"])
            if series is None:
                log.error("outbox note of an unknown kind", extra={"id": note["_id"], "kind": note["kind"]})
                continue
            version = await self.docs.get(series.versions, note["v"])
            if version is None:
                if note["at"] <= now - ORPHAN_AFTER:
                    done.append(note["_id"])  # the writer died before its insert: nothing was accepted
                continue
            events.update((e.id, e) for e in events_of(version))
            key = (series.kind, version["a"])
            repairs[key] = (series, max(version["n"], repairs.get(key, (series, 0))[1]))
            done.append(note["_id"])
        for (_, aggregate_id), (series, number) in repairs.items():
            await series.repair(aggregate_id, number)
        if not done:
            return 0
        if not await self.publish(done, list(events.values())):
            return None
        return len(events)

    async def relay_forever(self, interval: float = 1.0) -> None:
        await run_relay(self.relay_once, interval)


async def run_relay(relay_once: Callable[[], Awaitable[int]], interval: float) -> None:
    """Call `relay_once` every `interval` seconds, for ever, whatever passing failure happens."""
    while True:
        try:
            sent = await relay_once()
            if sent:
                log.info("outbox relay published pending events", extra={"count": sent})
        except PublishError as exc:
            log.warning("outbox relay could not publish; will retry", extra={"error": str(exc)})
        except Exception:  # noqa: BLE001 - the relay must outlive a passing database error
            log.exception("outbox relay failed; will retry")
        await asyncio.sleep(interval)


def events_of(raw: Mapping[str, Any]) -> list[Envelope]:
    """The events stored in a version document."""
    return [decode_json(e) for e in raw.get("events", [])]
