"""The demo data generator is deterministic, valid for the import, and only grows as the days pass."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from services.partners.csvio import parse_import
from services.partners.demo import generate

pytestmark = pytest.mark.unit
AS_OF = date(2026, 11, 26)


def test_same_day_same_data_and_every_row_imports() -> None:
    demo = generate(AS_OF)
    assert demo.csv_text() == generate(AS_OF).csv_text()
    rows, errors = parse_import(demo.csv_text())
    assert errors == [] and len(rows) == len(demo.rows)
    assert 1250 <= len(rows) <= 1350
    signed_this_year = sum(1 for r in demo.rows if r["signed_on"].startswith("2026"))
    assert 140 <= signed_this_year <= 165
    assert all(r["signed_on"] <= AS_OF.isoformat() for r in demo.rows)
    assert len({r["departements"].split(";")[0] for r in demo.rows}) >= 95
    assert len(Counter(r["partnership_type"] for r in demo.rows)) == 4
    assert len(demo.labelled) == 120 and len({m[1].external_ref for m in demo.missions}) == len(demo.missions)


def test_a_later_day_of_the_year_only_adds() -> None:
    earlier, later = generate(date(2026, 6, 1)), generate(AS_OF)
    by_ref = {r["external_ref"]: r for r in later.rows}
    assert all(by_ref[r["external_ref"]] == r for r in earlier.rows)
    assert len(later.rows) > len(earlier.rows)
    later_missions = {m[1].external_ref: m[1] for m in later.missions}
    assert all(later_missions[m[1].external_ref] == m[1] for m in earlier.missions)

    def steps(demo) -> set[tuple[str, str, str]]:
        return {(ref, type(cmd).__name__, cmd.model_dump_json()) for ref, cmd in demo.steps}

    assert steps(earlier) <= steps(later)
