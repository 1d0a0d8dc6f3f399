"""Bulk import of existing partnerships from CSV: a report per line, valid rows stored with their events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.partners.csvio import ImportRow, RowError, parse_import
from services.partners.domain import DELETED, partner_id_for, partnership_id_for
from services.partners.handlers import partnership_events
from services.partners.schemas import ImportReport, RowProblem
from services.partners.store import Store
from shared.aggregates import Aggregates, Change, Version

__all__ = ["import_csv", "import_rows"]

BATCH = 200
STALE = "external_ref already exists with other values (change it through the API, not the import)"


async def import_csv(store: Store, text: str) -> ImportReport:
    rows, errors = parse_import(text)
    return await import_rows(store, rows, errors)


def _partnership(row: ImportRow) -> tuple[str, Change]:
    """The row as version 1 of its partnership: the whole state and every event of its lifecycle."""
    pid = partnership_id_for(row.external_ref)
    state: dict[str, Any] = {
        "partner_id": partner_id_for(row.legal_id),
        "external_ref": row.external_ref,
        "renewals": [],
        **row.partnership,
        "import_fingerprint": row.fingerprint,
        "created_at": datetime.now(UTC),
    }
    if state.get("signed_on"):
        state["signed_year"] = int(state["signed_on"][:4])
    return pid, Change(state, partnership_events({**state, "_id": pid}))


async def _heads(series: Aggregates, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored heads among `ids`, in one query (a head may lag its versions; the inserts stay the check)."""
    unique = sorted(set(ids))
    return {d["_id"]: d for d in await series.find({"_id": {"$in": unique}})} if unique else {}


async def _ensure_partners(store: Store, rows: list[ImportRow], known: set[str]) -> tuple[int, dict[int, str]]:
    """Create the organisations the rows describe and that do not exist yet. Returns (how many were created,
    the problem of each row whose partner neither exists nor is described, by line)."""
    wanted = [partner_id_for(r.legal_id) for r in rows if partner_id_for(r.legal_id) not in known]
    known.update(await _heads(store.partners, wanted))
    new: dict[str, Change] = {}
    problems: dict[int, str] = {}
    for row in rows:
        pid = partner_id_for(row.legal_id)
        if pid in known or pid in new:
            continue
        if row.partner is None:
            problems[row.line] = (
                f"no partner with legal identifier {row.legal_id}: give its name, kind and address columns"
            )
            continue
        new[pid] = Change({**row.partner, "created_at": datetime.now(UTC), "imported": True})
    created = await store.partners.create_many(list(new.items())) if new else []
    known.update(new)
    return sum(v is not None for v in created), problems


async def import_rows(store: Store, rows: list[ImportRow], errors: list[RowError]) -> ImportReport:
    """Store every valid row not yet imported; the same file again changes nothing (keyed by external_ref).

    Each partnership is version 1 of its aggregate, with its events; the events of a whole batch are noted
    and published together (whatever a crash left noted, the outbox relay publishes)."""
    problems = [RowProblem(line=e.line, external_ref=e.external_ref, reasons=e.reasons) for e in errors]
    imported = unchanged = partners_created = 0
    known: set[str] = set()
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        created, missing = await _ensure_partners(store, batch, known)
        partners_created += created
        problems.extend(
            RowProblem(line=r.line, external_ref=r.external_ref, reasons=[missing[r.line]])
            for r in batch
            if r.line in missing
        )
        candidates = [(r, *_partnership(r)) for r in batch if r.line not in missing]
        # Rows already stored are compared, never inserted again (a note for an existing version would make the
        # relay publish its events once more).
        heads = await _heads(store.partnerships, [pid for _, pid, _ in candidates])
        fresh = [(r, pid, c) for r, pid, c in candidates if pid not in heads]
        stored = await store.partnerships.create_many([(pid, c) for _, pid, c in fresh])
        imported += sum(v is not None for v in stored)
        seen = [(r, pid, c) for (r, pid, c), v in zip(fresh, stored, strict=True) if v is None]
        seen += [(r, pid, c) for r, pid, c in candidates if pid in heads]
        for row, pid, change in seen:
            head = heads.get(pid)
            if head is not None and head.get("status") != DELETED:
                # The head tells (it may lag, but never on the fingerprint: no change touches it).
                outcome = "unchanged" if head.get("import_fingerprint") == row.fingerprint else "stale"
            else:
                outcome = await _compare(store, row, pid, change)
            if outcome == "imported":
                imported += 1
            elif outcome == "unchanged":
                unchanged += 1
            else:
                problems.append(RowProblem(line=row.line, external_ref=row.external_ref, reasons=[STALE]))
    problems.sort(key=lambda p: p.line)
    return ImportReport(
        rows=len(rows) + len(errors),
        imported=imported,
        unchanged=unchanged,
        rejected=len(problems),
        partners_created=partners_created,
        problems=problems,
    )


async def _compare(store: Store, row: ImportRow, pid: str, change: Change) -> str:
    """A row whose partnership exists: "unchanged" if it was imported from this very row, "imported" if it
    replaced a deleted draft, "stale" otherwise."""
    outcome = "stale"

    def decide(current: Version) -> Change | None:
        nonlocal outcome
        if current.state.get("status") == DELETED:
            outcome = "imported"
            return change
        outcome = "unchanged" if current.state.get("import_fingerprint") == row.fingerprint else "stale"
        return None

    await store.partnerships.change(pid, decide, what="partnership")
    return outcome
