"""Exactly once through crashes: a worker killed with kill -9 again and again while events arrive (in
mid-stream, right after a restart while it catches up, during its start-up) ends with the counters of
what was published, and a rebuild from the log agrees: nothing lost, nothing doubled.

The short variant of `python -m scripts.soak_metrics` (which runs 100,000 events and 20 kills or more).
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata

from scripts.soak_metrics import Publisher, Soak, expected_totals, report, soak_events, year_cells
from services.metrics import domain, replay
from tests.conftest import INSTANCE, KAFKA, PORT_BASE, start_metrics_worker, stop_service, wait_ready

pytestmark = pytest.mark.integration
YEAR = 2041


@pytest.mark.timeout(900)
def test_kill_9_again_and_again_loses_and_doubles_nothing(stack: None, tmp_path) -> None:
    result = Soak(
        people=1500,
        min_kills=6,
        rate=70,
        port=PORT_BASE + 40,
        year=YEAR,
        seed=INSTANCE,
        data_dir=tmp_path / "faust",
        say=print,
    ).run()
    print(report(result))
    assert result.kills >= 6 and result.kills_catching_up >= 1, report(result)
    assert result.distinct >= 2500 and result.published >= result.distinct
    assert result.live_totals == result.expected, report(result)
    assert (result.lost, result.doubled) == (0, 0), report(result)
    assert result.rules_differences == [], report(result)
    assert result.replay_differences == [], report(result)
    assert result.expected["anonymous_help"] > 0 and result.expected["detections"] > 0


def _commit_group_offsets(group: str, offsets: dict) -> None:
    consumer = KafkaConsumer(bootstrap_servers=KAFKA, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in offsets.items()})
    finally:
        consumer.close()


@pytest.mark.timeout(900)
def test_offsets_committed_ahead_of_the_state_are_not_trusted(stack: None, tmp_path) -> None:
    """The crash of issue #11, made certain: the group's offsets are committed past events whose effect never
    reached the state (as when a worker commits, then dies before its changelog write). The restarted worker
    must count those events; one that resumed from the committed offsets would skip them all."""
    year = YEAR + 5
    years = (year, year + 1)
    before, _ = replay.rebuild(KAFKA, replay.end_offsets(KAFKA), progress=False)
    baseline = Counter(year_cells(before.snapshot(), years))
    first, later = soak_events(100, year, seed=INSTANCE), soak_events(150, year, seed=INSTANCE + 1)
    env = {
        "METRICS_APP_ID": f"alliance-metrics-ahead-{uuid.uuid4().hex[:8]}",
        "METRICS_DATA_DIR": str(tmp_path / "faust"),
        "METRICS_SESSION_TIMEOUT": "6",
    }
    port = PORT_BASE + 41
    svc = start_metrics_worker(port, 1, env)
    try:
        wait_ready(svc)
        _publish(first)
        assert replay.wait_applied(svc.url, replay.end_offsets(KAFKA), timeout=600)
        stop_service(svc)
        _publish(later)
        until = replay.end_offsets(KAFKA)
        _commit_group_offsets(env["METRICS_APP_ID"], until)
        svc = start_metrics_worker(port, 1, env)
        wait_ready(svc)
        assert replay.wait_applied(svc.url, until, timeout=600)
        live = year_cells(svc.http.get("/v1/snapshot").json()["cells"], years)
    finally:
        stop_service(svc)
    rules = domain.Ledger()
    for e in first + later:
        rules.add(e)
    assert live == dict(baseline + Counter(year_cells(rules.counters.snapshot(), years)))
    helped = f"people_helped|{year}||"
    assert live[helped] == baseline[helped] + expected_totals(first + later, year)["people_helped"]
    assert expected_totals(later, year)["people_helped"] > 100  # what a worker trusting the offsets would miss


def _publish(events: list) -> None:
    publisher = Publisher(events, rate=1e9)
    publisher.run()
    assert publisher.failures == []
