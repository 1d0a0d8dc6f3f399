"""Attendance at a workshop: per person at the door, by the check-in sheet (with its per-line report), a
pre-filled sheet to download, and retracting a mistaken record."""

from __future__ import annotations

import csv
import io
import uuid

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.portal.backends import ApiError
from services.portal.labels import refusal
from services.portal.pages_workshops import PartnerPage, workshop_page
from services.portal.web import FormDep, RecordId, redirect

__all__ = ["router"]

router = APIRouter()
MAX_SHEET_BYTES = 256 * 1024


@router.post("/ateliers/{workshop_id}/presences", include_in_schema=False)
async def check_in(page: PartnerPage, workshop_id: RecordId, form: FormDep) -> Response:
    reference = str(form.get("client_reference", "")).strip()
    registration_id = str(form.get("registration_id", "")).strip()
    if not reference and not registration_id:
        errors = {"presence": "Saisissez la référence client de la personne présente."}
        return await workshop_page(page, workshop_id, 422, errors=errors, anchor="presence")
    body = {"client_reference": reference} if reference else {"registration_id": registration_id}
    try:
        result = await page.workshops.post(f"/v1/workshops/{workshop_id}/attendances", body)
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            raise
        errors = {"presence": refusal(exc.detail)}
        values = {"presence": reference, "origin": "referral", "form_id": uuid.uuid4().hex}
        return await workshop_page(page, workshop_id, exc.status, errors=errors, values=values, anchor="presence")
    if result["status"] == "duplicate":
        flash = "Cette présence était déjà enregistrée : elle ne compte qu'une fois."
    else:
        flash = "Présence enregistrée."
    return redirect(page.request, f"/ateliers/{workshop_id}#presences", flash)


@router.post("/ateliers/{workshop_id}/feuille", include_in_schema=False)
async def upload_sheet(page: PartnerPage, workshop_id: RecordId, form: FormDep) -> Response:
    sheet = form.get("sheet")
    error = None
    raw = b""
    if not isinstance(sheet, UploadFile) or not sheet.filename:
        error = "Choisissez le fichier CSV de la feuille d'émargement."
    else:
        raw = await sheet.read(MAX_SHEET_BYTES + 1)
        if not raw.strip():
            error = "Ce fichier est vide."
        elif len(raw) > MAX_SHEET_BYTES:
            error = "Une feuille pèse au plus 256 Ko : coupez-la en plusieurs fichiers."
    if error:
        return await workshop_page(page, workshop_id, 422, errors={"sheet": error}, anchor="feuille")
    files = {"sheet": ("feuille.csv", raw, "text/csv")}
    try:
        response = await page.workshops.request("POST", f"/v1/workshops/{workshop_id}/attendance-sheet", files=files)
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await workshop_page(
            page, workshop_id, exc.status, errors={"sheet": refusal(exc.detail)}, anchor="feuille"
        )
    report = response.json()
    for row in report["rows"]:
        if row.get("reason"):
            row["reason_fr"] = refusal(row["reason"])
    return await workshop_page(page, workshop_id, report=report, anchor="rapport")


@router.get("/ateliers/{workshop_id}/feuille-modele.csv", include_in_schema=False)
async def sheet_template(page: PartnerPage, workshop_id: RecordId) -> Response:
    """A sheet to print or fill in: one line per seated person (their registration number), seats numbered."""
    workshop = await page.workshops.get(f"/v1/workshops/{workshop_id}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["seat", "client_reference", "registration_id", "attended_at"])
    seated = [r for r in workshop["registrations"] if r["status"] == "registered"]
    for n, reg in enumerate(seated, start=1):
        writer.writerow([str(n), "", reg["registration_id"], ""])
    headers = {"Content-Disposition": f'attachment; filename="feuille-{workshop_id}.csv"', "Cache-Control": "no-store"}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.post("/ateliers/{workshop_id}/presences/{attendance_id}/retrait", include_in_schema=False)
async def retract(page: PartnerPage, workshop_id: RecordId, attendance_id: RecordId, form: FormDep) -> Response:
    reason = str(form.get("reason", "")).strip()
    if len(reason) < 3:
        errors = {f"retrait-{attendance_id}": "Indiquez pourquoi cette présence est retirée (3 caractères au moins)."}
        return await workshop_page(page, workshop_id, 422, errors=errors, anchor="presences")
    attendances = await page.workshops.get(f"/v1/workshops/{workshop_id}/attendances")
    if attendance_id not in {a["id"] for a in attendances}:
        raise ApiError(404, f"no attendance {attendance_id} in workshop {workshop_id}")
    await page.workshops.post(f"/v1/attendances/{attendance_id}/retraction", {"reason": reason})
    return redirect(page.request, f"/ateliers/{workshop_id}#presences", "Présence retirée : elle ne compte plus.")
