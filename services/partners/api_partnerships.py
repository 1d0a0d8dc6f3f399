"""Partners HTTP routes of partnerships: drafts, lists, CSV and XLSX export, CSV import, the lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

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
    answered,
    csv_response,
    live,
    page_of,
    scope,
    visible,
    xlsx_response,
)
from services.partners.csvio import PARTNERSHIP_EXPORT, render_csv
from services.partners.domain import Status
from services.partners.exports import PARTNERSHIP_XLSX, collect, partnership_rows, to_xlsx
from services.partners.imports import import_csv
from services.partners.schemas import (
    ActivateCommand,
    EndCommand,
    ImportReport,
    Page,
    PartnershipCreate,
    PartnershipPublic,
    PartnershipUpdate,
    RenewCommand,
    SignCommand,
)
from services.partners.store import Store
from shared.errors import Invalid, NotFound
from shared.events import Commitment, DepartementCode, PartnershipType
from shared.identity import Principal, Role

__all__ = ["router", "partnership_public"]

router = APIRouter(prefix="/v1")
MAX_IMPORT_BYTES = 10 * 1024 * 1024


def partnership_public(doc: dict[str, Any], published: bool = True) -> PartnershipPublic:
    fields = {k: v for k, v in doc.items() if k in PartnershipPublic.model_fields}
    return PartnershipPublic(id=doc["_id"], **fields, published=published)


async def _publics(store: Store, docs: list[dict[str, Any]]) -> list[PartnershipPublic]:
    waiting = await store.unpublished(store.partnerships, (d["_id"] for d in docs))
    return [partnership_public(d, d["_id"] not in waiting) for d in docs]


def _partnership_query(
    principal: Principal,
    partner_id: str | None,
    partnership_type: PartnershipType | None,
    commitment: Commitment | None,
    departement: str | None,
    status: Status | None,
    signed_year: int | None,
) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if partner_id:
        query["partner_id"] = partner_id
    query.update(scope(principal))  # last: a partner's own scope wins over any partner_id it asks for
    if partnership_type:
        query["partnership_type"] = partnership_type.value
    if commitment:
        query["commitments"] = commitment.value
    if departement:
        query["departements"] = departement
    if status:
        query["status"] = status.value
    if signed_year:
        query["signed_year"] = signed_year
    return live(query)


class PartnershipFilters:
    def __init__(
        self,
        partner_id: str | None = None,
        partnership_type: PartnershipType | None = None,
        commitment: Commitment | None = None,
        departement: DepartementCode | None = None,
        status: Status | None = None,
        signed_year: Annotated[int | None, Query(ge=1990, le=2100)] = None,
    ) -> None:
        self.args = (partner_id, partnership_type, commitment, departement, status, signed_year)


Filters = Annotated[PartnershipFilters, Depends()]


@router.post("/partnerships", status_code=201, response_model=PartnershipPublic, tags=["partnerships"])
async def create_partnership(
    body: PartnershipCreate, store: StoreDep, principal: Writer, response: Response
) -> PartnershipPublic:
    """A draft partnership. A partner user creates its own; La Poste staff name the partner."""
    if principal.role == Role.PARTNER:
        if body.partner_id and body.partner_id != principal.partner_id:
            raise NotFound(f"no partner {body.partner_id}")
        partner_id = principal.partner_id
    else:
        partner_id = body.partner_id
    if not partner_id:
        raise Invalid("partner_id is required")
    result = await handlers.create_partnership(store, partner_id, body)
    if not result.created:
        response.status_code = 200
    return partnership_public(result.record, answered(response, result.published))


@router.get("/partnerships", response_model=Page[PartnershipPublic], tags=["partnerships"])
async def list_partnerships(
    store: StoreDep, principal: Reader, filters: Filters, page: PageNo = 1, page_size: PageSize = 50
) -> dict[str, Any]:
    query = _partnership_query(principal, *filters.args)
    listed = await page_of(store.partnerships, query, page, page_size, lambda d: d)
    return {**listed, "items": await _publics(store, listed["items"])}


@router.get("/partnerships/export.csv", tags=["partnerships"], response_class=StreamingResponse, responses=CSV_DOC)
async def export_partnerships(store: StoreDep, principal: Reader, filters: Filters) -> StreamingResponse:
    query = _partnership_query(principal, *filters.args)

    async def rows() -> AsyncIterator[str]:
        yield next(render_csv(PARTNERSHIP_EXPORT, []))
        async for batch in partnership_rows(store, query):
            chunks = render_csv(PARTNERSHIP_EXPORT, batch)
            next(chunks)  # the header, already sent
            for chunk in chunks:
                yield chunk

    return csv_response("partnerships.csv", rows())


@router.get("/partnerships/export.xlsx", tags=["partnerships"], response_class=Response, responses=XLSX_DOC)
async def export_partnerships_xlsx(store: StoreDep, principal: Reader, filters: Filters) -> Response:
    """The rows of `/v1/partnerships/export.csv` as a spreadsheet (French headers, dates as dates)."""
    rows = await collect(partnership_rows(store, _partnership_query(principal, *filters.args)))
    body = await run_in_threadpool(to_xlsx, PARTNERSHIP_XLSX, rows, "Partenariats")
    return xlsx_response("partnerships.xlsx", body)


@router.post("/partnerships/import", response_model=ImportReport, tags=["partnerships"])
async def import_partnerships(request: Request, store: StoreDep, _: Admin) -> ImportReport:
    """Bulk import (CSV body, or a multipart `file`): a report by line; the same file again changes nothing."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Invalid("send the CSV as the multipart field `file`")
        raw = await upload.read(MAX_IMPORT_BYTES + 1)
    else:
        raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        raise HTTPException(413, f"the file is larger than {MAX_IMPORT_BYTES} bytes: split it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("the CSV must be UTF-8") from None
    return await import_csv(store, text)


async def _check(store: Store, partnership_id: str, principal: Principal) -> None:
    await visible(store.partnerships, partnership_id, principal, "partnership")


@router.get("/partnerships/{partnership_id}", response_model=PartnershipPublic, tags=["partnerships"])
async def get_partnership(partnership_id: str, store: StoreDep, principal: Reader) -> PartnershipPublic:
    version = await visible(store.partnerships, partnership_id, principal, "partnership")
    return (await _publics(store, [version.head()]))[0]


@router.patch("/partnerships/{partnership_id}", response_model=PartnershipPublic, tags=["partnerships"])
async def update_partnership(
    partnership_id: str, body: PartnershipUpdate, store: StoreDep, principal: Writer, response: Response
) -> PartnershipPublic:
    await _check(store, partnership_id, principal)
    result = await handlers.update_partnership(store, partnership_id, body)
    return partnership_public(result.record, answered(response, result.published))


@router.delete("/partnerships/{partnership_id}", status_code=204, tags=["partnerships"])
async def delete_partnership(partnership_id: str, store: StoreDep, principal: Writer) -> Response:
    await _check(store, partnership_id, principal)
    await handlers.delete_draft(store, partnership_id)
    return Response(status_code=204)


async def _transition(
    store: Store, partnership_id: str, principal: Principal, cmd: handlers.LifecycleCommand, response: Response
) -> PartnershipPublic:
    await _check(store, partnership_id, principal)
    result = await handlers.transition(store, partnership_id, cmd)
    return partnership_public(result.record, answered(response, result.published))


@router.post("/partnerships/{partnership_id}/sign", response_model=PartnershipPublic, tags=["lifecycle"])
async def sign(
    partnership_id: str, body: SignCommand, store: StoreDep, principal: Admin, response: Response
) -> PartnershipPublic:
    """draft → signed (La Poste staff). Signing again with the same date is harmless."""
    return await _transition(store, partnership_id, principal, body, response)


@router.post("/partnerships/{partnership_id}/activate", response_model=PartnershipPublic, tags=["lifecycle"])
async def activate(
    partnership_id: str, body: ActivateCommand, store: StoreDep, principal: Admin, response: Response
) -> PartnershipPublic:
    """signed → active."""
    return await _transition(store, partnership_id, principal, body, response)


@router.post("/partnerships/{partnership_id}/renew", response_model=PartnershipPublic, tags=["lifecycle"])
async def renew(
    partnership_id: str, body: RenewCommand, store: StoreDep, principal: Admin, response: Response
) -> PartnershipPublic:
    """Extend a signed or active partnership: the same partnership (not a new one), a later end date."""
    return await _transition(store, partnership_id, principal, body, response)


@router.post("/partnerships/{partnership_id}/end", response_model=PartnershipPublic, tags=["lifecycle"])
async def end(
    partnership_id: str, body: EndCommand, store: StoreDep, principal: Admin, response: Response
) -> PartnershipPublic:
    """signed or active → ended, with a reason code."""
    return await _transition(store, partnership_id, principal, body, response)
