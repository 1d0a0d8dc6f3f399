"""Submitting detections (one command for both doors, HTTP and the ingest topic; its steps serve the backfill)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram

from services.detection.domain import Checked, Office, Rejected, check_item
from services.detection.journal import Journal
from services.detection.schemas import ItemResult, Report
from shared.errors import Unavailable
from shared.kafka import Publisher, PublishError

__all__ = ["Rules", "KafkaUnavailable", "Checking", "ensure_kafka", "check_all", "record", "counts", "submit", "ITEMS"]

log = logging.getLogger(__name__)
PUBLISH_SECONDS = Histogram("detection_publish_seconds", "Time to have one submission's events acknowledged")
ITEMS = Counter("detection_items_total", "Detection items by path and outcome", ["path", "status"])


class KafkaUnavailable(Unavailable):
    """The broker does not answer: nothing was written, the caller must retry later (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class Rules:
    key: bytes
    window: timedelta | None  # None: the backfill path (no lower bound but the contract's)
    skew: timedelta


def _detection_id(raw: Any) -> str | None:
    value = raw.get("detection_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


async def ensure_kafka(publisher: Publisher) -> None:
    """KafkaUnavailable unless the broker answers (checked before anything is written)."""
    if not publisher.ready and not (hasattr(publisher, "reachable") and await publisher.reachable()):
        raise KafkaUnavailable("Kafka does not answer; nothing was recorded, retry later")


@dataclass(slots=True)
class Checking:
    """Every item's answer so far, and the items that passed the checks (each once)."""

    results: list[ItemResult]
    checked: list[Checked]
    slots: list[int]  # results index of each checked item


def check_all(raw_items: list[Any], office: Office, terminal_id: str, rules: Rules, now: datetime) -> Checking:
    """Check every item (pure); the same id twice in the list: the first one counts, the next are duplicates."""
    out = Checking([], [], [])
    seen: set[str] = set()
    for raw in raw_items:
        try:
            item = check_item(raw, office, terminal_id, key=rules.key, now=now, window=rules.window, skew=rules.skew)
        except Rejected as exc:
            out.results.append(ItemResult(detection_id=_detection_id(raw), status="rejected", reason=str(exc)))
            continue
        if item.record_id in seen:
            out.results.append(
                ItemResult(detection_id=item.detection_id, status="duplicate", event_id=str(item.event.id))
            )
            continue
        seen.add(item.record_id)
        out.slots.append(len(out.results))
        out.checked.append(item)
        out.results.append(ItemResult(detection_id=item.detection_id, status="accepted", event_id=str(item.event.id)))
    return out


async def record(checking: Checking, terminal_id: str, *, journal: Journal, publisher: Publisher) -> bool:
    """Record the checked items once (a key already there: duplicate), publish the new ones; False when the
    broker was too slow and the relay will publish them (stored, not lost)."""
    if not checking.checked:
        return True
    group_id, duplicates = await journal.record(checking.checked, terminal_id)
    new = []
    for i, item in enumerate(checking.checked):
        if i in duplicates:
            checking.results[checking.slots[i]].status = "duplicate"
        else:
            new.append(item.event)
    try:
        if new:
            with PUBLISH_SECONDS.time():
                await publisher.publish_many(new)
        journal.done(group_id)
    except PublishError as exc:
        # Stored with its events: the relay publishes them. Accepted, not lost.
        log.warning("publish deferred to the relay", extra={"group": group_id, "error": str(exc)})
        return False
    return True


def counts(results: list[ItemResult], path: str) -> dict[str, int]:
    out = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in results:
        out[r.status] += 1
    for status, n in out.items():
        if n:
            ITEMS.labels(path, status).inc(n)
    return out


async def submit(
    raw_items: list[Any],
    office: Office,
    terminal_id: str,
    *,
    journal: Journal,
    publisher: Publisher,
    rules: Rules,
    path: str = "http",
) -> Report:
    """Check every item, record the good ones once, publish them; each item gets its own answer."""
    await ensure_kafka(publisher)
    checking = check_all(raw_items, office, terminal_id, rules, datetime.now(UTC))
    published = await record(checking, terminal_id, journal=journal, publisher=publisher)
    n = counts(checking.results, path)
    return Report(
        office_id=office.office_id,
        terminal_id=terminal_id,
        accepted=n["accepted"],
        duplicates=n["duplicate"],
        rejected=n["rejected"],
        published=published,
        results=checking.results,
    )
