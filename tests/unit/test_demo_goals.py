"""`make run`'s goals: the source's, at the scale of the demo data, and labelled as such wherever goals show."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.metrics.domain import Counters
from services.metrics.goals import DEFAULT_GOALS_FILE, DEMO_GOALS_FILE, load_goal_file
from services.metrics.progress import progress

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_goals_are_the_real_ones_at_the_demo_scale_and_say_so() -> None:
    real, demo = load_goal_file(DEFAULT_GOALS_FILE), load_goal_file(DEMO_GOALS_FILE)
    assert real.label is None
    assert demo.label is not None and demo.label.startswith("Objectifs de démonstration")
    assert {(g.indicator, g.year) for g in demo.all()} == {(g.indicator, g.year) for g in real.all()}
    for goal in real.all():
        scaled = demo.lookup(goal.indicator, goal.year).goal
        if goal.indicator in ("people_helped", "france_services_clients"):  # the workshops demo's people: 1/300
            assert scaled == round(goal.goal / 300)
        else:  # the partners demo is national
            assert scaled == goal.goal
    assert demo.lookup("people_helped", 2026).inherited(2026)


def test_progress_names_the_goals_it_compares_with() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert progress(Counters(), load_goal_file(DEMO_GOALS_FILE), 2026, now)["goals_label"].startswith("Objectifs")
    assert progress(Counters(), load_goal_file(), 2026, now)["goals_label"] is None


def test_make_run_loads_the_demo_goals() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "run: export METRICS_GOALS_FILE ?= $(CURDIR)/services/metrics/goals.demo.json" in makefile


@pytest.mark.parametrize("label", ["", 7, "x" * 201])
def test_a_goal_file_label_is_a_short_text(tmp_path: Path, label: object) -> None:
    path = tmp_path / "goals.json"
    path.write_text(json.dumps({"label": label, "goals": []}))
    with pytest.raises(ValueError, match="label"):
        load_goal_file(path)
