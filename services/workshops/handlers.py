"""One function per command: record an attendance, retract one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.workshops.schemas import AttendanceCreate
from shared import geo
from shared.events import AttendanceRetracted, WorkshopAttended, new_event
from shared.outbox import Outbox, outbox_append, outbox_entries
from shared.privacy import person_ref

__all__ = ["record_attendance", "retract_attendance", "Conflict", "NotFound", "SOURCE"]

SOURCE = "/services/workshops"
_NS = uuid.UUID("6f1c1f8e-3d1a-4b7e-9a55-0c2b1d6a7e01")


class Conflict(Exception):
    pass


class NotFound(Exception):
    pass


def _event_id(kind: str, record_id: str) -> uuid.UUID:
    # Deterministic: the same attendance always yields the same event id, however often it is sent.
    return uuid.uuid5(_NS, f"{kind}:{record_id}")


async def record_attendance(cmd: AttendanceCreate, outbox: Outbox, key: bytes) -> tuple[str, dict[str, Any]]:
    """Returns ("accepted" | "duplicate", the stored document)."""
    dep = geo.departement(cmd.departement)
    ref = person_ref(cmd.client_reference, key) if cmd.client_reference else None
    data = WorkshopAttended(
        attendance_id=cmd.attendance_id,
        workshop_id=cmd.workshop_id,
        theme=cmd.theme,
        venue_id=cmd.venue_id,
        departement=dep.code,
        region=dep.region,
        qpv=cmd.qpv,
        rural=cmd.rural,
        timezone=dep.timezone,
        person_ref=ref,
        partner_id=cmd.partner_id,
    )
    event = new_event(
        data,
        source=SOURCE,
        time=cmd.attended_at,
        event_id=_event_id("attended", cmd.attendance_id),
        subject=cmd.workshop_id,
    )
    fields = data.model_dump(mode="json") | {"attended_at": cmd.attended_at, "event_id": str(event.id)}
    doc = {
        "_id": cmd.attendance_id,
        **fields,
        "retracted": False,
        "recorded_at": datetime.now(UTC),
        **outbox_entries([event]),
    }
    try:
        await outbox.collection.insert_one(doc)
    except DuplicateKeyError:
        existing = await outbox.collection.find_one({"_id": cmd.attendance_id})
        if existing is None or existing.get("event_id") != str(event.id) or _differs(existing, fields):
            raise Conflict(f"attendance {cmd.attendance_id} was already recorded with other details") from None
        await outbox.flush(cmd.attendance_id)
        return "duplicate", existing
    await outbox.flush(cmd.attendance_id)
    return "accepted", doc


def _differs(existing: dict[str, Any], fields: dict[str, Any]) -> bool:
    return any(existing.get(k) != v for k, v in fields.items() if k != "attended_at")


async def retract_attendance(attendance_id: str, reason: str, outbox: Outbox) -> dict[str, Any]:
    existing = await outbox.collection.find_one({"_id": attendance_id})
    if existing is None:
        raise NotFound(f"no attendance {attendance_id}")
    if existing.get("retracted"):
        return existing
    data = AttendanceRetracted(
        retracted_event_id=uuid.UUID(existing["event_id"]),
        attendance_id=attendance_id,
        person_ref=existing.get("person_ref"),
        reason=reason,
    )
    event = new_event(data, source=SOURCE, time=datetime.now(UTC), event_id=_event_id("retracted", attendance_id))
    updated = await outbox.collection.find_one_and_update(
        {"_id": attendance_id, "retracted": False},
        outbox_append([event], {"retracted": True, "retraction_reason": reason}),
        return_document=True,
    )
    await outbox.flush(attendance_id)
    return updated or existing
