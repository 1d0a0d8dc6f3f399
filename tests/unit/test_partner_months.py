"""A partner's figures by month (the portal's "Mes chiffres"), on the pure domain: months add up to the partner's
row of /v1/partners, a month is read at the venue's local time, and states stored before facts carried their
month count the same."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, date, datetime

import pytest

from services.metrics import views
from services.metrics.domain import Counters, Ledger
from shared import events as ev
from tests import samples

pytestmark = pytest.mark.unit

YEAR = 2022


def attended(person: str, partner: str, at: datetime, territory: dict | None = None) -> ev.Envelope:
    data = ev.WorkshopAttended(
        attendance_id=str(uuid.uuid4()),
        workshop_id="w-1",
        theme="online_banking",
        venue_id="v-1",
        person_ref=person,
        partner_id=partner,
        **(territory or samples.PARIS),
    )
    return ev.new_event(data, source="/tests", time=at)


def accompanied(person: str, partner: str, at: datetime) -> ev.Envelope:
    data = ev.AccompanimentCompleted(
        accompaniment_id=str(uuid.uuid4()),
        person_ref=person,
        channel="partner",
        need="taxes",
        duration_minutes=30,
        partner_id=partner,
        **samples.PARIS,
    )
    return ev.new_event(data, source="/tests", time=at)


def signed(partner: str, on: date) -> ev.Envelope:
    data = ev.PartnershipSigned(
        partnership_id=str(uuid.uuid4()),
        partner_id=partner,
        partnership_type="social_innovation",
        commitments=["digital_inclusion"],
        departements=["75"],
        signed_on=on,
        starts_on=on,
    )
    return ev.new_event(data, source="/tests", time=datetime(on.year, on.month, on.day, tzinfo=UTC))


def world() -> Ledger:
    a, b, c = samples.ref("pm-a"), samples.ref("pm-b"), samples.ref("pm-c")
    ledger = Ledger()
    for event in (
        attended(a, "p-1", datetime(YEAR, 3, 2, 10, tzinfo=UTC)),
        attended(a, "p-1", datetime(YEAR, 5, 2, 10, tzinfo=UTC)),  # a second help: an attendance, not a person
        accompanied(b, "p-1", datetime(YEAR, 5, 9, 10, tzinfo=UTC)),
        attended(c, "p-2", datetime(YEAR, 1, 5, 10, tzinfo=UTC)),  # first helped by p-2: p-2's person
        attended(c, "p-1", datetime(YEAR, 6, 5, 10, tzinfo=UTC)),
        # 31 January 21:00 UTC is already 1 February in La Réunion (UTC+4): February for that venue.
        attended(samples.ref("pm-d"), "p-1", datetime(YEAR, 1, 31, 21, tzinfo=UTC), samples.REUNION),
        signed("p-1", date(YEAR, 9, 14)),
    ):
        ledger.add(event)
    return ledger


def by_month(body: dict, indicator: str) -> dict[str, int]:
    return {m["month"][5:]: m[indicator] for m in body["months"] if m[indicator]}


def test_months_add_up_to_the_partners_row_and_are_read_at_the_venues_time() -> None:
    counters = world().counters
    body = views.partner_months(counters, "p-1", YEAR)
    assert [m["month"] for m in body["months"]] == [f"{YEAR}-{m:02d}" for m in range(1, 13)]
    assert body["months"][1]["label"] == f"février {YEAR}"
    assert by_month(body, "people_helped") == {"02": 1, "03": 1, "05": 1}
    assert by_month(body, "workshop_attendances") == {"02": 1, "03": 1, "05": 1, "06": 1}
    assert by_month(body, "accompaniments") == {"05": 1}
    assert by_month(body, "new_partnerships") == {"09": 1}
    row = next(r for r in views.partners(counters, YEAR)["rows"] if r["partner"] == "p-1")
    for indicator in views.PARTNER_INDICATORS:
        assert body["total"][indicator] == row[indicator] == sum(m[indicator] for m in body["months"])
    other = views.partner_months(counters, "p-2", YEAR)
    assert by_month(other, "people_helped") == {"01": 1} and other["total"]["workshop_attendances"] == 1
    nobody = views.partner_months(counters, "p-unknown", YEAR)
    assert all(v == 0 for v in nobody["total"].values()) and len(nobody["months"]) == 12


def test_months_are_not_a_national_dimension_and_national_cells_are_unchanged() -> None:
    counters = world().counters
    assert counters.breakdown("people_helped", YEAR, "month") == {}
    assert counters.value("people_helped", YEAR) == 4
    assert counters.breakdown("people_helped", YEAR, "partner") == {"p-1": 3, "p-2": 1}


def test_states_stored_before_facts_had_a_month_count_the_same() -> None:
    ledger = world()
    legacy = copy.deepcopy(dict(ledger.states))
    for state in legacy.values():
        for eid, fact in list(state[0].items()):
            dims = {k: v for k, v in fact[-1].items() if k != "month"}
            state[0][eid] = (*fact[:-1], dims)
    rebuilt = Counters()
    rebuilt.rebuild(legacy.items())
    assert rebuilt.snapshot() == ledger.counters.snapshot()
