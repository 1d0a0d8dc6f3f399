"""Submitting detections (one command for both doors, HTTP and the ingest topic)."""

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

__all__ = ["Rules", "KafkaUnavailable", "submit", "ITEMS"]

log = logging.getLogger(__name__)
PUBLISH_SECONDS = Histogram("detection_publish_seconds", "Time to have one submission's events acknowledged")
ITEMS = Counter("detection_items_total", "Detection items by path and outcome", ["path", "status"])


class KafkaUnavailable(Unavailable):
    """The broker does not answer: nothing was written, the caller must retry later (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class Rules:
    key: bytes
    window: timedelta
    skew: timedelta


def _detection_id(raw: Any) -> str | None:
    value = raw.get("detection_id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None


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
    if not publisher.ready and not (hasattr(publisher, "reachable") and await publisher.reachable()):
        raise KafkaUnavailable("Kafka does not answer; nothing was recorded, retry later")
    now = datetime.now(UTC)
    results: list[ItemResult] = []
    checked: list[Checked] = []
    slots: list[int] = []  # results index of each checked item
    seen: dict[str, int] = {}
    for raw in raw_items:
        try:
            item = check_item(raw, office, terminal_id, key=rules.key, now=now, window=rules.window, skew=rules.skew)
        except Rejected as exc:
            results.append(ItemResult(detection_id=_detection_id(raw), status="rejected", reason=str(exc)))
            continue
        if item.record_id in seen:  # the same id twice in one batch: the first one counts
            results.append(ItemResult(detection_id=item.detection_id, status="duplicate", event_id=str(item.event.id)))
            continue
        seen[item.record_id] = len(checked)
        slots.append(len(results))
        checked.append(item)
        results.append(ItemResult(detection_id=item.detection_id, status="accepted", event_id=str(item.event.id)))

    published = True
    if checked:
        group_id, duplicates = await journal.record(checked, terminal_id)
        new = []
        for i, item in enumerate(checked):
            if i in duplicates:
                results[slots[i]].status = "duplicate"
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
            published = False

    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in results:
        counts[r.status] += 1
    for status, n in counts.items():
        if n:
            ITEMS.labels(path, status).inc(n)
    return Report(
        office_id=office.office_id,
        terminal_id=terminal_id,
        accepted=counts["accepted"],
        duplicates=counts["duplicate"],
        rejected=counts["rejected"],
        published=published,
        results=results,
    )
