"""The counting rules of DESIGN.md, on the pure domain (no broker)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.metrics.domain import Counters, Ledger
from shared import events as ev
from tests import samples

pytestmark = pytest.mark.unit


def feed(*events: ev.Envelope) -> Counters:
    ledger = Ledger()
    for e in events:
        ledger.add(e)
    # The incremental result must equal a rebuild from the states alone.
    rebuilt = Counters()
    rebuilt.rebuild(ledger.states.items())
    assert rebuilt.snapshot() == ledger.counters.snapshot()
    return ledger.counters


AT = datetime(2022, 6, 1, 10, tzinfo=UTC)


def test_distinct_people_not_events() -> None:
    a, b = samples.ref("a"), samples.ref("b")
    c = feed(samples.attended(a, at=AT), samples.attended(a, at=AT), samples.attended(b, at=AT))
    assert c.value("people_helped", 2022) == 2
    assert c.value("workshop_attendances", 2022) == 3


def test_duplicate_delivery_counts_once() -> None:
    e = samples.attended(samples.ref("dup"), at=AT)
    c = feed(e, e, e)
    assert c.value("people_helped", 2022) == 1
    assert c.value("workshop_attendances", 2022) == 1


def test_retraction_removes_person_whose_only_help_it_was() -> None:
    a, b = samples.ref("r1"), samples.ref("r2")
    only = samples.attended(a, at=AT)
    first, second = samples.attended(b, at=AT), samples.attended(b, at=AT + timedelta(days=1))
    c = feed(only, first, second, samples.retraction(only), samples.retraction(first))
    assert c.value("people_helped", 2022) == 1
    assert c.value("workshop_attendances", 2022) == 1


def test_retraction_before_its_event_still_cancels_it() -> None:
    e = samples.attended(samples.ref("early-retract"), at=AT)
    assert feed(samples.retraction(e), e).value("people_helped", 2022) == 0


def test_year_is_read_at_the_venue_local_time() -> None:
    # 31 Dec 2022 23:30 UTC is already 2023 in Paris (UTC+1) and in La Réunion (UTC+4).
    late = datetime(2022, 12, 31, 23, 30, tzinfo=UTC)
    # 31 Dec 2022 20:30 UTC is 2022 in Paris but 2023 in La Réunion.
    evening = datetime(2022, 12, 31, 20, 30, tzinfo=UTC)
    c = feed(
        samples.attended(samples.ref("p1"), at=late),
        samples.attended(samples.ref("p2"), at=evening),
        samples.attended(samples.ref("p3"), at=evening, territory=samples.REUNION),
    )
    assert c.value("people_helped", 2023) == 2
    assert c.value("people_helped", 2022) == 1
    assert c.value("people_helped", 2023, "departement", "974") == 1


def test_late_event_counts_in_its_own_year() -> None:
    p = samples.ref("late")
    c = feed(
        samples.attended(p, at=datetime(2023, 2, 1, tzinfo=UTC)),
        samples.attended(p, at=datetime(2022, 11, 1, tzinfo=UTC)),
    )
    assert c.value("people_helped", 2022) == 1
    assert c.value("people_helped", 2023) == 1


def test_earlier_late_event_moves_attribution() -> None:
    p = samples.ref("attrib")
    marseille = {"departement": "13", "region": "93", "timezone": "Europe/Paris"}
    c = feed(samples.attended(p, at=AT), samples.attended(p, at=AT - timedelta(days=30), territory=marseille))
    assert c.value("people_helped", 2022, "departement", "13") == 1
    assert c.value("people_helped", 2022, "departement", "75") == 0
    assert c.value("workshop_attendances", 2022, "departement", "75") == 1


def test_anonymous_help_counts_per_event_and_can_be_retracted() -> None:
    a1, a2 = samples.attended(None, at=AT), samples.attended(None, at=AT)
    c = feed(a1, a2, a2, samples.retraction(a1))
    assert c.value("people_helped", 2022) == 1


def test_anonymous_help_has_its_own_figure_beside_people_helped() -> None:
    known = samples.ref("named")
    a1, a2 = samples.attended(None, at=AT), samples.accompanied(None, at=AT, territory=samples.REUNION)
    c = feed(a1, a2, samples.attended(known, at=AT), samples.attended(known, at=AT))
    assert c.value("people_helped", 2022) == 3
    assert c.value("anonymous_help", 2022) == 2
    assert c.value("anonymous_help", 2022, "departement", "974") == 1
    c = feed(a1, a2, samples.retraction(a1))
    assert c.value("anonymous_help", 2022) == 1
    assert c.value("anonymous_help", 2022, "departement", "75") == 0


def test_france_services_clients_and_detections() -> None:
    p = samples.ref("fs")
    c = feed(
        samples.accompanied(p, at=AT),
        samples.accompanied(p, at=AT + timedelta(hours=1), channel="adviser"),
        samples.detected(p, at=AT),
        samples.detected(p, at=AT, referred=False),
    )
    assert c.value("france_services_clients", 2022) == 1
    assert c.value("accompaniments", 2022) == 2
    assert c.value("people_detected", 2022) == 1
    assert c.value("detections", 2022) == 2
    assert c.value("people_helped", 2022, "channel", "france_services") == 1


def test_partnerships_new_renewed_active() -> None:
    events = samples.every_event_type()
    signed, renewed, ended = events[0], events[2], events[3]
    c = feed(signed, renewed, ended)
    assert c.value("new_partnerships", 2022) == 1
    assert c.value("new_partnerships", 2023) == 0  # a renewal is not a new partnership
    assert c.active_partnerships(date(2023, 6, 1)) == 1
    assert c.active_partnerships(date(2024, 1, 1)) == 0
    assert c.active_partnerships(date(2022, 2, 28)) == 0


def test_funnel_detected_referred_helped_within_90_days() -> None:
    a, b, c = samples.ref("f-a"), samples.ref("f-b"), samples.ref("f-c")
    counters = feed(
        samples.detected(a, at=AT),
        samples.attended(a, at=AT + timedelta(days=10, hours=3)),
        samples.attended(a, at=AT + timedelta(days=40)),
        samples.detected(b, at=AT, referred=False),
        samples.attended(b, at=AT + timedelta(days=91)),  # too late for the funnel, still helped
        samples.detected(c, at=AT),
    )
    assert counters.value("funnel_detected", 2022) == 3
    assert counters.value("funnel_referred", 2022) == 2
    assert counters.value("funnel_helped", 2022) == 1
    assert counters.value("funnel_delay_days", 2022, "", "10") == 1
    assert counters.value("funnel_delay_days", 2022, "office_type=qpv", "10") == 1
    assert counters.value("funnel_detected", 2022, "office_type", "qpv") == 3
    assert counters.value("people_helped", 2022) == 2


def test_weekly_trend_cells_follow_local_time() -> None:
    # 7 Jan 23:30 UTC is 8 Jan in Paris: week 02 of the year.
    c = feed(samples.attended(samples.ref("wk"), at=datetime(2022, 1, 7, 23, 30, tzinfo=UTC)))
    assert c.breakdown("people_helped", 2022, "week") == {"02": 1}


def test_an_anonymous_detection_is_a_detection_not_a_person_detected_nor_in_the_funnel() -> None:
    known = samples.ref("detected-known")
    anonymous = samples.detected(None, at=AT, referred=False)
    assert anonymous.key == f"anon:{anonymous.id}"  # its own key: anonymous detections spread over partitions
    c = feed(anonymous, anonymous, samples.detected(None, at=AT, referred=False), samples.detected(known, at=AT))
    assert c.value("detections", 2022) == 3  # the duplicated delivery counts once
    assert c.value("detections", 2022, "departement", "75") == 3
    assert c.value("detections", 2022, "office_type", "qpv") == 3
    assert c.value("people_detected", 2022) == 1
    assert c.value("funnel_detected", 2022) == 1
    assert c.value("funnel_referred", 2022) == 1
    assert c.value("anonymous_help", 2022) == 0 and c.value("people_helped", 2022) == 0


def test_anonymous_help_after_an_anonymous_detection_converts_nothing_in_the_funnel() -> None:
    c = feed(
        samples.detected(None, at=AT, referred=False),
        samples.attended(None, at=AT + timedelta(days=2)),
    )
    assert c.value("detections", 2022) == 1 and c.value("people_helped", 2022) == 1
    assert c.value("funnel_detected", 2022) == 0 and c.value("funnel_helped", 2022) == 0
    assert c.breakdown("funnel_delay_days", 2022, "") == {}


def test_a_late_detection_counts_in_the_year_it_happened_at_the_office() -> None:
    # 31 Dec 2021 23:30 UTC is already 1 January 2022 in Paris: a detection backfilled years later counts in 2022.
    person = samples.ref("backfilled")
    c = feed(samples.detected(person, at=datetime(2021, 12, 31, 23, 30, tzinfo=UTC)))
    assert c.value("detections", 2022) == 1 and c.value("people_detected", 2022) == 1
    assert c.value("detections", 2021) == 0
