"""Metrics HTTP routes: progress, goals, breakdowns, funnel, trend, partners, CSV and XLSX exports, live stream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from services.metrics import exports, views
from services.metrics.goals import Goal
from services.metrics.partner_names import PartnerDirectory
from services.metrics.progress import PARIS, progress
from services.metrics.runtime import Runtime
from shared.identity import InvalidToken, Principal, Role, verify_token
from shared.xlsx import XLSX_MEDIA_TYPE

__all__ = ["router"]

router = APIRouter()


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_partner_directory(request: Request) -> PartnerDirectory:
    """The copy of the partners registry's names (made on first use: nothing to start or stop with the app)."""
    directory = getattr(request.app.state, "partner_directory", None)
    if directory is None:
        directory = request.app.state.partner_directory = PartnerDirectory.from_settings()
    return directory


DirectoryDep = Annotated[PartnerDirectory, Depends(get_partner_directory)]
YearQuery = Annotated[int | None, Query(ge=2000, le=2100, description="civil year; the current one by default")]


def _this_year() -> int:
    return datetime.now(PARIS).year


@router.get("/v1/progress", tags=["progress"])
async def get_progress(rt: RuntimeDep, year: Annotated[int | None, Query(ge=2000, le=2100)] = None) -> dict:
    return progress(rt.counters, rt.goals, year or _this_year(), datetime.now(UTC))


@router.get("/v1/goals", tags=["goals"])
async def list_goals(rt: RuntimeDep) -> dict:
    return {"goals": [g.model_dump() for g in rt.goals.all()], "actuals": [a.model_dump() for a in rt.goals.actuals]}


def _platform_principal(rt: Runtime, authorization: str | None) -> Principal | None:
    """The caller named by a platform token (shared/identity), None when the header holds no valid one."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return verify_token(token, rt.settings.platform_token_key)
    except InvalidToken:
        return None


@router.put("/v1/goals", tags=["goals"])
async def put_goal(goal: Goal, rt: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> dict:
    """Set a goal (national, or for a territory: a département code or "region:<code>"); La Poste admins only,
    with the platform's signed token (the one admin mechanism of every service)."""
    principal = _platform_principal(rt, authorization)
    if principal is None:
        raise HTTPException(401, "a platform admin token is required to change goals")
    if principal.role != Role.ADMIN:
        raise HTTPException(403, f"{principal.role.value} {principal.subject} may not change goals")
    await rt.save_goal(goal)
    return goal.model_dump()


def _bad_query(exc: views.BadQuery) -> HTTPException:
    return HTTPException(422, str(exc))


async def _partner_names(
    directory: PartnerDirectory, rt: Runtime, indicator: str, dimension: str, year: int | None
) -> dict[str, str]:
    """The names a breakdown by partner needs (none for other dimensions)."""
    if dimension != "partner":
        return {}
    ids = rt.counters.breakdown(indicator, year or _this_year(), "partner")
    return dict(await directory.lookup(ids))


@router.get("/v1/breakdown", tags=["breakdowns"])
async def get_breakdown(
    rt: RuntimeDep,
    directory: DirectoryDep,
    indicator: str,
    dimension: str,
    year: YearQuery = None,
    sort: Annotated[Literal["value", "key"] | None, Query(description="by value (default) or by key")] = None,
    include_zero: Annotated[bool, Query(description="list every département or region, even at zero")] = False,
) -> dict:
    """One indicator broken down by one dimension, with French labels (partners by their registry name) and the
    goal of each territory."""
    asked = year or _this_year()
    names = await _partner_names(directory, rt, indicator, dimension, asked)
    try:
        return views.breakdown(
            rt.counters,
            rt.goals,
            indicator,
            dimension,
            asked,
            sort=sort,
            include_zero=include_zero,
            names=names,
        )
    except views.BadQuery as exc:
        raise _bad_query(exc) from None


@router.get("/v1/funnel", tags=["breakdowns"])
async def get_funnel(
    rt: RuntimeDep, year: YearQuery = None, by: Literal["departement", "office_type"] | None = None
) -> dict:
    """People detected → referred → helped within 90 days: counts, rates and the exact median delay."""
    return views.funnel(rt.counters, year or _this_year(), by)


@router.get("/v1/trend", tags=["breakdowns"])
async def get_trend(rt: RuntimeDep, indicator: str, year: YearQuery = None) -> dict:
    """The year's weekly series of an indicator, its running total and the goal's pace."""
    try:
        return views.trend(rt.counters, rt.goals, indicator, year or _this_year(), datetime.now(UTC))
    except views.BadQuery as exc:
        raise _bad_query(exc) from None


@router.get("/v1/partners", tags=["breakdowns"])
async def get_partners(
    rt: RuntimeDep,
    directory: DirectoryDep,
    year: YearQuery = None,
    q: Annotated[str | None, Query(max_length=100, description="keep partners whose id or name contains this")] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 20,
) -> dict:
    """Partners ranked by people helped, with their name in the partners registry (`name`, null when it does not
    know the id), their attendances, accompaniments, partnerships and missions."""
    asked = year or _this_year()
    columns = views.partner_columns(rt.counters, asked)
    names = await directory.lookup(set().union(*columns.values()))
    return views.partners(rt.counters, asked, query=q, limit=limit, names=names, columns=columns)


CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def _file_response(description: str, media_type: str, binary: bool = False) -> dict[int | str, dict[str, Any]]:
    schema = {"type": "string", "format": "binary"} if binary else {"type": "string"}
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


def _export(
    rt: Runtime,
    indicator: str,
    dimension: str,
    year: int | None,
    public: bool,
    authorization: str | None,
    names: dict[str, str],
) -> tuple[list[dict[str, Any]], str, str]:
    """The rows every export format writes (suppression applied once, here), the file's stem and the view's label."""
    if not public:
        principal = _platform_principal(rt, authorization)
        if principal is None:
            raise HTTPException(401, "an admin or monitoring token is required for a non-public export")
        if principal.role not in (Role.ADMIN, Role.MONITORING):
            raise HTTPException(403, f"role {principal.role.value} may not read non-public exports")
    asked = year or _this_year()
    try:
        view = views.breakdown(rt.counters, rt.goals, indicator, dimension, asked, sort="key", names=names)
    except views.BadQuery as exc:
        raise _bad_query(exc) from None
    stem = f"{indicator}-{dimension}-{asked}{'' if public else '-exact'}"
    return exports.export_rows(view, public=public), stem, f"{view['dimension_label']} {asked}"


def _attachment(body: bytes, name: str, media_type: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "/v1/export.csv",
    tags=["breakdowns"],
    response_class=Response,
    responses=_file_response("the breakdown as CSV (UTF-8, header row)", "text/csv"),
)
async def export_csv(
    rt: RuntimeDep,
    directory: DirectoryDep,
    indicator: str,
    dimension: str,
    year: YearQuery = None,
    public: bool = True,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """A breakdown as open-data CSV (UTF-8, header row). Public exports blank every cell below the small-count
    threshold (and enough others that none can be recomputed) and flag it `secret`; the exact, non-public
    export needs an admin or monitoring platform token."""
    names = await _partner_names(directory, rt, indicator, dimension, year)
    rows, stem, _ = _export(rt, indicator, dimension, year, public, authorization, names)
    return _attachment(exports.to_csv(rows).encode("utf-8"), f"{stem}.csv", CSV_MEDIA_TYPE)


@router.get(
    "/v1/export.xlsx",
    tags=["breakdowns"],
    response_class=Response,
    responses=_file_response("the breakdown as a spreadsheet (French headers)", XLSX_MEDIA_TYPE, binary=True),
)
async def export_xlsx(
    rt: RuntimeDep,
    directory: DirectoryDep,
    indicator: str,
    dimension: str,
    year: YearQuery = None,
    public: bool = True,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """The same rows as `/v1/export.csv` (the same small-cell suppression) as an XLSX spreadsheet: French
    headers, numbers as numbers, the secret flag as a boolean, a frozen header row."""
    names = await _partner_names(directory, rt, indicator, dimension, year)
    rows, stem, sheet = _export(rt, indicator, dimension, year, public, authorization, names)
    body = await run_in_threadpool(exports.to_xlsx, rows, sheet)
    return _attachment(body, f"{stem}.xlsx", XLSX_MEDIA_TYPE)


PartnerPath = Annotated[str, Path(min_length=1, max_length=100, description="the partner organisation's id")]


@router.get("/v1/partners/{partner_id}/months", tags=["breakdowns"])
async def get_partner_months(
    rt: RuntimeDep,
    partner_id: PartnerPath,
    year: YearQuery = None,
    authorization: Annotated[str | None, Header()] = None,
) -> dict:
    """One partner's figures for the year by month, and their total (the partner's row of `/v1/partners`).
    A platform token is required: a partner's staff read their own organisation only; admins and monitoring
    read any."""
    principal = _platform_principal(rt, authorization)
    if principal is None:
        raise HTTPException(401, "a platform token is required for a partner's figures by month")
    if not principal.can_access_partner(partner_id):
        raise HTTPException(403, f"{principal.role.value} {principal.subject} may not read this partner's figures")
    return views.partner_months(rt.counters, partner_id, year or _this_year())


@router.get("/v1/stream", tags=["progress"])
async def stream(rt: RuntimeDep, year: Annotated[int | None, Query(ge=2000, le=2100)] = None):
    asked = year or _this_year()

    async def events():
        seen = -1
        while True:
            if rt.counters.version != seen:
                seen = rt.counters.version
                body = progress(rt.counters, rt.goals, asked, datetime.now(UTC))
                yield {"event": "progress", "data": json.dumps(body)}
            await rt.wait_for_change(1.0)
            await asyncio.sleep(0.1)  # coalesce bursts: at most ~10 pushes a second

    return EventSourceResponse(events(), ping=15)
