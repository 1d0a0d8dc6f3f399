"""Counters saved at a clean stop: read back whole, once, and never half written."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.metrics import snapshot
from services.metrics.domain import Ledger
from tests import samples

pytestmark = pytest.mark.unit


def test_saved_counters_come_back_equal_once_then_the_file_is_gone(tmp_path: Path) -> None:
    parts = {0: Ledger(), 5: Ledger()}
    for n in range(20):
        parts[n % 2 * 5].add(samples.attended(samples.ref(f"saved-{n}")))
    path = tmp_path / "app.counters-at-stop.json"
    snapshot.save(path, {p: ledger.counters for p, ledger in parts.items()}, keys=20, stored={"workshops.events|0": 42})
    saved = snapshot.take(path)
    assert saved is not None and not path.exists()
    assert set(saved.parts) == {0, 5}
    for p, ledger in parts.items():
        assert saved.parts[p].snapshot() == ledger.counters.snapshot() and saved.parts[p].snapshot()
    assert (saved.keys, saved.stored) == (20, {"workshops.events|0": 42})
    assert snapshot.take(path) is None  # valid for one start only


def test_an_unreadable_file_is_ignored_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "app.counters-at-stop.json"
    path.write_bytes(b'{"format": 1, "cells": [')
    assert snapshot.take(path) is None and not path.exists()
    path.write_bytes(b'{"format": 1, "cells": [], "partnerships": {}, "keys": 0, "stored": {}}')  # one set for all
    assert snapshot.take(path) is None
    path.write_bytes(b'{"format": 99}')
    assert snapshot.take(path) is None
