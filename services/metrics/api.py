"""Metrics HTTP routes: progress, goals, live stream."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from sse_starlette import EventSourceResponse

from services.metrics.goals import Goal
from services.metrics.progress import PARIS, progress
from services.metrics.runtime import Runtime

__all__ = ["router"]

router = APIRouter()


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _this_year() -> int:
    return datetime.now(PARIS).year


@router.get("/v1/progress", tags=["progress"])
async def get_progress(rt: RuntimeDep, year: Annotated[int | None, Query(ge=2000, le=2100)] = None) -> dict:
    return progress(rt.worker.counters, rt.goals, year or _this_year(), datetime.now(UTC))


@router.get("/v1/goals", tags=["goals"])
async def list_goals(rt: RuntimeDep) -> dict:
    return {"goals": [g.model_dump() for g in rt.goals.all()], "actuals": [a.model_dump() for a in rt.goals.actuals]}


@router.put("/v1/goals", tags=["goals"])
async def put_goal(goal: Goal, rt: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> dict:
    if authorization != f"Bearer {rt.settings.admin_token}":
        raise HTTPException(401 if authorization is None else 403, "an admin token is required to change goals")
    await rt.save_goal(goal)
    return goal.model_dump()


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
