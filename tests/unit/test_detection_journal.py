"""Group commit: concurrent submissions share one write; each gets its own duplicates; the outbox is cleared
only when every submitter of the group has published."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.detection.domain import Office, check_item
from services.detection.journal import Journal

pytestmark = pytest.mark.unit
OFFICE = Office("o-1", "93", "11", "Europe/Paris", qpv=True, rural=False, france_services=False)
NOW = datetime.now(UTC)


def checked(*ids: str):
    rules = {"key": b"unit-test-person-ref-key-0123456789", "now": NOW, "window": timedelta(days=30)}
    return [
        check_item(
            {
                "detection_id": i,
                "occurred_at": NOW.isoformat(),
                "needs": ["email"],
                "client_reference": "FAKE-1",
                "consent": True,
            },  # fmt: skip
            OFFICE,
            "t-1",
            skew=timedelta(minutes=5),
            **rules,
        )
        for i in ids
    ]


class FakeStore:
    """Remembers keys like the unique index does, and what was written and forgotten."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.groups: list[list[str]] = []
        self.forgotten: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def write_group(self, items, terminals, now):
        await self.gate.wait()
        dups = set()
        for n, c in enumerate(items):
            if c.record_id in self.keys:
                dups.add(n)
            self.keys.add(c.record_id)
        self.groups.append([c.record_id for c in items])
        return f"g{len(self.groups)}", dups

    async def forget(self, group_ids):
        self.forgotten.extend(group_ids)


async def test_concurrent_submissions_share_one_write_and_get_their_own_duplicates() -> None:
    store = FakeStore()
    store.keys.add("o-1/b")  # recorded earlier
    journal = Journal(store, clean_interval_s=0.01)  # type: ignore[arg-type]
    store.gate.clear()  # the writer is busy: the next submissions queue up together
    journal.start()
    try:
        first = asyncio.create_task(journal.record(checked("x"), "t-1"))
        await asyncio.sleep(0.01)
        rest = [asyncio.create_task(journal.record(checked(*ids), "t-1")) for ids in (["a", "b"], ["c", "b2", "a"])]
        await asyncio.sleep(0.01)
        store.gate.set()
        (g1, d1), (g2, d2), (g3, d3) = await asyncio.gather(first, *rest)
        assert g1 != g2 == g3 and len(store.groups) == 2
        assert d1 == set() and d2 == {1} and d3 == {2}  # "b" existed; "a" came first in the other submission
        journal.done(g2)
        await asyncio.sleep(0.05)
        assert g2 not in store.forgotten, "cleared only once both submitters have published"
        journal.done(g3)
        journal.done(g1)
        await asyncio.sleep(0.05)
        assert set(store.forgotten) == {g1, g2}
    finally:
        await journal.stop()


async def test_a_failed_write_is_reported_to_every_waiting_submitter() -> None:
    class Broken(FakeStore):
        async def write_group(self, items, terminals, now):
            raise ConnectionError("database away")

    journal = Journal(Broken())  # type: ignore[arg-type]
    journal.start()
    try:
        results = await asyncio.gather(
            journal.record(checked("a"), "t-1"), journal.record(checked("b"), "t-1"), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
    finally:
        await journal.stop()
