"""The broker killed with kill -9 while detections and attendances are posted: every write answers within
seconds (workshops 202 with the event kept in its outbox; detection 503 with Retry-After once the broker is
known to be away, 202 for an item stored before that), /readyz turns false, and once the broker is back
everything accepted is published and counted exactly once.

The shared broker must keep serving the other tests, so this one starts a broker of its own (the project's
stack script with its own ports and data directory) and kills that one by its pid.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from services.metrics import replay
from shared.identity import Principal, Role, issue_token
from shared.serde import decode
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from shared.topics import DETECTION, WORKSHOPS
from tests.conftest import (
    DBS,
    PORT_BASE,
    Service,
    start_metrics,
    start_service,
    stop_service,
    wait_ready,
    wait_until,
)
from tests.integration.test_workshops import new_venue, new_workshop
from tests.kafka_tools import PrivateStack

pytestmark = pytest.mark.integration
ANSWER_WITHIN_S = 5.0
ADMIN = {"Authorization": "Bearer " + issue_token(Principal("test-admin", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}
YEAR = datetime.now(UTC).year


@pytest.fixture(scope="module")
def private(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with PrivateStack(tmp_path_factory.mktemp("broker"), PORT_BASE + 70).running() as own:
        yield own


def ready(svc: Service) -> bool:
    try:
        return svc.http.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def event_ids(bootstrap: str, topic: str) -> Counter[str]:
    """Every event id on `topic` of the private broker, with how often it appears."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1500)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        return Counter(str(decode(r.value).id) for r in consumer)
    finally:
        consumer.close()


def test_broker_killed_by_pid_writes_answer_and_nothing_is_lost_or_doubled(
    private: PrivateStack, tmp_path: Path, mongo: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": private.bootstrap,
        "WORKSHOPS_DB": f"{DBS['workshops']}_killed",
        "DETECTION_DB": f"{DBS['detection']}_killed",
        "DETECTION_INGEST_ENABLED": "0",
        "DETECTION_RELAY_INTERVAL_S": "0.5",
        "METRICS_APP_ID": f"alliance-metrics-killed-{run}",
        "METRICS_DB": f"{DBS['metrics']}_killed",
        "METRICS_DATA_DIR": str(tmp_path / "faust"),
    }
    for db in ("WORKSHOPS_DB", "DETECTION_DB", "METRICS_DB"):  # an earlier run's outbox is not this broker's
        mongo.drop_database(env[db])
    services = {
        "workshops": start_service("workshops", PORT_BASE + 73, env),
        "detection": start_service("detection", PORT_BASE + 74, env),
        "metrics": start_metrics(PORT_BASE + 75, env),
    }
    workshops, detection, metrics = services["workshops"], services["detection"], services["metrics"]
    try:
        for svc in services.values():
            wait_ready(svc, timeout=180)
        session = new_workshop(workshops, new_venue(workshops, headers=ADMIN)["venue_id"], headers=ADMIN)["id"]
        office = {"office_id": f"o-killed-{run}", "name": "Bureau de test", "commune_insee": "93066", "qpv": True}
        assert detection.http.put(f"/v1/offices/{office['office_id']}", json=office, headers=ADMIN).status_code in (
            200,
            201,
        )
        created = detection.http.post(
            "/v1/terminals", json={"office_id": office["office_id"], "label": "guichet 1"}, headers=ADMIN
        )
        terminal = {"Authorization": f"Bearer {created.json()['token']}"}
        now = datetime.now(UTC)

        def attendance(n: int) -> dict[str, Any]:
            return {"attendance_id": f"killed-{run}-{n}", "workshop_id": session, "attended_at": now.isoformat()}

        def detected(n: int) -> dict[str, Any]:
            return {
                "detection_id": f"killed-{run}-{n}",
                "occurred_at": (now - timedelta(minutes=5)).isoformat(),
                "needs": ["online_banking"],
                "client_reference": f"FAKE-CLIENT-{run}-{n}",
                "consent": True,
            }

        accepted: set[str] = set()
        for n in range(3):  # before the kill: published at once
            r = workshops.http.post("/v1/attendances", json=attendance(n), headers=ADMIN)
            assert r.status_code == 201, r.text
            accepted.add(r.json()["event_id"])
        private.kill_broker()

        refused: list[dict[str, Any]] = []
        detections: set[str] = set()
        for n in range(3, 9):
            r, took = timed(lambda n=n: workshops.http.post("/v1/attendances", json=attendance(n), headers=ADMIN))
            assert r.status_code == 202 and r.json()["published"] is False, r.text
            assert took < ANSWER_WITHIN_S, took
            accepted.add(r.json()["event_id"])
            body = {"detections": [detected(n)]}
            r, took = timed(lambda body=body: detection.http.post("/v1/detections", json=body, headers=terminal))
            assert took < ANSWER_WITHIN_S, took
            if r.status_code == 202:  # stored, then the publish failed: the relay publishes it (README)
                assert r.json()["published"] is False, r.text
                detections.add(r.json()["results"][0]["event_id"])
            else:  # the broker known to be away: nothing recorded, the terminal sends it again
                assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
                refused.append(body)
        assert refused, "once the broker is known to be away, detection refuses with 503"
        for svc in services.values():
            r, took = timed(lambda svc=svc: svc.http.get("/readyz"))
            assert r.status_code == 503 and r.json()["checks"]["kafka"] is False, (svc.name, r.text)
            assert took < ANSWER_WITHIN_S, (svc.name, took)

        private.script("up")  # the same broker, its data kept
        for svc in services.values():
            wait_until(lambda svc=svc: ready(svc), 120, f"{svc.name} ready again")
        for body in refused:  # the terminal sends again what was refused
            r = detection.http.post("/v1/detections", json=body, headers=terminal)
            assert r.status_code in (200, 201) and r.json()["accepted"] == 1, r.text
            detections.add(r.json()["results"][0]["event_id"])

        wait_until(lambda: accepted <= set(event_ids(private.bootstrap, WORKSHOPS.name)), 60, "attendances published")
        wait_until(lambda: detections <= set(event_ids(private.bootstrap, DETECTION.name)), 60, "detections published")
        # A send cut off by its deadline may still reach the broker once it is back, and the relay publishes
        # the event again: a copy on the log keeps its id and counts once (README, "When Kafka is away").
        on_log = event_ids(private.bootstrap, WORKSHOPS.name) + event_ids(private.bootstrap, DETECTION.name)
        copies = sum(on_log[e] for e in accepted | detections) - len(accepted | detections)
        print(f"{len(accepted)} attendances, {len(detections)} detections; {copies} published twice")

        def counted(indicator: str) -> int:
            body = metrics.http.get("/v1/progress", params={"year": YEAR}).json()
            return int(next(i["value"] for i in body["indicators"] if i["id"] == indicator))

        assert replay.wait_applied(metrics.url, replay.end_offsets(private.bootstrap), timeout=120)
        assert counted("workshop_attendances") == len(accepted)
        assert counted("detections") == len(detections)
    finally:
        for svc in services.values():
            stop_service(svc)
