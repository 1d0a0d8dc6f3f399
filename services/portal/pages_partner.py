"""A partner's own organisation, its partnerships and its figures for the year by month (CSV and XLSX files)."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from services.portal.figures import partner_months, table, to_csv, to_xlsx
from services.portal.web import Page, render, role_page
from shared.xlsx import XLSX_MEDIA_TYPE

__all__ = ["router"]

router = APIRouter()
PartnerPage = Annotated[Page, Depends(role_page("partner"))]
YearQuery = Annotated[int | None, Query(ge=2000, le=2100)]


@router.get("/organisation", include_in_schema=False)
async def organisation(page: PartnerPage) -> Response:
    partner, partnerships, missions = await asyncio.gather(
        page.partners.get(f"/v1/partners/{page.partner_id}"),
        page.partners.get("/v1/partnerships", page_size=100),
        page.partners.get("/v1/missions", page_size=100),
    )
    context = {"partner": partner, "partnerships": partnerships, "missions": missions}
    return render(page.request, "organisation.html", title="Mon organisation", **context)


@router.get("/chiffres", include_in_schema=False)
async def figures_page(page: PartnerPage, annee: YearQuery = None) -> Response:
    year = annee or date.today().year
    body = await partner_months(page.metrics, page.partner_id or "", year)
    this_year = date.today().year
    years = sorted(set(range(this_year - 5, this_year + 1)) | {year}, reverse=True)
    rows = table(body) if body else []
    return render(
        page.request, "figures.html", title=f"Mes chiffres {year}", year=year, body=body, rows=rows, years=years
    )


async def _figures_file(page: Page, annee: int | None) -> tuple[int, dict[str, Any] | None]:
    year = annee or date.today().year
    return year, await partner_months(page.metrics, page.partner_id or "", year)


UNAVAILABLE = "Les chiffres sont momentanément indisponibles."


def _download(body: bytes, name: str, media_type: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return Response(body, media_type=media_type, headers=headers)


@router.get("/chiffres.csv", include_in_schema=False)
async def figures_csv(page: PartnerPage, annee: YearQuery = None) -> Response:
    """The page's table as a CSV a French spreadsheet opens (`;`, UTF-8 with its mark)."""
    year, body = await _figures_file(page, annee)
    if body is None:
        return Response(UNAVAILABLE, status_code=503, media_type="text/plain")
    return _download(to_csv(body).encode("utf-8"), f"chiffres-{year}.csv", "text/csv; charset=utf-8")


@router.get("/chiffres.xlsx", include_in_schema=False)
async def figures_xlsx(page: PartnerPage, annee: YearQuery = None) -> Response:
    """The page's table as a spreadsheet: months as dates, numbers as numbers, the total in bold."""
    year, body = await _figures_file(page, annee)
    if body is None:
        return Response(UNAVAILABLE, status_code=503, media_type="text/plain")
    return _download(await run_in_threadpool(to_xlsx, body), f"chiffres-{year}.xlsx", XLSX_MEDIA_TYPE)
