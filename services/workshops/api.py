"""Workshops HTTP routes: venues, facilitators, sessions, registrations, attendance, accompaniments.

Every route needs a platform token (issued by the partners service, verified here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, Response, UploadFile

from services.workshops import checkins, domain, handlers, registry
from services.workshops.handlers import Outcome, Result
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
from shared.aggregates import Aggregates
from shared.errors import NotFound
from shared.identity import Principal, PrincipalDep, Role

__all__ = ["router"]

router = APIRouter(prefix="/v1")
MAX_SHEET_BYTES = 256 * 1024
# The word an answer's `status` uses for each outcome, where it is not the outcome itself.
Words = Mapping[Outcome, str]
AS_IS: Words = {}
ACCEPTED: Words = {"created": "accepted"}
REGISTERED: Words = {"created": "registered"}
CANCELLED: Words = {"changed": "cancelled"}
RETRACTED: Words = {"changed": "retracted"}


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]


def _key(request: Request) -> bytes:
    return request.app.state.settings.person_ref_key_bytes


KeyDep = Annotated[bytes, Depends(_key)]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the API shows it: no person reference (only whether one is known)."""
    out = {("id" if k == "_id" else k): v for k, v in doc.items()}
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
    return out


def _status_code(result: Result, response: Response) -> None:
    """201 for a new record, 200 for a change or a retry, 202 when its events wait for the outbox relay."""
    response.status_code = 202 if not result.published else 201 if result.outcome == "created" else 200


def _record(result: Result, response: Response, words: Words = AS_IS) -> RecordPublic:
    _status_code(result, response)
    return RecordPublic(
        status=words.get(result.outcome, result.outcome),
        id=result.id,
        published=result.published,
        event_ids=list(result.event_ids),
        record=_public(result.record),
        ignored=list(result.ignored),
    )


async def _list(series: Aggregates, query: dict[str, Any], sort: str, limit: int = 0) -> list[dict[str, Any]]:
    return [_public(d) for d in await series.find(query, sort=[(sort, 1)], limit=limit)]


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
    return _record(await handlers.open_venue(store, who, body), response)


