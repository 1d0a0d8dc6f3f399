"""A partner's one-to-one accompaniments: record one at a venue (time in the venue's zone), list them, retract a
mistake."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.portal.backends import ApiError
from services.portal.labels import LABELS, refusal
from services.portal.pages_workshops import usable_venues, zone_name
from services.portal.web import FormDep, Page, RecordId, redirect, render, role_page

__all__ = ["router"]

router = APIRouter()
PartnerPage = Annotated[Page, Depends(role_page("partner"))]


async def _page(
    page: Page,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
    venues: list[dict[str, Any]] | None = None,
) -> Response:
    items = await page.workshops.get("/v1/accompaniments", limit=1000)
    items.sort(key=lambda a: a["completed_at"], reverse=True)
    venues = await usable_venues(page) if venues is None else venues
    options = [(v["id"], f"{v['name']} — {v['departement']} ({zone_name(v['timezone'])})") for v in venues]
    context = {"items": items, "values": values, "errors": errors, "venue_options": options}
    return render(
        page.request, "accompaniments.html", status=status, title="Accompagnements", zone_name=zone_name, **context
    )


def _fresh() -> dict[str, Any]:
    return {"form_id": uuid.uuid4().hex, "duree": "30", "jour": date.today().isoformat()}


@router.get("/accompagnements", include_in_schema=False)
async def accompaniments(page: PartnerPage) -> Response:
    return await _page(page, _fresh(), {})


def _parse(form: dict[str, str], venues: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body from the form (the time is the chosen venue's), or each field's error (in French)."""
    errors: dict[str, str] = {}
    if form.get("need") not in LABELS["need"]:
        errors["need"] = "Choisissez le besoin de la personne."
    venue = next((v for v in venues if v["id"] == form.get("lieu")), None)
    if venue is None:
        errors["lieu"] = "Choisissez le lieu où l'accompagnement a eu lieu."
    try:
        minutes = int(form.get("duree", ""))
        if not 1 <= minutes <= 480:
            raise ValueError
    except ValueError:
        errors["duree"] = "La durée est un nombre entier de minutes, entre 1 et 480."
    try:
        day = date.fromisoformat(form.get("jour", ""))
        at = time.fromisoformat(form.get("heure", ""))
    except ValueError:
        errors["jour"] = "Indiquez la date et l'heure de fin de l'accompagnement."
    if not re.fullmatch(r"[0-9a-f]{32}", form.get("form_id", "")):
        errors["jour"] = "Ce formulaire est incomplet : rechargez la page."
    if errors or venue is None:
        return {}, errors
    completed = datetime.combine(day, at, ZoneInfo(venue["timezone"]))
    body = {
        "accompaniment_id": f"acc-{form['form_id']}",
        "channel": "partner",
        "need": form["need"],
        "duration_minutes": minutes,
        "completed_at": completed.isoformat(),
        "venue_id": venue["id"],
    }
    reference = form.get("client_reference", "").strip()
    if reference:
        body["client_reference"] = reference[:128]
    return body, {}


@router.post("/accompagnements", include_in_schema=False)
async def record(page: PartnerPage, form: FormDep) -> Response:
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    venues = await usable_venues(page)
    body, errors = _parse(values, venues)
    if errors:
        return await _page(page, values, errors, 422, venues)
    try:
        result = await page.workshops.post("/v1/accompaniments", {**body, "partner_id": page.partner_id})
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            raise
        text = refusal(exc.detail)
        if "future" in str(exc.detail):
            text = "Cet accompagnement est dans le futur : enregistrez-le une fois qu'il a eu lieu."
        return await _page(page, values, {"jour": text}, exc.status, venues)
    done = result["status"] == "duplicate"
    flash = "Cet accompagnement était déjà enregistré." if done else "Accompagnement enregistré."
    return redirect(page.request, "/accompagnements", flash)


@router.post("/accompagnements/{accompaniment_id}/retrait", include_in_schema=False)
async def retract(page: PartnerPage, accompaniment_id: RecordId, form: FormDep) -> Response:
    reason = str(form.get("reason", "")).strip()
    if len(reason) < 3:
        errors = {f"retrait-{accompaniment_id}": "Indiquez pourquoi il est retiré (3 caractères au moins)."}
        return await _page(page, _fresh(), errors, 422)
    await page.workshops.post(f"/v1/accompaniments/{accompaniment_id}/retraction", {"reason": reason})
    return redirect(page.request, "/accompagnements", "Accompagnement retiré : il ne compte plus.")
