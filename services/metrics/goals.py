"""Goals as data: per indicator and year (optionally per territory), loaded from a file.

A year without its own goal inherits the latest earlier one, and says so. A file may name what its goals are
(`"label"`, e.g. the demo's goals scaled to its volume): the progress and the dashboard show that name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.metrics.domain import INDICATORS
from shared import geo

__all__ = [
    "Goal",
    "Actual",
    "GoalBook",
    "GoalLookup",
    "load_goal_file",
    "DEFAULT_GOALS_FILE",
    "DEMO_GOALS_FILE",
    "region_territory",
]

DEFAULT_GOALS_FILE = Path(__file__).with_name("goals.json")
# What `make run` loads (METRICS_GOALS_FILE): the source's goals at the scale of the demo data, labelled as such.
DEMO_GOALS_FILE = Path(__file__).with_name("goals.demo.json")


class Goal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    indicator: str
    year: int = Field(ge=2000, le=2100)
    goal: float = Field(gt=0, lt=1e12, allow_inf_nan=False)
    territory: str | None = Field(
        None, description='a département code ("75", "2A", "974") or a region as "region:11"; absent for national'
    )

    @field_validator("indicator")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in INDICATORS:
            raise ValueError(f"unknown indicator {value!r}")
        return value

    @field_validator("territory")
    @classmethod
    def _known_territory(cls, value: str | None) -> str | None:
        if value is None or value in geo.departements():
            return value
        if value.startswith("region:") and value.removeprefix("region:") in geo.regions():
            return value
        raise ValueError(f"unknown territory {value!r}: a département code (e.g. '75', '2A') or 'region:<code>'")


def region_territory(code: str) -> str:
    """How a goal names a region."""
    return f"region:{code}"


class Actual(BaseModel):
    model_config = ConfigDict(extra="forbid")

    indicator: str
    year: int
    value: float


@dataclass(frozen=True, slots=True)
class GoalLookup:
    goal: float | None
    year: int | None  # the year the goal was set for (differs from the asked year when inherited)

    def inherited(self, asked: int) -> bool:
        return self.year is not None and self.year != asked


class GoalBook:
    def __init__(self, goals: list[Goal], actuals: list[Actual], label: str | None = None) -> None:
        self.goals = {(g.indicator, g.year, g.territory): g for g in goals}
        self.actuals = actuals
        self.label = label  # what these goals are, when they are not the real ones (None: the real ones)

    def lookup(self, indicator: str, year: int, territory: str | None = None) -> GoalLookup:
        years = sorted((y for (i, y, t) in self.goals if i == indicator and t == territory and y <= year), reverse=True)
        if not years:
            return GoalLookup(None, None)
        return GoalLookup(self.goals[(indicator, years[0], territory)].goal, years[0])

    def put(self, goal: Goal) -> None:
        self.goals[(goal.indicator, goal.year, goal.territory)] = goal

    def all(self) -> list[Goal]:
        return sorted(self.goals.values(), key=lambda g: (g.indicator, g.year, g.territory or ""))


def load_goal_file(path: Path = DEFAULT_GOALS_FILE) -> GoalBook:
    doc = json.loads(path.read_text(encoding="utf-8"))
    label = doc.get("label")
    if label is not None and not (isinstance(label, str) and 0 < len(label) <= 200):
        raise ValueError(f"{path}: label must be a short text (1-200 characters)")
    goals = [Goal(**g) for g in doc.get("goals", [])]
    return GoalBook(goals, [Actual(**a) for a in doc.get("actuals", [])], label)
