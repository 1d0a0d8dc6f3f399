"""CSV formats of the partners service: the partnership import (parsed and checked here, no I/O) and exports."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.partners import domain
from services.partners.domain import EndReason, PartnerKind, Status
from shared import geo
from shared.events import EARLIEST, LATEST, Commitment, PartnershipType

__all__ = [
    "IMPORT_COLUMNS",
    "ImportRow",
    "RowError",
    "parse_import",
    "render_csv",
    "PARTNERSHIP_EXPORT",
    "PARTNER_EXPORT",
]

IMPORT_COLUMNS = (
    "external_ref",
    "partner_legal_id",
    "partner_name",
    "partner_kind",
    "partner_street",
    "partner_postcode",
    "partner_city",
    "partner_commune_insee",
    "partnership_type",
    "commitments",
    "departements",
    "title",
    "status",
    "starts_on",
    "ends_on",
    "signed_on",
    "activated_on",
    "ended_on",
    "end_reason",
)
REQUIRED = (
    "external_ref",
    "partner_legal_id",
    "partnership_type",
    "commitments",
    "departements",
    "status",
    "starts_on",
)
PARTNER_FIELDS = ("partner_name", "partner_kind", "partner_street", "partner_postcode", "partner_city")
MAX_ROWS = 20_000


@dataclass
class ImportRow:
    line: int
    external_ref: str
    legal_id: str
    partner: dict[str, Any] | None  # the organisation, when the row describes it fully (else it must exist)
    partnership: dict[str, Any]  # the partnership document fields, lifecycle already applied
    fingerprint: str


@dataclass
class RowError:
    line: int
    external_ref: str | None
    reasons: list[str] = field(default_factory=list)


def _list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[;|]", value) if v.strip()]


def _date(row: dict[str, str], name: str, reasons: list[str]) -> date | None:
    value = row.get(name, "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        reasons.append(f"{name}: {value!r} is not a date (YYYY-MM-DD)")
        return None
    if not EARLIEST.date() <= day < LATEST.date():  # the bounds of the event contracts (shared.events.FactDate)
        reasons.append(f"{name}: {value} is outside {EARLIEST.year}-{LATEST.year - 1}")
        return None
    return day


def _enum(enum: Any, value: str, name: str, reasons: list[str]) -> Any:
    try:
        return enum(value.strip())
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        reasons.append(f"{name}: {value!r} is not one of {allowed}")
        return None


def _partner(row: dict[str, str], legal_id: str, reasons: list[str]) -> dict[str, Any] | None:
    given = [f for f in (*PARTNER_FIELDS, "partner_commune_insee") if row.get(f, "").strip()]
    if not given:
        return None
    missing = [f for f in (*PARTNER_FIELDS, "partner_commune_insee") if f not in given]
    if missing:
        reasons.append(f"partner columns incomplete (missing {', '.join(missing)})")
        return None
    kind = _enum(PartnerKind, row["partner_kind"], "partner_kind", reasons)
    insee = row["partner_commune_insee"].strip()
    try:
        home = domain.commune_departement(insee)
    except ValueError as exc:
        reasons.append(f"partner_commune_insee: {exc}")
        return None
    if not re.fullmatch(r"\d{5}", row["partner_postcode"].strip()):
        reasons.append(f"partner_postcode: {row['partner_postcode']!r} is not 5 digits")
    if kind is None:
        return None
    return {
        "_id": domain.partner_id_for(legal_id),
        "name": row["partner_name"].strip(),
        "kind": kind.value,
        "legal_id": legal_id,
        "address": {
            "street": row["partner_street"].strip(),
            "postcode": row["partner_postcode"].strip(),
            "city": row["partner_city"].strip(),
            "commune_insee": insee,
        },
        "home_departement": home,
        "departements": [home],
        "contacts": [],
        "skills_label": False,
        "skills_labelled_on": None,
    }


def _lifecycle(terms: dict[str, Any], row: dict[str, str], status: Status, reasons: list[str]) -> dict[str, Any]:
    """Replay the lifecycle with the domain's own rules, so an import obeys exactly what the API obeys."""
    doc = {**terms, "status": Status.DRAFT.value, "renewals": []}
    signed_on = _date(row, "signed_on", reasons)
    activated_on = _date(row, "activated_on", reasons)
    if activated_on is None and signed_on is not None:
        activated_on = max(terms["starts_on_date"], signed_on)
    ended_on = _date(row, "ended_on", reasons)
    if status == Status.DRAFT:
        if signed_on or ended_on:
            reasons.append("a draft has no signed_on or ended_on")
        return doc
    steps = []
    if signed_on is None:
        reasons.append(f"status {status.value} needs signed_on")
        return doc
    steps.append(lambda d: domain.plan_sign(d, signed_on))
    if activated_on and (status == Status.ACTIVE or (status == Status.ENDED and row.get("activated_on", "").strip())):
        steps.append(lambda d: domain.plan_activate(d, activated_on))
    if status == Status.ENDED:
        reason = _enum(EndReason, row.get("end_reason", ""), "end_reason", reasons)
        if ended_on is None:
            reasons.append("status ended needs ended_on")
        if ended_on is None or reason is None:
            return doc
        steps.append(lambda d: domain.plan_end(d, ended_on, reason))
    elif ended_on or row.get("end_reason", "").strip():
        reasons.append(f"status {status.value} has no ended_on or end_reason")
    for step_of in steps:
        try:
            step = step_of(doc)
        except (domain.Invalid, domain.Refused) as exc:
            reasons.append(str(exc))
            return doc
        doc.update(step.set_fields)
    return doc


