"""`make run`'s demo, loaded by its own loaders into the test copies of the services, looked at in headless Chromium.

The year must read like one against the demo's own goals (scripts/dashboard_check.py, the check `make run`'s users
can run too): no goal card below 10 % of its expected-to-date, the goals labelled as the demo's, a funnel
conversion above 0 % (people detected at a counter and helped later), partners by name and no raw id on the page,
and the status beside "en direct" saying how far behind the log the counters are.

It loads a year nobody else uses (2025: in the past, so the whole year) and reads it through a metrics instance of
its own, started with `make run`'s goals file. Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api

from scripts.dashboard_check import SYNC_TEXT, check
from services.metrics.goals import DEMO_GOALS_FILE
from tests.conftest import (
    PORT_BASE,
    ROOT,
    SUFFIX,
    TEST_ENV,
    Service,
    start_metrics,
    stop_service,
    wait_metrics_caught_up,
    wait_ready,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

YEAR = 2025
APP_ID = f"alliance-metrics-demo-test{SUFFIX}"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def demo_metrics(services: dict[str, Service], mongo: Any) -> Iterator[Service]:
    """A metrics instance as `make run` starts it: the demo's goals (its consumer group and store its own)."""
    db = f"test_metrics_demo{SUFFIX}"
    mongo.drop_database(db)
    env = {
        "METRICS_GOALS_FILE": str(DEMO_GOALS_FILE),
        "METRICS_APP_ID": APP_ID,
        "METRICS_DB": db,
        "METRICS_DATA_DIR": str(ROOT / ".data" / f"faust-demo-test{SUFFIX}"),
    }
    svc = start_metrics(PORT_BASE + 14, env)
    try:
        wait_ready(svc, timeout=600)
        yield svc
    finally:
        stop_service(svc)


def _loader(*args: str) -> str:
    """One demo loader against the test copies of the services, as deploy/local/services.sh runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**os.environ, **TEST_ENV},
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, f"{args[0]} failed ({proc.returncode}):\n{out[-3000:]}"
    return out


@pytest.fixture(scope="module")
def demo_year(services: dict[str, Service], demo_metrics: Service, tmp_path_factory: Any) -> Service:
    credentials = Path(tmp_path_factory.mktemp("demo")) / "demo-credentials.json"
    detection = services["detection"].url
    out = _loader("services.detection.demo", "--url", detection, "--year", str(YEAR), "--credentials", str(credentials))
    assert re.search(r"through the backfill path \(\d+ offices\)", out), out
    with ThreadPoolExecutor(2) as pool:
        partners = pool.submit(_loader, "services.partners.demo", "--as-of", f"{YEAR}-12-31")
        workshops = pool.submit(_loader, "services.workshops.demo", "--year", str(YEAR))
        partners.result(), workshops.result()
    wait_metrics_caught_up(demo_metrics)
    return demo_metrics


def test_the_demo_year_reads_like_a_year_against_its_own_goals(demo_year: Service, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, locale="fr-FR")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    report = check(page, demo_year.url, YEAR, screenshot=ARTIFACTS / "dashboard-demo.png")
    print(report.figures())
    assert report.problems == [], report.problems
    assert report.goals_label and report.goals_label.startswith("Objectifs de démonstration")
    assert set(report.cards) == {
        "people_helped",
        "france_services_clients",
        "new_partnerships",
        "active_partnerships",
        "skills_missions",
        "advisers_deployed",
        "venues_opened",
    }
    assert all(card["pace"] >= 0.1 for card in report.cards.values()), report.cards
    progress = demo_year.http.get("/v1/progress", params={"year": YEAR}).json()
    values = {i["id"]: i["value"] for i in progress["indicators"]}
    assert values["accompaniments"] > 0 and values["france_services_clients"] > 0
    funnel = demo_year.http.get("/v1/funnel", params={"year": YEAR}).json()["total"]
    assert funnel["helped"] > 0 and funnel["conversion_rate"] > 0 and funnel["median_delay_days"] is not None
    assert report.partners and all("démo" in name.casefold() for name in report.partners), report.partners
    assert errors == []
    page.close()


def test_the_status_beside_live_says_how_far_behind_the_counters_are(demo_year: Service, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1366, "height": 768}, locale="fr-FR")
    expect = playwright_api.expect
    status = page.locator("#sync")
    page.goto(f"{demo_year.url}/?year={YEAR}")
    expect(status).to_have_text(SYNC_TEXT, timeout=30_000)  # the real worker's lag (other suites publish too)
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    # The worker's own answer with the lag changed: the words follow it, not only the mark's colour.
    worker = demo_year.http.get("/v1/worker").json()
    page.route("**/v1/worker", lambda route: route.fulfill(json={**worker, "lag": 0}))
    expect(status).to_have_text("à jour", timeout=15_000)
    page.route("**/v1/worker", lambda route: route.fulfill(json={**worker, "lag": 1234}))
    expect(status).to_have_text(re.compile(r"^en retard de 1\s?234 événements$"), timeout=15_000)
    page.route("**/v1/worker", lambda route: route.fulfill(json={**worker, "lag": 1}))
    expect(status).to_have_text("en retard de 1 événement", timeout=15_000)
    page.close()
