"""One function per command. Each record and the events it produces are written in one document (outbox)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from services.workshops import domain
from services.workshops.domain import RuleBroken, can_manage, event_id
from services.workshops.schemas import (
    AccompanimentCreate,
    AttendanceCreate,
    CheckIn,
    FacilitatorCreate,
    RegistrationCreate,
    VenueCreate,
    WorkshopCreate,
)
from services.workshops.store import Changed, ConflictingRecord, Store
from shared import geo
from shared.events import (
    AccompanimentCompleted,
    AccompanimentRetracted,
    AdviserDeployed,
    AttendanceRetracted,
    Channel,
    Envelope,
    EventData,
    VenueOpened,
    WorkshopAttended,
    WorkshopCancelled,
    WorkshopScheduled,
    new_event,
)
from shared.identity import Principal, Role
from shared.outbox import Outbox, outbox_append
from shared.privacy import person_ref

__all__ = [
    "SOURCE",
    "Conflict",
    "NotFound",
    "Forbidden",
    "Invalid",
    "open_venue",
    "add_facilitator",
    "schedule_workshop",
    "cancel_workshop",
    "register",
    "cancel_registration",
    "check_in",
    "check_in_sheet",
    "record_attendance",
    "retract_attendance",
    "record_accompaniment",
    "retract_accompaniment",
]

SOURCE = "/services/workshops"
Result = tuple[str, dict[str, Any], bool]  # (status, stored record, published now)
ATTEMPTS = 8  # optimistic-concurrency retries on one workshop document


class Conflict(Exception):
    pass


class NotFound(Exception):
    pass


class Forbidden(Exception):
    pass


class Invalid(Exception):
    pass


def _event(data: EventData, kind: str, record: str, time: datetime, subject: str | None = None) -> Envelope:
    return new_event(data, source=SOURCE, time=time, event_id=event_id(kind, record), subject=subject)


def _territory(departement: str, qpv: bool, rural: bool) -> dict[str, Any]:
    dep = geo.departement(departement)
    return {"departement": dep.code, "region": dep.region, "qpv": qpv, "rural": rural, "timezone": dep.timezone}


def _ref(client_reference: str | None, key: bytes) -> str | None:
    return person_ref(client_reference, key) if client_reference else None


def _require(principal: Principal, partner_id: str | None, facilitator_id: str | None, what: str) -> None:
    if not can_manage(principal, partner_id, facilitator_id):
        raise Forbidden(f"{principal.role.value} {principal.subject} may not manage {what}")


async def _create(
    store: Store, outbox: Outbox, doc: dict[str, Any], events: list[Envelope], compare: list[str]
) -> Result:
    try:
        return await store.create_once(outbox, doc, events, {k: doc[k] for k in compare})
    except ConflictingRecord as exc:
        raise Conflict(str(exc)) from None


async def _get(outbox: Outbox, doc_id: str, what: str) -> dict[str, Any]:
    doc = await outbox.collection.find_one({"_id": doc_id})
    if doc is None:
        raise NotFound(f"no {what} {doc_id}")
    return doc


# --- venues and facilitators ------------------------------------------------------------------------


async def open_venue(cmd: VenueCreate, store: Store, principal: Principal) -> Result:
    if principal.role != Role.ADMIN and not (
        principal.role == Role.PARTNER and cmd.kind == "partner_premises" and cmd.partner_id == principal.partner_id
    ):
        raise Forbidden("only La Poste admins open venues; a partner user may add its own premises")
    try:
        territory = _territory(cmd.departement, cmd.qpv, cmd.rural)
    except KeyError:
        raise Invalid(f"commune {cmd.commune_insee} is in no known département") from None
    data = VenueOpened(
        venue_id=cmd.venue_id, kind=cmd.kind, newly_equipped=cmd.newly_equipped, opened_on=cmd.opened_on, **territory
    )
    event = _event(data, "venue.opened", cmd.venue_id, domain.local_midnight(cmd.opened_on, territory["timezone"]))
    fields = cmd.model_dump(mode="json", exclude={"venue_id"}) | territory
    doc = {"_id": cmd.venue_id, **fields, "event_id": str(event.id), "recorded_at": datetime.now(UTC)}
    return await _create(store, store.venues, doc, [event], list(fields))


async def add_facilitator(cmd: FacilitatorCreate, store: Store, principal: Principal) -> Result:
    if principal.role != Role.ADMIN and not (
        principal.role == Role.PARTNER and cmd.kind == "partner_mediator" and cmd.partner_id == principal.partner_id
    ):
        raise Forbidden("only La Poste admins add facilitators; a partner user may add its own mediators")
    events = []
    if cmd.kind == "adviser":
        assert cmd.deployed_on is not None
        data = AdviserDeployed(adviser_id=cmd.facilitator_id, departement=cmd.departement, deployed_on=cmd.deployed_on)
        tz = geo.departement(cmd.departement).timezone
        events.append(_event(data, "adviser.deployed", cmd.facilitator_id, domain.local_midnight(cmd.deployed_on, tz)))
    fields = cmd.model_dump(mode="json", exclude={"facilitator_id"})
    doc = {"_id": cmd.facilitator_id, **fields, "recorded_at": datetime.now(UTC)}
    return await _create(store, store.facilitators, doc, events, list(fields))


# --- workshops --------------------------------------------------------------------------------------


async def schedule_workshop(cmd: WorkshopCreate, store: Store, principal: Principal) -> Result:
    _require(principal, cmd.partner_id, cmd.facilitator_id, "this workshop (name your own partner or yourself)")
    venue = await store.venues.collection.find_one({"_id": cmd.venue_id})
    if venue is None:
        raise Invalid(f"no venue {cmd.venue_id}")
    if venue.get("partner_id") and venue["partner_id"] != cmd.partner_id:
        raise Invalid(f"venue {cmd.venue_id} is the premises of another partner")
    if cmd.facilitator_id:
        fac = await store.facilitators.collection.find_one({"_id": cmd.facilitator_id})
        if fac is None:
            raise Invalid(f"no facilitator {cmd.facilitator_id}")
        if fac.get("partner_id") and fac["partner_id"] != cmd.partner_id:
            raise Invalid(f"facilitator {cmd.facilitator_id} is a mediator of another partner")
    try:
        starts_at = domain.local_to_aware(cmd.starts_local, venue["timezone"])
    except RuleBroken as exc:
        raise Invalid(str(exc)) from None
    territory = {k: venue[k] for k in ("departement", "region", "qpv", "rural", "timezone")}
    data = WorkshopScheduled(
        workshop_id=cmd.workshop_id,
        theme=cmd.theme,
        venue_id=cmd.venue_id,
        partner_id=cmd.partner_id,
        facilitator_id=cmd.facilitator_id,
        starts_at=starts_at,
        capacity=cmd.capacity,
        commitment=cmd.commitment,
        **territory,
    )
    now = datetime.now(UTC)
    event = _event(data, "workshop.scheduled", cmd.workshop_id, now, subject=cmd.workshop_id)
    fields = cmd.model_dump(mode="json", exclude={"workshop_id"}) | territory | {"starts_at": starts_at}
    doc = {
        "_id": cmd.workshop_id,
        **fields,
        "status": "scheduled",
        "registrations": {},
        "version": 1,
        "event_id": str(event.id),
        "recorded_at": now,
    }
    compare = [k for k in fields if k != "starts_at"]  # compared through starts_local (no tz round-trip)
    return await _create(store, store.workshops, doc, [event], compare)


async def _workshop(store: Store, workshop_id: str, principal: Principal) -> dict[str, Any]:
    doc = await _get(store.workshops, workshop_id, "workshop")
    _require(principal, doc.get("partner_id"), doc.get("facilitator_id"), f"workshop {workshop_id}")
    return doc


def _seats(doc: dict[str, Any]) -> domain.Seats:
    return domain.Seats(doc["capacity"], {k: dict(v) for k, v in doc.get("registrations", {}).items()})


async def cancel_workshop(workshop_id: str, reason: str, store: Store, principal: Principal) -> Result:
    for _ in range(ATTEMPTS):
        doc = await _workshop(store, workshop_id, principal)
        if doc["status"] == "cancelled":
            published = await store.flush(store.workshops, workshop_id)
            return "duplicate", doc, published
        refs = domain.active_person_refs(_seats(doc))
        data = WorkshopCancelled(workshop_id=workshop_id, reason=reason, registered_person_refs=refs)
        now = datetime.now(UTC)
        event = _event(data, "workshop.cancelled", workshop_id, now, subject=workshop_id)
        fields = {"status": "cancelled", "cancellation_reason": reason, "cancelled_at": now}
        try:
            doc = await store.update_checked(store.workshops, workshop_id, doc["version"], fields, [event])
        except Changed:
            continue
        return "cancelled", doc, await store.flush(store.workshops, workshop_id)
    raise Conflict(f"workshop {workshop_id} is changing too fast; try again")


async def register(
    workshop_id: str, cmd: RegistrationCreate, store: Store, principal: Principal, key: bytes
) -> tuple[str, str, dict[str, Any]]:
    """Returns (status, registration id, the workshop document)."""
    ref = _ref(cmd.client_reference, key)
    rid = cmd.registration_id or domain.record_id("reg", workshop_id, ref or "")
    for _ in range(ATTEMPTS):
        doc = await _workshop(store, workshop_id, principal)
        existing = doc.get("registrations", {}).get(rid)
        if existing is not None:
            if existing["person_ref"] != ref:
                raise Conflict(f"registration {rid} is another person's")
            return "duplicate", rid, doc
        if doc["status"] != "scheduled":
            raise Conflict(f"workshop {workshop_id} is {doc['status']}")
        seats = _seats(doc)
        if ref and (held := seats.holder(ref)):
            return "duplicate", held, doc
        domain.register(seats, rid, ref, cmd.origin)
        try:
            doc = await store.update_checked(
                store.workshops, workshop_id, doc["version"], {"registrations": seats.registrations}
            )
        except Changed:
            continue
        return "registered", rid, doc
    raise Conflict(f"workshop {workshop_id} is changing too fast; try again")


async def cancel_registration(
    workshop_id: str, registration_id: str, store: Store, principal: Principal
) -> tuple[str | None, dict[str, Any]]:
    """Returns (the promoted registration id or None, the workshop document)."""
    for _ in range(ATTEMPTS):
        doc = await _workshop(store, workshop_id, principal)
        seats = _seats(doc)
        if registration_id not in seats.registrations:
            raise NotFound(f"no registration {registration_id} in workshop {workshop_id}")
        if seats.registrations[registration_id]["status"] == domain.CANCELLED:
            return None, doc
        promoted = domain.cancel_registration(seats, registration_id)
        try:
            doc = await store.update_checked(
                store.workshops, workshop_id, doc["version"], {"registrations": seats.registrations}
            )
        except Changed:
            continue
        return promoted, doc
    raise Conflict(f"workshop {workshop_id} is changing too fast; try again")


# --- attendance -------------------------------------------------------------------------------------


async def _record(
    store: Store, attendance_id: str, data: WorkshopAttended, attended_at: datetime, extra: dict[str, Any]
) -> tuple[str, dict[str, Any], bool]:
    event = _event(data, "attended", attendance_id, attended_at, subject=data.workshop_id)
    fields = data.model_dump(mode="json") | {"attended_at": attended_at, "event_id": str(event.id)}
    doc = {"_id": attendance_id, **fields, **extra, "retracted": False, "recorded_at": datetime.now(UTC)}
    compare = [k for k in fields if k != "attended_at"]
    status, stored, published = await _create(store, store.attendances, doc, [event], compare)
    return ("accepted" if status == "created" else status), stored, published


async def record_attendance(cmd: AttendanceCreate, store: Store, principal: Principal, key: bytes) -> Result:
    """The first, self-contained check-in: the caller gives every detail. Returns (status, doc, published)."""
    known = await store.workshops.collection.find_one({"_id": cmd.workshop_id})
    partner_id, facilitator_id = (known["partner_id"], known["facilitator_id"]) if known else (cmd.partner_id, None)
    _require(principal, partner_id, facilitator_id, f"attendance at workshop {cmd.workshop_id}")
    if known and cmd.partner_id != known["partner_id"]:
        raise Invalid(f"workshop {cmd.workshop_id} belongs to partner {known['partner_id']}")
    data = WorkshopAttended(
        attendance_id=cmd.attendance_id,
        workshop_id=cmd.workshop_id,
        theme=cmd.theme,
        venue_id=cmd.venue_id,
        person_ref=_ref(cmd.client_reference, key),
        partner_id=cmd.partner_id,
        **_territory(cmd.departement, cmd.qpv, cmd.rural),
    )
    return await _record(store, cmd.attendance_id, data, cmd.attended_at, {"facilitator_id": facilitator_id})


def _checkin_data(doc: dict[str, Any], item: CheckIn, key: bytes) -> tuple[str, WorkshopAttended, datetime, dict]:
    """Resolves one check-in against its session (pure given the workshop document); raises Invalid."""
    ref = _ref(item.client_reference, key)
    registration_id = item.registration_id
    regs = doc.get("registrations", {})
    if registration_id is not None:
        reg = regs.get(registration_id)
        if reg is None or reg["status"] == domain.CANCELLED:
            raise Invalid(f"no active registration {registration_id} for this session")
        if ref and reg["person_ref"] and reg["person_ref"] != ref:
            raise Invalid(f"registration {registration_id} is another person's")
        ref = ref or reg["person_ref"]
    elif ref:
        registration_id = _seats(doc).holder(ref)
    starts_at = doc["starts_at"]
    attended_at = item.attended_at or starts_at
    if starts_at > datetime.now(UTC) + timedelta(minutes=30):
        raise Invalid("the session has not started yet")
    if not starts_at - timedelta(hours=12) <= attended_at <= starts_at + timedelta(hours=12):
        raise Invalid("attended_at is not the day of the session")
    try:
        attendance_id = domain.attendance_key(doc["_id"], ref, registration_id, item.seat)
    except RuleBroken as exc:
        raise Invalid(str(exc)) from None
    data = WorkshopAttended(
        attendance_id=attendance_id,
        workshop_id=doc["_id"],
        theme=doc["theme"],
        venue_id=doc["venue_id"],
        person_ref=ref,
        partner_id=doc.get("partner_id"),
        commitment=doc["commitment"],
        **{k: doc[k] for k in ("departement", "region", "qpv", "rural", "timezone")},
    )
    extra = {"facilitator_id": doc.get("facilitator_id"), "registration_id": registration_id, "seat": item.seat}
    return attendance_id, data, attended_at, extra


async def check_in(workshop_id: str, item: CheckIn, store: Store, principal: Principal, key: bytes) -> Result:
    doc = await _workshop(store, workshop_id, principal)
    if doc["status"] != "scheduled":
        raise Conflict(f"workshop {workshop_id} is {doc['status']}")
    attendance_id, data, attended_at, extra = _checkin_data(doc, item, key)
    return await _record(store, attendance_id, data, attended_at, extra)


async def check_in_sheet(workshop_id: str, text: str, store: Store, principal: Principal, key: bytes) -> dict:
    """Records every good row of an attendance sheet once; reports each row (recorded, duplicate, rejected)."""
    doc = await _workshop(store, workshop_id, principal)
    if doc["status"] != "scheduled":
        raise Conflict(f"workshop {workshop_id} is {doc['status']}")
    rows, error = domain.parse_sheet(text)
    if error:
        raise Invalid(error)
    report: list[dict[str, Any]] = []
    counts = {"recorded": 0, "duplicate": 0, "rejected": 0}
    all_published = True
    seen: dict[str, int] = {}
    for row in rows:
        entry: dict[str, Any] = {"line": row.line, "seat": row.seat}
        try:
            if row.error:
                raise Invalid(row.error)
            try:
                item = CheckIn(
                    seat=row.seat,
                    registration_id=row.registration_id,
                    client_reference=row.client_reference,
                    attended_at=row.attended_at,
                )
            except ValidationError as exc:
                reasons = (f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise Invalid("; ".join(reasons)) from None
            attendance_id, data, attended_at, extra = _checkin_data(doc, item, key)
            if attendance_id in seen:
                raise Invalid(f"the same attendee is already on line {seen[attendance_id]}")
            seen[attendance_id] = row.line
            status, stored, published = await _record(store, attendance_id, data, attended_at, extra)
            all_published &= published
            status = "recorded" if status == "accepted" else "duplicate"
            entry |= {"status": status, "attendance_id": attendance_id, "event_id": stored["event_id"]}
        except (Invalid, Conflict) as exc:
            status = "rejected"
            entry |= {"status": status, "reason": str(exc)}
        counts[status] += 1
        report.append(entry)
    return {
        "workshop_id": workshop_id,
        "rows": report,
        "duplicates": counts.pop("duplicate"),
        **counts,
        "published": all_published,
    }


async def _retract(
    outbox: Outbox, store: Store, record_id: str, reason: str, event: Envelope
) -> tuple[str, dict[str, Any], bool]:
    updated = await outbox.collection.find_one_and_update(
        {"_id": record_id, "retracted": False},
        outbox_append([event], {"retracted": True, "retraction_reason": reason, "retracted_at": event.time}),
        return_document=True,
    )
    if updated is None:  # retracted meanwhile
        updated = await outbox.collection.find_one({"_id": record_id})
        return "duplicate", updated or {}, await store.flush(outbox, record_id)
    return "retracted", updated, await store.flush(outbox, record_id)


async def retract_attendance(attendance_id: str, reason: str, store: Store, principal: Principal) -> Result:
    existing = await _get(store.attendances, attendance_id, "attendance")
    _require(principal, existing.get("partner_id"), existing.get("facilitator_id"), f"attendance {attendance_id}")
    if existing.get("retracted"):
        return "duplicate", existing, await store.flush(store.attendances, attendance_id)
    data = AttendanceRetracted(
        retracted_event_id=uuid.UUID(existing["event_id"]),
        attendance_id=attendance_id,
        person_ref=existing.get("person_ref"),
        reason=reason,
    )
    event = _event(data, "retracted", attendance_id, datetime.now(UTC), subject=existing.get("workshop_id"))
    return await _retract(store.attendances, store, attendance_id, reason, event)


# --- one-to-one accompaniments ----------------------------------------------------------------------


async def record_accompaniment(cmd: AccompanimentCreate, store: Store, principal: Principal, key: bytes) -> Result:
    _require(principal, cmd.partner_id, cmd.adviser_id, "this accompaniment (name your own partner or yourself)")
    if cmd.adviser_id:
        adviser = await store.facilitators.collection.find_one({"_id": cmd.adviser_id})
        if adviser is None or adviser["kind"] != "adviser":
            raise Invalid(f"no digital adviser {cmd.adviser_id}")
    if cmd.venue_id:
        venue = await store.venues.collection.find_one({"_id": cmd.venue_id})
        if venue is None:
            raise Invalid(f"no venue {cmd.venue_id}")
        if cmd.channel == "france_services" and venue["kind"] != "france_services":
            raise Invalid(f"venue {cmd.venue_id} is not an Espace France Services")
        territory = {k: venue[k] for k in ("departement", "region", "qpv", "rural", "timezone")}
    else:
        assert cmd.departement is not None
        territory = _territory(cmd.departement, cmd.qpv, cmd.rural)
    data = AccompanimentCompleted(
        accompaniment_id=cmd.accompaniment_id,
        person_ref=_ref(cmd.client_reference, key),
        channel=Channel(cmd.channel),
        commitment=cmd.commitment,
        partner_id=cmd.partner_id,
        need=cmd.need,
        duration_minutes=cmd.duration_minutes,
        venue_id=cmd.venue_id,
        adviser_id=cmd.adviser_id,
        **territory,
    )
    event = _event(data, "accompaniment.completed", cmd.accompaniment_id, cmd.completed_at)
    fields = data.model_dump(mode="json") | {"event_id": str(event.id)}
    doc = {
        "_id": cmd.accompaniment_id,
        **fields,
        "completed_at": cmd.completed_at,
        "retracted": False,
        "recorded_at": datetime.now(UTC),
    }
    status, stored, published = await _create(store, store.accompaniments, doc, [event], list(fields))
    return ("accepted" if status == "created" else status), stored, published


async def retract_accompaniment(accompaniment_id: str, reason: str, store: Store, principal: Principal) -> Result:
    existing = await _get(store.accompaniments, accompaniment_id, "accompaniment")
    _require(principal, existing.get("partner_id"), existing.get("adviser_id"), f"accompaniment {accompaniment_id}")
    if existing.get("retracted"):
        return "duplicate", existing, await store.flush(store.accompaniments, accompaniment_id)
    data = AccompanimentRetracted(
        retracted_event_id=uuid.UUID(existing["event_id"]),
        accompaniment_id=accompaniment_id,
        person_ref=existing.get("person_ref"),
        reason=reason,
    )
    event = _event(data, "accompaniment.retracted", accompaniment_id, datetime.now(UTC))
    return await _retract(store.accompaniments, store, accompaniment_id, reason, event)
