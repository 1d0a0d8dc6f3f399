"""Aggregates as series of immutable versions: winning the insert of version N+1 is the compare-and-set.

Each state change of an aggregate (a workshop, a partnership, a terminal …) inserts one document into
`<kind>_versions` whose `_id` is the aggregate id and the zero-padded version number; the document holds the whole
new state and the events the change produces. Two writers that read version N both try to insert N+1: the database
accepts one, the other re-reads and decides again (for a few seconds, then `Busy`). Nothing is ever updated in
place, so the guarantee rests only on unique inserts, which FerretDB 1.x keeps under concurrency, and the unique
`_id` index makes a lost insert cheap.

The latest version is read by exact `_id` look-ups (the one filter FerretDB's SQLite backend pushes down to SQL; see
docs/storage.md for what each query shape costs): start from a hint (this process's cache, else the head document),
then probe N+1, N+2 … until one is missing. A change skips the probe when the cache has the aggregate: if the cache
is stale, the insert of N+1 fails and the change reads on from there. The head document (`<kind>`, one per
aggregate) is a copy of the latest state written after each change for lists and filters; it may lag behind after a
crash or a race between instances, never ahead, and every read or relay pass that sees it behind mends it. One
in-process lock per aggregate spares local writers from losing races to each other; it is an optimisation, never what
makes a change correct.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.docstore import DocumentStore, DuplicateKey, Sort
from shared.errors import Busy, NotFound, Refusal, Unavailable
from shared.events import Envelope
from shared.outbox import Outbox, events_of

__all__ = ["Version", "Change", "Aggregates", "version_id", "PATIENCE_S", "HEAD_FIELDS"]

PATIENCE_S = 10.0  # how long one change keeps losing races before it answers Busy (409)
CACHE_SIZE = 20_000
HEAD_FIELDS = ("_id", "version", "updated_at")  # what a head adds to the state


def version_id(aggregate_id: str, number: int) -> str:
    return f"{aggregate_id}@{number:010d}"


@dataclass(frozen=True)
class Version:
    """One stored state of an aggregate (its number counts from 1)."""

    aggregate_id: str
    number: int
    state: dict[str, Any]
    at: datetime
    events: tuple[Envelope, ...] = ()
    note: str | None = field(default=None, compare=False)  # the outbox note of the writer that stored it
    sent: bool = field(default=False, compare=False)  # this process saw Kafka acknowledge its events

    @property
    def id(self) -> str:
        return version_id(self.aggregate_id, self.number)

    def head(self) -> dict[str, Any]:
        """The state as the head document (and the services' records) show it."""
        return {**self.state, "_id": self.aggregate_id, "version": self.number, "updated_at": self.at}


@dataclass(frozen=True)
class Change:
    """What a decision asks to store: the whole new state and the events it produces."""

    state: dict[str, Any]
    events: Sequence[Envelope] = ()


@dataclass
class _KeyedLocks:
    locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)

    @asynccontextmanager
    async def hold(self, key: str) -> Any:
        lock, users = self.locks.get(key, (asyncio.Lock(), 0))
        self.locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self.locks[key]
            if users <= 1:
                del self.locks[key]
            else:
                self.locks[key] = (lock, users - 1)


def _clean_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in HEAD_FIELDS}


