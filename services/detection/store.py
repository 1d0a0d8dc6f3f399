"""The detection service's MongoDB collections: offices, terminals, detections (the idempotency keys) and
pending batches (the outbox).

Only inserts, `_id` look-ups and `_id` deletes touch the hot path: on the FerretDB/SQLite backend an update or
a range query on a large collection scans it. A batch is written as:
  1. one `pending` document holding every new event of the batch (the outbox),
  2. the detection keys (`insert_many`, unordered: the unique `_id` sorts new from duplicate),
  3. the new events published (acks=all), 4. the `pending` document deleted.
A crash between 1 and 4 leaves the `pending` document: the relay publishes the events whose key that batch
inserted. Nothing accepted is lost; a republished event keeps its id and consumers absorb it.
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.detection.domain import Checked, Office, office_from_doc, record_id, territory
from services.detection.schemas import OfficeIn
from shared.events import Envelope, IllectronismDetected
from shared.kafka import Publisher
from shared.serde import decode, encode

__all__ = ["Store", "TerminalGone", "pending_doc", "pending_events"]

log = logging.getLogger(__name__)
DUPLICATE_KEY = 11000


class TerminalGone(Exception):
    pass


class _Cache:
    """A tiny time-bounded cache of `_id` look-ups (offices and terminals are read on every request)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        hit = self._items.get(key)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def put(self, key: str, value: Any) -> None:
        if len(self._items) > 50_000:
            self._items.clear()
        self._items[key] = (time.monotonic(), value)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)


def office_doc(office: OfficeIn, now: datetime) -> dict[str, Any]:
    return {
        "_id": office.office_id,
        "name": office.name,
        "commune_insee": office.commune_insee,
        **territory(office.departement or ""),
        "qpv": office.qpv,
        "rural": office.rural,
        "france_services": office.france_services,
        "active": office.active,
        "updated_at": now,
    }


def pending_doc(group_id: str, created_at: datetime, events: list[Envelope]) -> dict[str, Any]:
    """An outbox document: the group's events as one compressed blob of JSON lines (cheap to write)."""
    lines = b"\n".join(encode(e) for e in events)
    return {"_id": group_id, "created_at": created_at, "n": len(events), "blob": Binary(zlib.compress(lines, 1))}


def pending_events(doc: dict[str, Any]) -> list[Envelope]:
    lines = zlib.decompress(bytes(doc["blob"])).split(b"\n") if doc.get("n") else []
    return [decode(line) for line in lines]


