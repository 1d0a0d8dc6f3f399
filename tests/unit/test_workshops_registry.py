"""Help records take where and what from the registry, over the in-memory document store: the session and venue
they name must exist and be the caller's, the time must fall within the session, the body's territory is ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.workshops import checkins, domain, handlers
from services.workshops.schemas import AttendanceCreate, CheckIn
from services.workshops.store import Store
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.identity import Principal, Role
from tests.unit.test_workshops_handlers import (
    ADMIN,
    KEY,
    MONITOR,
    OWNER,
    STRANGER,
    Recorder,
    accompaniment_cmd,
    venue,
    workshop,
)

pytestmark = pytest.mark.unit

PARIS = ZoneInfo("Europe/Paris")
ADVISER = Principal("adviser-1", Role.ADVISER, adviser_id="cn-1")


@pytest.fixture
def kafka() -> Recorder:
    return Recorder()


@pytest.fixture
def store(kafka: Recorder) -> Store:
    return Store.in_memory(kafka)  # type: ignore[arg-type]


def attendance(workshop_id: str = "w-1", **over: Any) -> AttendanceCreate:
    body = {
        "attendance_id": "att-1",
        "workshop_id": workshop_id,
        "attended_at": datetime.now(UTC) - timedelta(minutes=30),
        "client_reference": "client-a",
    }
    return AttendanceCreate.model_validate(body | over)


def three_days_ago_at_ten() -> datetime:
    """A session that is over: 10:00 to 12:00 at the venue (Paris), three days ago."""
    day = (datetime.now(PARIS) - timedelta(days=3)).date()
    return datetime(day.year, day.month, day.day, 10, 0)


# --- attendance: the session decides ----------------------------------------------------------------


async def test_an_attendance_is_filed_where_its_session_is_whatever_the_body_says(
    store: Store, kafka: Recorder
) -> None:
    await workshop(store)  # at v-1: Saint-Denis (93), in a QPV, not rural
    said = {"departement": "971", "qpv": False, "rural": True, "theme": "tablet_basics"}
    first = await checkins.record_attendance(store, OWNER, attendance(**said, venue_id="v-1"), key=KEY)
    assert first.outcome == "created" and first.ignored == ("theme", "departement", "qpv", "rural")
    stored = first.record
    assert (stored["departement"], stored["region"], stored["timezone"]) == ("93", "11", "Europe/Paris")
    assert (stored["qpv"], stored["rural"], stored["theme"], stored["partner_id"]) == (
        True,
        False,
        "online_banking",
        "p-own",
    )
    (event,) = [e for e in kafka.events if e.type == "workshop.attended"]
    assert (event.data.departement, event.data.qpv, event.data.venue_id) == ("93", True, "v-1")
    # What the registry decides is not a detail of the record: said otherwise on a retry, still the same one.
    again = await checkins.record_attendance(store, OWNER, attendance(departement="75"), key=KEY)
    assert (again.outcome, again.ignored) == ("duplicate", ("departement",))
    agreeing = await checkins.record_attendance(store, OWNER, attendance(departement="93", qpv=True), key=KEY)
    assert agreeing.ignored == ()


async def test_an_unknown_or_another_organisations_workshop_is_not_found_alike(store: Store) -> None:
    await workshop(store, facilitator_id=None)
    refusals = []
    for who, workshop_id in ((OWNER, "w-nowhere"), (STRANGER, "w-1"), (ADVISER, "w-1")):
        with pytest.raises(NotFound) as caught:
            await checkins.record_attendance(store, who, attendance(workshop_id), key=KEY)
        refusals.append(caught.value.reason.replace(workshop_id, "<id>"))
    assert refusals == ["no workshop <id>"] * 3  # nothing tells a stranger's session from no session
    with pytest.raises(Forbidden):
        await checkins.record_attendance(store, MONITOR, attendance(), key=KEY)
    assert await store.attendances.get("att-1") is None


async def test_a_venue_or_partner_named_beside_the_session_must_be_the_sessions(store: Store) -> None:
    await workshop(store)
    await venue(store, venue_id="v-2", commune_insee="75056")  # La Poste's, in Paris
    await venue(store, venue_id="v-theirs", kind="partner_premises", partner_id="p-other")
    with pytest.raises(Invalid, match="venue_id: workshop w-1 is held at venue v-1, not v-2"):
        await checkins.record_attendance(store, OWNER, attendance(venue_id="v-2"), key=KEY)
    for unknown in ("v-nowhere", "v-theirs"):  # another partner's premises: as if there were none
        with pytest.raises(NotFound, match=f"no venue {unknown}"):
            await checkins.record_attendance(store, OWNER, attendance(venue_id=unknown), key=KEY)
    with pytest.raises(Invalid, match="venue_id: workshop w-1 is held at venue v-1, not v-theirs"):
        await checkins.record_attendance(store, ADMIN, attendance(venue_id="v-theirs"), key=KEY)  # admins see all
    with pytest.raises(Invalid, match="partner_id: workshop w-1 is run by partner p-own, not by partner p-other"):
        await checkins.record_attendance(store, ADMIN, attendance(partner_id="p-other"), key=KEY)
    assert (await checkins.record_attendance(store, OWNER, attendance(partner_id="p-own"), key=KEY)).created


async def test_an_attendance_outside_its_session_is_refused_at_every_door(store: Store) -> None:
    await workshop(store, starts_local=three_days_ago_at_ten(), duration_minutes=120)
    starts = (await store.workshops.require("w-1", "workshop")).state["starts_at"]
    opens, closes = starts - domain.DOORS_OPEN, starts + timedelta(hours=2) + domain.LATE_CHECK_IN
    for n, when in enumerate((opens - timedelta(minutes=1), closes + timedelta(minutes=1))):
        with pytest.raises(Invalid, match="attended_at .* is outside the session: check-in is open from"):
            await checkins.record_attendance(
                store, OWNER, attendance(attendance_id=f"a-{n}", attended_at=when), key=KEY
            )
        with pytest.raises(Invalid, match="outside the session"):
            await checkins.check_in(store, OWNER, "w-1", CheckIn(seat=str(n), attended_at=when), key=KEY)
    for n, when in enumerate((opens, starts, closes)):  # the window's edges belong to it
        recorded = await checkins.record_attendance(
            store, OWNER, attendance(attendance_id=f"b-{n}", attended_at=when, client_reference=f"c-{n}"), key=KEY
        )
        assert recorded.created
    local = f"{opens.astimezone(PARIS):%Y-%m-%dT%H:%M}"
    sheet = "\n".join(
        ["seat,attended_at", f"1,{(opens - timedelta(minutes=5)).isoformat()}", f"2,{starts.isoformat()}", "3,"]
    )
    report = await checkins.check_in_sheet(store, OWNER, "w-1", sheet, key=KEY)
    assert [r["status"] for r in report.rows] == ["rejected", "recorded", "recorded"]
    assert "outside the session" in report.rows[0]["reason"] and local in report.rows[0]["reason"]


async def test_check_in_opens_an_hour_before_the_start(store: Store) -> None:
    soon = (datetime.now(PARIS) + timedelta(minutes=50)).replace(tzinfo=None, second=0, microsecond=0)
    later = soon + timedelta(minutes=30)
    await workshop(store, "w-soon", starts_local=soon)
    await workshop(store, "w-later", starts_local=later)
    early = await checkins.check_in(store, OWNER, "w-soon", CheckIn(seat="1"), key=KEY)
    assert early.created and early.record["attended_at"] <= datetime.now(UTC)  # at the door: now, not the start
    with pytest.raises(Invalid, match="the session has not started yet"):
        await checkins.check_in(store, OWNER, "w-later", CheckIn(seat="1"), key=KEY)


async def test_a_cancelled_session_takes_no_new_attendance_but_answers_a_retry(store: Store) -> None:
    await workshop(store)
    assert (await checkins.record_attendance(store, OWNER, attendance(), key=KEY)).created
    await handlers.cancel_workshop(store, OWNER, "w-1", "room flooded")
    assert (await checkins.record_attendance(store, OWNER, attendance(), key=KEY)).outcome == "duplicate"
    with pytest.raises(Conflict, match="the workshop is cancelled"):
        await checkins.record_attendance(store, OWNER, attendance(attendance_id="att-2"), key=KEY)


# --- accompaniments: the venue decides --------------------------------------------------------------


async def test_an_accompaniment_is_filed_where_its_venue_is(store: Store, kafka: Recorder) -> None:
    await venue(store, venue_id="v-reunion", commune_insee="97411", qpv=False, rural=True)
    cmd = accompaniment_cmd(venue_id="v-reunion", departement="75", qpv=True)
    done = await checkins.record_accompaniment(store, OWNER, cmd, key=KEY)
    assert done.created and done.ignored == ("departement", "qpv")
    record = done.record
    assert (record["departement"], record["region"], record["timezone"]) == ("974", "04", "Indian/Reunion")
    assert (record["qpv"], record["rural"]) == (False, True)
    (event,) = [e for e in kafka.events if e.type == "accompaniment.completed"]
    assert (event.data.departement, event.data.timezone, event.data.venue_id) == ("974", "Indian/Reunion", "v-reunion")


async def test_an_accompaniment_at_an_unknown_or_another_partners_venue_is_refused(store: Store) -> None:
    await venue(store, venue_id="v-theirs", kind="partner_premises", partner_id="p-other")
    await venue(store, venue_id="v-mine", kind="partner_premises", partner_id="p-own")
    for unknown in ("v-nowhere", "v-theirs"):
        with pytest.raises(NotFound, match=f"^no venue {unknown}$"):
            await checkins.record_accompaniment(store, OWNER, accompaniment_cmd(venue_id=unknown), key=KEY)
    with pytest.raises(Invalid, match="venue_id: venue v-theirs is the premises of another partner"):
        await checkins.record_accompaniment(store, ADMIN, accompaniment_cmd(venue_id="v-theirs"), key=KEY)
    mine = await checkins.record_accompaniment(store, OWNER, accompaniment_cmd(venue_id="v-mine"), key=KEY)
    assert mine.created and mine.record["venue_id"] == "v-mine"
    # In bulk (imports, the demo) each one gets its own refusal.
    cmds = [accompaniment_cmd("acc-2", venue_id="v-theirs"), accompaniment_cmd("acc-3", venue_id="v-mine")]
    results = await checkins.record_accompaniments(store, OWNER, cmds, key=KEY)
    assert isinstance(results[0], NotFound) and isinstance(results[1], handlers.Result) and results[1].created
