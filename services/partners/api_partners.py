"""Partners HTTP routes of organisations: create, list, export (CSV, XLSX), read, edit, the skills label."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from services.partners import handlers
from services.partners.api_common import (
    CSV_DOC,
    XLSX_DOC,
    Admin,
    PageNo,
    PageSize,
    Reader,
    StoreDep,
    Writer,
    csv_response,
    page_of,
    scope,
    visible,
    xlsx_response,
)
from services.partners.csvio import PARTNER_EXPORT, render_csv
from services.partners.domain import PartnerKind
from services.partners.exports import PARTNER_XLSX, collect, partner_rows, to_xlsx
from services.partners.schemas import Page, PartnerCreate, PartnerPublic, PartnerUpdate
from shared.events import DepartementCode, FactDate
from shared.identity import Principal, Role

__all__ = ["router", "partner_public"]

router = APIRouter(prefix="/v1")


def partner_public(doc: dict[str, Any], *, contacts: bool = False) -> PartnerPublic:
    fields = {k: v for k, v in doc.items() if k in PartnerPublic.model_fields and k != "contacts"}
    return PartnerPublic(id=doc["_id"], **fields, contacts=doc.get("contacts", []) if contacts else None)


def _partner_query(
    principal: Principal, kind: PartnerKind | None, departement: str | None, skills_label: bool | None
) -> dict[str, Any]:
    query: dict[str, Any] = scope(principal, "_id")
    if kind:
        query["kind"] = kind.value
    if departement:
        query["departements"] = departement
    if skills_label is not None:
        query["skills_label"] = skills_label
    return query


@router.post("/partners", status_code=201, response_model=PartnerPublic, tags=["partners"])
async def create_partner(body: PartnerCreate, store: StoreDep, _: Admin) -> PartnerPublic:
    return partner_public((await handlers.create_partner(store, body)).record, contacts=True)


@router.get("/partners", response_model=Page[PartnerPublic], tags=["partners"])
async def list_partners(
    store: StoreDep,
    principal: Reader,
    kind: PartnerKind | None = None,
    departement: DepartementCode | None = None,
    skills_label: bool | None = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> dict[str, Any]:
    query = _partner_query(principal, kind, departement, skills_label)
    return await page_of(store.partners, query, page, page_size, partner_public)


@router.get("/partners/export.csv", tags=["partners"], response_class=StreamingResponse, responses=CSV_DOC)
async def export_partners(
    store: StoreDep,
    principal: Reader,
    kind: PartnerKind | None = None,
    departement: DepartementCode | None = None,
    skills_label: bool | None = None,
) -> StreamingResponse:
    """Organisations as CSV (never their contacts)."""
    query = _partner_query(principal, kind, departement, skills_label)

    async def rows() -> AsyncIterator[str]:
        yield next(render_csv(PARTNER_EXPORT, []))
        async for batch in partner_rows(store, query):
            chunks = render_csv(PARTNER_EXPORT, batch)
            next(chunks)  # the header, already sent
            for chunk in chunks:
                yield chunk

    return csv_response("partners.csv", rows())


@router.get("/partners/export.xlsx", tags=["partners"], response_class=Response, responses=XLSX_DOC)
async def export_partners_xlsx(
    store: StoreDep,
    principal: Reader,
    kind: PartnerKind | None = None,
    departement: DepartementCode | None = None,
    skills_label: bool | None = None,
) -> Response:
    """The rows of `/v1/partners/export.csv` as a spreadsheet (French headers, typed cells)."""
    rows = await collect(partner_rows(store, _partner_query(principal, kind, departement, skills_label)))
    body = await run_in_threadpool(to_xlsx, PARTNER_XLSX, rows, "Organisations")
    return xlsx_response("partners.xlsx", body)


@router.get("/partners/{partner_id}", response_model=PartnerPublic, tags=["partners"])
async def get_partner(partner_id: str, store: StoreDep, principal: Reader) -> PartnerPublic:
    version = await visible(store.partners, partner_id, principal, "partner")
    # Contacts are personal data: the organisation itself and La Poste admins see them, monitoring does not.
    return partner_public(version.head(), contacts=principal.role != Role.MONITORING)


@router.patch("/partners/{partner_id}", response_model=PartnerPublic, tags=["partners"])
async def update_partner(partner_id: str, body: PartnerUpdate, store: StoreDep, principal: Writer) -> PartnerPublic:
    await visible(store.partners, partner_id, principal, "partner")
    return partner_public((await handlers.update_partner(store, partner_id, body)).record, contacts=True)


class SkillsLabel(BaseModel):
    labelled: bool
    labelled_on: FactDate | None = None


@router.put("/partners/{partner_id}/skills-label", response_model=PartnerPublic, tags=["skills sponsorship"])
async def put_skills_label(partner_id: str, body: SkillsLabel, store: StoreDep, _: Admin) -> PartnerPublic:
    """La Poste labels (or unlabels) an association for skills sponsorship."""
    result = await handlers.set_skills_label(store, partner_id, body.labelled, body.labelled_on)
    return partner_public(result.record)
