"""Goals and progress: inheritance, pace and projection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.metrics.domain import Counters, apply
from services.metrics.goals import Goal, load_goal_file
from services.metrics.progress import elapsed_share, progress
from tests import samples

pytestmark = pytest.mark.unit


def by_id(body: dict) -> dict:
    return {i["id"]: i for i in body["indicators"]}


def test_goal_file_holds_the_source_figures() -> None:
    book = load_goal_file()
    assert book.lookup("people_helped", 2022).goal == 500_000
    assert book.lookup("new_partnerships", 2022).goal == 150
    assert {(a.year, a.value) for a in book.actuals if a.indicator == "people_helped"} == {
        (2020, 250_000),
        (2021, 400_000),
    }


def test_later_year_inherits_and_says_so() -> None:
    book = load_goal_file()
    found = book.lookup("people_helped", 2026)
    assert (found.goal, found.year, found.inherited(2026)) == (500_000, 2022, True)
    assert not book.lookup("people_helped", 2022).inherited(2022)
    assert book.lookup("people_helped", 2021).goal is None


def test_progress_for_a_past_year() -> None:
    counters = Counters()
    e = samples.attended(samples.ref("x"), at=datetime(2022, 3, 1, tzinfo=UTC))
    counters.replace(e.key, None, apply(None, e))
    body = progress(counters, load_goal_file(), 2022, datetime(2023, 5, 1, tzinfo=UTC))
    helped = by_id(body)["people_helped"]
    assert helped["value"] == 1
    assert helped["expected_to_date"] == 500_000
    assert helped["projected"] == 1
    assert helped["ratio"] == pytest.approx(1 / 500_000)


def test_pace_and_projection_mid_year() -> None:
    now = datetime(2022, 7, 2, 10, tzinfo=UTC)
    share = elapsed_share(2022, now)
    assert 0.49 < share < 0.51
    book = load_goal_file()
    book.put(Goal(indicator="people_helped", year=2022, goal=1000))
    counters = Counters()
    for n in range(10):
        e = samples.attended(samples.ref(n), at=datetime(2022, 2, 1, tzinfo=UTC))
        counters.replace(e.key, None, apply(None, e))
    helped = by_id(progress(counters, book, 2022, now))["people_helped"]
    assert helped["expected_to_date"] == pytest.approx(1000 * share, rel=1e-4)
    assert helped["projected"] == pytest.approx(10 / share, rel=1e-4)


def test_unknown_indicator_goal_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown indicator"):
        Goal(indicator="happiness", year=2022, goal=1)
