"""A partner's own figures for the year, month by month, as the metrics API gives them; their CSV and XLSX files."""

from __future__ import annotations

import csv
import io
from typing import Any

from services.portal.backends import Api, ApiError
from services.portal.labels import label
from shared.xlsx import Column, workbook

__all__ = ["partner_months", "partner_figures", "table", "columns", "to_csv", "to_xlsx"]


async def partner_months(metrics: Api, partner_id: str, year: int) -> dict[str, Any] | None:
    """The metrics API's months and total for the signed-in partner (called with the person's own token, so the
    API decides what they may read); None when the metrics service does not answer."""
    try:
        return await metrics.get(f"/v1/partners/{partner_id}/months", year=year)
    except ApiError as exc:
        if exc.status < 500:
            raise  # a refusal (an expired session …) is the page's to show, not "unavailable"
        return None


async def partner_figures(metrics: Api, partner_id: str, year: int) -> dict[str, int] | None:
    """The partner's totals for the year (the home page's figures)."""
    body = await partner_months(metrics, partner_id, year)
    return None if body is None else {i: int(body["total"][i]) for i in body["indicators"]}


def columns(body: dict[str, Any]) -> list[Column]:
    indicators = [Column(i, label("indicator", i), "number", width=12) for i in body["indicators"]]
    return [Column("year", "Année", "number"), Column("month", "Mois", "month", width=16), *indicators]


def table(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per month, then the year's total: the page's table and both files."""
    months = [{"year": body["year"], **m} for m in body["months"]]
    return [*months, {"year": body["year"], "month": "Total", **body["total"]}]


def to_csv(body: dict[str, Any]) -> str:
    """For a French spreadsheet: `;` between cells, UTF-8 with its byte-order mark, months as YYYY-MM."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    cols = columns(body)
    writer.writerow([c.header for c in cols])
    for row in table(body):
        writer.writerow([row[c.key] for c in cols])
    return "\ufeff" + out.getvalue()


def to_xlsx(body: dict[str, Any]) -> bytes:
    return workbook(columns(body), table(body), sheet=f"Chiffres {body['year']}", bold_last=True)
