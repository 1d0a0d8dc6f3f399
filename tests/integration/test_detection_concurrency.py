"""Detections sent many times at once to two detection instances over one database: each is accepted exactly
once and published exactly once; with one instance killed (kill -9) in the middle of the burst, every accepted
detection still reaches Kafka (the other instance's relay publishes what the dead one stored)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.serde import decode
from shared.topics import DETECTION
from tests.conftest import DBS, PORT_BASE, Service, start_service, stop_service, wait_ready, wait_until
from tests.integration.test_detection import ADMIN, bearer
from tests.kafka_tools import tail

pytestmark = pytest.mark.integration
DB = f"{DBS['detection']}_concurrency"
ENV = {
    "DETECTION_DB": DB,
    "DETECTION_INGEST_ENABLED": "0",
    "DETECTION_RELAY_INTERVAL_S": "0.5",
    "DETECTION_RELAY_GRACE_S": "2",
    # The burst below is far past what a counter sends: the ingestion rate limit must not be what is tested here.
    "DETECTION_TERMINAL_RATE_LIMIT": "100000/second",
}


@pytest.fixture(scope="module")
def pair(stack: None, mongo) -> Iterator[list[Service]]:
    mongo.drop_database(DB)
    instances = [start_service("detection", PORT_BASE + 30 + i, ENV) for i in range(2)]
    try:
        for svc in instances:
            wait_ready(svc)
        yield instances
    finally:
        for svc in instances:
            stop_service(svc)


@pytest.fixture(scope="module")
def token(pair: list[Service]) -> str:
    office_id = f"o-conc-{uuid.uuid4().hex[:6]}"
    body = {"office_id": office_id, "name": "Bureau de test", "commune_insee": "93066", "qpv": True}
    assert pair[0].http.put(f"/v1/offices/{office_id}", json=body, headers=ADMIN).status_code in (200, 201)
    r = pair[1].http.post("/v1/terminals", json={"office_id": office_id}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def detections(n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "detection_id": f"dc-{uuid.uuid4().hex}",
            "occurred_at": now,
            "needs": ["email"],
            "client_reference": f"FAKE-CLIENT-{uuid.uuid4().hex}",
            "consent": True,
        }  # fmt: skip
        for _ in range(n)
    ]


async def _send(
    urls: list[str], token: str, batches: list[list[dict]], answering: asyncio.Event | None = None
) -> list[tuple[int, dict | None]]:
    answered = 0

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=8)) as http:

        async def one(i: int, batch: list[dict]) -> tuple[int, dict | None]:
            try:
                r = await http.post(f"{urls[i % len(urls)]}/v1/detections", json={"detections": batch},
                                    headers=bearer(token))  # fmt: skip
            except httpx.HTTPError:
                return 0, None  # the instance died under this request: no answer, nothing promised
            nonlocal answered
            answered += 1
            if answering is not None and answered >= 5:
                answering.set()
            return r.status_code, r.json()

        return await asyncio.gather(*(one(i, b) for i, b in enumerate(batches)))


def accepted_ids(answers: list[tuple[int, dict | None]]) -> Counter:
    got: Counter = Counter()
    for status, body in answers:
        if body and status in (200, 202):
            got.update(r["event_id"] for r in body["results"] if r["status"] == "accepted")
    return got


def test_each_detection_is_accepted_and_published_once_across_two_instances(pair: list[Service], token: str) -> None:
    items = detections(60)
    # Every detection in 4 batches, shuffled across 32 concurrent requests to the two instances.
    batches = [[items[(j * 7 + k) % 60] for k in range(15)] for j in range(16)] * 2
    with tail(DETECTION.name) as records:
        answers = asyncio.run(_send([p.url for p in pair], token, batches))
        assert all(status in (200, 202) for status, _ in answers), answers[:3]
        accepted = accepted_ids(answers)
        assert len(accepted) == 60 and set(accepted.values()) == {1}, "each detection accepted exactly once"

        def published() -> Counter:
            return Counter(str(decode(r.value).id) for r in records(0.5) if r.headers)

        wait_until(lambda: set(accepted) <= set(published()), 30, "every accepted detection on Kafka")
        on_topic = published()
        assert all(on_topic[event_id] == 1 for event_id in accepted), "published exactly once"


def test_kill_9_mid_burst_every_accepted_detection_reaches_kafka(stack: None, mongo, token: str) -> None:
    doomed = start_service("detection", PORT_BASE + 32, ENV)
    survivor = start_service("detection", PORT_BASE + 33, ENV)
    try:
        wait_ready(doomed)
        wait_ready(survivor)
        items = detections(400)
        batches = [items[i : i + 10] for i in range(0, 400, 10)]
        with tail(DETECTION.name) as records:

            async def burst_then_kill() -> list[tuple[int, dict | None]]:
                answering = asyncio.Event()
                sending = asyncio.ensure_future(_send([doomed.url], token, batches, answering))
                await answering.wait()  # kill it once it is answering, in the middle of the burst
                os.killpg(doomed.proc.pid, signal.SIGKILL)
                return await sending

            answers = asyncio.run(burst_then_kill())
            accepted = accepted_ids(answers)
            assert accepted, "some detections were accepted before the kill"
            assert any(body is None for _, body in answers), "the kill landed in the middle of the burst"

            def missing() -> set[str]:
                seen = {str(decode(r.value).id) for r in records(0.5) if r.headers}
                return set(accepted) - seen

            # The survivor's relay publishes the groups the dead instance stored but never published.
            wait_until(lambda: not missing(), 60, "every accepted detection on Kafka")
    finally:
        stop_service(doomed)
        stop_service(survivor)
