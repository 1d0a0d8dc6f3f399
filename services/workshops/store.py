"""The workshops service's MongoDB collections, each with its single-document outbox."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events import Envelope
from shared.kafka import Publisher, PublishError
from shared.outbox import RELAY_GRACE, Outbox, outbox_append, outbox_entries, run_relay

__all__ = ["Store", "COLLECTIONS", "Changed", "ConflictingRecord"]

log = logging.getLogger(__name__)

COLLECTIONS = ("venues", "facilitators", "workshops", "attendances", "accompaniments")


class Changed(Exception):
    """The document changed since it was read (optimistic concurrency): read again and retry."""


class Store:
    """One outbox per collection: a record and the events it produces are always written together."""

    def __init__(self, db: AsyncDatabase, publisher: Publisher, *, publish_immediately: bool = True) -> None:
        # False for bulk loads (the demo): records keep their events in the outbox and `publish_pending`
        # sends them in batches at the end.
        self.publish_immediately = publish_immediately
        self.publisher = publisher
        self.venues = Outbox(db["venues"], publisher)
        self.facilitators = Outbox(db["facilitators"], publisher)
        self.workshops = Outbox(db["workshops"], publisher)
        self.attendances = Outbox(db["attendances"], publisher)
        self.accompaniments = Outbox(db["accompaniments"], publisher)
        self.outboxes = {name: getattr(self, name) for name in COLLECTIONS}

    async def ensure_indexes(self) -> None:
        for outbox in self.outboxes.values():
            await outbox.ensure_indexes()
        await self.workshops.collection.create_index("partner_id")
        await self.workshops.collection.create_index("facilitator_id")
        await self.attendances.collection.create_index("workshop_id")
        await self.accompaniments.collection.create_index("partner_id")

    async def flush(self, outbox: Outbox, doc_id: Any) -> bool:
        """Publish the document's pending events now; False if they stay for the relay (Kafka did not answer,
        or a bulk load defers publishing)."""
        if not self.publish_immediately:
            return False
        try:
            await outbox.flush(doc_id)
        except PublishError as exc:
            log.warning("publish deferred to the outbox relay", extra={"id": str(doc_id), "error": str(exc)})
            return False
        return True

    async def publish_pending(self, grace: timedelta = RELAY_GRACE) -> int:
        """Publish every outbox of every collection still pending `grace` after its write (one scan per batch
        of documents); a bulk load passes no grace to publish everything it deferred."""
        return sum([await outbox.relay_once(grace=grace) for outbox in self.outboxes.values()])

    async def relay_forever(self, interval: float = 1.0) -> None:
        """Publishes what a crash (or a Kafka outage) left in the outboxes."""
        await run_relay(self.publish_pending, interval)

    async def create_once(
        self, outbox: Outbox, doc: dict[str, Any], events: list[Envelope], compare: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any], bool]:
        """Insert a new record with its events; the same record sent again is a "duplicate", the same id with
        other `compare` values a Conflict. Returns (status, stored document, published)."""
        try:
            await outbox.collection.insert_one({**doc, **outbox_entries(events)})
            status = "created"
        except DuplicateKeyError:
            existing = await outbox.collection.find_one({"_id": doc["_id"]})
            if existing is None or any(existing.get(k) != v for k, v in compare.items()):
                raise ConflictingRecord(f"{doc['_id']} was already recorded with other details") from None
            doc, status = existing, "duplicate"
        published = await self.flush(outbox, doc["_id"])
        return status, doc, published

    async def update_checked(
        self,
        outbox: Outbox,
        doc_id: Any,
        version: int,
        set_fields: dict[str, Any],
        events: list[Envelope] | None = None,
    ) -> dict[str, Any]:
        """Apply `set_fields` (and queue `events`) only if the document is still at `version`."""
        set_fields = {**set_fields, "version": version + 1}
        update = outbox_append(events, set_fields) if events else {"$set": set_fields}
        updated = await outbox.collection.find_one_and_update(
            {"_id": doc_id, "version": version}, update, return_document=ReturnDocument.AFTER
        )
        if updated is None:
            raise Changed(str(doc_id))
        return updated


class ConflictingRecord(Exception):
    pass
