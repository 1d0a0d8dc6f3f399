"""Help records: attendance (one by one or by sheet) and one-to-one accompaniments, and their retractions.

Each record is an aggregate of its own: version 1 is the record with its help event (created once: a retry with
the same details is a duplicate), version 2 its retraction (won once: a retried retraction is a duplicate).
Where a help happened comes from the registry, never from the body (`registry.py`); an attendance is dated within
its session (`domain.check_in_window`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.workshops import domain, registry
from services.workshops.domain import RuleBroken, event_id
from services.workshops.handlers import (
    TERRITORY,
    Decide,
    Result,
    changed_or_duplicate,
    create_once,
    duplicate_of,
    ids_of,
    make_event,
    published_now,
    ref_of,
    require_manage,
    require_manage_record,
)
from services.workshops.schemas import AccompanimentCreate, AttendanceCreate, CheckIn, SheetReport
from services.workshops.store import Store
from shared.aggregates import Aggregates, Change, Version
from shared.errors import Conflict, Invalid, Refusal
from shared.events import (
    AccompanimentCompleted,
    AccompanimentRetracted,
    AttendanceRetracted,
    Channel,
    Envelope,
    WorkshopAttended,
)
from shared.identity import Principal

__all__ = [
    "record_attendance",
    "check_in",
    "check_in_sheet",
    "retract_attendance",
    "record_accompaniment",
    "record_accompaniments",
    "retract_accompaniment",
]


def _attendance(
    attendance_id: str, data: WorkshopAttended, attended_at: datetime, extra: dict[str, Any], now: datetime
) -> tuple[Change, list[str]]:
    """Version 1 of an attendance and the fields a retry must repeat."""
    event = make_event(data, "attended", attendance_id, attended_at, subject=data.workshop_id)
    fields = data.model_dump(mode="json") | {"event_id": str(event.id)}
    state = {**fields, "attended_at": attended_at, **extra, "retracted": False, "recorded_at": now}
    return Change(state, [event]), list(fields)  # attended_at is not compared: stored to the millisecond


async def _record(store: Store, attendance_id: str, change: Change, compare: list[str]) -> Result:
    return await create_once(store.attendances, attendance_id, change, compare, "attendance")


def _attended(workshop: Version, attendance_id: str, person: str | None) -> WorkshopAttended:
    """The help event of an attendance at this session: theme, venue, partner and territory are the session's."""
    doc = workshop.state
    return WorkshopAttended(
        attendance_id=attendance_id,
        workshop_id=workshop.aggregate_id,
        theme=doc["theme"],
        venue_id=doc["venue_id"],
        person_ref=person,
        partner_id=doc.get("partner_id"),
        commitment=doc["commitment"],
        **{k: doc[k] for k in TERRITORY},
    )


def _dated(workshop: Version, attended_at: datetime) -> None:
    doc = workshop.state
    try:
        domain.check_attended_at(attended_at, doc["starts_at"], doc["duration_minutes"], doc["timezone"])
    except RuleBroken as exc:
        raise Invalid(str(exc)) from None


async def record_attendance(store: Store, who: Principal, cmd: AttendanceCreate, *, key: bytes) -> Result:
    """The self-contained check-in: the caller names a session of its own and the time; the rest is the
    session's (a venue or partner named beside it must be the session's; its territory and theme are ignored)."""
    workshop = await registry.session(store, who, cmd.workshop_id)
    doc = workshop.state
    await registry.held_at(store, who, workshop, cmd.venue_id)
    if cmd.partner_id is not None and cmd.partner_id != doc.get("partner_id"):
        runner = f"partner {doc['partner_id']}" if doc.get("partner_id") else "La Poste (no partner)"
        raise Invalid(f"partner_id: workshop {cmd.workshop_id} is run by {runner}, not by partner {cmd.partner_id}")
    _dated(workshop, cmd.attended_at)
    if doc["status"] != "scheduled" and await store.attendances.get(cmd.attendance_id) is None:
        raise Conflict(f"the workshop is {doc['status']}")  # a retry of one recorded before is still a duplicate
    data = _attended(workshop, cmd.attendance_id, ref_of(cmd.client_reference, key))
    extra = {"facilitator_id": doc.get("facilitator_id")}
    change, compare = _attendance(cmd.attendance_id, data, cmd.attended_at, extra, store.outbox.clock())
    result = await _record(store, cmd.attendance_id, change, compare)
    return dataclasses.replace(result, ignored=registry.ignored(cmd, doc, registry.ATTENDANCE_FACTS))


