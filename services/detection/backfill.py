"""Backfilling past detections: an admin sends batches older than the live window, and each one is audited.

A backfill is checked, recorded and published exactly like live detections (same keys, same event ids, same
keyed hash of the client reference, so a detection sent live and backfilled later counts once) but with no
lower time bound other than the contract's (2000-2099). Its audit record is an aggregate of the `backfills`
kind: version 1, written before any detection is recorded, says who sent what and when; version 2 adds the
outcome. A crash in between leaves version 1 (status `started`): the batch may be resent, it is idempotent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.detection.domain import time_span
from services.detection.handlers import Checking, Rules, check_all, counts, ensure_kafka, record
from services.detection.journal import Journal
from services.detection.schemas import BackfillIn, BackfillReport
from services.detection.store import Store
from shared.aggregates import Change, Version
from shared.errors import Invalid, NotFound
from shared.identity import Principal
from shared.kafka import Publisher

__all__ = ["backfill", "audit", "audit_public", "TERMINAL_PREFIX"]

# The events' terminal when the batch names none: a terminal id never holds "/", so this names no real one.
TERMINAL_PREFIX = "backfill/"


async def _terminal_of(store: Store, cmd: BackfillIn, backfill_id: str) -> str:
    if cmd.terminal_id is None:
        return TERMINAL_PREFIX + backfill_id
    doc = await store.terminal(cmd.terminal_id)
    # A revoked terminal's past detections are still its own: only the office must match.
    if doc is None or doc["office_id"] != cmd.office_id:
        raise Invalid(f"terminal {cmd.terminal_id} is not registered to office {cmd.office_id}")
    return cmd.terminal_id


def _started(cmd: BackfillIn, who: Principal, terminal_id: str, checking: Checking, now: datetime) -> dict[str, Any]:
    span = time_span(checking.checked)
    return {
        "by": who.subject,
        "role": who.role.value,
        "at": now,
        "office_id": cmd.office_id,
        "terminal_id": terminal_id,
        "reason": cmd.reason,
        "items": len(cmd.detections),
        "earliest": span[0] if span else None,
        "latest": span[1] if span else None,
        "detection_ids": [c.detection_id for c in checking.checked],
        "status": "started",
    }


def _finished(started: dict[str, Any], report: BackfillReport) -> Change:
    # The answers without the rejection reasons: ids and outcomes are the audit; the caller had the reasons.
    results = [{"detection_id": r.detection_id, "status": r.status, "event_id": r.event_id} for r in report.results]
    outcome = {
        "status": "done",
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "published": report.published,
        "results": results,
    }
    return Change({k: v for k, v in started.items() if k != "detection_ids"} | outcome)


async def backfill(
    cmd: BackfillIn, who: Principal, *, store: Store, journal: Journal, publisher: Publisher, rules: Rules
) -> BackfillReport:
    """Audit, check, record and publish one batch of past detections of one office; each item answered."""
    office = await store.office(cmd.office_id)
    if office is None:
        raise NotFound(f"no office {cmd.office_id} in the registry")
    await ensure_kafka(publisher)
    backfill_id = f"bf-{uuid.uuid4().hex}"
    terminal_id = await _terminal_of(store, cmd, backfill_id)
    now = datetime.now(UTC)
    checking = check_all(cmd.detections, office, terminal_id, rules, now)
    started = _started(cmd, who, terminal_id, checking, now)
    await store.backfills.create(backfill_id, Change(started))
    published = await record(checking, terminal_id, journal=journal, publisher=publisher)
    n = counts(checking.results, "backfill")
    report = BackfillReport(
        backfill_id=backfill_id,
        office_id=office.office_id,
        terminal_id=terminal_id,
        accepted=n["accepted"],
        duplicates=n["duplicate"],
        rejected=n["rejected"],
        published=published,
        results=checking.results,
    )
    await store.backfills.change(backfill_id, lambda _: _finished(started, report), what="backfill")
    return report


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def audit_public(head: dict[str, Any], *, results: bool) -> dict[str, Any]:
    """An audit record as the API shows it (the list leaves the per-item answers out)."""
    hidden = {"_id", "version", "updated_at", *(() if results else ("results", "detection_ids"))}
    out = {"backfill_id": head["_id"], **{k: _iso(v) for k, v in head.items() if k not in hidden}}
    return out


async def audit(store: Store, backfill_id: str) -> dict[str, Any]:
    version: Version = await store.backfills.require(backfill_id, "backfill")
    return audit_public(version.head(), results=True)