def _row(line: int, row: dict[str, str]) -> ImportRow | RowError:
    reasons: list[str] = []
    ref = row.get("external_ref", "").strip() or None
    for name in REQUIRED:
        if not row.get(name, "").strip():
            reasons.append(f"{name} is required")
    if reasons:
        return RowError(line, ref, reasons)
    assert ref is not None
    if not re.fullmatch(r"[A-Za-z0-9._:/-]{1,64}", ref):
        reasons.append("external_ref: up to 64 letters, digits or . _ : / -")
    problem = domain.legal_id_problem(row["partner_legal_id"])
    legal_id = domain.normalise_legal_id(row["partner_legal_id"])
    if problem:
        reasons.append(f"partner_legal_id: {problem}")
    partner = _partner(row, legal_id, reasons)
    ptype = _enum(PartnershipType, row["partnership_type"], "partnership_type", reasons)
    commitments = [_enum(Commitment, c, "commitments", reasons) for c in _list(row["commitments"])]
    departements = _list(row["departements"])
    for code in departements:
        if code not in geo.departements():
            reasons.append(f"departements: unknown département code {code!r}")
    if len(set(departements)) != len(departements) or len(set(commitments)) != len(commitments):
        reasons.append("commitments and departements must not repeat")
    status = _enum(Status, row["status"], "status", reasons)
    starts_on = _date(row, "starts_on", reasons)
    ends_on = _date(row, "ends_on", reasons)
    if starts_on and ends_on:
        try:
            domain.check_terms(starts_on, ends_on)
        except domain.Invalid as exc:
            reasons.append(str(exc))
    if reasons or status is None or starts_on is None or ptype is None:
        return RowError(line, ref, reasons or ["invalid row"])
    terms = {
        "title": row.get("title", "").strip() or None,
        "partnership_type": ptype.value,
        "commitments": [c.value for c in commitments],
        "departements": departements,
        "starts_on": starts_on.isoformat(),
        "ends_on": ends_on.isoformat() if ends_on else None,
        "starts_on_date": starts_on,
    }
    doc = _lifecycle(terms, row, status, reasons)
    if reasons:
        return RowError(line, ref, reasons)
    doc.pop("starts_on_date")
    normalised = {k: (row.get(k) or "").strip() for k in IMPORT_COLUMNS}
    fingerprint = hashlib.sha256(json.dumps(normalised, sort_keys=True).encode()).hexdigest()
    return ImportRow(line, ref, legal_id, partner, doc, fingerprint)


def parse_import(text: str) -> tuple[list[ImportRow], list[RowError]]:
    """Every row checked; line numbers are the file's (the header is line 1)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    sample = text[:4096]
    delimiter = ";" if sample.split("\n", 1)[0].count(";") > sample.split("\n", 1)[0].count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        return [], [RowError(1, None, [f"header misses column(s): {', '.join(missing)}"])]
    reader.fieldnames = header
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(RowError(line, None, [f"more than {MAX_ROWS} rows: split the file"]))
            break
        if None in record:
            errors.append(RowError(line, record.get("external_ref"), ["more fields than the header has columns"]))
            continue
        if not any((v or "").strip() for v in record.values()):
            continue
        parsed = _row(line, {k: v or "" for k, v in record.items()})
        if isinstance(parsed, ImportRow) and parsed.external_ref in seen:
            parsed = RowError(line, parsed.external_ref, [f"external_ref repeats line {seen[parsed.external_ref]}"])
        if isinstance(parsed, ImportRow):
            seen[parsed.external_ref] = line
            rows.append(parsed)
        else:
            errors.append(parsed)
    return rows, errors


# --- exports --------------------------------------------------------------------------------------

PARTNERSHIP_EXPORT = (
    "id",
    "external_ref",
    "partner_id",
    "partner_legal_id",
    "partner_name",
    "partnership_type",
    "commitments",
    "departements",
    "title",
    "status",
    "starts_on",
    "ends_on",
    "signed_on",
    "activated_on",
    "ended_on",
    "end_reason",
    "renewals",
)
PARTNER_EXPORT = (
    "id",
    "name",
    "kind",
    "legal_id",
    "postcode",
    "city",
    "commune_insee",
    "home_departement",
    "departements",
    "skills_label",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    text = str(value)
    # A spreadsheet would run a cell that starts like a formula (CSV injection): make it plain text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(columns: Iterable[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    columns = tuple(columns)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    yield buf.getvalue()
    for row in rows:
        buf.seek(0)
        buf.truncate()
        writer.writerow([_cell(row.get(c)) for c in columns])
        yield buf.getvalue()
