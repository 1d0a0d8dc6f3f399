"""The detection service's storage: offices, terminals and the backfill audit (versioned aggregates), detections
(the idempotency keys) and pending batches (the outbox of detections).

Everything goes through the shared document port and rests on unique inserts: an office or terminal change is
a new version (`shared.aggregates`); the hot path only inserts, reads by `_id` and deletes by `_id`. A batch
is written as:
  1. one `pending` document holding every new event of the batch (the outbox),
  2. the detection keys (`insert_many`, unordered: the unique `_id` sorts new from duplicate),
  3. the new events published (acks=all), 4. the `pending` document deleted.
A crash between 1 and 4 leaves the `pending` document: the relay publishes the events whose key that batch
inserted. Nothing accepted is lost; a republished event keeps its id and consumers absorb it.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase

from services.detection.domain import Checked, Office, office_from_doc, record_id, territory
from services.detection.schemas import OfficeIn
from shared.aggregates import Aggregates, Change
from shared.docstore import DocumentStore, DuplicateKey, MongoDocuments
from shared.events import Envelope, IllectronismDetected
from shared.kafka import Publisher
from shared.outbox import Outbox
from shared.serde import decode, encode

__all__ = ["Store", "pending_doc", "pending_events"]

log = logging.getLogger(__name__)
PENDING, KEYS = "pending", "detections"


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


def office_state(office: OfficeIn) -> dict[str, Any]:
    return {
        "name": office.name,
        "commune_insee": office.commune_insee,
        **territory(office.departement or ""),
        "qpv": office.qpv,
        "rural": office.rural,
        "france_services": office.france_services,
        "active": office.active,
    }


def pending_doc(group_id: str, created_at: datetime, events: list[Envelope]) -> dict[str, Any]:
    """An outbox document: the group's events as one compressed blob of JSON lines (cheap to write)."""
    lines = b"\n".join(encode(e) for e in events)
    return {"_id": group_id, "created_at": created_at, "n": len(events), "blob": Binary(zlib.compress(lines, 1))}


def pending_events(doc: dict[str, Any]) -> list[Envelope]:
    lines = zlib.decompress(bytes(doc["blob"])).split(b"\n") if doc.get("n") else []
    return [decode(line) for line in lines]


def _replace(state: dict[str, Any], _: Any) -> Change:
    return Change(state)


