"""Where the partners context keeps its state: one outbox and the versioned aggregates over one document store."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from shared.aggregates import Aggregates, Version
from shared.docstore import DocumentStore, MemoryDocuments, MongoDocuments
from shared.kafka import Publisher
from shared.outbox import NOTES, Outbox

__all__ = ["Store", "FAULT_EXIT_CODE", "KINDS"]

FAULT_EXIT_CODE = 86
KINDS = ("partners", "partnerships", "missions", "users")
# Used by MongoDB proper; FerretDB on SQLite scans for these filters anyway (docs/storage.md).
HEAD_INDEXES = {
    "partners": ("departements",),
    "partnerships": ("partner_id", "status", "signed_year", "partnership_type", "departements"),
    "missions": ("partner_id",),
}


class _Series(Aggregates):
    """Aggregates with the crash test's fault switch between the version insert and the publish."""

    fault_exit_before_publish = False

    async def publish(self, versions: Sequence[Version]) -> bool:
        if self.fault_exit_before_publish and any(v.events for v in versions):
            # Test-only fault: the version (with its events) is stored, the publish never happens. os._exit
            # skips every cleanup, like a killed process.
            os._exit(FAULT_EXIT_CODE)
        return await super().publish(versions)


@dataclass
class Store:
    """Partners (by legal identifier), partnerships, skills missions and users (keyed by username): each a
    series of immutable versions; one outbox relays the events of all of them."""

    docs: DocumentStore
    outbox: Outbox
    partners: Aggregates
    partnerships: Aggregates
    missions: Aggregates
    users: Aggregates

    @classmethod
    def over(
        cls,
        docs: DocumentStore,
        publisher: Publisher | None,
        *,
        publish_now: bool = True,
        fault_exit_before_publish: bool = False,
    ) -> Store:
        """The store over any document store (`MemoryDocuments` in unit tests). `publish_now=False` leaves
        events to the outbox relay (bulk loads publish them in batches)."""
        outbox = Outbox(docs, publisher)
        series = {}
        for kind in KINDS:
            agg = _Series(docs, kind, outbox, publish_now=publish_now)
            agg.fault_exit_before_publish = fault_exit_before_publish
            series[kind] = agg
        return cls(docs, outbox, **series)

    @classmethod
    def open(
        cls,
        db: AsyncDatabase,
        publisher: Publisher | None,
        *,
        publish_now: bool = True,
        fault_exit_before_publish: bool = False,
    ) -> Store:
        return cls.over(
            MongoDocuments(db), publisher, publish_now=publish_now, fault_exit_before_publish=fault_exit_before_publish
        )

    @classmethod
    def in_memory(cls, publisher: Publisher | None, docs: MemoryDocuments | None = None) -> Store:
        return cls.over(docs or MemoryDocuments(), publisher)

    async def ensure_indexes(self) -> None:
        for kind, fields in HEAD_INDEXES.items():
            for name in fields:
                await self.docs.ensure_index(kind, name)

    async def unpublished(self, series: Aggregates, aggregate_ids: Iterable[str]) -> set[str]:
        """Which of these aggregates have a change whose events still wait in the outbox. The notes are few
        (each is deleted once its events are on Kafka), so reading those of one kind is cheap."""
        wanted = set(aggregate_ids)
        if not wanted:
            return set()
        notes = await self.docs.find(NOTES, {"kind": series.kind})
        return {n["a"] for n in notes} & wanted
