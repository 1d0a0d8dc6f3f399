"""Progress against goals: value, goal, ratio, expected-by-today pace and projected year-end."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.metrics.domain import INDICATORS, Counters
from services.metrics.goals import GoalBook

__all__ = ["elapsed_share", "progress"]

PARIS = ZoneInfo("Europe/Paris")


def elapsed_share(year: int, now: datetime) -> float:
    """The share of civil year `year` (Paris time) elapsed at `now`: 0 before it, 1 after it."""
    local = now.astimezone(PARIS)
    start = datetime(year, 1, 1, tzinfo=PARIS)
    end = datetime(year + 1, 1, 1, tzinfo=PARIS)
    if local <= start:
        return 0.0
    if local >= end:
        return 1.0
    return (local - start) / (end - start)


def _value(counters: Counters, indicator: str, year: int, now: datetime) -> int:
    if indicator == "active_partnerships":
        local_today = now.astimezone(PARIS).date()
        return counters.active_partnerships(min(local_today, date(year, 12, 31)))
    return counters.value(indicator, year)


def progress(counters: Counters, goals: GoalBook, year: int, now: datetime) -> dict:
    share = elapsed_share(year, now)
    indicators = []
    for indicator, label in INDICATORS.items():
        value = _value(counters, indicator, year, now)
        found = goals.lookup(indicator, year)
        goal = found.goal
        # A stock (active partnerships) is not accumulated over the year: its pace is the goal itself.
        stock = indicator == "active_partnerships"
        expected: float | None
        projected: float | None
        if share >= 1:
            expected, projected = goal, value
        elif share <= 0:
            expected, projected = (goal if stock else 0.0) if goal else None, None
        else:
            expected = (goal if stock else goal * share) if goal else None
            projected = value if stock else value / share
        indicators.append(
            {
                "id": indicator,
                "label": label,
                "value": value,
                "goal": goal,
                "goal_year": found.year,
                "goal_inherited": found.inherited(year),
                "ratio": round(value / goal, 6) if goal else None,
                "expected_to_date": round(expected, 3) if expected is not None else None,
                "projected": round(projected, 3) if projected is not None else None,
            }
        )
    return {
        "year": year,
        "as_of": now.isoformat(),
        "elapsed_share": round(share, 6),
        # Set when the goals are not the real ones (the demo's, scaled to its volume): said wherever goals show.
        "goals_label": goals.label,
        "indicators": indicators,
    }
