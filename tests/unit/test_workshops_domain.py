"""The workshops service's pure rules: local times, seats and waiting list, attendance sheets, access."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.workshops import domain
from services.workshops.domain import RuleBroken, Seats
from shared.identity import Principal, Role

pytestmark = pytest.mark.unit


def test_local_time_is_read_in_the_venues_zone() -> None:
    assert domain.local_to_aware(datetime(2026, 1, 15, 14, 0), "Europe/Paris").astimezone(UTC).hour == 13
    assert domain.local_to_aware(datetime(2026, 7, 15, 14, 0), "Europe/Paris").astimezone(UTC).hour == 12
    assert domain.local_to_aware(datetime(2026, 7, 15, 14, 0), "Indian/Reunion").astimezone(UTC).hour == 10
    # New Year's Eve at 21:00 in Guadeloupe is already the next civil year in UTC: the zone is kept.
    eve = domain.local_to_aware(datetime(2026, 12, 31, 21, 0), "America/Guadeloupe")
    assert eve.year == 2026 and eve.astimezone(UTC).year == 2027


def test_local_time_that_does_not_exist_or_carries_an_offset_is_refused() -> None:
    with pytest.raises(RuleBroken, match="does not exist"):
        domain.local_to_aware(datetime(2026, 3, 29, 2, 30), "Europe/Paris")
    with pytest.raises(RuleBroken, match="without a UTC offset"):
        domain.local_to_aware(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), "Europe/Paris")


def test_seats_fill_then_the_waiting_list_in_order() -> None:
    seats = Seats(capacity=2)
    statuses = [domain.register(seats, f"r{n}", f"p{n}", "walk_in") for n in range(4)]
    assert statuses == ["registered", "registered", "waiting", "waiting"]
    assert seats.position("r2") == 1 and seats.position("r3") == 2 and seats.position("r0") is None


def test_a_freed_seat_goes_to_the_first_waiting_and_only_a_seat_frees_one() -> None:
    seats = Seats(capacity=1)
    for n in range(3):
        domain.register(seats, f"r{n}", None, "walk_in")
    assert domain.cancel_registration(seats, "r2") is None  # waiting: frees nothing
    assert domain.cancel_registration(seats, "r0") == "r1"
    assert seats.ids("registered") == ["r1"] and seats.ids("waiting") == []
    assert domain.cancel_registration(seats, "r0") is None  # twice: nothing more
    with pytest.raises(RuleBroken):
        domain.cancel_registration(seats, "nobody")


def test_one_person_registers_once_and_anonymous_people_are_not_notified() -> None:
    seats = Seats(capacity=1)
    domain.register(seats, "r1", "p1", "referral")
    with pytest.raises(RuleBroken, match="already registered"):
        domain.register(seats, "r2", "p1", "walk_in")
    domain.register(seats, "r3", None, "walk_in")
    domain.register(seats, "r4", "p4", "walk_in")
    assert domain.active_person_refs(seats) == ["p1", "p4"]  # registered, then waiting; anonymous left out
    domain.cancel_registration(seats, "r1")
    assert domain.active_person_refs(seats) == ["p4"]


def test_sheet_rows_each_carry_their_own_error() -> None:
    text = (
        "seat;client_reference;attended_at\n1;abc;\n1;def;\n;ghi;\n2;;2026-05-01T10:00:00\n\n"
        "3;;2026-05-01T10:00+02:00\n"
    )
    rows, error = domain.parse_sheet(text)
    assert error is None
    assert [(r.line, r.seat, r.error) for r in rows] == [
        (2, "1", None),
        (3, "1", "seat 1 already used on line 2"),
        (4, "", "seat is missing"),
        (5, "2", "attended_at must carry a UTC offset"),
        (7, "3", None),
    ]
    assert rows[0].client_reference == "abc" and rows[4].attended_at.utcoffset().total_seconds() == 7200


@pytest.mark.parametrize(
    "text, reason", [("name,phone\nA,B\n", "'seat' column"), ("seat,phone\n1,0600\n", "unknown columns"), ("", "seat")]
)
def test_a_sheet_without_the_right_header_is_refused_whole(text: str, reason: str) -> None:
    rows, error = domain.parse_sheet(text)
    assert rows == [] and reason in error


def test_attendance_ids_are_deterministic_per_person_and_session() -> None:
    a = domain.attendance_key("w1", "ref", "r1", "1")
    assert a == domain.attendance_key("w1", "ref", None, "7")  # the same person, whatever the seat
    assert a != domain.attendance_key("w2", "ref", None, None)
    assert domain.attendance_key("w1", None, None, "1") != domain.attendance_key("w1", None, None, "2")
    assert len(a) <= 64
    with pytest.raises(RuleBroken):
        domain.attendance_key("w1", None, None, None)


ADMIN = Principal("a", Role.ADMIN)
MONITOR = Principal("m", Role.MONITORING)
PARTNER = Principal("p", Role.PARTNER, partner_id="P1")
ADVISER = Principal("c", Role.ADVISER, adviser_id="CN1")


@pytest.mark.parametrize(
    "who, partner, facilitator, read, manage",
    [
        (ADMIN, None, None, True, True),
        (MONITOR, "P1", "CN1", True, False),
        (PARTNER, "P1", None, True, True),
        (PARTNER, "P2", "CN1", False, False),
        (PARTNER, None, None, False, False),
        (ADVISER, "P1", "CN1", True, True),
        (ADVISER, "P1", "CN2", False, False),
        (ADVISER, None, None, False, False),
    ],
)
def test_access(who: Principal, partner: str | None, facilitator: str | None, read: bool, manage: bool) -> None:
    assert domain.can_read(who, partner, facilitator) is read
    assert domain.can_manage(who, partner, facilitator) is manage
