"""The demo's year at the counters: valid items, people detected before the workshops demo helps them, and a plan
that a later day of the year only adds to (a second run finds the same detections, with the same ids)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.detection import demo_year
from services.detection.domain import Office, check_item
from services.detection.network import generate
from shared import geo

pytestmark = pytest.mark.unit
YEAR = 2025
KEY = b"unit-test-person-ref-key"
OFFICES = generate(17_000)


def _items(now: datetime) -> dict[str, dict]:
    batches = demo_year.plan(YEAR, 0.25, OFFICES, now)
    return {item["detection_id"]: {**item, "office": office} for office, items in batches.items() for item in items}


def test_every_item_is_a_valid_detection_of_a_registry_office_in_the_year() -> None:
    offices = {o.office_id: o for o in OFFICES}
    now = datetime(YEAR + 1, 1, 10, tzinfo=UTC)
    items = _items(now)
    assert len(items) > 1000
    for item in items.values():
        o = offices[item.pop("office")]
        dep = geo.departement(o.departement or "")
        office = Office(o.office_id, dep.code, dep.region, dep.timezone, o.qpv, o.rural, o.france_services)
        checked = check_item(item, office, "backfill/t", key=KEY, now=now, window=None, skew=timedelta(minutes=5))
        assert checked.event.time.astimezone(geo.timezone_of(dep.code)).year == YEAR
        assert 9 <= checked.event.time.astimezone(geo.timezone_of(dep.code)).hour <= 17


def test_two_in_three_people_helped_are_detected_first_in_their_departement() -> None:
    helped = {p.client: p for p in demo_year.helped_people(YEAR, 0.25)}
    items = list(_items(datetime(YEAR + 1, 1, 10, tzinfo=UTC)).values())
    later_helped = {i["client_reference"] for i in items if i["client_reference"] in helped}
    assert 0.5 < len(later_helped) / len(helped) < 0.8
    for item in items:
        person = helped.get(item["client_reference"])
        if person is None or item.get("referral") is None:
            continue
        detected = datetime.fromisoformat(item["occurred_at"])
        assert timedelta(0) < person.first_help - detected < timedelta(days=77)
        assert item["office"].startswith(f"lp-{person.departement}-")
    never = {i["client_reference"] for i in items} - later_helped
    assert len(never) > len(later_helped) / 2  # and many are never helped


def test_a_later_day_only_adds_the_detections_made_since() -> None:
    earlier, later = _items(datetime(YEAR, 6, 1, tzinfo=UTC)), _items(datetime(YEAR, 9, 1, tzinfo=UTC))
    assert earlier and all(later[i] == item for i, item in earlier.items())
    assert len(later) > len(earlier)
    assert all(item["occurred_at"] <= "2025-06-01" for item in earlier.values())
