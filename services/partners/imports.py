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
from shared.outbox import outbox_entries

__all__ = ["import_csv", "import_rows"]


async def import_csv(store: Store, text: str) -> ImportReport:
    rows, errors = parse_import(text)
    return await import_rows(store, rows, errors)


async def _ensure_partner(store: Store, row: ImportRow, known: dict[str, bool]) -> tuple[bool, str | None]:
    """(created, problem): the row's partner exists afterwards, or the problem says why not."""
    pid = partner_id_for(row.legal_id)
    if pid in known:
        return False, None
    if await store.partners.count_documents({"_id": pid}, limit=1):
        known[pid] = True
        return False, None
    if row.partner is None:
        return False, f"no partner with legal identifier {row.legal_id}: give its name, kind and address columns"
    try:
        await store.partners.insert_one({**row.partner, "created_at": datetime.now(UTC), "imported": True})
    except DuplicateKeyError:
        known[pid] = True
        return False, None
    known[pid] = True
    return True, None


async def import_rows(store: Store, rows: list[ImportRow], errors: list[RowError]) -> ImportReport:
    """Store every valid row not yet imported; the same file again changes nothing (keyed by external_ref)."""
    problems = [RowProblem(line=e.line, external_ref=e.external_ref, reasons=e.reasons) for e in errors]
    imported = unchanged = partners_created = 0
    known: dict[str, bool] = {}
    coll = store.partnerships.collection
    for row in rows:
        created, problem = await _ensure_partner(store, row, known)
        partners_created += created
        if problem:
            problems.append(RowProblem(line=row.line, external_ref=row.external_ref, reasons=[problem]))
            continue
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
        doc.update(outbox_entries(partnership_events(doc)))
        try:
            await coll.insert_one(doc)
        except DuplicateKeyError:
            existing = await coll.find_one({"_id": doc["_id"]}, {"import_fingerprint": 1})
            if existing and existing.get("import_fingerprint") == row.fingerprint:
                unchanged += 1
                await store.publish(store.partnerships, doc["_id"])  # a crash may have left its events behind
            else:
                reason = "external_ref already exists with other values (change it through the API, not the import)"
                problems.append(RowProblem(line=row.line, external_ref=row.external_ref, reasons=[reason]))
            continue
        imported += 1
        await store.publish(store.partnerships, doc["_id"])
    problems.sort(key=lambda p: p.line)
    return ImportReport(
        rows=len(rows) + len(errors),
        imported=imported,
        unchanged=unchanged,
        rejected=len(problems),
        partners_created=partners_created,
        problems=problems,
    )
