"""Open-data exports of a breakdown: small-cell suppression, then the same rows as CSV or as XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from shared.xlsx import Column, workbook

__all__ = [
    "SECRET_THRESHOLD",
    "EXPORT_COLUMNS",
    "XLSX_COLUMNS",
    "secret_cells",
    "export_rows",
    "to_csv",
    "to_xlsx",
]

SECRET_THRESHOLD = 5  # public exports hide any cell counting fewer than this many


def _disclosed(hidden: list[int], primaries: int, threshold: int) -> bool:
    """Could someone knowing the total (hence the hidden sum) and the rule pin a hidden small cell down exactly?

    Small cells lie in [1, threshold-1]; cells hidden to protect them are >= threshold.
    """
    total = sum(hidden)
    others = len(hidden) - primaries
    if others:
        upper = min(threshold - 1, total - (primaries - 1) - others * threshold)
        return upper <= 1
    lower = max(1, total - (primaries - 1) * (threshold - 1))
    upper = min(threshold - 1, total - (primaries - 1))
    return lower >= upper


def secret_cells(values: Mapping[str, int], threshold: int = SECRET_THRESHOLD) -> set[str]:
    """Keys to hide: every cell below `threshold` (primary secret), then the smallest other cells until no small
    cell can be recomputed from the published total by difference (secondary secret)."""
    primary = sorted((k for k, v in values.items() if 0 < v < threshold), key=lambda k: (values[k], k))
    if not primary:
        return set()
    hidden = list(primary)
    rest = sorted((k for k in values if k not in hidden and values[k] > 0), key=lambda k: (values[k], k))
    while rest and (len(hidden) < 2 or _disclosed([values[k] for k in hidden], len(primary), threshold)):
        hidden.append(rest.pop(0))
    return set(hidden)


EXPORT_COLUMNS = ("year", "indicator", "dimension", "code", "label", "value", "secret")
# The same columns under French headers, each with its cell type (a code stays text: "01" keeps its zero).
XLSX_COLUMNS = (
    Column("year", "Année", "number"),
    Column("indicator", "Indicateur"),
    Column("dimension", "Dimension"),
    Column("code", "Code"),
    Column("label", "Libellé"),
    Column("value", "Valeur", "number"),
    Column("secret", "Secret statistique", "bool"),
)


def export_rows(view: Mapping[str, Any], *, public: bool, threshold: int = SECRET_THRESHOLD) -> list[dict[str, Any]]:
    """The rows of a breakdown for an export file; a public export blanks secret cells and flags them."""
    values = {r["key"]: r["value"] for r in view["rows"]}
    hidden = secret_cells(values, threshold) if public else set()
    return [
        {
            "year": view["year"],
            "indicator": view["indicator"],
            "dimension": view["dimension"],
            "code": r["key"],
            "label": r["label"],
            "value": "" if r["key"] in hidden else r["value"],
            "secret": "true" if r["key"] in hidden else "false",
        }
        for r in view["rows"]
    ]


def _safe(cell: Any) -> Any:
    # A spreadsheet would run a text cell starting with one of these as a formula (CSV injection).
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + cell
    return cell


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _safe(v) for k, v in row.items()})
    return out.getvalue()


def to_xlsx(rows: list[dict[str, Any]], sheet: str) -> bytes:
    """The rows of `export_rows` (suppression already applied) as a spreadsheet: nothing is recomputed here."""
    return workbook(XLSX_COLUMNS, rows, sheet=sheet)
