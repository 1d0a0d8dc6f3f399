"""Shared fixtures: the real stack (never mocked), the four services and the portal started on test ports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
# Several test runs may share one stack (e.g. two developers' suites): TEST_INSTANCE (0-9) gives each its
# own ports, databases and metrics consumer group.
INSTANCE = int(os.environ.get("TEST_INSTANCE", "0"))
SUFFIX = f"_{INSTANCE}" if INSTANCE else ""
PORT_BASE = 18000 + 100 * INSTANCE
TEST_PORTS = {
    "partners": PORT_BASE + 1,
    "workshops": PORT_BASE + 2,
    "detection": PORT_BASE + 3,
    "metrics": PORT_BASE + 4,
}
PORTAL_PORT = PORT_BASE + 5  # the partner portal: no database, no broker; started by the `portal` fixture
DBS = {name: f"test_{name}{SUFFIX}" for name in ("partners", "workshops", "detection", "metrics")}
TEST_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
    "MONGODB_URI": MONGODB_URI,
    "PARTNERS_DB": DBS["partners"],
    "WORKSHOPS_DB": DBS["workshops"],
    "DETECTION_DB": DBS["detection"],
    "METRICS_DB": DBS["metrics"],
    "METRICS_APP_ID": f"alliance-metrics-test{SUFFIX}",
    # Test copies of the detection service read their own ingestion topic, not the one `make run` feeds.
    "DETECTION_INGEST_TOPIC": f"detection.ingest.test{SUFFIX}",
    "METRICS_DATA_DIR": str(ROOT / ".data" / f"faust-test{SUFFIX}"),
    # The portal calls the test copies of the APIs (it has no database of its own).
    "PORTAL_PARTNERS_URL": f"http://127.0.0.1:{TEST_PORTS['partners']}",
    "PORTAL_WORKSHOPS_URL": f"http://127.0.0.1:{TEST_PORTS['workshops']}",
    "PORTAL_METRICS_URL": f"http://127.0.0.1:{TEST_PORTS['metrics']}",
    # The metrics API shows partners' names from the test copy of the partners registry.
    "METRICS_PARTNERS_URL": f"http://127.0.0.1:{TEST_PORTS['partners']}",
    "LOG_LEVEL": "INFO",
}


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def _stack_problem() -> str | None:
    from kafka import KafkaAdminClient
    from pymongo import MongoClient

    try:
        KafkaAdminClient(bootstrap_servers=KAFKA, request_timeout_ms=5000).close()
    except Exception as exc:  # noqa: BLE001
        return f"Kafka at {KAFKA} does not answer ({exc})"
    try:
        MongoClient(MONGODB_URI, serverSelectionTimeoutMS=3000).admin.command("ping")
    except Exception as exc:  # noqa: BLE001
        return f"the MongoDB-protocol server at {MONGODB_URI} does not answer ({exc})"
    return None


@pytest.fixture(scope="session")
def stack() -> None:
    """The real broker and database server must be up: integration tests fail (never skip) otherwise."""
    problem = _stack_problem()
    if problem:
        pytest.fail(f"{problem}. Start the stack with `make test` (or deploy/local/stack.sh up).")
    _drop_test_databases()


def _drop_test_databases() -> None:
    """Each session starts from empty test databases (an earlier run may have left another storage layout)."""
    from pymongo import MongoClient

    client = MongoClient(MONGODB_URI, serverSelectionTimeoutMS=3000)
    try:
        for name in DBS.values():
            client.drop_database(name)
    finally:
        client.close()


class Service:
    def __init__(self, name: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.port, self.proc, self.log = name, port, proc, log
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.workers: list[Service] = []  # the metrics API's workers, stopped with it

    def alive(self) -> bool:
        return self.proc.poll() is None


WORKER_APP = "services.metrics.worker:app"


def start_service(name: str, port: int, extra_env: dict[str, str] | None = None, *, app: str | None = None) -> Service:
    log_dir = ROOT / ".run" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    label = name if app is None else f"{name}-worker-{(extra_env or {}).get('METRICS_WORKER_ID', '1')}"
    log = log_dir / f"test{SUFFIX}-{label}.log"
    env = {**os.environ, **TEST_ENV, **(extra_env or {})}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app or f"services.{name}.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Service(name, port, proc, log)


def worker_port(api_port: int, n: int) -> int:
    """Where the n-th (1, 2 …) worker of a test metrics API on `api_port` listens."""
    return api_port + 9000 + 1000 * n


def start_metrics_worker(api_port: int, n: int, extra_env: dict[str, str] | None = None) -> Service:
    env = {**(extra_env or {}), "METRICS_WORKER_ID": str(n)}
    return start_service("metrics", worker_port(api_port, n), env, app=WORKER_APP)


def start_metrics(port: int, extra_env: dict[str, str] | None = None, *, workers: int = 1) -> Service:
    """The metrics API on `port` and its workers (`.workers`), as `make run` starts them: the API is ready once
    every source partition's partial has been read."""
    svc = start_service("metrics", port, extra_env)
    svc.workers = [start_metrics_worker(port, n, extra_env) for n in range(1, workers + 1)]
    return svc


def wait_ready(svc: Service, timeout: float = 90) -> None:
    def ready() -> bool:
        if not svc.alive():
            pytest.fail(f"{svc.name} exited during start-up; see {svc.log}:\n{svc.log.read_text()[-3000:]}")
        try:
            return svc.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout, f"{svc.name} to be ready", interval=0.3)


def wait_metrics_caught_up(svc: Service, timeout: float = 600) -> None:
    """The metrics workers have applied everything already on the event topics (a fresh consumer group starts
    from the beginning of the log), as the API's partials say, so tests see their own events counted promptly."""
    from services.metrics.replay import end_offsets, wait_applied

    if not wait_applied(svc.url, end_offsets(KAFKA), timeout):
        pytest.fail(f"the metrics workers behind {svc.url} did not catch up with the log within {timeout}s")


def stop_service(svc: Service, sig: int = 15) -> None:
    for worker in svc.workers:
        stop_service(worker, sig)
    if svc.alive():
        os.killpg(svc.proc.pid, sig)
        try:
            svc.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(svc.proc.pid, 9)
            svc.proc.wait()
    svc.http.close()


@pytest.fixture(scope="session")
def services(stack: None) -> Iterator[dict[str, Service]]:
    started = {
        name: start_metrics(port) if name == "metrics" else start_service(name, port)
        for name, port in TEST_PORTS.items()
    }
    try:
        for svc in started.values():
            wait_ready(svc)
        wait_metrics_caught_up(started["metrics"])
        yield started
    finally:
        for svc in started.values():
            stop_service(svc)


@pytest.fixture(scope="session")
def portal(services: dict[str, Service]) -> Iterator[Service]:
    """The partner portal in front of the test copies of the APIs."""
    svc = start_service("portal", PORTAL_PORT)
    try:
        wait_ready(svc)
        yield svc
    finally:
        stop_service(svc)


@pytest.fixture(scope="session")
def mongo(stack: None) -> Iterator[Any]:
    from pymongo import MongoClient

    client = MongoClient(MONGODB_URI)
    yield client
    client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (no browser download: the network is closed); one per
    test module."""
    from playwright.sync_api import sync_playwright

    from scripts.dashboard_check import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
