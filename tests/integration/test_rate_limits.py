"""Rate limits over HTTP: a bounded burst of sign-ins (per client) or of detections (per terminal) gets 429 with
Retry-After past the configured rule, and an account is refused after repeated failed sign-ins — even with the
right password — until the failures leave the window."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.identity import Principal, Role, issue_token
from shared.ratelimit import vouch_for_client
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from tests.conftest import DBS, PORT_BASE, Service, start_service, stop_service, wait_ready, wait_until
from tests.integration.test_partners_support import ADMIN

pytestmark = pytest.mark.integration
ADMIN_TOKEN = {"Authorization": "Bearer " + issue_token(Principal("test-admin", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}
BURST = 20


def _own_service(mongo: Any, name: str, port: int, db_env: str, db: str, env: dict[str, str]) -> Iterator[Service]:
    """A copy of one service with its own database and limits, for one module."""
    mongo.drop_database(db)
    svc = start_service(name, port, {db_env: db, **env})
    try:
        wait_ready(svc)
        yield svc
    finally:
        stop_service(svc)


@pytest.fixture(scope="module")
def partners(stack: None, mongo: Any) -> Iterator[Service]:
    limits = {"PARTNERS_AUTH_RATE_LIMIT": "5/minute", "PARTNERS_LOGIN_FAILURE_LIMIT": "3 per 6 seconds"}
    yield from _own_service(mongo, "partners", PORT_BASE + 35, "PARTNERS_DB", f"{DBS['partners']}_limits", limits)


@pytest.fixture(scope="module")
def lenient_partners(stack: None, mongo: Any) -> Iterator[Service]:
    """Many sign-ins allowed per address, few failures per account, in a short window (the lock test)."""
    limits = {"PARTNERS_AUTH_RATE_LIMIT": "1000/minute", "PARTNERS_LOGIN_FAILURE_LIMIT": "3 per 6 seconds"}
    yield from _own_service(mongo, "partners", PORT_BASE + 36, "PARTNERS_DB", f"{DBS['partners']}_lock", limits)


@pytest.fixture(scope="module")
def detection(stack: None, mongo: Any) -> Iterator[Service]:
    limits = {"DETECTION_INGEST_ENABLED": "0", "DETECTION_TERMINAL_RATE_LIMIT": "5/minute"}
    yield from _own_service(mongo, "detection", PORT_BASE + 37, "DETECTION_DB", f"{DBS['detection']}_limits", limits)


def burst(svc: Service, path: str, bodies: list[dict[str, Any]], headers: dict[str, str] | None = None) -> list:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=svc.url, timeout=30) as http:
            return list(await asyncio.gather(*(http.post(path, json=b, headers=headers) for b in bodies)))

    return asyncio.run(run())


def assert_limited(answers: list[httpx.Response], allowed: int) -> None:
    statuses = Counter(r.status_code for r in answers)
    assert statuses[429] == len(answers) - allowed, statuses
    for r in answers:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and "too many" in r.json()["detail"], r.text


def test_a_burst_of_sign_ins_from_one_address_gets_429_past_the_limit(partners: Service) -> None:
    answers = burst(partners, "/v1/auth/token", [ADMIN] * BURST)
    assert_limited(answers, allowed=5)
    assert all(r.status_code == 200 for r in answers if r.status_code != 429)


def test_the_right_password_is_refused_after_repeated_failures_until_the_window_passes(
    lenient_partners: Service,
) -> None:
    http = lenient_partners.http
    wrong = {"username": ADMIN["username"], "password": "not-the-password-0000"}
    for _ in range(3):
        assert http.post("/v1/auth/token", json=wrong).status_code == 401
    locked = http.post("/v1/auth/token", json=ADMIN)
    assert locked.status_code == 429 and "failed sign-ins" in locked.json()["detail"], locked.text
    assert 1 <= int(locked.headers["retry-after"]) <= 6
    # Another account is not locked by these failures.
    other = http.post("/v1/auth/token", json={"username": "nobody-here", "password": "whatever-0000"})
    assert other.status_code == 401
    # Once the failures are older than the window, the right password works again (and clears the count).
    wait_until(lambda: http.post("/v1/auth/token", json=ADMIN).status_code == 200, 30, "the lock to pass")
    assert http.post("/v1/auth/token", json=wrong).status_code == 401
    assert http.post("/v1/auth/token", json=ADMIN).status_code == 200


def test_a_burst_of_detections_from_one_terminal_gets_429_past_the_limit(detection: Service) -> None:
    office = {"office_id": "limits-93", "name": "Bureau test", "commune_insee": "93066", "qpv": True}
    assert detection.http.put("/v1/offices/limits-93", json=office, headers=ADMIN_TOKEN).status_code in (200, 201)
    tokens = []
    for _ in range(2):
        r = detection.http.post("/v1/terminals", json={"office_id": "limits-93"}, headers=ADMIN_TOKEN)
        assert r.status_code == 201, r.text
        tokens.append({"Authorization": f"Bearer {r.json()['token']}"})

    def item() -> dict[str, Any]:
        return {
            "detection_id": uuid.uuid4().hex,
            "occurred_at": datetime.now(UTC).isoformat(),
            "needs": ["online_banking"],
            "client_reference": f"FAKE-LIMITS-{uuid.uuid4().hex}",
            "consent": False,
        }

    answers = burst(detection, "/v1/detections", [item() for _ in range(BURST)], tokens[0])
    assert_limited(answers, allowed=5)
    assert all(r.status_code == 201 for r in answers if r.status_code != 429)
    # The limit is per terminal: another terminal of the same office is still served.
    assert detection.http.post("/v1/detections", json=item(), headers=tokens[1]).status_code == 201


def test_the_sign_in_limit_counts_the_address_the_portal_vouches_for(stack: None, mongo: Any) -> None:
    """The portal signs everyone in from its own address: it forwards each person's, signed with the platform
    key. Each vouched address gets its own allowance; a forged signature is ignored (the portal's address)."""
    db = f"{DBS['partners']}_vouched"
    mongo.drop_database(db)
    svc = start_service("partners", PORT_BASE + 38, {"PARTNERS_DB": db, "PARTNERS_AUTH_RATE_LIMIT": "3/minute"})
    try:
        wait_ready(svc)
        first = vouch_for_client(DEV_PLATFORM_TOKEN_KEY, "203.0.113.7")
        second = vouch_for_client(DEV_PLATFORM_TOKEN_KEY, "198.51.100.23")
        assert_limited(burst(svc, "/v1/auth/token", [ADMIN] * 6, headers=first), allowed=3)
        assert_limited(burst(svc, "/v1/auth/token", [ADMIN] * 6, headers=second), allowed=3)
        forged = vouch_for_client("not-the-platform-key-" + "x" * 16, "192.0.2.99")
        assert_limited(burst(svc, "/v1/auth/token", [ADMIN] * 6, headers=forged), allowed=3)  # the peer's
        assert_limited(burst(svc, "/v1/auth/token", [ADMIN] * 2), allowed=0)  # the same peer, already used up
    finally:
        stop_service(svc)
