"""Metrics HTTP routes: progress, goals, breakdowns, funnel, trend, partners, CSV export, live stream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from services.metrics import views
from services.metrics.goals import Goal
from services.metrics.progress import PARIS, progress
from services.metrics.runtime import Runtime
from shared.identity import InvalidToken, Principal, Role, verify_token

__all__ = ["router"]

router = APIRouter()


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
YearQuery = Annotated[int | None, Query(ge=2000, le=2100, description="civil year; the current one by default")]


def _this_year() -> int:
    return datetime.now(PARIS).year


@router.get("/v1/progress", tags=["progress"])
async def get_progress(rt: RuntimeDep, year: Annotated[int | None, Query(ge=2000, le=2100)] = None) -> dict:
    return progress(rt.worker.counters, rt.goals, year or _this_year(), datetime.now(UTC))


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


@router.get("/v1/breakdown", tags=["breakdowns"])
async def get_breakdown(
    rt: RuntimeDep,
    indicator: str,
    dimension: str,
    year: YearQuery = None,
    sort: Annotated[Literal["value", "key"] | None, Query(description="by value (default) or by key")] = None,
    include_zero: Annotated[bool, Query(description="list every département or region, even at zero")] = False,
) -> dict:
    """One indicator broken down by one dimension, with French labels and the goal of each territory."""
    try:
        return views.breakdown(
            rt.worker.counters,
            rt.goals,
            indicator,
            dimension,
            year or _this_year(),
            sort=sort,
            include_zero=include_zero,
        )
    except views.BadQuery as exc:
        raise _bad_query(exc) from None


@router.get("/v1/funnel", tags=["breakdowns"])
async def get_funnel(
    rt: RuntimeDep, year: YearQuery = None, by: Literal["departement", "office_type"] | None = None
) -> dict:
    """People detected → referred → helped within 90 days: counts, rates and the exact median delay."""
    return views.funnel(rt.worker.counters, year or _this_year(), by)


@router.get("/v1/trend", tags=["breakdowns"])
async def get_trend(rt: RuntimeDep, indicator: str, year: YearQuery = None) -> dict:
    """The year's weekly series of an indicator, its running total and the goal's pace."""
    try:
        return views.trend(rt.worker.counters, rt.goals, indicator, year or _this_year(), datetime.now(UTC))
    except views.BadQuery as exc:
        raise _bad_query(exc) from None


@router.get("/v1/partners", tags=["breakdowns"])
async def get_partners(
    rt: RuntimeDep,
    year: YearQuery = None,
    q: Annotated[str | None, Query(max_length=100, description="keep partners whose id contains this")] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 20,
) -> dict:
    """Partners ranked by people helped, with their attendances, accompaniments, partnerships and missions."""
    return views.partners(rt.worker.counters, year or _this_year(), query=q, limit=limit)


@router.get("/v1/export.csv", tags=["breakdowns"], response_class=Response)
async def export_csv(
    rt: RuntimeDep,
    indicator: str,
    dimension: str,
    year: YearQuery = None,
    public: bool = True,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """A breakdown as open-data CSV (UTF-8, header row). Public exports blank every cell below the small-count
    threshold (and enough others that none can be recomputed) and flag it `secret`; the exact, non-public
    export needs an admin or monitoring platform token."""
    if not public:
        principal = _platform_principal(rt, authorization)
        if principal is None:
            raise HTTPException(401, "an admin or monitoring token is required for a non-public export")
        if principal.role not in (Role.ADMIN, Role.MONITORING):
            raise HTTPException(403, f"role {principal.role.value} may not read non-public exports")
    asked = year or _this_year()
    try:
        view = views.breakdown(rt.worker.counters, rt.goals, indicator, dimension, asked, sort="key")
    except views.BadQuery as exc:
        raise _bad_query(exc) from None
    body = views.to_csv(views.export_rows(view, public=public))
    name = f"{indicator}-{dimension}-{asked}{'' if public else '-exact'}.csv"
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.get("/v1/stream", tags=["progress"])
async def stream(rt: RuntimeDep, year: Annotated[int | None, Query(ge=2000, le=2100)] = None):
    asked = year or _this_year()

    async def events():
        seen = -1
        while True:
            if rt.worker.counters.version != seen:
                seen = rt.worker.counters.version
                body = progress(rt.worker.counters, rt.goals, asked, datetime.now(UTC))
                yield {"event": "progress", "data": json.dumps(body)}
            await rt.wait_for_change(1.0)
            await asyncio.sleep(0.1)  # coalesce bursts: at most ~10 pushes a second

    return EventSourceResponse(events(), ping=15)
