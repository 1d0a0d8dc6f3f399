"""Partners HTTP routes of skills sponsorship: missions, their volunteers and their completion."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from services.partners import handlers
from services.partners.api_common import (
    Admin,
    PageNo,
    PageSize,
    Reader,
    StoreDep,
    Writer,
    answered,
    page_of,
    scope,
    visible,
)
from services.partners.domain import MissionStatus
from services.partners.schemas import CompletionCommand, MissionCreate, MissionPublic, Page, VolunteerCreate
from services.partners.store import Store
from shared.errors import Invalid, NotFound
from shared.events import Commitment, DepartementCode
from shared.identity import Principal, Role

__all__ = ["router", "mission_public"]

router = APIRouter(prefix="/v1", tags=["skills sponsorship"])


def mission_public(doc: dict[str, Any], published: bool = True) -> MissionPublic:
    fields = {k: v for k, v in doc.items() if k in MissionPublic.model_fields and k != "volunteers"}
    return MissionPublic(id=doc["_id"], **fields, volunteers=len(doc.get("volunteers", [])), published=published)


async def _publics(store: Store, docs: list[dict[str, Any]]) -> list[MissionPublic]:
    waiting = await store.unpublished(store.missions, (d["_id"] for d in docs))
    return [mission_public(d, d["_id"] not in waiting) for d in docs]


@router.post("/missions", status_code=201, response_model=MissionPublic)
async def create_mission(body: MissionCreate, store: StoreDep, principal: Writer, response: Response) -> MissionPublic:
    """A labelled association announces a skills-sponsorship mission."""
    partner_id = principal.partner_id if principal.role == Role.PARTNER else body.partner_id
    if principal.role == Role.PARTNER and body.partner_id and body.partner_id != principal.partner_id:
        raise NotFound(f"no partner {body.partner_id}")
    if not partner_id:
        raise Invalid("partner_id is required")
    partner = await visible(store.partners, partner_id, principal, "partner")
    result = await handlers.create_mission(store, partner.head(), body)
    if not result.created:
        response.status_code = 200
    return mission_public(result.record, answered(response, result.published))


@router.get("/missions", response_model=Page[MissionPublic])
async def list_missions(
    store: StoreDep,
    principal: Reader,
    partner_id: str | None = None,
    status: MissionStatus | None = None,
    departement: DepartementCode | None = None,
    commitment: Commitment | None = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> dict[str, Any]:
    query: dict[str, Any] = {"partner_id": partner_id} if partner_id else {}
    query.update(scope(principal))
    for name, value in (("status", status), ("departement", departement), ("commitment", commitment)):
        if value:
            query[name] = str(value)
    listed = await page_of(store.missions, query, page, page_size, lambda d: d)
    return {**listed, "items": await _publics(store, listed["items"])}


async def _check(store: Store, mission_id: str, principal: Principal) -> None:
    await visible(store.missions, mission_id, principal, "mission")


@router.get("/missions/{mission_id}", response_model=MissionPublic)
async def get_mission(mission_id: str, store: StoreDep, principal: Reader) -> MissionPublic:
    version = await visible(store.missions, mission_id, principal, "mission")
    return (await _publics(store, [version.head()]))[0]


@router.post("/missions/{mission_id}/volunteers", response_model=MissionPublic)
async def add_volunteer(
    mission_id: str, body: VolunteerCreate, store: StoreDep, principal: Admin, response: Response
) -> MissionPublic:
    """La Poste records a postal employee volunteering (the staff number stays here; events carry counts)."""
    await _check(store, mission_id, principal)
    result = await handlers.add_volunteer(store, mission_id, body.staff_id)
    return mission_public(result.record, answered(response, result.published))


@router.post("/missions/{mission_id}/completion", response_model=MissionPublic)
async def complete_mission(
    mission_id: str, body: CompletionCommand, store: StoreDep, principal: Writer, response: Response
) -> MissionPublic:
    await _check(store, mission_id, principal)
    result = await handlers.complete_mission(store, mission_id, body)
    return mission_public(result.record, answered(response, result.published))
