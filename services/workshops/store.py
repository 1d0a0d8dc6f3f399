"""The workshops service's storage: one outbox and one series of immutable versions per kind of record."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from shared.aggregates import Aggregates
from shared.docstore import DocumentStore, MemoryDocuments, MongoDocuments
from shared.kafka import Publisher
from shared.outbox import Clock, Outbox

__all__ = ["Store", "KINDS", "INDEXES"]

KINDS = ("venues", "facilitators", "workshops", "attendances", "accompaniments")
# Head fields the lists filter on (MongoDB uses them; FerretDB's SQLite backend scans whatever the filter).
INDEXES = {
    "workshops": ("partner_id", "facilitator_id", "starts_at"),
    "attendances": ("workshop_id",),
    "accompaniments": ("partner_id", "adviser_id"),
}


class Store:
    """Venues, facilitators, workshops (with their registrations), attendances and accompaniments.

    Every record is an aggregate of `shared.aggregates`: created as version 1, changed by inserting the next
    version (a workshop's registrations and cancellation, an attendance's retraction), never updated in place.
    """

    def __init__(
        self, docs: DocumentStore, publisher: Publisher | None, *, publish_now: bool = True, clock: Clock | None = None
    ) -> None:
        self.docs = docs
        self.outbox = Outbox(docs, publisher, clock=clock) if clock else Outbox(docs, publisher)
        # publish_now=False for bulk loads: events stay noted until `outbox.relay_once` sends them in batches.
        self.venues = Aggregates(docs, "venues", self.outbox, publish_now=publish_now)
        self.facilitators = Aggregates(docs, "facilitators", self.outbox, publish_now=publish_now)
        self.workshops = Aggregates(docs, "workshops", self.outbox, publish_now=publish_now)
        self.attendances = Aggregates(docs, "attendances", self.outbox, publish_now=publish_now)
        self.accompaniments = Aggregates(docs, "accompaniments", self.outbox, publish_now=publish_now)

    @classmethod
    def open(cls, db: AsyncDatabase, publisher: Publisher | None, *, publish_now: bool = True) -> Store:
        """The store over a MongoDB-protocol database."""
        return cls(MongoDocuments(db), publisher, publish_now=publish_now)

    @classmethod
    def in_memory(
        cls, publisher: Publisher | None = None, docs: DocumentStore | None = None, *, publish_now: bool = True
    ) -> Store:
        """The store over the in-memory fake (unit tests); pass the same `docs` to two stores for two replicas."""
        return cls(docs if docs is not None else MemoryDocuments(), publisher, publish_now=publish_now)

    async def ensure_indexes(self) -> None:
        for kind, fields in INDEXES.items():
            for field in fields:
                await self.docs.ensure_index(kind, field)
