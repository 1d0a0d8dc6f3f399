"""The backfill command on the in-memory document store: original times, idempotency shared with live
ingestion, keyed-hash references, and an audit record written before anything is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.detection import handlers
from services.detection.backfill import TERMINAL_PREFIX, audit, backfill
from services.detection.handlers import KafkaUnavailable, Rules
from services.detection.journal import Journal
from services.detection.schemas import BackfillIn, OfficeIn
from services.detection.store import Store
from shared.docstore import MemoryDocuments
from shared.errors import Invalid, NotFound
from shared.events import Envelope
from shared.identity import Principal, Role
from shared.kafka import PublishError
from shared.privacy import person_ref

pytestmark = pytest.mark.unit
KEY = b"unit-test-person-ref-key-0123456789"
LIVE = Rules(key=KEY, window=timedelta(days=30), skew=timedelta(minutes=5))
PAST = Rules(key=KEY, window=None, skew=timedelta(minutes=5))
ADMIN = Principal("u-admin-1", Role.ADMIN)
IN_2022 = datetime(2022, 3, 14, 9, 30, tzinfo=UTC)


class Publisher:
    """Kafka as the service sees it: ready, acknowledging (or failing, when told to), keeping every event."""

    ready = True

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self.failing = False

    async def publish_many(self, events: Sequence[Envelope], *, topic: str | None = None) -> None:
        if self.failing:
            raise PublishError("broker too slow")
        self.events.extend(events)


@pytest.fixture
async def world() -> AsyncIterator[dict[str, Any]]:
    store = Store(MemoryDocuments(), cache_ttl=0)
    await store.put_office(OfficeIn(office_id="o-93", name="Bureau de test", commune_insee="93066", qpv=True))
    await store.put_office(OfficeIn(office_id="o-75", name="Bureau de test", commune_insee="75056"))
    journal = Journal(store, clean_interval_s=0.01)
    journal.start()
    try:
        yield {"store": store, "journal": journal, "publisher": Publisher()}
    finally:
        await journal.stop()


def item(n: int | str, at: datetime = IN_2022, **over: Any) -> dict[str, Any]:
    body = {
        "detection_id": f"d-{n}",
        "occurred_at": at.isoformat(),
        "needs": ["online_banking"],
        "client_reference": f"FAKE-CLIENT-{n}",
        "consent": True,
    }
    return body | over


def cmd(*items: dict[str, Any], office_id: str = "o-93", **over: Any) -> BackfillIn:
    return BackfillIn.model_validate(
        {"office_id": office_id, "reason": "counter files of 2022", "detections": list(items)} | over
    )


async def send(world: dict[str, Any], command: BackfillIn, who: Principal = ADMIN):
    return await backfill(
        command, who, store=world["store"], journal=world["journal"], publisher=world["publisher"], rules=PAST
    )


async def test_a_2022_detection_keeps_its_time_its_office_and_a_keyed_hash(world: dict[str, Any]) -> None:
    report = await send(world, cmd(item(1)))
    assert (report.accepted, report.duplicates, report.rejected, report.published) == (1, 0, 0, True)
    (event,) = world["publisher"].events
    assert event.time == IN_2022 and event.data.office_id == "o-93" and event.data.departement == "93"
    assert event.data.person_ref == person_ref("FAKE-CLIENT-1", KEY) and event.key == event.data.person_ref
    assert event.data.terminal_id == TERMINAL_PREFIX + report.backfill_id
    assert "FAKE-CLIENT" not in event.model_dump_json()


async def test_the_same_backfill_twice_is_recorded_and_published_once(world: dict[str, Any]) -> None:
    batch = cmd(item(1), item(2), item(1))  # the same id twice in one batch too
    first = await send(world, batch)
    second = await send(world, batch)
    assert [r.status for r in first.results] == ["accepted", "accepted", "duplicate"]
    assert [r.status for r in second.results] == ["duplicate"] * 3
    assert [r.event_id for r in second.results] == [r.event_id for r in first.results]
    assert len(world["publisher"].events) == 2
    assert first.backfill_id != second.backfill_id  # each request has its own audit record


async def test_live_and_backfill_share_one_idempotency(world: dict[str, Any]) -> None:
    store, journal, publisher = world["store"], world["journal"], world["publisher"]
    recent = item("recent", datetime.now(UTC) - timedelta(days=2))
    office = await store.office("o-93")
    live = await handlers.submit([recent], office, "t-1", journal=journal, publisher=publisher, rules=LIVE)
    assert live.accepted == 1
    again = await send(world, cmd(recent))
    assert again.duplicates == 1 and again.results[0].event_id == live.results[0].event_id
    assert len(publisher.events) == 1


async def test_anonymous_and_refused_items_are_answered_one_by_one(world: dict[str, Any]) -> None:
    anonymous = {k: v for k, v in item("anon").items() if k != "client_reference"}
    report = await send(
        world,
        cmd(
            anonymous,
            item("old", occurred_at="1999-12-31T12:00:00+00:00"),
            item("future", datetime.now(UTC) + timedelta(days=1)),
            item("ok"),
        ),
    )
    assert [r.status for r in report.results] == ["accepted", "rejected", "rejected", "accepted"]
    assert "outside 2000-2099" in (report.results[1].reason or "")
    assert "in the future" in (report.results[2].reason or "")
    anon_event = world["publisher"].events[0]
    assert anon_event.data.person_ref is None and anon_event.key == f"anon:{anon_event.id}"


async def test_the_audit_says_who_what_and_when_without_any_client_reference(world: dict[str, Any]) -> None:
    before = datetime.now(UTC)
    report = await send(world, cmd(item(1), item(2, IN_2022 + timedelta(days=30)), item("bad", needs=["knitting"])))
    record = await audit(world["store"], report.backfill_id)
    assert record["by"] == "u-admin-1" and record["role"] == "admin" and record["status"] == "done"
    assert before <= datetime.fromisoformat(record["at"]) <= datetime.now(UTC)
    assert record["office_id"] == "o-93" and record["reason"] == "counter files of 2022" and record["items"] == 3
    assert datetime.fromisoformat(record["earliest"]) == IN_2022
    assert datetime.fromisoformat(record["latest"]) == IN_2022 + timedelta(days=30)
    assert (record["accepted"], record["duplicates"], record["rejected"]) == (2, 0, 1)
    assert [(r["detection_id"], r["status"]) for r in record["results"]] == [
        ("d-1", "accepted"),
        ("d-2", "accepted"),
        ("d-bad", "rejected"),
    ]
    history = await world["store"].backfills.history(report.backfill_id)
    assert [v.state["status"] for v in history] == ["started", "done"]
    assert history[0].state["detection_ids"] == ["d-1", "d-2"]  # written before anything was recorded
    assert "FAKE-CLIENT" not in repr([v.state for v in history])


async def test_a_slow_broker_leaves_the_items_for_the_relay_and_says_so_in_the_audit(world: dict[str, Any]) -> None:
    world["publisher"].failing = True
    report = await send(world, cmd(item(1)))
    assert report.accepted == 1 and report.published is False
    record = await audit(world["store"], report.backfill_id)
    assert record["status"] == "done" and record["published"] is False


async def test_an_unknown_office_a_foreign_terminal_or_no_broker_records_nothing(world: dict[str, Any]) -> None:
    store = world["store"]
    with pytest.raises(NotFound, match="no office o-00"):
        await send(world, cmd(item(1), office_id="o-00"))
    await store.add_terminal("t-75", "o-75", "hash", None)
    with pytest.raises(Invalid, match="not registered to office o-93"):
        await send(world, cmd(item(1), terminal_id="t-75"))
    world["publisher"].ready = False
    with pytest.raises(KafkaUnavailable):
        await send(world, cmd(item(1)))
    assert await store.backfills.count() == 0 and not world["publisher"].events
    world["publisher"].ready = True
    named = await send(world, cmd(item(1), office_id="o-75", terminal_id="t-75"))
    assert named.terminal_id == "t-75" and world["publisher"].events[0].data.terminal_id == "t-75"


async def test_a_closed_office_and_a_revoked_terminal_may_still_be_backfilled(world: dict[str, Any]) -> None:
    store = world["store"]
    closed = OfficeIn(office_id="o-75", name="Bureau fermé", commune_insee="75056", active=False)
    await store.put_office(closed)
    await store.add_terminal("t-old", "o-75", "hash", None)
    await store.revoke_terminal("t-old")
    report = await send(world, cmd(item(1), office_id="o-75", terminal_id="t-old"))
    assert report.accepted == 1
