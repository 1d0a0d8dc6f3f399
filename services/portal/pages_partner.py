"""A partner's own organisation, its partnerships and its figures for the year (with a CSV download)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from services.portal.labels import label
from services.portal.pages_auth import partner_figures
from services.portal.web import Page, render, role_page

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
async def figures(page: PartnerPage, annee: YearQuery = None) -> Response:
    year = annee or date.today().year
    figures = await partner_figures(page.metrics, page.partner_id or "", year)
    this_year = date.today().year
    years = sorted(set(range(this_year - 5, this_year + 1)) | {year}, reverse=True)
    return render(page.request, "figures.html", title=f"Mes chiffres {year}", year=year, figures=figures, years=years)


@router.get("/chiffres.csv", include_in_schema=False)
async def figures_csv(page: PartnerPage, annee: YearQuery = None) -> Response:
    """The same numbers as the page, as a CSV a spreadsheet opens (`;`, UTF-8 with its mark)."""
    year = annee or date.today().year
    figures = await partner_figures(page.metrics, page.partner_id or "", year)
    if figures is None:
        return Response("Les chiffres sont momentanément indisponibles.", status_code=503, media_type="text/plain")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["annee", "partenaire", "indicateur", "libelle", "valeur"])
    for indicator, value in figures.items():
        writer.writerow([year, page.partner_id, indicator, label("indicator", indicator), value])
    headers = {
        "Content-Disposition": f'attachment; filename="chiffres-{year}.csv"',
        "Cache-Control": "no-store",
    }
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