@router.get("/venues", tags=["venues"])
async def list_venues(
    store: StoreDep,
    who: PrincipalDep,
    departement: str | None = None,
    newly_equipped: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """La Poste's venues and, for a partner, its own premises (another partner's are not shown)."""
    query: dict[str, Any] = {}
    if who.role not in (Role.ADMIN, Role.MONITORING):
        query["partner_id"] = {"$in": [None, who.partner_id] if who.role == Role.PARTNER else [None]}
    if departement:
        query["departement"] = departement
    if newly_equipped is not None:
        query["newly_equipped"] = newly_equipped
    return await _list(store.venues, query, "_id", limit)


@router.get("/venues/{venue_id}", tags=["venues"])
async def get_venue(venue_id: str, store: StoreDep, who: PrincipalDep) -> dict[str, Any]:
    """One venue; another partner's premises answer 404, as an unknown venue does."""
    return _public(registry.usable_venue(await store.venues.get(venue_id), who, venue_id).head())


@router.post("/facilitators", status_code=201, response_model=RecordPublic, tags=["facilitators"])
async def add_facilitator(
    body: FacilitatorCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    return _record(await handlers.add_facilitator(store, who, body), response)


@router.get("/facilitators", tags=["facilitators"])
async def list_facilitators(
    store: StoreDep, who: PrincipalDep, kind: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"kind": kind} if kind else {}
    if who.role == Role.PARTNER:
        query["partner_id"] = who.partner_id
    elif who.role == Role.ADVISER:
        query["_id"] = who.adviser_id
    return await _list(store.facilitators, query, "_id", limit)


# --- workshops and registrations --------------------------------------------------------------------


@router.post("/workshops", status_code=201, response_model=RecordPublic, tags=["workshops"])
async def schedule_workshop(
    body: WorkshopCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    return _record(await handlers.schedule_workshop(store, who, body), response)


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
    return await _list(store.workshops, query, "starts_at", limit)


async def _readable_workshop(store: Store, workshop_id: str, who: Principal) -> dict[str, Any]:
    head = (await store.workshops.require(workshop_id, "workshop")).head()
    if not domain.can_read(who, head.get("partner_id"), head.get("facilitator_id")):
        raise NotFound(f"no workshop {workshop_id}")  # another organisation's: its existence is not told
    return head


@router.get("/workshops/{workshop_id}", tags=["workshops"])
async def get_workshop(workshop_id: str, store: StoreDep, who: PrincipalDep) -> dict[str, Any]:
    return _public(await _readable_workshop(store, workshop_id, who))


@router.post("/workshops/{workshop_id}/cancellation", response_model=RecordPublic, tags=["workshops"])
async def cancel_workshop(
    workshop_id: str, body: CancellationCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    result = await handlers.cancel_workshop(store, who, workshop_id, body.reason)
    return _record(result, response, CANCELLED)


def _registration(result: Result, words: Words) -> RegistrationPublic:
    doc, rid = result.record, result.id
    seats = domain.Seats(doc["capacity"], doc["registrations"])
    return RegistrationPublic(
        status=words.get(result.outcome, result.outcome),
        workshop_id=doc["_id"],
        registration_id=rid,
        registration_status=doc["registrations"][rid]["status"],
        waiting_position=seats.position(rid),
        promoted_registration_id=result.promoted,
    )


@router.post(
    "/workshops/{workshop_id}/registrations", status_code=201, response_model=RegistrationPublic, tags=["workshops"]
)
async def register(
    workshop_id: str, body: RegistrationCreate, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> RegistrationPublic:
    result = await handlers.register(store, who, workshop_id, body, key=key)
    response.status_code = 201 if result.outcome == "created" else 200
    return _registration(result, REGISTERED)


@router.post(
    "/workshops/{workshop_id}/registrations/{registration_id}/cancellation",
    response_model=RegistrationPublic,
    tags=["workshops"],
)
async def cancel_registration(
    workshop_id: str, registration_id: str, store: StoreDep, who: PrincipalDep
) -> RegistrationPublic:
    result = await handlers.cancel_registration(store, who, workshop_id, registration_id)
    return _registration(result, CANCELLED)


# --- attendance -------------------------------------------------------------------------------------


def _attendance(result: Result, response: Response, words: Words = ACCEPTED) -> AttendancePublic:
    _status_code(result, response)
    return AttendancePublic(
        status=words.get(result.outcome, result.outcome),
        attendance_id=result.id,
        event_id=result.event_ids[0],
        published=result.published,
        ignored=list(result.ignored),
    )


@router.post("/attendances", status_code=201, response_model=AttendancePublic, tags=["attendance"])
async def record_attendance(
    body: AttendanceCreate, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> AttendancePublic:
    """An attendance at a session of the caller's organisation, dated within it (an hour before the start to an
    hour after the end). Venue, département, region, QPV, rural, time zone, theme and partner are the session's:
    an unknown or another organisation's workshop is 404, a venue or partner named beside it that is not the
    session's is 422, and the body's `departement`, `qpv`, `rural` and `theme` are ignored (listed in `ignored`
    when they said otherwise)."""
    return _attendance(await checkins.record_attendance(store, who, body, key=key), response)


@router.post(
    "/workshops/{workshop_id}/attendances", status_code=201, response_model=AttendancePublic, tags=["attendance"]
)
async def check_in(
    workshop_id: str, body: CheckIn, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> AttendancePublic:
    """Checks one person in at this session (open from an hour before its start); `attended_at` defaults to the
    start and must fall within the session, from an hour before its start to an hour after its end."""
    return _attendance(await checkins.check_in(store, who, workshop_id, body, key=key), response)


@router.post("/workshops/{workshop_id}/attendance-sheet", response_model=SheetReport, tags=["attendance"])
async def check_in_sheet(
    workshop_id: str,
    store: StoreDep,
    who: PrincipalDep,
    key: KeyDep,
    sheet: Annotated[UploadFile, File(description="CSV: seat,client_reference,registration_id,attended_at")],
) -> SheetReport:
    """Every line of a check-in sheet under the rules of one check-in (an `attended_at` within the session, …):
    the good lines are recorded once, each other line is reported with its reason."""
    raw = await sheet.read(MAX_SHEET_BYTES + 1)
    if len(raw) > MAX_SHEET_BYTES:
        raise HTTPException(413, f"a sheet is at most {MAX_SHEET_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(422, "the sheet must be UTF-8 text") from None
    return await checkins.check_in_sheet(store, who, workshop_id, text, key=key)


@router.get("/workshops/{workshop_id}/attendances", tags=["attendance"])
async def list_attendances(workshop_id: str, store: StoreDep, who: PrincipalDep) -> list[dict[str, Any]]:
    await _readable_workshop(store, workshop_id, who)
    return await _list(store.attendances, {"workshop_id": workshop_id}, "_id")


@router.post("/attendances/{attendance_id}/retraction", response_model=AttendancePublic, tags=["attendance"])
async def retract_attendance(
    attendance_id: str, body: RetractionCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> AttendancePublic:
    result = await checkins.retract_attendance(store, who, attendance_id, body.reason)
    return _attendance(result, response, RETRACTED)


# --- one-to-one accompaniments ----------------------------------------------------------------------


@router.post("/accompaniments", status_code=201, response_model=RecordPublic, tags=["accompaniments"])
async def record_accompaniment(
    body: AccompanimentCreate, store: StoreDep, who: PrincipalDep, key: KeyDep, response: Response
) -> RecordPublic:
    """A one-to-one accompaniment at a venue: one of La Poste's or the partner's own premises (an unknown or
    another partner's venue is 404). Département, region, QPV, rural and time zone are the venue's; the body's
    `departement`, `qpv` and `rural` are ignored (listed in `ignored` when they said otherwise)."""
    return _record(await checkins.record_accompaniment(store, who, body, key=key), response, ACCEPTED)


@router.get("/accompaniments", tags=["accompaniments"])
async def list_accompaniments(
    store: StoreDep, who: PrincipalDep, channel: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"channel": channel} if channel else {}
    if who.role == Role.PARTNER:
        query["partner_id"] = who.partner_id
    elif who.role == Role.ADVISER:
        query["adviser_id"] = who.adviser_id
    return await _list(store.accompaniments, query, "_id", limit)


@router.post("/accompaniments/{accompaniment_id}/retraction", response_model=RecordPublic, tags=["accompaniments"])
async def retract_accompaniment(
    accompaniment_id: str, body: RetractionCreate, store: StoreDep, who: PrincipalDep, response: Response
) -> RecordPublic:
    result = await checkins.retract_accompaniment(store, who, accompaniment_id, body.reason)
    return _record(result, response, RETRACTED)
