"""One spreadsheet (XLSX) writer for every export: typed cells, French headers, a frozen header row, fitted widths.

XlsxWriter in constant-memory mode (rows go to a temporary file as they are written, not into a tree of cell
objects); every cell is written with its own type, so text is never read back as a formula or a number (no CSV
injection, a "01" code keeps its zero) and numbers, dates and booleans are real spreadsheet values.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import xlsxwriter

__all__ = ["XLSX_MEDIA_TYPE", "Column", "workbook", "MAX_WIDTH"]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Kind = Literal["text", "number", "date", "month", "bool", "list"]
MAX_WIDTH = 60  # characters: a long title wraps in the cell rather than pushing every column off screen
_FORMATS = {
    "date": "dd/mm/yyyy",
    "month": "[$-fr-FR]mmmm yyyy",  # "mars 2026" whatever the reader's own locale
}


@dataclass(frozen=True)
class Column:
    """One column: the row field it reads, its French header, the type of its cells, a minimum width."""

    key: str
    header: str
    kind: Kind = "text"
    width: int = 8


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def _as_date(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    text = str(value)
    if len(text) == 7:  # "2026-03": a month
        text += "-01"
    return datetime.fromisoformat(text[:10])


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "oui")


def _text(kind: Kind, value: Any) -> str:
    if isinstance(value, list | tuple) and kind == "list":
        return ";".join(str(v) for v in value)
    return str(value)


def _shown_width(column: Column, value: Any) -> int:
    if _blank(value):
        return 0
    if column.kind in ("date", "bool"):
        return 10
    if column.kind == "month":
        return 15
    return len(_text(column.kind, value))


def workbook(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    sheet: str = "Export",
    bold_last: bool = False,
) -> bytes:
    """The XLSX file of `rows` (dicts read by each column's key) under a header row of the French headers.

    `bold_last` sets the last row apart (a total)."""
    rows = list(rows)
    out = io.BytesIO()
    book = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    header = book.add_format({"bold": True, "bg_color": "#E3E3FD", "bottom": 1, "text_wrap": True, "valign": "top"})
    plain = {kind: book.add_format({"num_format": fmt}) for kind, fmt in _FORMATS.items()}
    strong = {kind: book.add_format({"num_format": fmt, "bold": True}) for kind, fmt in _FORMATS.items()}
    strong_plain = book.add_format({"bold": True})
    ws = book.add_worksheet(_sheet_name(sheet))
    for i, column in enumerate(columns):
        widest = max((_shown_width(column, r.get(column.key)) for r in rows), default=0)
        ws.set_column(i, i, min(MAX_WIDTH, max(column.width, len(column.header) + 2, widest + 2)))
    for i, column in enumerate(columns):
        ws.write_string(0, i, column.header, header)
    ws.freeze_panes(1, 0)
    for n, row in enumerate(rows, start=1):
        last = bold_last and n == len(rows)
        for i, column in enumerate(columns):
            _write(ws, n, i, column, row.get(column.key), (strong if last else plain), strong_plain if last else None)
    ws.autofilter(0, 0, max(len(rows), 1), len(columns) - 1)
    book.close()
    return out.getvalue()


def _write(ws: Any, r: int, c: int, column: Column, value: Any, formats: dict[str, Any], base: Any) -> None:
    if _blank(value):
        ws.write_blank(r, c, None, base)
    elif column.kind == "number" and not isinstance(value, str):
        ws.write_number(r, c, value, base)
    elif column.kind in ("date", "month") and not (isinstance(value, str) and not value[:1].isdigit()):
        ws.write_datetime(r, c, _as_date(value), formats[column.kind])
    elif column.kind == "bool":
        ws.write_boolean(r, c, _as_bool(value), base)
    else:  # text, a list, or a word in a typed column (a "Total" label)
        ws.write_string(r, c, _text(column.kind, value), base)


def _sheet_name(name: str) -> str:
    # A sheet's name has at most 31 characters and none of []:*?/\ (Excel refuses the file otherwise).
    clean = "".join(" " if ch in "[]:*?/\\" else ch for ch in name).strip()
    return (clean or "Export")[:31]