class Aggregates:
    """The versions of one kind of aggregate in one database, with their heads and their outbox notes."""

    def __init__(self, docs: DocumentStore, kind: str, outbox: Outbox, *, publish_now: bool = True) -> None:
        self.docs = docs
        self.kind = kind
        self.versions = f"{kind}_versions"
        self.outbox = outbox
        # False for bulk loads: events stay noted and `publish_pending` (or the relay) sends them in batches.
        self.publish_now = publish_now
        self._cache: OrderedDict[str, Version] = OrderedDict()
        self._locks = _KeyedLocks()
        outbox.register(self)

    # --- reading --------------------------------------------------------------------------------------------

    def _remember(self, version: Version) -> None:
        known = self._cache.get(version.aggregate_id)
        if known is None or known.number <= version.number:
            self._cache[version.aggregate_id] = version
            self._cache.move_to_end(version.aggregate_id)
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    def _from_doc(self, doc: Mapping[str, Any]) -> Version:
        return Version(doc["a"], doc["n"], dict(doc["state"]), doc["at"], tuple(events_of(doc)))

    async def _version(self, aggregate_id: str, number: int) -> Version | None:
        doc = await self.docs.get(self.versions, version_id(aggregate_id, number))
        return self._from_doc(doc) if doc is not None else None

    async def _follow(self, aggregate_id: str, known: Version | None) -> Version | None:
        """The latest version at or after `known` (probing the next numbers by `_id`)."""
        number = known.number if known else 0
        newest = known
        while (nxt := await self._version(aggregate_id, number + 1)) is not None:
            newest, number = nxt, number + 1
        return newest

    async def get(self, aggregate_id: str) -> Version | None:
        """The latest version, or None if the aggregate was never created."""
        current = self._cache.get(aggregate_id)
        from_head = current is None
        if current is None:
            head = await self.docs.get(self.kind, aggregate_id)
            if head is not None:
                state = _clean_state(head)
                current = Version(aggregate_id, head["version"], state, head["updated_at"])
        newest = await self._follow(aggregate_id, current)
        if newest is None:
            return None
        if from_head and newest is not current:
            await self.docs.put(self.kind, newest.head())  # the head lagged: mend it
        self._remember(newest)
        return newest

    async def require(self, aggregate_id: str, what: str) -> Version:
        version = await self.get(aggregate_id)
        if version is None:
            raise NotFound(f"no {what} {aggregate_id}")
        return version

    async def history(self, aggregate_id: str) -> list[Version]:
        """Every version, oldest first."""
        latest = await self.get(aggregate_id)
        if latest is None:
            return []
        found = await asyncio.gather(*(self._version(aggregate_id, n) for n in range(1, latest.number)))
        return [v for v in found if v is not None] + [latest]

    async def find(
        self, query: Mapping[str, Any] | None = None, *, sort: Sort = (), skip: int = 0, limit: int = 0
    ) -> list[dict[str, Any]]:
        """Heads matching `query` (lists and filters; a head may lag its latest version after a crash)."""
        return await self.docs.find(self.kind, query, sort=sort, skip=skip, limit=limit)

    async def count(self, query: Mapping[str, Any] | None = None) -> int:
        return await self.docs.count(self.kind, query)

    async def repair(self, aggregate_id: str, number: int) -> None:
        """Make sure the head shows at least version `number` (the relay calls this)."""
        head = await self.docs.get(self.kind, aggregate_id)
        if head is None or head.get("version", 0) < number:
            self._cache.pop(aggregate_id, None)
            latest = await self.get(aggregate_id)
            if latest is not None:
                await self.docs.put(self.kind, latest.head())

    # --- writing --------------------------------------------------------------------------------------------

    async def _insert(self, aggregate_id: str, number: int, change: Change, at: datetime) -> Version:
        version = Version(aggregate_id, number, _clean_state(change.state), at, tuple(change.events))
        notes: list[str] = []
        if version.events:
            notes, noted_at = await self.outbox.note(self.kind, [version.id])
            if not self.outbox.fresh(noted_at):
                await self.outbox.forget(notes)
                raise Unavailable("the database is too slow to take this change now; nothing was written")
        doc = {
            "_id": version.id,
            "a": aggregate_id,
            "n": number,
            "state": version.state,
            "events": [e.model_dump(mode="json") for e in version.events],
            "at": at,
        }
        try:
            await self.docs.insert(self.versions, doc)
        except DuplicateKey:
            await self.outbox.forget(notes)  # our own note: the winner's version has a note of its own
            raise
        await self.docs.put(self.kind, version.head())
        stored = Version(aggregate_id, number, version.state, at, version.events, notes[0] if notes else None)
        self._remember(stored)
        return stored

    async def create(self, aggregate_id: str, change: Change) -> Version:
        """Insert version 1; raises DuplicateKey if the aggregate exists already (its latest is then in `get`)."""
        version = await self._insert(aggregate_id, 1, change, self.outbox.clock())
        return dataclasses.replace(version, sent=await self.publish([version]) and bool(version.events))

    async def change(
        self,
        aggregate_id: str,
        decide: Callable[[Version], Change | None],
        *,
        what: str,
        patience_s: float = PATIENCE_S,
    ) -> tuple[Version, bool]:
        """Read the latest version, let `decide` (pure; raises a Refusal to refuse) say what to store, and
        insert it as the next version; on a lost race, read again and decide again. Returns (the version now
        current, whether this call wrote it). `decide` returning None means there is nothing to change."""
        async with self._locks.hold(aggregate_id):
            # From this process's cache when it has the aggregate, without reading: a stale state cannot win
            # the insert of its next number. Only a refusal or a no-op decided on it is checked against the
            # latest version before it is answered.
            cached = self._cache.get(aggregate_id)
            current = cached or await self.require(aggregate_id, what)
            verified = cached is None
            deadline = time.monotonic() + patience_s
            while True:
                try:
                    change = decide(current)
                except Refusal:
                    if verified:
                        raise
                    current, verified = await self._follow(aggregate_id, current) or current, True
                    continue
                if change is None:
                    if verified:
                        return current, False
                    latest = await self._follow(aggregate_id, current) or current
                    if latest.number == current.number:
                        return current, False
                    current, verified = latest, True
                    continue
                try:
                    version = await self._insert(aggregate_id, current.number + 1, change, self.outbox.clock())
                    break
                except DuplicateKey:
                    pass
                if time.monotonic() > deadline:
                    raise Busy(f"{what} {aggregate_id} is changing too fast; nothing was written, try again")
                # Lost the race to another instance: catch up with its versions and decide again. A short random
                # pause lets a burst of the other instance's writers through instead of racing it.
                await asyncio.sleep(random.uniform(0, 0.01))
                current, verified = await self._follow(aggregate_id, current) or current, True
        return dataclasses.replace(version, sent=await self.publish([version]) and bool(version.events)), True

    async def create_many(self, changes: Sequence[tuple[str, Change]]) -> list[Version | None]:
        """Bulk load of new aggregates (imports, the demo): a few writes for the whole batch. Returns each new
        version, or None where the aggregate existed already."""
        at = self.outbox.clock()
        ids = [a for a, _ in changes]
        if len(set(ids)) != len(ids):
            raise ValueError("create_many got the same aggregate id twice in one batch")
        versions = [Version(a, 1, _clean_state(c.state), at, tuple(c.events)) for a, c in changes]
        with_events = [v.id for v in versions if v.events]
        notes = dict(zip(with_events, (await self.outbox.note(self.kind, with_events))[0], strict=True))
        docs = [
            {
                "_id": v.id,
                "a": v.aggregate_id,
                "n": 1,
                "state": v.state,
                "events": [e.model_dump(mode="json") for e in v.events],
                "at": at,
            }
            for v in versions
        ]
        taken = await self.docs.insert_many(self.versions, docs)
        await self.outbox.forget([notes[v.id] for i, v in enumerate(versions) if i in taken and v.id in notes])
        new = [
            Version(v.aggregate_id, 1, v.state, at, v.events, notes.get(v.id))
            for i, v in enumerate(versions)
            if i not in taken
        ]
        await self.docs.insert_many(self.kind, [v.head() for v in new])
        for v in new:
            self._remember(v)
        await self.publish(new)
        by_id = {v.id: v for v in new}
        return [by_id.get(v.id) for v in versions]

    async def publish(self, versions: Sequence[Version]) -> bool:
        """Publish the events of versions just written (unless this store defers to the relay); True if Kafka
        acknowledged them all."""
        noted = [v for v in versions if v.events]
        if not noted:
            return True
        if not self.publish_now:
            return False
        return await self.outbox.publish([v.note for v in noted if v.note], [e for v in noted for e in v.events])

    async def published(self, version: Version) -> bool:
        """Whether this version's events are known to be on Kafka (no note of it is left)."""
        if not version.events or version.sent:
            return True
        return not await self.outbox.notes_of(version.id)

    async def settled(self, version: Version, settle_s: float = 1.0) -> bool:
        """Whether this version's events are on Kafka, for a command that found its change already stored. A
        note still standing most often means its writer is publishing right now (two writers raced): it gets
        `settle_s` to finish, so that the retry answers as the first did and the events go out once."""
        if not version.events or version.sent:
            return True
        deadline = time.monotonic() + settle_s
        while await self.outbox.notes_of(version.id):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def republish(self, version: Version, settle_s: float = 1.0) -> bool:
        """A retried command found its change already stored: make sure that change's events went out (its
        writer may have died before publishing), once its writer had `settle_s` to publish them itself."""
        if await self.settled(version, settle_s):
            return True
        notes = await self.outbox.notes_of(version.id)
        if not notes:
            return True
        return await self.outbox.publish(notes, version.events)
