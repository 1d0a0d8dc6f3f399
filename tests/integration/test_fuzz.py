"""Schemathesis over the partners, workshops and detection test instances, a few examples per operation: no
server error and no answer outside the published OpenAPI (a larger run: `python -m scripts.fuzz`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.fuzz import Run, admin_headers, fuzz, terminal_headers
from tests.conftest import DBS, PORT_BASE, Service, start_service, stop_service, wait_ready

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 5
NAMES = ("partners", "workshops", "detection")


@pytest.fixture(scope="module")
def instances(stack: None, mongo: Any) -> Iterator[dict[str, Service]]:
    """Copies on their own databases: what the fuzzer creates stays out of the other tests' records."""
    env = {
        "DETECTION_INGEST_ENABLED": "0",
        # One client sending as fast as it can: the limits are tested elsewhere (test_rate_limits.py).
        "DETECTION_TERMINAL_RATE_LIMIT": "100000/second",
        "PARTNERS_AUTH_RATE_LIMIT": "100000/second",
    }
    for name in NAMES:
        db = f"{DBS[name]}_fuzz"
        mongo.drop_database(db)
        env[f"{name.upper()}_DB"] = db
    started = {name: start_service(name, PORT_BASE + 51 + i, env) for i, name in enumerate(NAMES)}
    try:
        for svc in started.values():
            wait_ready(svc)
        yield started
    finally:
        for svc in started.values():
            stop_service(svc)


def check(run: Run) -> None:
    assert run.cases > 0, run.output[-3000:]
    assert run.ok, f"{run.line()}\n{run.output[-8000:]}"


@pytest.mark.parametrize("name", ("partners", "workshops"))
def test_no_server_error_and_no_schema_violation(instances: dict[str, Service], name: str) -> None:
    check(fuzz(name, instances[name].url, admin_headers(), max_examples=MAX_EXAMPLES))


def test_detection_admin_routes_have_no_server_error_and_no_schema_violation(instances: dict[str, Service]) -> None:
    url = instances["detection"].url
    check(fuzz("detection", url, admin_headers(), max_examples=MAX_EXAMPLES, exclude_path="/v1/detections"))


def test_detection_ingestion_has_no_server_error_and_no_schema_violation(instances: dict[str, Service]) -> None:
    url = instances["detection"].url
    terminal = terminal_headers(url, admin_headers())
    check(fuzz("detection", url, terminal, max_examples=MAX_EXAMPLES, include_path="/v1/detections"))
