"""Workshops HTTP routes (walking skeleton: attendance and its retraction)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from services.workshops import handlers
from services.workshops.schemas import AttendanceCreate, AttendancePublic, RetractionCreate
from shared.kafka import PublishError
from shared.outbox import Outbox

__all__ = ["router"]

router = APIRouter(prefix="/v1")


def get_outbox(request: Request) -> Outbox:
    return request.app.state.outbox


OutboxDep = Annotated[Outbox, Depends(get_outbox)]


def _public(status: str, doc: dict, published: bool) -> AttendancePublic:
    return AttendancePublic(status=status, attendance_id=doc["_id"], event_id=doc["event_id"], published=published)


@router.post("/attendances", status_code=201, response_model=AttendancePublic, tags=["attendance"])
async def record_attendance(
    body: AttendanceCreate, outbox: OutboxDep, request: Request, response: Response
) -> AttendancePublic:
    key = request.app.state.settings.person_ref_key_bytes
    try:
        status, doc = await handlers.record_attendance(body, outbox, key)
        published = True
    except handlers.Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except PublishError:
        # Stored with its event in the outbox: the relay publishes it when Kafka is back.
        status, doc, published = "accepted", await outbox.collection.find_one({"_id": body.attendance_id}), False
        response.status_code = 202
    if status == "duplicate":
        response.status_code = 200
    return _public(status, doc, published)


@router.post("/attendances/{attendance_id}/retraction", response_model=AttendancePublic, tags=["attendance"])
async def retract_attendance(attendance_id: str, body: RetractionCreate, outbox: OutboxDep) -> AttendancePublic:
    try:
        doc = await handlers.retract_attendance(attendance_id, body.reason, outbox)
    except handlers.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except PublishError:
        doc = await outbox.collection.find_one({"_id": attendance_id})
        return _public("retracted", doc, False)
    return _public("retracted", doc, True)
