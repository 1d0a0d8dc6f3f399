"""A valid-looking event the counting rules cannot place (an attendance in the year 9999) is dead-lettered by the
worker with its reason, counts nothing, and the replay still finishes and says IDENTICAL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from shared.serde import encode
from shared.topics import DEAD_LETTER, WORKSHOPS
from tests import samples
from tests.conftest import ROOT, TEST_ENV, wait_until
from tests.integration.test_metrics_recovery import YEAR, mixed_stream, publish
from tests.kafka_tools import produce, tail

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_a_year_9999_attendance_is_dead_lettered_and_the_replay_stays_identical(services: dict) -> None:
    event = samples.attended(samples.ref(f"poison-{uuid.uuid4().hex}"))
    doc = json.loads(encode(event))
    doc["time"] = "9999-12-31T23:30:00+00:00"  # passes a JSON parser, not the contract
    key = event.key.encode()
    with tail(DEAD_LETTER.name) as records:
        produce(WORKSHOPS.name, json.dumps(doc).encode(), key)

        def letter() -> dict | None:
            for r in records(0.5):
                body = json.loads(r.value)
                if r.key == key and body["consumer"] == TEST_ENV["METRICS_APP_ID"]:
                    return body
            return None

        body = wait_until(letter, 120, "the metrics worker to dead-letter the year-9999 attendance")
    assert body["source"]["topic"] == WORKSHOPS.name
    assert "outside 2000-2099" in body["reason"]
    # The worker goes on, and a rebuild from the log (which holds the poison record for ever) agrees with it.
    publish(mixed_stream(50, seed=999))
    result = subprocess.run(
        [sys.executable, "-m", "services.metrics.replay", "--url", services["metrics"].url, "--year", str(YEAR)],
        cwd=ROOT,
        env={**os.environ, **TEST_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "IDENTICAL" in result.stdout