class Store:
    def __init__(self, db: AsyncDatabase | DocumentStore, cache_ttl: float = 5.0) -> None:
        self.docs: DocumentStore = MongoDocuments(db) if isinstance(db, AsyncDatabase) else db
        # Offices and terminals produce no events: their outbox never holds a note.
        outbox = Outbox(self.docs, None)
        self.offices = Aggregates(self.docs, "offices", outbox)
        self.terminals = Aggregates(self.docs, "terminals", outbox)
        # The audit of backfills: version 1 before anything is recorded (who, what, when), version 2 the outcome.
        self.backfills = Aggregates(self.docs, "backfills", outbox)
        self._offices = _Cache(cache_ttl)
        self._terminals = _Cache(cache_ttl)

    async def ensure_indexes(self) -> None:
        await self.docs.ensure_index("terminals", "office_id")
        await self.docs.ensure_index("offices", "departement")
        await self.docs.ensure_index("backfills", "office_id")

    # --- office registry ---------------------------------------------------------------------------

    async def office(self, office_id: str) -> Office | None:
        cached = self._offices.get(office_id)
        if cached is None:
            version = await self.offices.get(office_id)
            if version is None:
                return None
            cached = office_from_doc(version.head())
            self._offices.put(office_id, cached)
        return cached

    async def put_office(self, office: OfficeIn) -> bool:
        """Create or replace one office; True if it was new."""
        state = office_state(office)
        try:
            await self.offices.create(office.office_id, Change(state))
            created = True
        except DuplicateKey:
            await self.offices.change(
                office.office_id, lambda v: None if v.state == state else Change(state), what="office"
            )
            created = False
        self._offices.drop(office.office_id)
        return created

    async def import_offices(self, offices: Iterable[OfficeIn], chunk: int = 1000) -> dict[str, int]:
        """Bulk load: new offices are inserted in chunks, changed ones replaced one by one (usually few)."""
        wanted = {o.office_id: office_state(o) for o in offices}
        known = {h["_id"]: h for h in await self.offices.find({})}
        new = [(oid, Change(state)) for oid, state in wanted.items() if oid not in known]
        for start in range(0, len(new), chunk):
            await self.offices.create_many(new[start : start + chunk])
        replaced = unchanged = 0
        for oid, state in wanted.items():
            old = known.get(oid)
            if old is None:
                continue
            if {k: old.get(k) for k in state} == state:
                unchanged += 1
                continue
            await self.offices.change(oid, functools.partial(_replace, state), what="office")
            self._offices.drop(oid)
            replaced += 1
        return {"created": len(new), "replaced": replaced, "unchanged": unchanged}

    async def list_offices(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        return await self.offices.find(query, sort=[("_id", 1)], limit=limit)

    # --- terminals ---------------------------------------------------------------------------------

    async def add_terminal(self, terminal_id: str, office_id: str, token_hash: str, label: str | None) -> bool:
        state = {
            "office_id": office_id,
            "token_hash": token_hash,
            "label": label,
            "revoked": False,
            "created_at": datetime.now(UTC),
        }
        try:
            await self.terminals.create(terminal_id, Change(state))
        except DuplicateKey:
            return False
        return True

    async def terminal(self, terminal_id: str) -> dict[str, Any] | None:
        cached = self._terminals.get(terminal_id)
        if cached is None:
            version = await self.terminals.get(terminal_id)
            if version is None:
                return None
            cached = version.head()
            self._terminals.put(terminal_id, cached)
        return cached

    async def revoke_terminal(self, terminal_id: str) -> dict[str, Any]:
        def revoke(version: Any) -> Change | None:
            if version.state.get("revoked"):
                return None
            return Change({**version.state, "revoked": True, "revoked_at": datetime.now(UTC)})

        try:
            version, _ = await self.terminals.change(terminal_id, revoke, what="terminal")
        finally:
            self._terminals.drop(terminal_id)
        return version.head()

    async def list_terminals(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        return await self.terminals.find(query, sort=[("_id", 1)], limit=limit)

    # --- detections --------------------------------------------------------------------------------

    async def write_group(self, checked: list[Checked], terminals: list[str], now: datetime) -> tuple[str, set[int]]:
        """Steps 1-2 for one group of items: the outbox document, then the keys (two writes, whatever the size).
        Returns (group id, indexes of the items whose key already existed)."""
        group_id = uuid.uuid4().hex
        await self.docs.insert(PENDING, pending_doc(group_id, now, [c.event for c in checked]))
        # Keys stay minimal (the event, in Kafka, has the rest): every byte costs on this server.
        return group_id, await self.docs.insert_many(KEYS, [{"_id": c.record_id, "b": group_id} for c in checked])

    async def forget(self, group_ids: list[str]) -> None:
        """Step 4: these groups' events are all acknowledged by the broker."""
        await self.docs.delete(PENDING, group_ids)

    async def relay_once(self, publisher: Publisher, grace: timedelta) -> int:
        """Publish what crashed or failed batches left behind (older than `grace`, so never a batch in flight)."""
        sent = 0
        cutoff = datetime.now(UTC) - grace
        for batch in await self.docs.find(PENDING, {"created_at": {"$lt": cutoff}}, limit=50):
            events = pending_events(batch)
            ids = {}
            for event in events:
                data = event.data
                assert isinstance(data, IllectronismDetected)
                ids[record_id(data.office_id, data.detection_id)] = event
            # One query per group: the events whose key this group wrote; the others were duplicates,
            # published by the group that wrote their key.
            keys = await self.docs.find(KEYS, {"_id": {"$in": list(ids)}, "b": batch["_id"]})
            mine = [ids[k["_id"]] for k in keys]
            if mine:
                await publisher.publish_many(mine)
            await self.forget([batch["_id"]])
            sent += len(mine)
        return sent
