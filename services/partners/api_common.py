"""What the partners routes share: the store and role dependencies, visibility, pages, CSV and XLSX responses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.partners.domain import DELETED
from services.partners.store import Store
from shared.aggregates import Aggregates, Version
from shared.errors import NotFound
from shared.identity import Principal, Role, require_roles
from shared.xlsx import XLSX_MEDIA_TYPE

__all__ = [
    "StoreDep",
    "Reader",
    "Writer",
    "Admin",
    "PageNo",
    "PageSize",
    "scope",
    "live",
    "visible",
    "page_of",
    "heads",
    "csv_response",
    "xlsx_response",
    "CSV_DOC",
    "XLSX_DOC",
    "answered",
    "EXPORT_BATCH",
]

EXPORT_BATCH = 500


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]
Reader = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MONITORING, Role.PARTNER))]
Writer = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.PARTNER))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
PageNo = Annotated[int, Query(ge=1, le=100_000)]
PageSize = Annotated[int, Query(ge=1, le=500)]


def scope(principal: Principal, field: str = "partner_id") -> dict[str, Any]:
    """What a caller may see: a partner user only its own organisation's records."""
    return {field: principal.partner_id} if principal.role == Role.PARTNER else {}


def live(query: dict[str, Any]) -> dict[str, Any]:
    """Leave deleted drafts out of a query on partnerships (a status filter given already does)."""
    return query if "status" in query else {**query, "status": {"$ne": DELETED}}


async def visible(series: Aggregates, doc_id: str, principal: Principal, what: str) -> Version:
    """The record's latest version if the caller may see it; 404 alike for a missing, a deleted and another
    partner's record."""
    version = await series.get(doc_id)
    if version is None or version.state.get("status") == DELETED:
        raise NotFound(f"no {what} {doc_id}")
    owner = doc_id if what == "partner" else version.state.get("partner_id")
    if not principal.can_access_partner(owner):
        raise NotFound(f"no {what} {doc_id}")
    return version


async def page_of(
    series: Aggregates, query: dict[str, Any], page: int, page_size: int, public: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    total = await series.count(query)
    docs = await series.find(query, sort=[("_id", 1)], skip=(page - 1) * page_size, limit=page_size)
    return {"items": [public(d) for d in docs], "total": total, "page": page, "page_size": page_size}


async def heads(series: Aggregates, query: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
    """Every head matching `query` in `_id` order, a batch at a time (exports)."""
    skip = 0
    while True:
        batch = await series.find(query, sort=[("_id", 1)], skip=skip, limit=EXPORT_BATCH)
        if batch:
            yield batch
        if len(batch) < EXPORT_BATCH:
            return
        skip += len(batch)


# What the export routes answer, for their OpenAPI (a file, not JSON).
CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "CSV, UTF-8, header row", "content": {"text/csv": {"schema": {"type": "string"}}}}
}
XLSX_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "a spreadsheet with French headers",
        "content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}


def csv_response(name: str, body: Any) -> StreamingResponse:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)


def xlsx_response(name: str, body: bytes) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type=XLSX_MEDIA_TYPE, headers=headers)


def answered(response: Response, published: bool) -> bool:
    """202 when the change is stored but its events still wait in the outbox (Kafka away): accepted, will be
    published by the relay. Returns `published` for the body."""
    if not published:
        response.status_code = 202
    return published
