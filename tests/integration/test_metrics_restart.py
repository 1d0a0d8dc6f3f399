"""Restarts with the persistent table store: after a clean stop the counters come back as saved, after a
kill -9 they are derived from the local table, and with the local store deleted the table comes back from
its changelog; every time the counters equal a rebuild from the log, and nothing is lost or doubled."""

from __future__ import annotations

import shutil
import signal
import uuid
from collections import Counter
from pathlib import Path

import pytest

from scripts.soak_metrics import Publisher, soak_events, year_cells
from services.metrics import domain, replay
from tests.conftest import INSTANCE, KAFKA, PORT_BASE, Service, start_metrics_worker, stop_service, wait_ready

pytestmark = pytest.mark.integration
YEAR = 2051
YEARS = (YEAR, YEAR + 1)


def _publish(events: list) -> None:
    publisher = Publisher(events, rate=1e9)
    publisher.run()
    assert publisher.failures == []


def _caught_up(svc: Service) -> dict[str, int]:
    until = replay.end_offsets(KAFKA)
    assert replay.wait_applied(svc.url, until, timeout=600), "the worker caught up with the log"
    return year_cells(svc.http.get("/v1/snapshot").json()["cells"], YEARS)


def _from_log() -> dict[str, int]:
    rebuilt, _ = replay.rebuild(KAFKA, replay.end_offsets(KAFKA), progress=False)
    return year_cells(rebuilt.snapshot(), YEARS)


class Expected:
    """The test years' cells on the log before the test (an earlier run's), plus the counting rules over what
    the test published: one rebuild from the log at the start, not one per check."""

    def __init__(self) -> None:
        self.before = Counter(_from_log())
        self.rules = domain.Ledger()

    def publish(self, events: list) -> None:
        _publish(events)
        for e in events:
            self.rules.add(e)

    def cells(self) -> dict[str, int]:
        return {c: n for c, n in (self.before + Counter(year_cells(self.rules.counters.snapshot(), YEARS))).items()}


@pytest.mark.timeout(1800)
def test_restarts_keep_the_counters_whatever_copy_of_the_state_they_start_from(stack: None, tmp_path: Path) -> None:
    app_id = f"alliance-metrics-restart-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "faust"
    env = {"METRICS_APP_ID": app_id, "METRICS_DATA_DIR": str(data), "METRICS_SESSION_TIMEOUT": "6"}
    port = PORT_BASE + 42
    saved = data / f"{app_id}.worker-1.counters-at-stop.json"
    batches = iter(soak_events(150, YEAR, seed=INSTANCE + n) for n in range(4))
    expected = Expected()
    svc = start_metrics_worker(port, 1, env)
    try:
        wait_ready(svc)
        assert svc.http.get("/v1/worker").json()["store"] == "rocksdb"
        expected.publish(next(batches))
        first = _caught_up(svc)
        assert first and first == expected.cells()

        # A clean stop saves the counters; the next start reads them and deletes the file.
        stop_service(svc)
        assert saved.exists()
        svc = start_metrics_worker(port, 1, env)
        wait_ready(svc)
        status = svc.http.get("/v1/worker").json()
        assert status["counters_from"] == "saved" and not saved.exists()
        expected.publish(next(batches))
        second = _caught_up(svc)
        assert second == expected.cells() and second != first

        # kill -9: no saved counters; they are derived from the local table, which may hold writes its
        # changelog never got.
        stop_service(svc, signal.SIGKILL)
        assert not saved.exists()
        expected.publish(next(batches))
        svc = start_metrics_worker(port, 1, env)
        wait_ready(svc)
        assert svc.http.get("/v1/worker").json()["counters_from"] == "table"
        third = _caught_up(svc)
        assert third == expected.cells() and third != second

        # The local store lost after a kill -9: the table comes back from the changelog alone.
        stop_service(svc, signal.SIGKILL)
        shutil.rmtree(data / app_id)
        expected.publish(next(batches))
        svc = start_metrics_worker(port, 1, env)
        wait_ready(svc, timeout=600)
        assert svc.http.get("/v1/worker").json()["counters_from"] == "table"
        assert _caught_up(svc) == expected.cells() == _from_log()
    finally:
        stop_service(svc)
