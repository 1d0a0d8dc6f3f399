"""Where the partners context keeps its state: one database, four collections, two outboxes."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.kafka import Publisher, PublishError
from shared.outbox import PENDING, RELAY_GRACE, Outbox

__all__ = ["Store", "IndexedOutbox", "FAULT_EXIT_CODE"]

FAULT_EXIT_CODE = 86
HINT_GRACE = timedelta(seconds=30)


class IndexedOutbox(Outbox):
    """The shared single-document outbox, reading by `_id` only, with a small side index of pending documents.

    FerretDB (SQLite) pushes only `_id` lookups down: any other filter scans the whole collection (~0.3 ms a
    document), so the shared relay's `{outbox_pending: true}` query every second would cost more as the data
    grows. Writers note a document's id in `<collection>_pending` *before* the write that queues its events;
    the relay reads that small collection and forgets an id only once its document has nothing pending and
    the note is old enough that no write can still be on its way. A full scan runs once, at start.
    """

    def __init__(self, collection: AsyncCollection, publisher: Publisher) -> None:
        super().__init__(collection, publisher)
        self.hints = collection.database[f"{collection.name}_pending"]

    async def ensure_indexes(self) -> None:
        pass  # the pending index would never be used by FerretDB; the hints replace it

    async def note(self, doc_ids: Iterable[Any]) -> None:
        now = datetime.now(UTC)
        docs = [{"_id": i, "at": now} for i in doc_ids]
        if len(docs) == 1:
            await self.hints.update_one({"_id": docs[0]["_id"]}, {"$set": {"at": now}}, upsert=True)
        elif docs:
            try:
                await self.hints.insert_many(docs, ordered=False)
            except BulkWriteError:
                pass  # already noted (the relay keeps old notes until their documents are clean)

    async def sweep(self) -> int:
        """Note every pending document (a full scan: once, at start)."""
        ids = [d["_id"] async for d in self.collection.find({PENDING: True}, {"_id": 1})]
        await self.note(ids)
        return len(ids)

    async def relay_once(self, batch: int = 500, grace: timedelta = RELAY_GRACE) -> int:
        sent = 0
        cutoff = datetime.now(UTC) - HINT_GRACE
        done = []
        due = datetime.now(UTC) - grace  # younger notes belong to writes that flush on their own
        async for hint in self.hints.find({}).limit(batch):
            if hint["at"] <= due:
                sent += await self.flush(hint["_id"])
            if hint["at"] < cutoff:
                done.append(hint["_id"])
        if done:
            # Only notes still old: one noted again meanwhile belongs to a write that may not be flushed yet.
            await self.hints.delete_many({"_id": {"$in": done}, "at": {"$lt": cutoff}})
        return sent


@dataclass
class Store:
    """The database and the outboxes of the documents that carry events (partnerships, missions)."""

    db: AsyncDatabase
    partnerships: IndexedOutbox
    missions: IndexedOutbox
    fault_exit_before_publish: bool = False

    @classmethod
    def open(cls, db: AsyncDatabase, publisher: Publisher, *, fault_exit_before_publish: bool = False) -> Store:
        partnerships = IndexedOutbox(db["partnerships"], publisher)
        missions = IndexedOutbox(db["missions"], publisher)
        return cls(db, partnerships, missions, fault_exit_before_publish)

    @property
    def partners(self) -> Any:
        return self.db["partners"]

    @property
    def users(self) -> Any:
        return self.db["users"]

    async def ensure_indexes(self) -> None:
        await self.partners.create_index("legal_id", unique=True)
        await self.users.create_index("username", unique=True)
        # Used by MongoDB proper; FerretDB on SQLite scans anyway (see IndexedOutbox).
        await self.partners.create_index("departements")
        for name in ("partner_id", "status", "signed_year", "partnership_type", "departements"):
            await self.partnerships.collection.create_index(name)
        await self.missions.collection.create_index("partner_id")

    async def exists(self, coll: Any, doc_id: str) -> bool:
        return await coll.find_one({"_id": doc_id}, {"_id": 1}) is not None

    def _fault(self) -> None:
        if self.fault_exit_before_publish:
            # Test-only fault: the write is done, the publish never happens. os._exit skips every cleanup,
            # like a killed process.
            os._exit(FAULT_EXIT_CODE)

    async def publish(self, outbox: IndexedOutbox, doc_id: str) -> bool:
        """Publish what the write just queued; False if Kafka did not answer (the relay sends it later)."""
        self._fault()
        try:
            await outbox.flush(doc_id)
        except PublishError:
            return False
        return True

    async def publish_many(self, outbox: IndexedOutbox, doc_ids: list[str]) -> bool:
        self._fault()
        try:
            await outbox.flush_many(doc_ids)
        except PublishError:
            return False
        return True
