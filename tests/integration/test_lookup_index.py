"""The local FerretDB launcher indexes the expression FerretDB's `_id` look-ups use, for every collection, new
ones included, and again after a collection is dropped and created anew (deploy/local/ferretdb/indexer.go)."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, SUFFIX, wait_until

pytestmark = pytest.mark.integration
SQLITE_DIR = Path(os.environ.get("DATA_DIR", ROOT / ".data")) / "ferretdb"


def lookup_indexes(db_name: str) -> set[str]:
    path = SQLITE_DIR / f"{db_name}.sqlite"
    if not path.exists():
        return set()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall()
    return {name for name, sql in rows if name.endswith("__id_lookup") and "'$._id'" in (sql or "")}


def test_every_collection_gets_the_lookup_index(stack: None, mongo) -> None:
    if not SQLITE_DIR.is_dir():
        pytest.skip("not the local FerretDB on SQLite (MongoDB indexes `_id` itself)")
    db = mongo[f"test_lookup{SUFFIX}"]
    mongo.drop_database(db.name)
    names = [f"c_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        db[name].insert_many([{"_id": f"k-{i}", "v": i} for i in range(20)])
    wait_until(lambda: len(lookup_indexes(db.name)) == 2, 15, "a look-up index on each new collection")
    db.drop_collection(names[0])
    db[names[0]].insert_one({"_id": "again"})  # same name, a new table: the index must come back
    wait_until(lambda: len(lookup_indexes(db.name)) == 2, 15, "the look-up index of the re-created collection")
    assert db[names[0]].find_one({"_id": "again"}) == {"_id": "again"}
    mongo.drop_database(db.name)
