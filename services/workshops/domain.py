"""Pure rules of the workshops service: local times, seats and the waiting list, check-in times, sheets, who may
do what."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.identity import Principal, Role

__all__ = [
    "NS",
    "event_id",
    "record_id",
    "local_to_aware",
    "local_midnight",
    "DOORS_OPEN",
    "LATE_CHECK_IN",
    "check_in_window",
    "check_attended_at",
    "Seats",
    "register",
    "cancel_registration",
    "active_person_refs",
    "SheetRow",
    "parse_sheet",
    "attendance_key",
    "can_read",
    "can_manage",
    "can_use_venue",
    "RuleBroken",
]

# Namespace of every deterministic id of this service: the same fact always gets the same id.
NS = uuid.UUID("6f1c1f8e-3d1a-4b7e-9a55-0c2b1d6a7e01")

REGISTERED, WAITING, CANCELLED = "registered", "waiting", "cancelled"
MAX_SHEET_ROWS = 500
SHEET_COLUMNS = ("seat", "client_reference", "registration_id", "attended_at")


class RuleBroken(ValueError):
    """A command that the rules refuse (the message says why)."""


def event_id(kind: str, record: str) -> uuid.UUID:
    """Deterministic event id: retries of one command never create a second event."""
    return uuid.uuid5(NS, f"{kind}:{record}")


def record_id(prefix: str, *parts: str) -> str:
    """A short deterministic id for a record derived from other ids (fits the 64-character id pattern)."""
    return f"{prefix}-{uuid.uuid5(NS, '|'.join(parts))}"


# --- time -----------------------------------------------------------------------------------------


def local_to_aware(local: datetime, tz: str) -> datetime:
    """A wall-clock time at the venue as an aware datetime; refuses times that do not exist there (DST gap)."""
    if local.tzinfo is not None:
        raise RuleBroken("give the local time at the venue, without a UTC offset")
    zone = ZoneInfo(tz)
    aware = local.replace(tzinfo=zone)
    try:
        round_trip = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    except OverflowError:  # within hours of year 1 or 9999: no venue's calendar goes there
        raise RuleBroken(f"{local.isoformat()} is out of range in {tz}") from None
    if round_trip != local:
        raise RuleBroken(f"{local.isoformat()} does not exist in {tz} (clocks change)")
    return aware


def local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0, 0), ZoneInfo(tz))


# --- check-in times ---------------------------------------------------------------------------------

# An attendance happens during its session, give or take: people come in before the start (the doors open an hour
# before) and the sheet is signed or the last person checked in up to an hour after the end. A time outside that
# names another session (or another day), so it is refused rather than counted here.
DOORS_OPEN = timedelta(hours=1)
LATE_CHECK_IN = timedelta(hours=1)


def check_in_window(starts_at: datetime, duration_minutes: int) -> tuple[datetime, datetime]:
    """When an attendance at this session may be dated: from DOORS_OPEN before the start to LATE_CHECK_IN after
    the end."""
    return starts_at - DOORS_OPEN, starts_at + timedelta(minutes=duration_minutes) + LATE_CHECK_IN


def check_attended_at(attended_at: datetime, starts_at: datetime, duration_minutes: int, tz: str) -> None:
    """Refuses an attendance time outside the session's check-in window (said in the venue's local time)."""
    opens, closes = check_in_window(starts_at, duration_minutes)
    if not opens <= attended_at <= closes:
        zone = ZoneInfo(tz)
        raise RuleBroken(
            f"attended_at {attended_at.isoformat()} is outside the session: check-in is open from "
            f"{opens.astimezone(zone):%Y-%m-%dT%H:%M} to {closes.astimezone(zone):%Y-%m-%dT%H:%M} at the venue "
            f"({tz}), an hour before the start to an hour after the end"
        )


# --- seats and waiting list -------------------------------------------------------------------------


@dataclass
class Seats:
    """A session's registrations, in arrival order: {id: {"person_ref", "origin", "status", "at"}}."""

    capacity: int
    registrations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ids(self, status: str) -> list[str]:
        ordered = sorted(self.registrations.items(), key=lambda kv: (kv[1]["seq"], kv[0]))
        return [rid for rid, reg in ordered if reg["status"] == status]

    @property
    def taken(self) -> int:
        return len(self.ids(REGISTERED))

    def position(self, registration_id: str) -> int | None:
        waiting = self.ids(WAITING)
        return waiting.index(registration_id) + 1 if registration_id in waiting else None

    def holder(self, person_ref: str) -> str | None:
        for rid, reg in self.registrations.items():
            if reg["person_ref"] == person_ref and reg["status"] != CANCELLED:
                return rid
        return None


def register(seats: Seats, registration_id: str, person_ref: str | None, origin: str) -> str:
    """Adds a registration; returns its status ("registered", or "waiting" when the session is full)."""
    if registration_id in seats.registrations:
        raise RuleBroken(f"registration {registration_id} exists")
    if person_ref and seats.holder(person_ref):
        raise RuleBroken("this person is already registered for this session")
    status = REGISTERED if seats.taken < seats.capacity else WAITING
    seq = max((r["seq"] for r in seats.registrations.values()), default=0) + 1
    seats.registrations[registration_id] = {"person_ref": person_ref, "origin": origin, "status": status, "seq": seq}
    return status


