"""The one storage port of every service: named collections of documents keyed by `_id`.

The port promises only what FerretDB 1.x keeps under concurrency: an insert with a unique `_id` is accepted
once (the others raise `DuplicateKey`), and a read by `_id` sees every acknowledged insert. `put` replaces a
whole document, last writer wins: never use it as a compare-and-set. Anything that must not be lost or doubled
is an insert (see `shared.aggregates`). `MongoDocuments` is the MongoDB-protocol implementation, `MemoryDocuments`
an in-memory fake with the same semantics for unit tests.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

__all__ = ["DocumentStore", "DuplicateKey", "MongoDocuments", "MemoryDocuments", "Sort", "matches"]

DUPLICATE_KEY_CODE = 11000
Sort = Sequence[tuple[str, int]]


class DuplicateKey(Exception):
    """An insert lost: a document with this `_id` (or unique field) exists already."""


class DocumentStore(Protocol):
    async def get(self, collection: str, doc_id: Any) -> dict[str, Any] | None: ...

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> None:
        """Insert once; raises DuplicateKey if the `_id` (or a unique field) is taken."""

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> set[int]:
        """Insert each document once, in any order; returns the indexes of those that were taken already."""

    async def put(self, collection: str, doc: Mapping[str, Any]) -> None:
        """Create or replace the document with this `_id` (last writer wins)."""

    async def delete(self, collection: str, doc_ids: Iterable[Any]) -> int: ...

    async def find(
        self,
        collection: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Sort = (),
        skip: int = 0,
        limit: int = 0,
    ) -> list[dict[str, Any]]: ...

    async def count(self, collection: str, query: Mapping[str, Any] | None = None) -> int: ...

    async def ensure_index(self, collection: str, field: str, *, unique: bool = False) -> None: ...

    async def collection_names(self) -> list[str]: ...


class MongoDocuments:
    """The port over one MongoDB database (PyMongo's async API)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db

    async def get(self, collection: str, doc_id: Any) -> dict[str, Any] | None:
        # `_id` alone in the filter: the one query FerretDB's SQLite backend answers from its index.
        return await self.db[collection].find_one({"_id": doc_id})

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> None:
        try:
            await self.db[collection].insert_one(dict(doc))
        except DuplicateKeyError:
            raise DuplicateKey(str(doc.get("_id"))) from None

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> set[int]:
        if not docs:
            return set()
        try:
            await self.db[collection].insert_many([dict(d) for d in docs], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details["writeErrors"]
            if any(e["code"] != DUPLICATE_KEY_CODE for e in errors):
                raise
            return {e["index"] for e in errors}
        return set()

    async def put(self, collection: str, doc: Mapping[str, Any]) -> None:
        await self.db[collection].replace_one({"_id": doc["_id"]}, dict(doc), upsert=True)

    async def delete(self, collection: str, doc_ids: Iterable[Any]) -> int:
        ids = list(doc_ids)
        if not ids:
            return 0
        if len(ids) == 1:
            result = await self.db[collection].delete_one({"_id": ids[0]})
        else:
            result = await self.db[collection].delete_many({"_id": {"$in": ids}})
        return result.deleted_count

    async def find(
        self,
        collection: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Sort = (),
        skip: int = 0,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        cursor = self.db[collection].find(dict(query or {}))
        if sort:
            cursor = cursor.sort(list(sort))
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return await cursor.to_list(None)

    async def count(self, collection: str, query: Mapping[str, Any] | None = None) -> int:
        return await self.db[collection].count_documents(dict(query or {}))

    async def ensure_index(self, collection: str, field: str, *, unique: bool = False) -> None:
        await self.db[collection].create_index(field, unique=unique)

    async def collection_names(self) -> list[str]:
        return await self.db.list_collection_names()


# --- the in-memory fake ---------------------------------------------------------------------------------------


def _values(doc: Mapping[str, Any], path: str) -> list[Any]:
    """The values a dotted path reaches (arrays are looked into, as MongoDB does)."""
    current: list[Any] = [doc]
    for part in path.split("."):
        nxt: list[Any] = []
        for value in current:
            if isinstance(value, Mapping) and part in value:
                nxt.append(value[part])
            elif isinstance(value, list):
                nxt.extend(v[part] for v in value if isinstance(v, Mapping) and part in v)
        current = nxt
    flat: list[Any] = []
    for value in current:
        flat.extend(value if isinstance(value, list) else [value])
        if isinstance(value, list):
            flat.append(value)
    return flat


def _compare(a: Any, b: Any, op: str) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, datetime) != isinstance(b, datetime):
        return False
    try:
        return {"$lt": a < b, "$lte": a <= b, "$gt": a > b, "$gte": a >= b}[op]
    except TypeError:
        return False


def _matches_condition(values: list[Any], condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(str(k).startswith("$") for k in condition):
        for op, arg in condition.items():
            if op == "$in":
                ok = any(v in arg for v in values) or (not values and None in arg)
            elif op == "$nin":
                ok = not any(v in arg for v in values)
            elif op == "$ne":
                ok = arg not in values and not (arg is None and not values)
            elif op == "$exists":
                ok = bool(values) == bool(arg)
            elif op in ("$lt", "$lte", "$gt", "$gte"):
                ok = any(_compare(v, arg, op) for v in values)
            else:
                raise NotImplementedError(f"the in-memory store does not know {op}")
            if not ok:
                return False
        return True
    if condition is None:
        return not values or None in values
    return condition in values


def matches(doc: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """The subset of MongoDB's query language the services use: equality, `$in`, `$nin`, `$ne`, `$exists`,
    comparisons, `$or`, `$and`."""
    for key, condition in query.items():
        if key == "$or":
            if not any(matches(doc, q) for q in condition):
                return False
        elif key == "$and":
            if not all(matches(doc, q) for q in condition):
                return False
        elif not _matches_condition(_values(doc, key), condition):
            return False
    return True


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (2, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, datetime):
        return (4, value.timestamp())
    return (5, str(value))


def _field_key(name: str, doc: Mapping[str, Any]) -> tuple[int, Any]:
    return _sort_key(doc.get(name))


class MemoryDocuments:
    """The port in memory: same promises (unique `_id` and unique fields on insert), no server."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[Any, dict[str, Any]]] = {}
        self.unique: dict[str, list[str]] = {}

    def _coll(self, name: str) -> dict[Any, dict[str, Any]]:
        return self.collections.setdefault(name, {})

    async def get(self, collection: str, doc_id: Any) -> dict[str, Any] | None:
        await asyncio.sleep(0)  # every call yields, like a round trip: concurrent callers interleave
        doc = self._coll(collection).get(doc_id)
        return copy.deepcopy(doc) if doc is not None else None

    def _taken(self, collection: str, doc: Mapping[str, Any]) -> bool:
        coll = self._coll(collection)
        if doc["_id"] in coll:
            return True
        return any(
            doc.get(f) is not None and any(o.get(f) == doc.get(f) for o in coll.values())
            for f in self.unique.get(collection, [])
        )

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> None:
        await asyncio.sleep(0)
        if self._taken(collection, doc):
            raise DuplicateKey(str(doc["_id"]))
        self._coll(collection)[doc["_id"]] = copy.deepcopy(dict(doc))

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> set[int]:
        taken = set()
        for i, doc in enumerate(docs):
            try:
                await self.insert(collection, doc)
            except DuplicateKey:
                taken.add(i)
        return taken

    async def put(self, collection: str, doc: Mapping[str, Any]) -> None:
        await asyncio.sleep(0)
        self._coll(collection)[doc["_id"]] = copy.deepcopy(dict(doc))

    async def delete(self, collection: str, doc_ids: Iterable[Any]) -> int:
        await asyncio.sleep(0)
        coll = self._coll(collection)
        return sum(coll.pop(i, None) is not None for i in list(doc_ids))

    async def find(
        self,
        collection: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Sort = (),
        skip: int = 0,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        docs = [d for d in self._coll(collection).values() if matches(d, query or {})]
        for name, direction in reversed(list(sort)):
            docs.sort(key=functools.partial(_field_key, name), reverse=direction < 0)
        docs = docs[skip:]
        if limit:
            docs = docs[:limit]
        return copy.deepcopy(docs)

    async def count(self, collection: str, query: Mapping[str, Any] | None = None) -> int:
        return len(await self.find(collection, query))

    async def ensure_index(self, collection: str, field: str, *, unique: bool = False) -> None:
        if unique and field not in self.unique.setdefault(collection, []):
            self.unique[collection].append(field)

    async def collection_names(self) -> list[str]:
        return [name for name, docs in self.collections.items() if docs]
