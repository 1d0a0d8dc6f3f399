"""Kafka away, the same answer from every service: writes answer within seconds (workshops and partners 202, the
outbox holding the event; detection 503 with Retry-After), /readyz is false, and what was accepted meanwhile is
published by the relay once a broker answers — every event once.

The shared broker is never stopped: a copy of the service is pointed at an address where no broker listens,
over the same database as a normal instance, whose relay publishes what the copy stored.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.identity import Principal, Role, issue_token
from shared.serde import decode
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from shared.topics import PARTNERS, WORKSHOPS
from tests.conftest import DBS, PORT_BASE, Service, start_service, stop_service, wait_ready, wait_until
from tests.integration.test_partners_support import ADMIN, new_partner, partnership_body, sign_in
from tests.integration.test_workshops import new_venue, new_workshop
from tests.kafka_tools import tail

pytestmark = pytest.mark.integration
DEAD_BROKER = "127.0.0.1:1"  # nothing listens there: every connection is refused
ANSWER_WITHIN_S = 5.0
ADMIN_TOKEN = {"Authorization": "Bearer " + issue_token(Principal("test-admin", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}


def alive(svc: Service) -> bool:
    try:
        return svc.http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def pair(name: str, db_env: str, db: str, ports: tuple[int, int]) -> Iterator[tuple[Service, Service]]:
    """A normal instance (its relay reaches the broker) and a copy of it whose broker is away, one database."""
    normal = start_service(name, ports[0], {db_env: db})
    down: Service | None = None
    try:
        wait_ready(normal)  # first: it marks the fresh database's layout
        down = start_service(name, ports[1], {db_env: db, "KAFKA_BOOTSTRAP_SERVERS": DEAD_BROKER})
        wait_until(lambda: alive(down), 60, f"the broker-less {name} copy to answer")
        yield normal, down
    finally:
        if down is not None:
            stop_service(down)
        stop_service(normal)


@pytest.fixture(scope="module")
def workshops(stack: None, mongo: Any) -> Iterator[tuple[Service, Service]]:
    db = f"{DBS['workshops']}_outage"
    mongo.drop_database(db)
    yield from pair("workshops", "WORKSHOPS_DB", db, (PORT_BASE + 31, PORT_BASE + 32))


@pytest.fixture(scope="module")
def partners(stack: None, mongo: Any) -> Iterator[tuple[Service, Service]]:
    db = f"{DBS['partners']}_outage"
    mongo.drop_database(db)
    yield from pair("partners", "PARTNERS_DB", db, (PORT_BASE + 33, PORT_BASE + 34))


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def not_ready(svc: Service) -> None:
    r, took = timed(lambda: svc.http.get("/readyz"))
    assert r.status_code == 503 and r.json()["checks"] == {"kafka": False, "mongodb": True}, r.text
    assert took < ANSWER_WITHIN_S, took


def published_once(records: Any, expected: set[str], what: str) -> None:
    def ids() -> Counter[str]:
        return Counter(str(decode(r.value).id) for r in records(0.5))

    wait_until(lambda: expected <= set(ids()), 60, f"the relay to publish the {what} stored while Kafka was away")
    seen = ids()  # read on a little: a second copy would show up behind the first
    assert {e: seen[e] for e in expected} == dict.fromkeys(expected, 1)


def attendance(workshop_id: str, n: int) -> dict[str, Any]:
    return {
        "attendance_id": f"outage-{uuid.uuid4().hex[:10]}-{n}",
        "workshop_id": workshop_id,
        "attended_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }


def test_workshops_accepts_while_kafka_is_away_and_the_relay_publishes_every_event_once(
    workshops: tuple[Service, Service],
) -> None:
    normal, down = workshops
    not_ready(down)
    # The session the attendances name, scheduled while the broker answers (through the normal instance).
    session = new_workshop(normal, new_venue(normal, headers=ADMIN_TOKEN)["venue_id"], headers=ADMIN_TOKEN)["id"]
    with tail(WORKSHOPS.name) as records:
        expected: set[str] = set()
        for n in range(8):
            body = attendance(session, n)
            r, took = timed(lambda body=body: down.http.post("/v1/attendances", json=body, headers=ADMIN_TOKEN))
            assert r.status_code == 202 and r.json()["published"] is False, r.text
            assert took < ANSWER_WITHIN_S, took
            expected.add(r.json()["event_id"])
        # The same attendance sent again: still accepted once, still one event.
        again = attendance(session, 99)
        first = down.http.post("/v1/attendances", json=again, headers=ADMIN_TOKEN)
        assert first.status_code == 202, first.text
        second = down.http.post("/v1/attendances", json=again, headers=ADMIN_TOKEN)
        assert second.status_code == 202 and second.json()["status"] == "duplicate", second.text
        expected.add(first.json()["event_id"])
        published_once(records, expected, "attendances")
    assert normal.http.get("/readyz").status_code == 200


def test_partners_accepts_while_kafka_is_away_and_the_relay_publishes_every_event_once(
    partners: tuple[Service, Service],
) -> None:
    normal, down = partners
    not_ready(down)
    r, took = timed(lambda: down.http.post("/v1/auth/token", json=ADMIN))
    assert r.status_code == 200 and took < ANSWER_WITHIN_S, r.text  # signing in needs no broker
    admin = sign_in(down.http, ADMIN["username"], ADMIN["password"])
    partner = new_partner(down.http, admin)  # no event: 201 as usual
    with tail(PARTNERS.name) as records:
        signed: set[str] = set()
        for year in (2031, 2032, 2033):
            body = partnership_body(partner["id"], starts_on=f"{year}-04-01", ends_on=f"{year + 1}-03-31")
            created = down.http.post("/v1/partnerships", json=body, headers=admin)
            assert created.status_code == 201, created.text  # a draft has no event yet
            sign = f"/v1/partnerships/{created.json()['id']}/sign"
            r, took = timed(
                lambda sign=sign, year=year: down.http.post(sign, json={"signed_on": f"{year}-03-15"}, headers=admin)
            )
            assert r.status_code == 202 and r.json()["published"] is False, r.text
            assert r.json()["status"] == "signed" and took < ANSWER_WITHIN_S, took
            signed.add(created.json()["id"])

        def signed_events() -> Counter[str]:
            mine = [decode(r.value) for r in records(0.5) if r.key and r.key.decode() in signed]
            return Counter(str(e.id) for e in mine if e.type == "partnership.signed")

        wait_until(lambda: len(signed_events()) >= len(signed), 60, "the relay to publish the signatures")
        assert sorted(signed_events().values()) == [1, 1, 1]
    for pid in signed:  # the normal instance sees them published
        assert normal.http.get(f"/v1/partnerships/{pid}", headers=admin).json()["published"] is True
