"""Transactional outbox without multi-document transactions.

A state change and the events it produces are written in ONE document (single-document writes are
atomic on every MongoDB-protocol server): the events sit in the document's `outbox` array until the
broker has acknowledged them, then they are removed. A relay publishes whatever is left after a crash.
Republishing is harmless: consumers deduplicate on the event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.events import Envelope
from shared.kafka import Publisher, PublishError
from shared.serde import decode_json

__all__ = ["outbox_entries", "outbox_append", "Outbox", "run_relay", "PENDING", "SEQ", "QUEUED_AT", "RELAY_GRACE"]

log = logging.getLogger(__name__)

PENDING = "outbox_pending"
SEQ = "outbox_seq"  # bumped by every write that queues events: the relay clears only what it has read
QUEUED_AT = "outbox_at"  # when events were last queued: the relay leaves fresh ones to the writer's own flush
# The writer publishes right after its write; the relay takes over only what is still pending after this long,
# so in normal operation each event reaches the topic once (a duplicate after a crash is absorbed by consumers).
RELAY_GRACE = timedelta(seconds=5)


def outbox_entries(events: list[Envelope]) -> dict[str, Any]:
    """Fields of a new document that carries its first events."""
    return {
        "outbox": [e.model_dump(mode="json") for e in events],
        PENDING: bool(events),
        SEQ: 1,
        QUEUED_AT: datetime.now(UTC),
    }


def outbox_append(events: list[Envelope], set_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """An update that changes `set_fields` and queues `events` in the same single-document write."""
    return {
        "$set": {**(set_fields or {}), PENDING: True, QUEUED_AT: datetime.now(UTC)},
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

    async def publish_documents(self, docs: list[dict[str, Any]]) -> int:
        """Publish the pending events of documents already read (with `outbox`, `outbox_seq`), then clear each
        one whose outbox did not grow meanwhile: one acknowledgement wait, one write per sequence value."""
        docs = [d for d in docs if d.get(PENDING, True) and d.get("outbox")]
        events = [decode_json(raw) for d in docs for raw in d["outbox"]]
        if not events:
            return 0
        await self.publisher.publish_many(events)
        by_seq: dict[Any, list[Any]] = {}
        for d in docs:
            by_seq.setdefault(d.get(SEQ), []).append(d["_id"])
        for seq, ids in by_seq.items():
            await self.collection.update_many({"_id": {"$in": ids}, SEQ: seq}, {"$set": {"outbox": [], PENDING: False}})
        return len(events)

    async def flush_many(self, doc_ids: list[Any]) -> int:
        """`flush` for many documents at once (what a bulk load needs)."""
        if not doc_ids:
            return 0
        fields = {"outbox": 1, SEQ: 1, PENDING: 1}
        return await self.publish_documents(await self.collection.find({"_id": {"$in": doc_ids}}, fields).to_list(None))

    async def relay_once(self, batch: int = 500, grace: timedelta = RELAY_GRACE) -> int:
        """Publish every outbox still pending `grace` after its write, a batch of documents per scan."""
        sent, skip = 0, 0
        while True:
            cutoff = datetime.now(UTC) - grace
            docs = (
                await self.collection.find({PENDING: True}, {"outbox": 1, SEQ: 1, QUEUED_AT: 1})
                .skip(skip)
                .to_list(batch)
            )
            due = [d for d in docs if d.get(QUEUED_AT) is None or d[QUEUED_AT] <= cutoff]
            sent += await self.publish_documents(due)
            skip += len(docs) - len(due)  # fresh ones stay pending: step over them
            if len(docs) < batch:
                return sent

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
