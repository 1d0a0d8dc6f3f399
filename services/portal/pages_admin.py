"""La Poste staff: partnerships across the network, their lifecycle (sign, activate, renew, end), the CSV import,
organisations. Partners open their own partnerships' pages read-only."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.portal.backends import ApiError
from services.portal.labels import LABELS, refusal
from services.portal.web import FormDep, Page, PageDep, RecordId, redirect, render, role_page

__all__ = ["router"]

router = APIRouter()
StaffPage = Annotated[Page, Depends(role_page("admin", "monitoring"))]
AdminPage = Annotated[Page, Depends(role_page("admin"))]
PAGE_SIZE = 20
MAX_IMPORT_BYTES = 10 * 1024 * 1024
# Each action: its API path, the form's date fields (API name → French label), and its words once done.
ACTIONS: dict[str, tuple[str, dict[str, str], str]] = {
    "signer": ("sign", {"signed_on": "Date de signature"}, "Partenariat signé."),
    "activer": ("activate", {"activated_on": "Date d'activation"}, "Partenariat activé."),
    "renouveler": (
        "renew",
        {"renewed_on": "Date du renouvellement", "ends_on": "Nouvelle date de fin"},
        "Partenariat renouvelé.",
    ),
    "terminer": ("end", {"ended_on": "Date de fin"}, "Partenariat terminé."),
}


async def _names(page: Page, partner_ids: set[str]) -> dict[str, str]:
    found = await asyncio.gather(*(page.partners.get(f"/v1/partners/{p}") for p in sorted(partner_ids)))
    return {p["id"]: p["name"] for p in found}


@router.get("/admin/partenariats", include_in_schema=False)
async def partnerships(
    page: StaffPage,
    statut: str | None = None,
    type: str | None = None,  # noqa: A002 - the query parameter's French-facing name
    departement: Annotated[str | None, Query(max_length=3)] = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
) -> Response:
    filters = {
        "status": statut if statut in LABELS["status"] else None,
        "partnership_type": type if type in LABELS["partnership_type"] else None,
        "departement": departement or None,
    }
    listed = await page.partners.get("/v1/partnerships", **filters, page=page_no, page_size=PAGE_SIZE)
    names = await _names(page, {p["partner_id"] for p in listed["items"]})
    pages = max(1, -(-listed["total"] // PAGE_SIZE))
    query = {
        "statut": filters["status"] or "",
        "type": filters["partnership_type"] or "",
        "departement": departement or "",
    }
    return render(
        page.request,
        "admin_partnerships.html",
        title="Partenariats",
        listed=listed,
        names=names,
        query=query,
        page_no=page_no,
        pages=pages,
    )


async def _partnership_page(page: Page, partnership_id: str, status: int = 200, **extra: Any) -> Response:
    partnership = await page.partners.get(f"/v1/partnerships/{partnership_id}")
    partner = await page.partners.get(f"/v1/partners/{partnership['partner_id']}")
    context = {"p": partnership, "partner": partner, "today": date.today().isoformat(), "errors": {}, "values": {}}
    context.update(extra)
    return render(page.request, "partnership.html", status=status, title="Partenariat", **context)


@router.get("/partenariats/{partnership_id}", include_in_schema=False)
async def partnership(page: PageDep, partnership_id: RecordId) -> Response:
    return await _partnership_page(page, partnership_id)


@router.post("/partenariats/{partnership_id}/{action}", include_in_schema=False)
async def lifecycle(page: AdminPage, partnership_id: RecordId, action: str, form: FormDep) -> Response:
    if action not in ACTIONS:
        raise ApiError(404, f"no action {action}")
    path, fields, done = ACTIONS[action]
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    errors: dict[str, str] = {}
    body: dict[str, Any] = {}
    for name, words in fields.items():
        try:
            body[name] = date.fromisoformat(values.get(name, "")).isoformat()
        except ValueError:
            errors[f"{action}-{name}"] = f"{words} : indiquez une date (jj/mm/aaaa)."
    if action == "terminer":
        if values.get("reason") not in LABELS["end_reason"]:
            errors["terminer-reason"] = "Choisissez le motif de fin."
        body["reason"] = values.get("reason")
        if values.get("note", "").strip():
            body["note"] = values["note"].strip()[:500]
    if errors:
        return await _partnership_page(page, partnership_id, 422, errors=errors, values=values, action=action)
    try:
        await page.partners.post(f"/v1/partnerships/{partnership_id}/{path}", body)
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            raise
        errors = {f"{action}-form": refusal(exc.detail)}
        return await _partnership_page(page, partnership_id, exc.status, errors=errors, values=values, action=action)
    return redirect(page.request, f"/partenariats/{partnership_id}", done)


@router.get("/admin/import", include_in_schema=False)
async def import_page(page: AdminPage) -> Response:
    return render(page.request, "admin_import.html", title="Import de partenariats", errors={}, report=None)


@router.post("/admin/import", include_in_schema=False)
async def import_file(page: AdminPage, form: FormDep) -> Response:
    upload = form.get("file")
    error = None
    raw = b""
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = "Choisissez le fichier CSV à importer."
    else:
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
        if not raw.strip():
            error = "Ce fichier est vide."
        elif len(raw) > MAX_IMPORT_BYTES:
            error = "Le fichier dépasse 10 Mo : coupez-le en plusieurs."
    report = None
    if error is None:
        try:
            response = await page.partners.request(
                "POST", "/v1/partnerships/import", files={"file": ("import.csv", raw, "text/csv")}
            )
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            error = refusal(exc.detail)
        else:
            report = response.json()
            for problem in report["problems"]:
                problem["reasons_fr"] = [refusal(r, prefix=False) for r in problem["reasons"]]
    context = {"errors": {"file": error} if error else {}, "report": report}
    return render(
        page.request, "admin_import.html", status=422 if error else 200, title="Import de partenariats", **context
    )


@router.get("/admin/organisations", include_in_schema=False)
async def organisations(
    page: StaffPage,
    departement: Annotated[str | None, Query(max_length=3)] = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
) -> Response:
    listed = await page.partners.get("/v1/partners", departement=departement or None, page=page_no, page_size=PAGE_SIZE)
    pages = max(1, -(-listed["total"] // PAGE_SIZE))
    return render(
        page.request,
        "admin_organisations.html",
        title="Organisations",
        listed=listed,
        departement=departement or "",
        page_no=page_no,
        pages=pages,
    )
