"""Transactional outbox without multi-document transactions.

A state change and the events it produces are written in ONE document (single-document writes are
atomic on every MongoDB-protocol server): the events sit in the document's `outbox` array until the
broker has acknowledged them, then they are removed. A relay publishes whatever is left after a crash.
Republishing is harmless: consumers deduplicate on the event id.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.events import Envelope
from shared.kafka import Publisher, PublishError
from shared.serde import decode_json

__all__ = ["outbox_entries", "outbox_append", "Outbox"]

log = logging.getLogger(__name__)

PENDING = "outbox_pending"
SEQ = "outbox_seq"  # bumped by every write that queues events: the relay clears only what it has read


def outbox_entries(events: list[Envelope]) -> dict[str, Any]:
    """Fields of a new document that carries its first events."""
    return {"outbox": [e.model_dump(mode="json") for e in events], PENDING: bool(events), SEQ: 1}


def outbox_append(events: list[Envelope], set_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """An update that changes `set_fields` and queues `events` in the same single-document write."""
    return {
        "$set": {**(set_fields or {}), PENDING: True},
        "$push": {"outbox": {"$each": [e.model_dump(mode="json") for e in events]}},
        "$inc": {SEQ: 1},
    }


class Outbox:
    def __init__(self, collection: AsyncCollection, publisher: Publisher) -> None:
        self.collection = collection
        self.publisher = publisher

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(PENDING)

    async def flush(self, doc_id: Any) -> int:
        """Publish the pending events of one document, then clear them; returns how many were sent."""
        # `_id` alone in the filter: FerretDB's SQLite backend uses its index only then.
        doc = await self.collection.find_one({"_id": doc_id}, {"outbox": 1, SEQ: 1, PENDING: 1})
        if not doc or not doc.get(PENDING):
            return 0
        events = [decode_json(raw) for raw in doc.get("outbox", [])]
        await self.publisher.publish_many(events)
        # Clear only if nothing was queued meanwhile (compare-and-set on the sequence); otherwise the
        # relay sends the whole outbox again later, which consumers absorb by event id.
        await self.collection.update_one({"_id": doc_id, SEQ: doc.get(SEQ)}, {"$set": {"outbox": [], PENDING: False}})
        return len(events)

    async def relay_once(self, limit: int = 500) -> int:
        sent = 0
        async for doc in self.collection.find({PENDING: True}, {"_id": 1}).limit(limit):
            sent += await self.flush(doc["_id"])
        return sent

    async def relay_forever(self, interval: float = 1.0) -> None:
        while True:
            try:
                sent = await self.relay_once()
                if sent:
                    log.info("outbox relay published pending events", extra={"count": sent})
            except PublishError as exc:
                log.warning("outbox relay could not publish; will retry", extra={"error": str(exc)})
            except Exception:  # noqa: BLE001 - the relay must outlive a passing database error
                log.exception("outbox relay failed; will retry")
            await asyncio.sleep(interval)
