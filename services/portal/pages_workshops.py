"""A partner's workshops: schedule one at a venue, see it, register people, cancel a seat or the session."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.portal.backends import ApiError
from services.portal.formats import french_datetime
from services.portal.labels import LABELS, field_errors, refusal
from services.portal.web import FormDep, Page, RecordId, redirect, render, role_page

__all__ = ["router", "zone_name", "usable_venues", "workshop_page", "workshop_context", "PartnerPage"]

router = APIRouter()
PartnerPage = Annotated[Page, Depends(role_page("partner"))]
ZONES = {
    "Europe/Paris": "heure de Paris",
    "America/Guadeloupe": "heure de la Guadeloupe",
    "America/Martinique": "heure de la Martinique",
    "America/Cayenne": "heure de la Guyane",
    "Indian/Reunion": "heure de La Réunion",
    "Indian/Mayotte": "heure de Mayotte",
}
# The API's field names → the schedule form's.
SCHEDULE_FIELDS = {
    "venue_id": "lieu",
    "theme": "theme",
    "starts_local": "jour",
    "duration_minutes": "duree",
    "capacity": "capacite",
    "commitment": "engagement",
}


def zone_name(tz: str | None) -> str:
    return ZONES.get(tz or "", f"fuseau {tz}" if tz else "heure locale")


async def usable_venues(page: Page) -> list[dict[str, Any]]:
    """Venues where this partner may hold a session: in its départements, not another partner's premises."""
    partner = await page.partners.get(f"/v1/partners/{page.partner_id}")
    lists = await asyncio.gather(
        *(page.workshops.get("/v1/venues", departement=d, limit=1000) for d in partner["departements"][:20])
    )
    venues = [v for found in lists for v in found if v.get("partner_id") in (None, page.partner_id)]
    return sorted(venues, key=lambda v: (v["departement"], v["name"]))


# --- list and schedule --------------------------------------------------------------------------------


@router.get("/ateliers", include_in_schema=False)
async def workshops(page: PartnerPage) -> Response:
    items = await page.workshops.get("/v1/workshops", limit=1000)
    items.sort(key=lambda w: w["starts_local"], reverse=True)
    venue_ids = sorted({w["venue_id"] for w in items})[:100]
    found = await asyncio.gather(*(page.workshops.get(f"/v1/venues/{v}") for v in venue_ids))
    names = {v["id"]: v["name"] for v in found}
    return render(page.request, "workshops.html", title="Mes ateliers", items=items, names=names, zone_name=zone_name)


def _schedule_form(
    page: Page,
    venues: list[dict[str, Any]],
    values: dict[str, Any],
    errors: dict[str, str],
    message: str | None = None,
    status: int = 200,
) -> Response:
    options = [(v["id"], f"{v['name']} — {v['departement']} ({zone_name(v['timezone'])})") for v in venues]
    context = {"venues": options, "values": values, "errors": errors, "message": message}
    return render(page.request, "workshop_new.html", status=status, title="Programmer un atelier", **context)


@router.get("/ateliers/nouveau", include_in_schema=False)
async def schedule_page(page: PartnerPage) -> Response:
    values = {"form_id": uuid.uuid4().hex, "duree": "120", "capacite": "12", "engagement": "digital_inclusion"}
    return _schedule_form(page, await usable_venues(page), values, {})