def cancel_registration(seats: Seats, registration_id: str) -> str | None:
    """Cancels one registration; a freed seat goes to the first on the waiting list (returned)."""
    reg = seats.registrations.get(registration_id)
    if reg is None:
        raise RuleBroken(f"no registration {registration_id}")
    if reg["status"] == CANCELLED:
        return None
    freed = reg["status"] == REGISTERED
    reg["status"] = CANCELLED
    if freed and seats.taken < seats.capacity:
        waiting = seats.ids(WAITING)
        if waiting:
            seats.registrations[waiting[0]]["status"] = REGISTERED
            return waiting[0]
    return None


def active_person_refs(seats: Seats) -> list[str]:
    """Who must be told when the session is cancelled: everyone registered or waiting, if known."""
    refs = [seats.registrations[rid]["person_ref"] for rid in seats.ids(REGISTERED) + seats.ids(WAITING)]
    return [r for r in refs if r]


# --- attendance sheets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetRow:
    line: int  # line number in the file (the header is line 1)
    seat: str
    client_reference: str | None
    registration_id: str | None
    attended_at: datetime | None
    error: str | None = None


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def parse_sheet(text: str) -> tuple[list[SheetRow], str | None]:
    """Parses an attendance sheet (CSV, header `seat,client_reference,registration_id,attended_at`; only `seat`
    is required). Returns the rows, each with its own error if any, or a whole-file error."""
    sample = text[:2048]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    if "seat" not in header:
        return [], "the header must name a 'seat' column (the attendee's line on the paper sheet)"
    unknown = [h for h in header if h not in SHEET_COLUMNS]
    if unknown:
        return [], f"unknown columns {unknown}; allowed: {list(SHEET_COLUMNS)}"
    reader.fieldnames = header
    rows: list[SheetRow] = []
    seen_seats: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if len(rows) >= MAX_SHEET_ROWS:
            return [], f"a sheet has at most {MAX_SHEET_ROWS} rows"
        if not any(_clean(v) for k, v in raw.items() if k is not None):
            continue  # blank line
        seat = _clean(raw.get("seat"))
        ref = _clean(raw.get("client_reference"))
        reg = _clean(raw.get("registration_id"))
        when_text = _clean(raw.get("attended_at"))
        error = None
        when = None
        if raw.get(None):  # type: ignore[call-overload]
            error = "more values than columns"
        elif seat is None:
            error = "seat is missing"
        elif len(seat) > 16:
            error = "seat is longer than 16 characters"
        elif seat in seen_seats:
            error = f"seat {seat} already used on line {seen_seats[seat]}"
        elif ref is not None and len(ref) > 128:
            error = "client_reference is longer than 128 characters"
        elif reg is not None and len(reg) > 64:
            error = "registration_id is longer than 64 characters"
        elif when_text is not None:
            try:
                when = datetime.fromisoformat(when_text)
            except ValueError:
                error = f"attended_at {when_text!r} is not an ISO 8601 date-time"
            else:
                if when.tzinfo is None:
                    error = "attended_at must carry a UTC offset"
        if seat is not None and seat not in seen_seats:
            seen_seats[seat] = line
        rows.append(SheetRow(line, seat or "", ref, reg, when, error))
    return rows, None


def attendance_key(workshop_id: str, person_ref: str | None, registration_id: str | None, seat: str | None) -> str:
    """The attendance id of one check-in: a known person attends a session once, whatever the channel
    (one by one or sheet, uploaded once or twice); an anonymous attendee is known by registration or seat."""
    if person_ref:
        return record_id("att", workshop_id, "p", person_ref)
    if registration_id:
        return record_id("att", workshop_id, "r", registration_id)
    if seat:
        return record_id("att", workshop_id, "s", seat)
    raise RuleBroken("an anonymous attendee needs a seat number or a registration id")


# --- access -----------------------------------------------------------------------------------------


def can_read(principal: Principal, partner_id: str | None, facilitator_id: str | None) -> bool:
    """Admins and monitoring read everything; a partner user its own partner's records; an adviser the
    sessions they facilitate."""
    if principal.role in (Role.ADMIN, Role.MONITORING):
        return True
    if principal.role == Role.PARTNER:
        return partner_id is not None and partner_id == principal.partner_id
    if principal.role == Role.ADVISER:
        return facilitator_id is not None and facilitator_id == principal.adviser_id
    return False


def can_manage(principal: Principal, partner_id: str | None, facilitator_id: str | None) -> bool:
    """Same scope as reading, minus monitoring (read-only)."""
    return principal.role != Role.MONITORING and can_read(principal, partner_id, facilitator_id)


def can_use_venue(principal: Principal, venue_partner_id: str | None) -> bool:
    """La Poste's venues (no partner: post-office rooms, Espaces France Services) serve everyone; a partner's
    premises are that partner's alone (admins and monitoring see every venue)."""
    if principal.role in (Role.ADMIN, Role.MONITORING) or venue_partner_id is None:
        return True
    return principal.role == Role.PARTNER and venue_partner_id == principal.partner_id
