"""Exactness under failure: a worker killed with SIGKILL mid-stream and restarted ends with exactly the
counters of a worker that was never interrupted, and both equal a rebuild from the Kafka log alone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaProducer

from scripts.soak_metrics import Publisher
from services.metrics import replay
from shared.events import Envelope
from shared.serde import encode
from shared.topics import topic_for
from tests import samples
from tests.conftest import (
    INSTANCE,
    KAFKA,
    ROOT,
    TEST_ENV,
    start_metrics,
    start_metrics_worker,
    stop_service,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.integration
YEAR = 2037


def mixed_stream(people: int, seed: int) -> list[Envelope]:
    """Help for `people` persons with every counting hazard: duplicates, retractions, anonymous help,
    late events predating earlier ones (attribution moves), detections and a year boundary."""
    rng = random.Random(seed)
    salt = uuid.uuid4().hex
    start = datetime(YEAR, 1, 1, tzinfo=UTC)
    marseille = {"departement": "13", "region": "93", "timezone": "Europe/Paris"}
    out: list[Envelope] = []
    for n in range(people):
        ref = samples.ref(f"{salt}-{n}")
        at = start + timedelta(days=rng.randrange(1, 360), minutes=rng.randrange(1440))
        first = samples.attended(ref, at=at)
        out.append(first)
        if n % 3 == 0:
            out.append(first)  # duplicate delivery
        if n % 5 == 0:
            out.append(samples.attended(ref, at=at - timedelta(days=3), territory=marseille))  # late, earlier
        if n % 7 == 0:
            out.append(samples.retraction(first))
        if n % 4 == 0:
            out.append(samples.detected(ref, at=at - timedelta(days=5)))
        if n % 11 == 0:
            out.append(samples.attended(None, at=at))
        if n % 13 == 0:
            out.append(samples.attended(ref, at=datetime(YEAR, 12, 31, 23, 30, tzinfo=UTC)))  # next year in Paris
    return out


def publish(events: list[Envelope]) -> None:
    producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=10)
    for e in events:
        producer.send(topic_for(e.type).name, value=encode(e), key=e.key.encode())
    producer.flush()
    producer.close()


def year_cells(snapshot: dict[str, int]) -> dict[str, int]:
    return {c: n for c, n in snapshot.items() if c.split("|")[1] in (str(YEAR), str(YEAR + 1))}


@pytest.mark.timeout(900)
def test_kill_9_mid_stream_then_restart_gives_identical_counters(stack: None) -> None:
    events = mixed_stream(2500, seed=INSTANCE)
    publish(events)
    until = replay.end_offsets(KAFKA)
    run = uuid.uuid4().hex[:8]
    base = 18050 + 100 * INSTANCE
    # The killed one keeps its table in memory: after the kill it comes back from the changelog alone and the
    # counters are derived from keys grouped by their hash's partition (the RocksDB store is the restart test's).
    env_k = {"METRICS_APP_ID": f"alliance-metrics-kill-{run}", "METRICS_STORE": "memory"}
    env_u = {"METRICS_APP_ID": f"alliance-metrics-calm-{run}"}
    # Each an API with one worker: the killed one's partials are replaced by its restarted worker's.
    killed = start_metrics(base, env_k)
    calm = start_metrics(base + 1, env_u)
    try:
        wait_ready(killed)
        total = sum(until.values())
        doomed = killed.workers[0]
        # SIGKILL once it is well into the stream: no shutdown hook, no final commit.
        wait_until(lambda: doomed.http.get("/v1/worker").json()["processed"] >= total // 3, 600, "a third processed")
        stop_service(doomed, signal.SIGKILL)
        assert doomed.proc.returncode == -signal.SIGKILL
        killed.workers[0] = start_metrics_worker(base, 1, env_k)
        wait_ready(killed.workers[0])
        wait_ready(calm)
        # The positions each worker applied, not its group's committed offsets: those may run ahead of the state.
        for svc in (killed, calm):
            assert replay.wait_applied(svc.url, until, timeout=600), "worker caught up"
        after_restart = year_cells(killed.http.get("/v1/snapshot").json()["cells"])
        uninterrupted = year_cells(calm.http.get("/v1/snapshot").json()["cells"])
        rebuilt, _ = replay.rebuild(KAFKA, until, progress=False)
        from_log = year_cells(rebuilt.snapshot())
        assert after_restart == uninterrupted
        assert after_restart == from_log
        assert from_log[f"people_helped|{YEAR}||"] > 0
    finally:
        stop_service(killed)
        stop_service(calm)


@pytest.mark.timeout(600)
def test_replay_command_reports_identical_while_events_keep_arriving(services: dict) -> None:
    publish(mixed_stream(300, seed=100 + INSTANCE))
    metrics = services["metrics"]
    # Events keep arriving during the whole comparison, as with the simulator or live traffic.
    traffic = Publisher(mixed_stream(3000, seed=200 + INSTANCE), rate=40)
    traffic.start()
    try:
        before = replay.end_offsets(KAFKA)
        result = subprocess.run(
            [sys.executable, "-m", "services.metrics.replay", "--url", metrics.url, "--year", str(YEAR)],
            cwd=ROOT,
            env={**os.environ, **TEST_ENV},
            capture_output=True,
            text=True,
            timeout=300,
        )
        moved = replay.end_offsets(KAFKA) != before
    finally:
        traffic.stop()
        traffic.join(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IDENTICAL" in result.stdout
    assert moved and traffic.failures == [], "the log moved during the comparison"


def test_replay_detects_a_difference() -> None:
    live = {f"people_helped|{YEAR}||": 3}
    assert replay.compare(live, {f"people_helped|{YEAR}||": 2}, YEAR) == [f"people_helped|{YEAR}||: live=3 replay=2"]
    assert replay.compare(live, dict(live), YEAR) == []