def _parse_schedule(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body from the form, or the errors of each field (in French)."""
    errors: dict[str, str] = {}
    if not form.get("lieu"):
        errors["lieu"] = "Choisissez le lieu de l'atelier."
    if form.get("theme") not in LABELS["theme"]:
        errors["theme"] = "Choisissez le thème de l'atelier."
    day = when = None
    try:
        day = date.fromisoformat(form.get("jour", ""))
    except ValueError:
        errors["jour"] = "Indiquez la date de l'atelier (jj/mm/aaaa)."
    try:
        when = time.fromisoformat(form.get("heure", ""))
    except ValueError:
        errors["heure"] = "Indiquez l'heure de début (hh:mm)."
    numbers = {}
    for name, low, high, words in (("duree", 15, 480, "La durée"), ("capacite", 1, 500, "Le nombre de places")):
        try:
            numbers[name] = int(form.get(name, ""))
            if not low <= numbers[name] <= high:
                raise ValueError
        except ValueError:
            errors[name] = f"{words} est un nombre entier entre {low} et {high}."
    if form.get("engagement") not in LABELS["commitment"]:
        errors["engagement"] = "Choisissez l'engagement auquel l'atelier contribue."
    if not re.fullmatch(r"[0-9a-f]{32}", form.get("form_id", "")):
        errors["form"] = "Ce formulaire est incomplet : rechargez la page."
    if errors or day is None or when is None:
        return {}, errors
    body = {
        "workshop_id": f"ws-{form['form_id']}",
        "venue_id": form["lieu"],
        "theme": form["theme"],
        "starts_local": datetime.combine(day, when.replace(second=0, microsecond=0)).isoformat(),
        "duration_minutes": numbers["duree"],
        "capacity": numbers["capacite"],
        "commitment": form["engagement"],
    }
    return body, {}


@router.post("/ateliers/nouveau", include_in_schema=False)
async def schedule(page: PartnerPage, form: FormDep) -> Response:
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    body, errors = _parse_schedule(values)
    message = errors.pop("form", None)
    if errors or message:
        return _schedule_form(page, await usable_venues(page), values, errors, message, status=422)
    try:
        result = await page.workshops.post("/v1/workshops", {**body, "partner_id": page.partner_id})
    except ApiError as exc:
        if exc.status == 401:
            raise
        errors = field_errors(exc.detail, SCHEDULE_FIELDS)
        text = refusal(exc.detail)
        if "changement d'heure" in text:
            errors["heure"] = text
        elif "lieu" in text.lower():
            errors["lieu"] = text
        return _schedule_form(
            page, await usable_venues(page), values, errors, None if errors else text, status=exc.status
        )
    record = result["record"]
    when = french_datetime(record["starts_local"])
    flash = f"Atelier programmé le {when} ({zone_name(record.get('timezone'))})."
    return redirect(page.request, f"/ateliers/{result['id']}", flash)


# --- one workshop ---------------------------------------------------------------------------------------


async def workshop_context(page: Page, workshop_id: str) -> dict[str, Any]:
    workshop, attendances = await asyncio.gather(
        page.workshops.get(f"/v1/workshops/{workshop_id}"),
        page.workshops.get(f"/v1/workshops/{workshop_id}/attendances"),
    )
    venue = await page.workshops.get(f"/v1/venues/{workshop['venue_id']}")
    present = {a["registration_id"]: a for a in attendances if a.get("registration_id") and not a.get("retracted")}
    regs = workshop["registrations"]
    return {
        "workshop": workshop,
        "venue": venue,
        "attendances": attendances,
        "present": present,
        "seated": [r for r in regs if r["status"] == "registered"],
        "waiting": sorted((r for r in regs if r["status"] == "waiting"), key=lambda r: r["waiting_position"] or 0),
        "zone": zone_name(workshop.get("timezone")),
        "numbers": {r["registration_id"]: n for n, r in enumerate(regs, start=1)},
        "errors": {},
        "values": {"origin": "referral", "form_id": uuid.uuid4().hex},
    }


async def workshop_page(page: Page, workshop_id: str, status: int = 200, **extra: Any) -> Response:
    context = await workshop_context(page, workshop_id)
    context.update(extra)
    title = f"Atelier {LABELS['theme'].get(context['workshop']['theme'], '')}"
    return render(page.request, "workshop.html", status=status, title=title, **context)


@router.get("/ateliers/{workshop_id}", include_in_schema=False)
async def workshop(page: PartnerPage, workshop_id: RecordId) -> Response:
    return await workshop_page(page, workshop_id)


@router.post("/ateliers/{workshop_id}/inscriptions", include_in_schema=False)
async def register(page: PartnerPage, workshop_id: RecordId, form: FormDep) -> Response:
    reference = str(form.get("client_reference", "")).strip()
    origin = str(form.get("origin", ""))
    form_id = str(form.get("form_id", ""))
    values = {"client_reference": reference, "origin": origin, "form_id": form_id or uuid.uuid4().hex}
    errors = {}
    if origin not in ("referral", "walk_in"):
        errors["origin"] = "Indiquez comment la personne est venue."
    elif origin == "referral" and not reference:
        errors["client_reference"] = (
            "Une personne orientée par La Poste se reconnaît à sa référence client : saisissez-la."
        )
    if len(reference) > 128:
        errors["client_reference"] = "La référence client compte au plus 128 caractères."
    if errors:
        return await workshop_page(page, workshop_id, 422, errors=errors, values=values, anchor="inscription")
    body: dict[str, Any] = {"origin": origin}
    if reference:
        body["client_reference"] = reference
    else:  # an anonymous walk-in: the form's own id makes a double submission harmless
        body["registration_id"] = f"walkin-{values['form_id'][:32]}"
    try:
        result = await page.workshops.post(f"/v1/workshops/{workshop_id}/registrations", body)
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await workshop_page(
            page,
            workshop_id,
            exc.status,
            errors={"client_reference": refusal(exc.detail)},
            values=values,
            anchor="inscription",
        )
    if result["status"] == "duplicate":
        flash = "Cette personne était déjà inscrite à cet atelier : rien n'a changé."
    elif result["registration_status"] == "waiting":
        flash = (
            "L'atelier est complet : la personne est inscrite en liste d'attente "
            f"(position {result['waiting_position']}). Elle aura la première place libérée."
        )
    else:
        flash = "Personne inscrite à l'atelier."
    return redirect(page.request, f"/ateliers/{workshop_id}", flash)


@router.post("/ateliers/{workshop_id}/inscriptions/{registration_id}/annulation", include_in_schema=False)
async def cancel_registration(
    page: PartnerPage, workshop_id: RecordId, registration_id: RecordId, form: FormDep
) -> Response:
    """Cancels one registration; the freed seat goes to the first person waiting, and the page says so."""
    context = await workshop_context(page, workshop_id)
    numbers = context["numbers"]
    if registration_id not in numbers:
        raise ApiError(404, f"no registration {registration_id}")
    path = f"/v1/workshops/{workshop_id}/registrations/{registration_id}/cancellation"
    try:
        result = await page.workshops.post(path)
    except ApiError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await workshop_page(page, workshop_id, exc.status, errors={"inscriptions": refusal(exc.detail)})
    flash = f"Inscription n° {numbers[registration_id]} annulée."
    promoted = result.get("promoted_registration_id")
    if promoted:
        flash += f" La place libérée revient à la personne n° {numbers.get(promoted, '?')}, qui attendait."
    return redirect(page.request, f"/ateliers/{workshop_id}#inscriptions", flash)


@router.post("/ateliers/{workshop_id}/annulation", include_in_schema=False)
async def cancel_workshop(page: PartnerPage, workshop_id: RecordId, form: FormDep) -> Response:
    reason = str(form.get("reason", "")).strip()
    if len(reason) < 3:
        errors = {"annulation": "Indiquez pourquoi l'atelier est annulé (3 caractères au moins)."}
        return await workshop_page(page, workshop_id, 422, errors=errors, anchor="annulation")
    await page.workshops.post(f"/v1/workshops/{workshop_id}/cancellation", {"reason": reason[:500]})
    flash = "Atelier annulé : les personnes inscrites et en attente en sont informées."
    return redirect(page.request, f"/ateliers/{workshop_id}", flash)
