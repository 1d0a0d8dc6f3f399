"""Workshops HTTP routes: venues, facilitators, sessions, registrations, attendance, accompaniments.

Every route needs a platform token (issued by the partners service, verified here)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile

from services.workshops import domain, handlers
from services.workshops.schemas import (
    AccompanimentCreate,
    AttendanceCreate,
    AttendancePublic,
    CancellationCreate,
    CheckIn,
    FacilitatorCreate,
    RecordPublic,
    RegistrationCreate,
    RegistrationPublic,
    RetractionCreate,
    SheetReport,
    VenueCreate,
    WorkshopCreate,
)
from services.workshops.store import Store
from shared.identity import Principal, PrincipalDep, Role

__all__ = ["router"]

router = APIRouter(prefix="/v1")
T = TypeVar("T")
MAX_SHEET_BYTES = 256 * 1024
HIDDEN = {"outbox", "outbox_pending", "outbox_seq", "version"}


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


def _key(request: Request) -> bytes:
    return request.app.state.settings.person_ref_key_bytes


KeyDep = Annotated[bytes, Depends(_key)]


async def _run(call: Awaitable[T]) -> T:
    """Turns the handlers' refusals into HTTP answers."""
    try:
        return await call
    except handlers.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except handlers.Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except handlers.Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except (handlers.Invalid, domain.RuleBroken) as exc:
        raise HTTPException(422, str(exc)) from None


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the API shows it: no outbox, no person reference (only whether one is known)."""
    out = {("id" if k == "_id" else k): v for k, v in doc.items() if k not in HIDDEN}
    if "person_ref" in out:
        out["identified"] = out.pop("person_ref") is not None
    if "registrations" in out:
        seats = domain.Seats(doc["capacity"], doc["registrations"])
        out["registrations"] = [
            {
                "registration_id": rid,
                "status": reg["status"],
                "origin": reg["origin"],
                "identified": reg["person_ref"] is not None,
                "waiting_position": seats.position(rid),
            }
            for rid, reg in sorted(doc["registrations"].items(), key=lambda kv: kv[1]["seq"])
        ]
        out["registered"] = seats.taken
        out["waiting"] = len(seats.ids(domain.WAITING))
        if "registered_person_refs" in out:
            out.pop("registered_person_refs")
    return out


def _record(status: str, doc: dict[str, Any], published: bool, response: Response) -> RecordPublic:
    response.status_code = 202 if not published else 201 if status in ("created", "accepted") else 200
    events = [doc["event_id"]] if doc.get("event_id") else []
    return RecordPublic(status=status, id=doc["_id"], published=published, event_ids=events, record=_public(doc))


def _reader(principal: Principal) -> dict[str, Any]:
    """The query filter of what this principal may read (workshops and attendance)."""
    if principal.role in (Role.ADMIN, Role.MONITORING):
        return {}
    if principal.role == Role.PARTNER:
        return {"partner_id": principal.partner_id}
    return {"facilitator_id": principal.adviser_id}


# --- venues and facilitators ------------------------------------------------------------------------


@router.post("/venues", status_code=201, response_model=RecordPublic, tags=["venues"])
async def open_venue(body: VenueCreate, store: StoreDep, who: PrincipalDep, response: Response) -> RecordPublic:
    return _record(*await _run(handlers.open_venue(body, store, who)), response)


@router.get("/venues", tags=["venues"])
async def list_venues(
    store: StoreDep,
    who: PrincipalDep,
    departement: str | None = None,
    newly_equipped: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {}
    if departement:
        query["departement"] = departement
    if newly_equipped is not None:
        query["newly_equipped"] = newly_equipped
    return [_public(d) async for d in store.venues.collection.find(query).sort("_id").limit(limit)]


@router.get("/venues/{venue_id}", tags=["venues"])
async def get_venue(venue_id: str, store: StoreDep, who: PrincipalDep) -> dict[str, Any]:
    doc = await store.venues.collection.find_one({"_id": venue_id})
    if doc is None:
        raise HTTPException(404, f"no venue {venue_id}")
    return _public(doc)


@router.post("/facilitators", status_code=201, response_model=RecordPublic, tags=["facilitators"])
async def add_facilitator(
    body: FacilitatorCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    return _record(*await _run(handlers.add_facilitator(body, store, who)), response)


@router.get("/facilitators", tags=["facilitators"])
async def list_facilitators(
    store: StoreDep, who: PrincipalDep, kind: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"kind": kind} if kind else {}
    if who.role == Role.PARTNER:
        query["partner_id"] = who.partner_id
    elif who.role == Role.ADVISER:
        query["_id"] = who.adviser_id
    return [_public(d) async for d in store.facilitators.collection.find(query).sort("_id").limit(limit)]


# --- workshops and registrations --------------------------------------------------------------------


@router.post("/workshops", status_code=201, response_model=RecordPublic, tags=["workshops"])
async def schedule_workshop(
    body: WorkshopCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    return _record(*await _run(handlers.schedule_workshop(body, store, who)), response)


@router.get("/workshops", tags=["workshops"])
async def list_workshops(
    store: StoreDep,
    who: PrincipalDep,
    departement: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    query = _reader(who)
    if departement:
        query["departement"] = departement
    if status:
        query["status"] = status
    return [_public(d) async for d in store.workshops.collection.find(query).sort("starts_at").limit(limit)]


async def _readable_workshop(store: Store, workshop_id: str, who: Principal) -> dict[str, Any]:
    doc = await store.workshops.collection.find_one({"_id": workshop_id})
    if doc is None:
        raise HTTPException(404, f"no workshop {workshop_id}")
    if not domain.can_read(who, doc.get("partner_id"), doc.get("facilitator_id")):
        raise HTTPException(403, f"{who.role.value} {who.subject} may not see workshop {workshop_id}")
    return doc


@router.get("/workshops/{workshop_id}", tags=["workshops"])
async def get_workshop(workshop_id: str, store: StoreDep, who: PrincipalDep) -> dict[str, Any]:
    return _public(await _readable_workshop(store, workshop_id, who))


@router.post("/workshops/{workshop_id}/cancellation", response_model=RecordPublic, tags=["workshops"])
async def cancel_workshop(
    workshop_id: str, body: CancellationCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    status, doc, published = await _run(handlers.cancel_workshop(workshop_id, body.reason, store, who))
    out = _record(status, doc, published, response)
    out.event_ids = [str(domain.event_id("workshop.cancelled", workshop_id))]
    response.status_code = 200 if published else 202
    return out


def _registration(status: str, rid: str, doc: dict[str, Any], promoted: str | None = None) -> RegistrationPublic:
    seats = domain.Seats(doc["capacity"], doc["registrations"])
    return RegistrationPublic(
        status=status,
        workshop_id=doc["_id"],
        registration_id=rid,
        registration_status=doc["registrations"][rid]["status"],
        waiting_position=seats.position(rid),
        promoted_registration_id=promoted,
    )


@router.post(
    "/workshops/{workshop_id}/registrations", status_code=201, response_model=RegistrationPublic, tags=["workshops"]
)
async def register(
    workshop_id: str, body: RegistrationCreate, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> RegistrationPublic:
    status, rid, doc = await _run(handlers.register(workshop_id, body, store, who, key))
    if status == "duplicate":
        response.status_code = 200
    return _registration(status, rid, doc)


@router.post(
    "/workshops/{workshop_id}/registrations/{registration_id}/cancellation",
    response_model=RegistrationPublic,
    tags=["workshops"],
)
async def cancel_registration(
    workshop_id: str, registration_id: str, store: StoreDep, who: PrincipalDep
) -> RegistrationPublic:
    promoted, doc = await _run(handlers.cancel_registration(workshop_id, registration_id, store, who))
    return _registration("cancelled", registration_id, doc, promoted)


# --- attendance -------------------------------------------------------------------------------------


def _attendance(status: str, doc: dict[str, Any], published: bool, response: Response) -> AttendancePublic:
    response.status_code = 202 if not published else 201 if status == "accepted" else 200
    return AttendancePublic(status=status, attendance_id=doc["_id"], event_id=doc["event_id"], published=published)


@router.post("/attendances", status_code=201, response_model=AttendancePublic, tags=["attendance"])
async def record_attendance(
    body: AttendanceCreate, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> AttendancePublic:
    return _attendance(*await _run(handlers.record_attendance(body, store, who, key)), response)


@router.post(
    "/workshops/{workshop_id}/attendances", status_code=201, response_model=AttendancePublic, tags=["attendance"]
)
async def check_in(
    workshop_id: str, body: CheckIn, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> AttendancePublic:
    return _attendance(*await _run(handlers.check_in(workshop_id, body, store, who, key)), response)


@router.post("/workshops/{workshop_id}/attendance-sheet", response_model=SheetReport, tags=["attendance"])
async def check_in_sheet(
    workshop_id: str,
    store: StoreDep,
    who: PrincipalDep,
    key: KeyDep,
    sheet: Annotated[UploadFile, File(description="CSV: seat,client_reference,registration_id,attended_at")],
) -> SheetReport:
    raw = await sheet.read(MAX_SHEET_BYTES + 1)
    if len(raw) > MAX_SHEET_BYTES:
        raise HTTPException(413, f"a sheet is at most {MAX_SHEET_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, "the sheet must be UTF-8 text") from None
    return SheetReport(**await _run(handlers.check_in_sheet(workshop_id, text, store, who, key)))


@router.get("/workshops/{workshop_id}/attendances", tags=["attendance"])
async def list_attendances(workshop_id: str, store: StoreDep, who: PrincipalDep) -> list[dict[str, Any]]:
    await _readable_workshop(store, workshop_id, who)
    cursor = store.attendances.collection.find({"workshop_id": workshop_id}).sort("_id")
    return [_public(d) async for d in cursor]


@router.post("/attendances/{attendance_id}/retraction", response_model=AttendancePublic, tags=["attendance"])
async def retract_attendance(
    attendance_id: str, body: RetractionCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> AttendancePublic:
    status, doc, published = await _run(handlers.retract_attendance(attendance_id, body.reason, store, who))
    out = _attendance("retracted", doc, published, response)
    response.status_code = 200 if published else 202
    out.event_id = str(domain.event_id("retracted", attendance_id))
    return out


# --- one-to-one accompaniments ----------------------------------------------------------------------


@router.post("/accompaniments", status_code=201, response_model=RecordPublic, tags=["accompaniments"])
async def record_accompaniment(
    body: AccompanimentCreate, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> RecordPublic:
    return _record(*await _run(handlers.record_accompaniment(body, store, who, key)), response)


@router.get("/accompaniments", tags=["accompaniments"])
async def list_accompaniments(
    store: StoreDep, who: PrincipalDep, channel: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"channel": channel} if channel else {}
    if who.role == Role.PARTNER:
        query["partner_id"] = who.partner_id
    elif who.role == Role.ADVISER:
        query["adviser_id"] = who.adviser_id
    return [_public(d) async for d in store.accompaniments.collection.find(query).sort("_id").limit(limit)]


@router.post("/accompaniments/{accompaniment_id}/retraction", response_model=RecordPublic, tags=["accompaniments"])
async def retract_accompaniment(
    accompaniment_id: str, body: RetractionCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    status, doc, published = await _run(handlers.retract_accompaniment(accompaniment_id, body.reason, store, who))
    out = _record(status, doc, published, response)
    out.event_ids = [str(domain.event_id("accompaniment.retracted", accompaniment_id))]
    response.status_code = 200 if published else 202
    return out
