"""The demo plan of the workshops service: deterministic, and shaped like the source's figures."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from services.workshops.demo import plan
from services.workshops.schemas import AccompanimentCreate, FacilitatorCreate, VenueCreate

pytestmark = pytest.mark.unit


def test_the_plan_depends_on_the_year_alone() -> None:
    a, b = plan(2026, 0.1), plan(2026, 0.1)
    assert [s["create"] for s in a.sessions] == [s["create"] for s in b.sessions]
    assert a.accompaniments == b.accompaniments and a.venues == b.venues
    assert [s["create"].workshop_id for s in plan(2027, 0.1).sessions][0].startswith("demo2027-")


def test_the_plan_has_100_advisers_in_57_departements_and_100_new_places() -> None:
    p = plan(2026, 0.1)
    advisers = [f for f in p.facilitators if f.kind == "adviser"]
    assert len(advisers) == 100 and len({f.departement for f in advisers}) == 57
    assert all(f.deployed_on and f.deployed_on.year == 2026 for f in advisers)
    # From April as in the source, a fifth from January: the demo's goal card is on pace from the year's start.
    assert sum(1 for f in advisers if f.deployed_on and f.deployed_on.month >= 4) >= 80
    assert any(f.deployed_on and f.deployed_on.month == 1 for f in advisers)
    assert sum(1 for v in p.venues if v.newly_equipped) == 100
    kinds = Counter(v.kind for v in p.venues)
    assert kinds["france_services"] > 0 and kinds["partner_premises"] > 0
    channels = Counter(a["channel"] for a in p.accompaniments)
    assert set(channels) == {"france_services", "adviser", "partner"}
    assert len({s["create"].venue_id for s in p.sessions}) > 30  # spread across places and départements


def test_what_has_happened_by_now_in_the_current_year_is_valid() -> None:
    now = datetime.now(UTC)
    p = plan(now.year, 0.1)
    venues = [VenueCreate.model_validate(v.model_dump()) for v in p.venues if v.opened_on <= now.date()]
    assert venues and all(v.departement == v.commune_insee[: len(v.departement)] for v in venues)
    for f in p.facilitators:
        if f.deployed_on is None or f.deployed_on <= now.date():
            FacilitatorCreate.model_validate(f.model_dump())
    done = [AccompanimentCreate.model_validate(a) for a in p.accompaniments if a["completed_at"] <= now]
    assert done


async def test_the_demo_loads_through_the_handlers_and_a_second_run_adds_nothing() -> None:
    from services.workshops.demo import load
    from services.workshops.store import Store
    from shared.docstore import MemoryDocuments
    from tests.unit.test_workshops_handlers import KEY, Recorder

    kafka, docs, now = Recorder(), MemoryDocuments(), datetime.now(UTC)
    first = await load(plan(now.year, 0.05), Store.in_memory(kafka, docs), KEY, now)  # type: ignore[arg-type]
    assert not [name for name in first if "refused" in name], first
    assert first["registration created"] > 0
    events = kafka.ids()
    assert set(events.values()) == {1}  # every event once
    again = await load(plan(now.year, 0.05), Store.in_memory(kafka, docs), KEY, now)  # type: ignore[arg-type]
    assert not [name for name in again if "created" in name or "changed" in name or "refused" in name], again
    assert kafka.ids() == events  # nothing new, nothing sent twice
