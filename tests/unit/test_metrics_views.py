"""Read models over the counters (breakdown, funnel, trend, partners, CSV export), on the pure domain."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.metrics import views
from services.metrics.domain import Counters, Ledger
from services.metrics.goals import Goal, GoalBook
from shared import events as ev
from tests import samples

pytestmark = pytest.mark.unit

AT = datetime(2022, 3, 1, 10, tzinfo=UTC)  # week 09 of 2022
LYON = {"departement": "69", "region": "84", "timezone": "Europe/Paris"}


def feed(*events: ev.Envelope) -> Counters:
    ledger = Ledger()
    for e in events:
        ledger.add(e)
    return ledger.counters


def helped_by_partner(person: str, partner: str, at: datetime = AT) -> ev.Envelope:
    data = ev.AccompanimentCompleted(
        accompaniment_id=str(uuid.uuid4()),
        person_ref=person,
        channel="partner",
        need="taxes",
        duration_minutes=20,
        partner_id=partner,
        **samples.PARIS,
    )
    return ev.new_event(data, source="/tests", time=at)


def book(*goals: Goal) -> GoalBook:
    return GoalBook(list(goals), [])


def test_breakdown_rows_are_labelled_sorted_and_carry_territorial_goals() -> None:
    c = feed(
        samples.attended(samples.ref("b1"), at=AT),
        samples.attended(samples.ref("b2"), at=AT),
        samples.attended(samples.ref("b3"), at=AT, territory=LYON),
        samples.attended(samples.ref("b4"), at=AT, territory=samples.REUNION),
    )
    goals = book(
        Goal(indicator="people_helped", year=2021, goal=40, territory="75"),
        Goal(indicator="people_helped", year=2022, goal=10, territory="region:84"),
    )
    body = views.breakdown(c, goals, "people_helped", "departement", 2022)
    assert body["total"] == 4 and body["rows_add_up_to_total"] is True
    assert [(r["key"], r["label"], r["value"]) for r in body["rows"]] == [
        ("75", "Paris", 2),
        ("69", "Rhône", 1),
        ("974", "La Réunion", 1),
    ]
    paris = body["rows"][0]
    assert (paris["goal"], paris["goal_year"], paris["goal_inherited"], paris["ratio"]) == (40, 2021, True, 0.05)
    assert paris["share"] == 0.5
    assert body["rows"][1]["goal"] is None
    regions = views.breakdown(c, goals, "people_helped", "region", 2022, sort="key")
    assert [(r["key"], r["label"]) for r in regions["rows"]] == [
        ("04", "La Réunion"),
        ("11", "Île-de-France"),
        ("84", "Auvergne-Rhône-Alpes"),
    ]
    assert regions["rows"][2]["ratio"] == 0.1
    every = views.breakdown(c, goals, "people_helped", "departement", 2022, include_zero=True)
    assert len(every["rows"]) == 101 and {"2A", "2B", "976"} <= {r["key"] for r in every["rows"]}
    qpv = views.breakdown(c, goals, "people_helped", "qpv", 2022)
    assert [(r["label"], r["value"]) for r in qpv["rows"]] == [("Hors QPV", 4)]


def test_week_breakdown_is_sorted_by_week() -> None:
    c = feed(
        samples.attended(samples.ref("w1"), at=AT),
        samples.attended(samples.ref("w2"), at=datetime(2022, 1, 2, tzinfo=UTC)),
    )
    body = views.breakdown(c, book(), "people_helped", "week", 2022)
    assert [(r["key"], r["label"], r["value"]) for r in body["rows"]] == [
        ("01", "Semaine 01", 1),
        ("09", "Semaine 09", 1),
    ]


@pytest.mark.parametrize(
    "indicator, dimension, message",
    [
        ("people_saved", "departement", "unknown indicator 'people_saved'"),
        ("people_helped", "colour", "unknown dimension 'colour' for people_helped"),
        ("advisers_deployed", "channel", "expected one of: week, departement"),
        ("active_partnerships", "departement", "no breakdown"),
    ],
)
def test_unknown_indicator_or_dimension_is_refused_with_a_reason(indicator: str, dimension: str, message: str) -> None:
    with pytest.raises(views.BadQuery, match=message):
        views.breakdown(Counters(), book(), indicator, dimension, 2022)


@pytest.mark.parametrize(
    "histogram, median",
    [
        ({}, None),
        ({"4": 1}, 4),
        ({"1": 1, "3": 1}, 2),
        ({"0": 2, "10": 1}, 0),
        ({"2": 1, "5": 2, "9": 1}, 5),
        ({"1": 3, "7": 3}, 4),
        ({"1": 3, "7": 4}, 7),
        ({"12": 0, "1": 1}, 1),
    ],
)
def test_median_from_histogram_is_exact(histogram: dict[str, int], median: float | None) -> None:
    assert views.median_from_histogram(histogram) == median


def test_funnel_counts_rates_and_median_delay() -> None:
    a, b, c_, d = (samples.ref(f"f{i}") for i in range(4))
    counters = feed(
        samples.detected(a, at=AT),
        samples.attended(a, at=AT + timedelta(days=2, hours=1)),
        samples.detected(b, at=AT),
        samples.attended(b, at=AT + timedelta(days=9)),
        samples.detected(c_, at=AT, referred=False),
        samples.attended(c_, at=AT + timedelta(days=120)),  # outside the 90-day window
        samples.detected(d, at=AT),
    )
    body = views.funnel(counters, 2022, "office_type")
    assert body["total"] == {
        "detected": 4,
        "referred": 3,
        "helped": 2,
        "referral_rate": 0.75,
        "conversion_rate": 0.5,
        "median_delay_days": 5.5,
    }
    assert [(r["key"], r["label"], r["detected"], r["median_delay_days"]) for r in body["rows"]] == [
        ("qpv", "Bureau en QPV", 4, 5.5)
    ]
    assert views.funnel(counters, 2022, "departement")["rows"][0]["label"] == "Paris"
    assert views.funnel(Counters(), 2022)["total"]["conversion_rate"] is None
    with pytest.raises(views.BadQuery):
        views.funnel(counters, 2022, "channel")


def test_weeks_cover_the_civil_year() -> None:
    weeks = views.weeks_of(2024)
    assert len(weeks) == 53 and weeks[0] == ("01", date(2024, 1, 1), date(2024, 1, 7))
    assert weeks[-1] == ("53", date(2024, 12, 30), date(2024, 12, 31))
    assert len(views.weeks_of(2023)) == 53 and views.weeks_of(2023)[-1][1] == views.weeks_of(2023)[-1][2]


def test_trend_is_weekly_with_a_running_total_up_to_today() -> None:
    c = feed(
        samples.attended(samples.ref("t1"), at=datetime(2022, 1, 3, tzinfo=UTC)),
        samples.attended(samples.ref("t2"), at=AT),
        samples.attended(samples.ref("t3"), at=AT),
    )
    goals = book(Goal(indicator="people_helped", year=2022, goal=52_000))
    now = datetime(2022, 3, 20, 12, tzinfo=UTC)  # week 12
    body = views.trend(c, goals, "people_helped", 2022, now)
    weeks = {w["week"]: w for w in body["weeks"]}
    assert body["total"] == 3 and body["goal"] == 52_000
    assert (weeks["01"]["value"], weeks["01"]["cumulative"]) == (1, 1)
    assert (weeks["09"]["value"], weeks["09"]["cumulative"]) == (2, 3)
    assert weeks["12"]["elapsed"] is True and weeks["12"]["cumulative"] == 3
    assert weeks["13"]["elapsed"] is False and weeks["13"]["cumulative"] is None
    assert weeks["53"]["expected"] == 52_000 and 0 < weeks["01"]["expected"] < weeks["02"]["expected"]


def test_trend_of_active_partnerships_is_a_stock_per_week() -> None:
    signed = ev.PartnershipSigned(
        partnership_id="ps-1",
        partner_id="p-1",
        partnership_type="social_innovation",
        commitments=["digital_inclusion"],
        departements=["75"],
        signed_on=date(2022, 1, 10),
        starts_on=date(2022, 1, 10),
    )
    ended = ev.PartnershipEnded(partnership_id="ps-1", partner_id="p-1", ended_on=date(2022, 2, 1), reason="done")
    c = feed(*(ev.new_event(d, source="/tests", time=AT) for d in (signed, ended)))
    body = views.trend(c, book(), "active_partnerships", 2022, datetime(2023, 1, 1, tzinfo=UTC))
    values = [w["value"] for w in body["weeks"]]
    assert body["stock"] is True and values[:6] == [0, 1, 1, 1, 0, 0]  # ended on 1 Feb, inside week 05


def test_partners_ranked_by_people_helped_and_filtered() -> None:
    c = feed(
        helped_by_partner(samples.ref("p1"), "assoc-emmaus"),
        helped_by_partner(samples.ref("p2"), "assoc-emmaus"),
        helped_by_partner(samples.ref("p2"), "assoc-emmaus"),
        helped_by_partner(samples.ref("p3"), "pimms-lyon"),
    )
    body = views.partners(c, 2022)
    assert [(r["partner"], r["people_helped"], r["accompaniments"]) for r in body["rows"]] == [
        ("assoc-emmaus", 2, 3),
        ("pimms-lyon", 1, 1),
    ]
    assert [r["partner"] for r in views.partners(c, 2022, query="PIMMS")["rows"]] == ["pimms-lyon"]
    assert views.partners(c, 2022, limit=1)["count"] == 2


@pytest.mark.parametrize(
    "values, hidden",
    [
        ({"a": 9, "b": 7}, set()),
        ({"a": 2, "b": 7, "c": 30}, {"a", "b"}),  # one small cell alone would follow from the total
        ({"a": 2, "b": 3, "c": 30}, {"a", "b"}),  # 2 + 3: neither can be recomputed
        ({"a": 1, "b": 1, "c": 30, "d": 40}, {"a", "b", "c"}),  # 1 + 1 = 2 would give both away
        ({"a": 4, "b": 4, "c": 30, "d": 40}, {"a", "b", "c"}),  # 4 + 4 = 8 too
        ({"a": 1, "b": 5, "c": 6, "d": 40}, {"a", "b", "c"}),  # 1 + 5 = 6 would pin "a" to 1
        ({"a": 3}, {"a"}),
    ],
)
def test_secret_cells_hide_small_counts_and_what_would_reveal_them(values: dict[str, int], hidden: set[str]) -> None:
    assert views.secret_cells(values, threshold=5) == hidden


def test_public_csv_blanks_and_flags_secret_cells_the_exact_one_does_not() -> None:
    c = feed(
        *(helped_by_partner(samples.ref(f"big{i}"), "=big") for i in range(7)),
        *(helped_by_partner(samples.ref(f"s{i}"), "small-a") for i in range(2)),
        *(helped_by_partner(samples.ref(f"t{i}"), "small-b") for i in range(3)),
    )
    view = views.breakdown(c, book(), "people_helped", "partner", 2022, sort="key")
    public = list(csv.DictReader(io.StringIO(views.to_csv(views.export_rows(view, public=True)))))
    assert list(public[0]) == ["year", "indicator", "dimension", "code", "label", "value", "secret"]
    assert [(r["code"], r["value"], r["secret"]) for r in public] == [
        ("'=big", "7", "false"),  # a formula-looking text is neutralised
        ("small-a", "", "true"),
        ("small-b", "", "true"),
    ]
    exact = list(csv.DictReader(io.StringIO(views.to_csv(views.export_rows(view, public=False)))))
    assert [(r["value"], r["secret"]) for r in exact] == [("7", "false"), ("2", "false"), ("3", "false")]


def test_a_goal_for_an_unknown_territory_is_refused() -> None:
    assert Goal(indicator="people_helped", year=2022, goal=1, territory="region:11").territory == "region:11"
    for bad in ("99", "region:99", "Paris"):
        with pytest.raises(ValueError, match="unknown territory"):
            Goal(indicator="people_helped", year=2022, goal=1, territory=bad)
