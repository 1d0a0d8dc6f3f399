"""Each counting rule of DESIGN.md, through the real broker and the running metrics worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.events import Envelope
from shared.serde import encode
from shared.topics import topic_for
from tests import samples
from tests.conftest import Service, wait_until
from tests.kafka_tools import produce

pytestmark = pytest.mark.integration
YEAR = 2034  # a year of their own, so other tests' events never move these cells


def send(*events: Envelope) -> None:
    for e in events:
        produce(topic_for(e.type).name, encode(e), e.key.encode())


def cells(metrics: Service) -> dict[str, int]:
    """The counter cells (partnership spans, which are dates, left out)."""
    return {k: v for k, v in metrics.http.get("/v1/snapshot").json()["cells"].items() if isinstance(v, int)}


def cell(snapshot: dict[str, int], indicator: str, year: int, dim: str = "", value: str = "") -> int:
    return snapshot.get(f"{indicator}|{year}|{dim}|{value}", 0)


def settle(metrics: Service, marker_person: str) -> dict[str, int]:
    """Send a marker for a person, wait until it is counted: everything sent before on that person's
    partition has been processed too."""
    before = cell(cells(metrics), "workshop_attendances", YEAR - 1)
    send(samples.attended(marker_person, at=datetime(YEAR - 1, 6, 1, tzinfo=UTC)))
    wait_until(lambda: cell(cells(metrics), "workshop_attendances", YEAR - 1) > before, 10, "marker counted")
    return cells(metrics)


def delta(metrics: Service, person: str, *events: Envelope) -> dict[str, int]:
    before = cells(metrics)
    send(*events)
    after = settle(metrics, person)
    return {
        k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before) if after.get(k, 0) != before.get(k, 0)
    }


AT = datetime(YEAR, 5, 10, 9, tzinfo=UTC)


@pytest.fixture
def person() -> str:
    return samples.ref(uuid.uuid4())


def test_duplicate_counts_once(services: dict[str, Service], person: str) -> None:
    e = samples.attended(person, at=AT)
    d = delta(services["metrics"], person, e, e, e)
    assert d[f"people_helped|{YEAR}||"] == 1
    assert d[f"workshop_attendances|{YEAR}||"] == 1


def test_retraction_removes_only_help(services: dict[str, Service], person: str) -> None:
    e = samples.attended(person, at=AT)
    d = delta(services["metrics"], person, e, samples.retraction(e))
    assert f"people_helped|{YEAR}||" not in d


def test_late_event_across_year_boundary_paris_and_overseas(services: dict[str, Service], person: str) -> None:
    # 31 Dec 21:30 UTC: 22:30 in Paris (still YEAR), 01:30 next day in La Réunion (YEAR + 1).
    evening = datetime(YEAR, 12, 31, 21, 30, tzinfo=UTC)
    other = samples.ref(uuid.uuid4())
    d = delta(
        services["metrics"],
        person,
        samples.attended(person, at=evening),
        samples.attended(other, at=evening, territory=samples.REUNION),
    )
    assert d[f"people_helped|{YEAR}|departement|75"] == 1
    assert d[f"people_helped|{YEAR + 1}|departement|974"] == 1
    assert f"people_helped|{YEAR}|departement|974" not in d


def test_earlier_late_event_moves_attribution(services: dict[str, Service], person: str) -> None:
    metrics = services["metrics"]
    delta(metrics, person, samples.attended(person, at=AT))
    marseille = {"departement": "13", "region": "93", "timezone": "Europe/Paris"}
    d = delta(metrics, person, samples.attended(person, at=AT - timedelta(days=20), territory=marseille))
    assert d[f"people_helped|{YEAR}|departement|13"] == 1
    assert d[f"people_helped|{YEAR}|departement|75"] == -1
    assert f"people_helped|{YEAR}||" not in d  # still one person


def test_anonymous_help_counts_per_event(services: dict[str, Service], person: str) -> None:
    d = delta(services["metrics"], person, samples.attended(None, at=AT), samples.attended(None, at=AT))
    assert d[f"people_helped|{YEAR}||"] == 2
