"""Bad input gets a 4xx with a reason, never a 500: long numbers, out-of-range dates and times in the HTTP schemas,
an overflowing local time; rate limits answer 429 with Retry-After; a publisher without a broker fails at once;
the dead-letter topic has a bounded retention."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from fastapi import Request
from pydantic import ValidationError

from services.detection.schemas import DetectionIn
from services.partners.schemas import PartnershipCreate, PartnershipUpdate, SignCommand
from services.workshops.domain import RuleBroken, local_to_aware
from services.workshops.handlers import ref_of
from services.workshops.schemas import AccompanimentCreate, AttendanceCreate, CheckIn, VenueCreate, WorkshopCreate
from shared.errors import Invalid, TooMany
from shared.kafka import Publisher, PublishError
from shared.limits import MAX_NUMBER_CHARS, json_problem
from shared.ratelimit import RateLimit, check_rules
from shared.topics import ALL_TOPICS, DEAD_LETTER, EVENT_TOPICS
from shared.web import create_app
from tests import samples

pytestmark = pytest.mark.unit
OLD = "0001-01-01T00:00:00+14:00"


async def test_a_number_of_thousands_of_digits_is_refused_with_a_reason() -> None:
    app = create_app("test", title="test")

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"got": await request.json()}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        r = await http.post(
            "/echo", content=b'{"n": ' + b"9" * 5000 + b"}", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "longer than" in r.json()["detail"]
        fine = await http.post("/echo", json={"n": 10**20, "s": "9" * 5000, "f": -1.5e-7})
        assert fine.status_code == 200


def test_the_number_scan_ignores_digits_inside_strings() -> None:
    assert json_problem(b'{"a": "' + b"1" * 500 + b'"}') is None
    assert json_problem(b"[" + b"1" * (MAX_NUMBER_CHARS + 1) + b"]") is not None
    assert json_problem(b"[" + b"1" * MAX_NUMBER_CHARS + b"]") is None


@pytest.mark.parametrize(
    "model, body",
    [
        (AttendanceCreate, {"attendance_id": "a", "workshop_id": "w", "theme": "online_banking", "venue_id": "v",
                            "departement": "93", "attended_at": OLD}),
        (AttendanceCreate, {"attendance_id": "a", "workshop_id": "w", "theme": "online_banking", "venue_id": "v",
                            "departement": "93", "attended_at": "1900-06-01T10:00:00+00:00"}),
        (AccompanimentCreate, {"accompaniment_id": "c", "channel": "france_services", "need": "email",
                               "duration_minutes": 30, "departement": "93", "completed_at": OLD}),
        (CheckIn, {"seat": "1", "attended_at": OLD}),
        (VenueCreate, {"venue_id": "v", "name": "n", "kind": "post_office_room", "commune_insee": "97120",
                       "opened_on": "0001-01-01"}),
        (WorkshopCreate, {"workshop_id": "w", "theme": "online_banking", "venue_id": "v",
                          "starts_local": "9999-12-31T23:30", "capacity": 5}),
        (WorkshopCreate, {"workshop_id": "w", "theme": "online_banking", "venue_id": "v",
                          "starts_local": "0001-01-01T00:30", "capacity": 5}),
        (PartnershipCreate, {"partner_id": "p", "partnership_type": "skills_sponsorship",
                             "commitments": ["digital_inclusion"], "departements": ["75"],
                             "starts_on": "0001-01-01", "ends_on": "9999-12-31"}),
        (PartnershipUpdate, {"ends_on": "9999-12-31"}),
        (SignCommand, {"signed_on": "1900-01-01"}),
        (DetectionIn, {"detection_id": "d", "occurred_at": OLD, "needs": ["email"], "client_reference": "FAKE-1",
                       "consent": False}),
    ],
)  # fmt: skip
def test_dates_and_times_outside_2000_2099_are_refused_by_the_http_schemas(model: type, body: dict) -> None:
    with pytest.raises(ValidationError, match="outside 2000-2099"):
        model.model_validate(body)


def test_a_local_time_that_overflows_at_the_venue_is_a_rule_not_a_crash() -> None:
    with pytest.raises(RuleBroken, match="out of range"):
        local_to_aware(datetime(9999, 12, 31, 23, 30), "America/Guadeloupe")
    with pytest.raises(RuleBroken, match="out of range"):
        local_to_aware(datetime(1, 1, 1, 0, 30), "Asia/Tokyo")


def test_rate_limit_rules_are_checked_when_the_settings_are_read() -> None:
    assert check_rules("20/second;600/minute")
    with pytest.raises(ValueError):
        check_rules("")


async def test_a_rate_limit_answers_too_many_with_a_retry_delay() -> None:
    limit = RateLimit("3 per 1 minute", "requests")
    for _ in range(3):
        await limit.hit("a")
    with pytest.raises(TooMany) as refused:
        await limit.hit("a")
    assert refused.value.status == 429 and 1 <= refused.value.retry_after <= 60
    await limit.hit("b")  # per key
    await limit.clear("a")
    await limit.hit("a")


async def test_failures_are_counted_apart_from_the_check() -> None:
    failures = RateLimit("2 per 1 minute", "failed sign-ins")
    await failures.check("acct")
    await failures.count("acct")
    await failures.count("acct")
    await failures.count("acct")  # past the rule: remembered, never raised
    with pytest.raises(TooMany):
        await failures.check("acct")


async def test_a_publisher_that_never_reached_the_broker_fails_at_once() -> None:
    publisher = Publisher("127.0.0.1:1", client_id="test")
    with pytest.raises(PublishError, match="not connected"):
        await publisher.publish_many(samples.every_event_type()[:1])
    assert not publisher.ready and not await publisher.reachable()


def test_the_dead_letter_topic_has_a_bounded_retention_and_event_topics_none() -> None:
    assert DEAD_LETTER in ALL_TOPICS
    assert DEAD_LETTER.configs["retention.ms"] == str(30 * 24 * 3600 * 1000)
    assert all(t.configs["retention.ms"] == "-1" for t in EVENT_TOPICS)


def test_a_client_reference_of_blanks_is_refused_not_a_crash() -> None:
    # Found by scripts/fuzz.py: a registration with client_reference " " answered 500 (ValueError in person_ref).
    key = b"tests-only-person-ref-key-0123456789"
    with pytest.raises(Invalid, match="client_reference"):
        ref_of(" \t", key)
    assert ref_of(None, key) is None and ref_of("", key) is None
    assert ref_of(" FAKE-1 ", key) == ref_of("fake-1", key)
