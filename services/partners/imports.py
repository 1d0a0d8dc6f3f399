"""Bulk import of existing partnerships from CSV: a report per line, valid rows stored with their events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.partners.csvio import ImportRow, RowError, parse_import
from services.partners.domain import partner_id_for, partnership_id_for
from services.partners.handlers import partnership_events
from services.partners.schemas import ImportReport, RowProblem
from services.partners.store import Store
from shared.outbox import PENDING, outbox_entries

__all__ = ["import_csv", "import_rows"]

BATCH = 200


async def import_csv(store: Store, text: str) -> ImportReport:
    rows, errors = parse_import(text)
    return await import_rows(store, rows, errors)


async def _ensure_partner(store: Store, row: ImportRow, known: set[str]) -> tuple[bool, str | None]:
    """(created, problem): the row's partner exists afterwards, or the problem says why not."""
    pid = partner_id_for(row.legal_id)
    if pid in known:
        return False, None
    if await store.exists(store.partners, pid):
        known.add(pid)
        return False, None
    if row.partner is None:
        return False, f"no partner with legal identifier {row.legal_id}: give its name, kind and address columns"
    try:
        await store.partners.insert_one({**row.partner, "created_at": datetime.now(UTC), "imported": True})
    except DuplicateKeyError:
        known.add(pid)
        return False, None
    known.add(pid)
    return True, None


def _document(row: ImportRow) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": partnership_id_for(row.external_ref),
        "partner_id": partner_id_for(row.legal_id),
        "external_ref": row.external_ref,
        **row.partnership,
        "import_fingerprint": row.fingerprint,
        "created_at": datetime.now(UTC),
    }
    if doc.get("signed_on"):
        doc["signed_year"] = int(doc["signed_on"][:4])
    return doc | outbox_entries(partnership_events(doc))


async def import_rows(store: Store, rows: list[ImportRow], errors: list[RowError]) -> ImportReport:
    """Store every valid row not yet imported; the same file again changes nothing (keyed by external_ref).

    Each partnership is written in one document with its events (the outbox), then the events of a whole
    batch are published together."""
    problems = [RowProblem(line=e.line, external_ref=e.external_ref, reasons=e.reasons) for e in errors]
    imported = unchanged = partners_created = 0
    known: set[str] = set()
    coll = store.partnerships.collection
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        await store.partnerships.note(partnership_id_for(r.external_ref) for r in batch)
        to_publish: list[str] = []
        for row in batch:
            created, problem = await _ensure_partner(store, row, known)
            partners_created += created
            if problem:
                problems.append(RowProblem(line=row.line, external_ref=row.external_ref, reasons=[problem]))
                continue
            doc = _document(row)
            try:
                await coll.insert_one(doc)
            except DuplicateKeyError:
                existing = await coll.find_one({"_id": doc["_id"]}, {"import_fingerprint": 1, PENDING: 1})
                if existing and existing.get("import_fingerprint") == row.fingerprint:
                    unchanged += 1
                    if existing.get(PENDING):
                        to_publish.append(doc["_id"])  # a crash left its events behind
                else:
                    reason = "external_ref already exists with other values (change it through the API, not the import)"
                    problems.append(RowProblem(line=row.line, external_ref=row.external_ref, reasons=[reason]))
                continue
            imported += 1
            to_publish.append(doc["_id"])
        await store.publish_many(store.partnerships, to_publish)
    problems.sort(key=lambda p: p.line)
    return ImportReport(
        rows=len(rows) + len(errors),
        imported=imported,
        unchanged=unchanged,
        rejected=len(problems),
        partners_created=partners_created,
        problems=problems,
    )