def _checkin(workshop: Version, item: CheckIn, key: bytes, now: datetime) -> tuple[str, Change, list[str]]:
    """Resolves one check-in against its session (pure given the workshop's version); raises Invalid."""
    doc = workshop.state
    ref = ref_of(item.client_reference, key)
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
        registration_id = domain.Seats(doc["capacity"], regs).holder(ref)
    starts_at = doc["starts_at"]
    opens, _ = domain.check_in_window(starts_at, doc["duration_minutes"])
    if now < opens:
        raise Invalid("the session has not started yet: check-in opens an hour before the start")
    attended_at = item.attended_at or min(starts_at, now)  # at the door before the start: now
    _dated(workshop, attended_at)
    try:
        attendance_id = domain.attendance_key(workshop.aggregate_id, ref, registration_id, item.seat)
    except RuleBroken as exc:
        raise Invalid(str(exc)) from None
    data = _attended(workshop, attendance_id, ref)
    extra = {"facilitator_id": doc.get("facilitator_id"), "registration_id": registration_id, "seat": item.seat}
    change, compare = _attendance(attendance_id, data, attended_at, extra, now)
    return attendance_id, change, compare


async def _open_session(store: Store, who: Principal, workshop_id: str) -> Version:
    workshop = await store.workshops.require(workshop_id, "workshop")
    state = workshop.state
    require_manage_record(who, state, "facilitator_id", f"workshop {workshop_id}")
    if state["status"] != "scheduled":
        raise Conflict(f"the workshop is {state['status']}")
    return workshop


async def check_in(store: Store, who: Principal, workshop_id: str, item: CheckIn, *, key: bytes) -> Result:
    workshop = await _open_session(store, who, workshop_id)
    attendance_id, change, compare = _checkin(workshop, item, key, store.outbox.clock())
    return await _record(store, attendance_id, change, compare)