class Store:
    def __init__(self, db: AsyncDatabase, cache_ttl: float = 5.0) -> None:
        self.offices = db["offices"]
        self.terminals = db["terminals"]
        self.detections = db["detections"]
        self.pending = db["pending"]
        self._offices = _Cache(cache_ttl)
        self._terminals = _Cache(cache_ttl)

    async def ensure_indexes(self) -> None:
        await self.terminals.create_index("office_id")
        await self.offices.create_index("departement")

    # --- office registry ---------------------------------------------------------------------------

    async def office(self, office_id: str) -> Office | None:
        cached = self._offices.get(office_id)
        if cached is None:
            doc = await self.offices.find_one({"_id": office_id})
            if doc is None:
                return None
            cached = office_from_doc(doc)
            self._offices.put(office_id, cached)
        return cached

    async def put_office(self, office: OfficeIn) -> bool:
        """Create or replace one office; True if it was new."""
        doc = office_doc(office, datetime.now(UTC))
        result = await self.offices.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        self._offices.drop(office.office_id)
        return result.upserted_id is not None

    async def import_offices(self, offices: Iterable[OfficeIn], chunk: int = 1000) -> dict[str, int]:
        """Bulk load: new offices are inserted in chunks, changed ones replaced one by one (usually few)."""
        now = datetime.now(UTC)
        docs = [office_doc(o, now) for o in offices]
        known = {d["_id"]: d async for d in self.offices.find({})}
        new = [d for d in docs if d["_id"] not in known]
        for start in range(0, len(new), chunk):
            await self.offices.insert_many(new[start : start + chunk], ordered=False)
        replaced = unchanged = 0
        for doc in docs:
            old = known.get(doc["_id"])
            if old is None:
                continue
            if {k: v for k, v in old.items() if k != "updated_at"} == {
                k: v for k, v in doc.items() if k != "updated_at"
            }:
                unchanged += 1
                continue
            await self.offices.replace_one({"_id": doc["_id"]}, doc, upsert=True)
            self._offices.drop(doc["_id"])
            replaced += 1
        return {"created": len(new), "replaced": replaced, "unchanged": unchanged}

    # --- terminals ---------------------------------------------------------------------------------

    async def add_terminal(self, terminal_id: str, office_id: str, token_hash: str, label: str | None) -> bool:
        doc = {
            "_id": terminal_id,
            "office_id": office_id,
            "token_hash": token_hash,
            "label": label,
            "revoked": False,
            "created_at": datetime.now(UTC),
        }
        try:
            await self.terminals.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def terminal(self, terminal_id: str) -> dict[str, Any] | None:
        cached = self._terminals.get(terminal_id)
        if cached is None:
            cached = await self.terminals.find_one({"_id": terminal_id})
            if cached is None:
                return None
            self._terminals.put(terminal_id, cached)
        return cached

    async def revoke_terminal(self, terminal_id: str) -> dict[str, Any]:
        result = await self.terminals.update_one(
            {"_id": terminal_id}, {"$set": {"revoked": True, "revoked_at": datetime.now(UTC)}}
        )
        self._terminals.drop(terminal_id)
        if result.matched_count == 0:
            raise TerminalGone(terminal_id)
        return await self.terminals.find_one({"_id": terminal_id}) or {}

    # --- detections --------------------------------------------------------------------------------

    async def write_group(self, checked: list[Checked], terminals: list[str], now: datetime) -> tuple[str, set[int]]:
        """Steps 1-2 for one group of items: the outbox document, then the keys (two writes, whatever the size).
        Returns (group id, indexes of the items whose key already existed)."""
        group_id = uuid.uuid4().hex
        await self.pending.insert_one(pending_doc(group_id, now, [c.event for c in checked]))
        # Keys stay minimal (the event, in Kafka, has the rest): every byte costs on this server.
        docs = [{"_id": c.record_id, "b": group_id} for c in checked]
        try:
            await self.detections.insert_many(docs, ordered=False)
            return group_id, set()
        except BulkWriteError as exc:
            errors = exc.details["writeErrors"]
            if any(e["code"] != DUPLICATE_KEY for e in errors):
                raise
            return group_id, {e["index"] for e in errors}

    async def forget(self, group_ids: list[str]) -> None:
        """Step 4: these groups' events are all acknowledged by the broker."""
        await self.pending.delete_many({"_id": {"$in": group_ids}})

    async def relay_once(self, publisher: Publisher, grace: timedelta) -> int:
        """Publish what crashed or failed batches left behind (older than `grace`, so never a batch in flight)."""
        sent = 0
        cutoff = datetime.now(UTC) - grace
        async for batch in self.pending.find({"created_at": {"$lt": cutoff}}).limit(50):
            events = pending_events(batch)
            ids = {}
            for event in events:
                data = event.data
                assert isinstance(data, IllectronismDetected)
                ids[record_id(data.office_id, data.detection_id)] = event
            # One query per group (an `_id` look-up is no cheaper than `$in` on this server): the events whose
            # key this group wrote; the others were duplicates, published by the group that wrote their key.
            keys = self.detections.find({"_id": {"$in": list(ids)}, "b": batch["_id"]}, {"_id": 1})
            mine = [ids[k["_id"]] async for k in keys]
            if mine:
                await publisher.publish_many(mine)
            await self.forget([batch["_id"]])
            sent += len(mine)
        return sent