def _sheet_item(row: domain.SheetRow) -> CheckIn:
    if row.error:
        raise Invalid(row.error)
    try:
        return CheckIn(
            seat=row.seat,
            registration_id=row.registration_id,
            client_reference=row.client_reference,
            attended_at=row.attended_at,
        )
    except ValidationError as exc:
        raise Invalid("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None


async def check_in_sheet(store: Store, who: Principal, workshop_id: str, text: str, *, key: bytes) -> SheetReport:
    """Records every good row of an attendance sheet once; reports each row (recorded, duplicate, rejected)."""
    workshop = await _open_session(store, who, workshop_id)
    rows, error = domain.parse_sheet(text)
    if error:
        raise Invalid(error)
    report: list[dict[str, Any]] = []
    good: list[tuple[dict[str, Any], tuple[str, Change, list[str]]]] = []
    seen: dict[str, int] = {}
    now = store.outbox.clock()
    for row in rows:
        entry: dict[str, Any] = {"line": row.line, "seat": row.seat}
        report.append(entry)
        try:
            attendance_id, change, compare = _checkin(workshop, _sheet_item(row), key, now)
            if attendance_id in seen:
                raise Invalid(f"the same attendee is already on line {seen[attendance_id]}")
        except Invalid as exc:
            entry |= {"status": "rejected", "reason": exc.reason}
            continue
        seen[attendance_id] = row.line
        good.append((entry, (attendance_id, change, compare)))
    results = await create_all(store.attendances, [item for _, item in good], "attendance")
    all_published = True
    for (entry, (attendance_id, _, _)), result in zip(good, results, strict=True):
        if isinstance(result, Result):
            all_published &= result.published
            status = "recorded" if result.outcome == "created" else "duplicate"
            entry |= {"status": status, "attendance_id": attendance_id, "event_id": result.record["event_id"]}
        else:
            entry |= {"status": "rejected", "reason": result.reason}
    counts = Counter(entry["status"] for entry in report)
    return SheetReport(
        workshop_id=workshop_id,
        rows=report,
        recorded=counts["recorded"],
        duplicates=counts["duplicate"],
        rejected=counts["rejected"],
        published=all_published,
    )


def decide_retraction(who: Principal, what: str, manager: str, reason: str, retraction: Envelope) -> Decide:
    """Version 2 of a help record: the same record, retracted, with the retraction event (once)."""

    def decide(current: Version) -> Change | None:
        state = current.state
        require_manage_record(who, state, manager, what)
        if state.get("retracted"):
            return None
        fields = {"retracted": True, "retraction_reason": reason, "retracted_at": retraction.time}
        return Change({**state, **fields}, [retraction])

    return decide


async def retract_attendance(store: Store, who: Principal, attendance_id: str, reason: str) -> Result:
    existing = await store.attendances.require(attendance_id, "attendance")
    data = AttendanceRetracted(
        retracted_event_id=uuid.UUID(existing.state["event_id"]),
        attendance_id=attendance_id,
        person_ref=existing.state.get("person_ref"),
        reason=reason,
    )
    subject = existing.state.get("workshop_id")
    event = make_event(data, "retracted", attendance_id, store.outbox.clock(), subject=subject)
    decide = decide_retraction(who, f"attendance {attendance_id}", "facilitator_id", reason, event)
    version, changed = await store.attendances.change(attendance_id, decide, what="attendance")
    ids = (str(event_id("retracted", attendance_id)),)
    return await changed_or_duplicate(store.attendances, version, changed, ids)


# --- one-to-one accompaniments ----------------------------------------------------------------------


Lookup = Callable[[Aggregates, str], Awaitable[Version | None]]


async def _get(series: Aggregates, record_id: str) -> Version | None:
    return await series.get(record_id)


async def _accompaniment(
    store: Store, who: Principal, cmd: AccompanimentCreate, key: bytes, lookup: Lookup = _get
) -> tuple[Change, list[str], tuple[str, ...]]:
    """Version 1 of an accompaniment, the fields a retry must repeat and the body's facts the venue overrode;
    raises a refusal."""
    require_manage(who, cmd.partner_id, cmd.adviser_id, "this accompaniment (name your own partner or yourself)")
    if cmd.adviser_id:
        adviser = await lookup(store.facilitators, cmd.adviser_id)
        if adviser is None or adviser.state["kind"] != "adviser":
            raise Invalid(f"no digital adviser {cmd.adviser_id}")
    venue = registry.usable_venue(await lookup(store.venues, cmd.venue_id), who, cmd.venue_id)
    owner = venue.state.get("partner_id")
    if owner is not None and owner != cmd.partner_id:  # seen by an admin: say why (others got 404)
        raise Invalid(f"venue_id: venue {cmd.venue_id} is the premises of another partner")
    if cmd.channel == "france_services" and venue.state["kind"] != "france_services":
        raise Invalid(f"venue_id: venue {cmd.venue_id} is not an Espace France Services")
    data = AccompanimentCompleted(
        accompaniment_id=cmd.accompaniment_id,
        person_ref=ref_of(cmd.client_reference, key),
        channel=Channel(cmd.channel),
        commitment=cmd.commitment,
        partner_id=cmd.partner_id,
        need=cmd.need,
        duration_minutes=cmd.duration_minutes,
        venue_id=cmd.venue_id,
        adviser_id=cmd.adviser_id,
        **{k: venue.state[k] for k in TERRITORY},
    )
    event = make_event(data, "accompaniment.completed", cmd.accompaniment_id, cmd.completed_at)
    fields = data.model_dump(mode="json") | {"event_id": str(event.id)}
    state = {**fields, "completed_at": cmd.completed_at, "retracted": False, "recorded_at": store.outbox.clock()}
    return Change(state, [event]), list(fields), registry.ignored(cmd, venue.state, registry.PLACE_FACTS)


async def record_accompaniment(store: Store, who: Principal, cmd: AccompanimentCreate, *, key: bytes) -> Result:
    change, compare, ignored = await _accompaniment(store, who, cmd, key)
    result = await create_once(store.accompaniments, cmd.accompaniment_id, change, compare, "accompaniment")
    return dataclasses.replace(result, ignored=ignored)


async def create_all(
    series: Aggregates, items: Sequence[tuple[str, Change, list[str]]], what: str
) -> list[Result | Conflict]:
    """Version 1 of many new records in a few writes (`create_many`); those that exist already are duplicates,
    or a Conflict when the details differ. In the order given."""
    created = await series.create_many([(record_id, change) for record_id, change, _ in items])
    # One publish covered every new version: one of them tells for all.
    written = [v for v in created if v is not None]
    sent = await published_now(series, written[0]) if written else True
    results: list[Result | Conflict] = []
    for (record_id, change, compare), version in zip(items, created, strict=True):
        if version is not None:
            results.append(Result("created", record_id, version.head(), ids_of(version.events), sent))
            continue
        try:
            results.append(await duplicate_of(series, record_id, change, compare, what))
        except Conflict as exc:
            results.append(exc)
    return results


async def record_accompaniments(
    store: Store, who: Principal, cmds: Sequence[AccompanimentCreate], *, key: bytes
) -> list[Result | Refusal]:
    """Many accompaniments at once (imports, the demo): each one's result or refusal, in the order given."""
    seen: dict[tuple[str, str], Version | None] = {}

    async def lookup(series: Aggregates, record_id: str) -> Version | None:
        if (series.kind, record_id) not in seen:
            seen[series.kind, record_id] = await series.get(record_id)
        return seen[series.kind, record_id]

    refused: dict[int, Refusal] = {}
    items = []
    for n, cmd in enumerate(cmds):
        try:
            change, compare, _ = await _accompaniment(store, who, cmd, key, lookup)
        except Refusal as exc:
            refused[n] = exc
            continue
        items.append((cmd.accompaniment_id, change, compare))
    done = iter(await create_all(store.accompaniments, items, "accompaniment"))
    return [refused[n] if n in refused else next(done) for n in range(len(cmds))]


async def retract_accompaniment(store: Store, who: Principal, accompaniment_id: str, reason: str) -> Result:
    existing = await store.accompaniments.require(accompaniment_id, "accompaniment")
    data = AccompanimentRetracted(
        retracted_event_id=uuid.UUID(existing.state["event_id"]),
        accompaniment_id=accompaniment_id,
        person_ref=existing.state.get("person_ref"),
        reason=reason,
    )
    event = make_event(data, "accompaniment.retracted", accompaniment_id, store.outbox.clock())
    decide = decide_retraction(who, f"accompaniment {accompaniment_id}", "adviser_id", reason, event)
    version, changed = await store.accompaniments.change(accompaniment_id, decide, what="accompaniment")
    ids = (str(event_id("accompaniment.retracted", accompaniment_id)),)
    return await changed_or_duplicate(store.accompaniments, version, changed, ids)
