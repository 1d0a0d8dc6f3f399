"""The operations dashboard in headless Chromium (Debian's `chromium`, driven by Playwright) against the real stack:
the page loads, its numbers are the API's, and a new event moves a number on screen without a reload.

It works in a year nobody else uses (2009), with goals set for it, so no other suite moves the numbers under it.
Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from kafka import KafkaProducer
from playwright import sync_api as playwright_api

from services.metrics import replay
from shared import events as ev
from shared import geo
from shared.identity import Principal, Role, issue_token
from shared.serde import encode
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from shared.topics import DETECTION, PARTNERS, WORKSHOPS
from tests import samples
from tests.conftest import KAFKA, ROOT, Service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

YEAR = 2009
ARTIFACTS = ROOT / "tests" / "artifacts"
ADMIN = {"Authorization": "Bearer " + issue_token(Principal("test-admin", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}
GOALS = {
    "people_helped": 400,
    "france_services_clients": 120,
    "new_partnerships": 12,
    "active_partnerships": 30,
    "skills_missions": 8,
    "advisers_deployed": 6,
    "venues_opened": 5,
}


def digits(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def api_value(metrics: Service, indicator: str) -> int:
    body = metrics.http.get("/v1/progress", params={"year": YEAR}).json()
    return next(i["value"] for i in body["indicators"] if i["id"] == indicator)


def territory(code: str) -> dict:
    dep = geo.departement(code)
    return {"departement": code, "region": dep.region, "timezone": dep.timezone}


def demo_events(run: str) -> list[tuple[str, ev.Envelope]]:
    """A small, varied year: help across départements, channels and partners, detections, partnerships."""
    rnd = random.Random(run)
    deps = ["75", "93", "13", "69", "59", "33", "31", "2A", "974", "971", "35", "67", "63", "44", "06"]
    partners = [f"assoc-{name}-{run}" for name in ("emmaus-connect", "pimms-marseille", "face-lyon", "admr-ouest")]
    out: list[tuple[str, ev.Envelope]] = []
    for i in range(90):
        at = datetime(YEAR, 1, 1, 9, tzinfo=UTC) + timedelta(days=rnd.randint(0, 320), hours=rnd.randint(0, 9))
        person = samples.ref(f"dash-{run}-{i}")
        place = territory(rnd.choice(deps))
        if i % 3 == 0:
            out.append((DETECTION.name, _detection(person, at - timedelta(days=rnd.randint(1, 30)), place, i % 2 == 0)))
        if i % 2:
            data: ev.EventData = ev.WorkshopAttended(
                attendance_id=f"att-{run}-{i}",
                workshop_id="w-dash",
                theme=rnd.choice(list(ev.WorkshopTheme)),
                venue_id="v-dash",
                person_ref=person,
                partner_id=rnd.choice(partners),
                **place,
            )
        else:
            data = ev.AccompanimentCompleted(
                accompaniment_id=f"acc-{run}-{i}",
                person_ref=person,
                channel=rnd.choice(["france_services", "adviser", "partner"]),
                need=rnd.choice(list(ev.Need)),
                duration_minutes=30,
                partner_id=rnd.choice(partners),
                **place,
            )
        out.append((WORKSHOPS.name, ev.new_event(data, source="/tests/dashboard", time=at)))
    for i in range(25):  # detected, never helped (yet)
        at = datetime(YEAR, 1, 1, 9, tzinfo=UTC) + timedelta(days=rnd.randint(0, 320))
        person = samples.ref(f"dash-detected-{run}-{i}")
        out.append((DETECTION.name, _detection(person, at, territory(rnd.choice(deps)), i % 3 == 0)))
    for i in range(4):
        signed = ev.PartnershipSigned(
            partnership_id=f"ps-{run}-{i}",
            partner_id=partners[i],
            partnership_type=list(ev.PartnershipType)[i],
            commitments=["digital_inclusion"],
            departements=[deps[i]],
            signed_on=date(YEAR, 2 + i, 10),
            starts_on=date(YEAR, 2 + i, 10),
        )
        out.append(
            (PARTNERS.name, ev.new_event(signed, source="/tests/dashboard", time=datetime(YEAR, 2, 1, tzinfo=UTC)))
        )
    return out


def _detection(person: str, at: datetime, place: dict, referred: bool) -> ev.Envelope:
    data = ev.IllectronismDetected(
        detection_id=str(uuid.uuid4()),
        office_id="o-dash",
        terminal_id="t-dash",
        france_services=place["departement"] in ("63", "2A"),
        person_ref=person,
        consent=True,
        needs=["online_banking"],
        referral=ev.Referral() if referred else None,
        qpv=place["departement"] == "93",
        **place,
    )
    return ev.new_event(data, source="/tests/dashboard", time=max(at, datetime(YEAR, 1, 1, 9, tzinfo=UTC)))


def publish_all(records: list[tuple[str, ev.Envelope]]) -> None:
    producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all")
    try:
        for topic, event in records:
            producer.send(topic, value=encode(event), key=event.key.encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


@pytest.fixture(scope="module")
def year_with_data(services: dict[str, Service]) -> Service:
    metrics = services["metrics"]
    for indicator, goal in GOALS.items():
        r = metrics.http.put("/v1/goals", json={"indicator": indicator, "year": YEAR, "goal": goal}, headers=ADMIN)
        assert r.status_code == 200, r.text
    for code, goal in (("75", 30), ("13", 20), ("93", 60)):
        goal_body = {"indicator": "people_helped", "year": YEAR, "goal": goal, "territory": code}
        assert metrics.http.put("/v1/goals", json=goal_body, headers=ADMIN).status_code == 200
    run = uuid.uuid4().hex[:6]
    before = api_value(metrics, "people_helped")
    publish_all(demo_events(run))
    # The fresh consumer group of a first run reads the whole log before it reaches these events.
    wait_until(lambda: api_value(metrics, "people_helped") >= before + 90, 300, "the demo year to be counted")
    # Every record on the log applied (other tests' events of the same year included): the API's figures read
    # next are the ones the page must show, not a moment of a catch-up still under way.
    assert replay.wait_applied(metrics.url, replay.end_offsets(KAFKA), timeout=300), "the worker caught up"
    return metrics


def test_dashboard_shows_the_api_numbers_and_moves_live(year_with_data: Service, browser) -> None:
    metrics = year_with_data
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, locale="fr-FR")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{metrics.url}/?year={YEAR}")
    expect = playwright_api.expect
    helped = page.locator('[data-indicator="people_helped"]')
    expect(helped).to_have_attribute("data-value", re.compile(r"^\d+$"))

    # Every counter on screen is the API's (fr-FR digits), once the live stream has caught up (the worker may
    # still be reading the rest of the log, in the same process as the stream, on a busy machine).
    api = metrics.http.get("/v1/progress", params={"year": YEAR}).json()
    for item in api["indicators"]:
        expect(page.locator(f'[data-indicator="{item["id"]}"]')).to_have_attribute(
            "data-value", str(item["value"]), timeout=30_000
        )
        shown = page.locator(f'[data-indicator="{item["id"]}"]').inner_text()
        assert digits(shown) == item["value"], (item["id"], shown)
    assert page.locator('[data-card="people_helped"] .of').inner_text().endswith("400")
    expect(page.locator("#map .tile")).to_have_count(101)
    expect(page.locator('#map .tile[data-dep="75"]')).to_have_attribute("data-value", str(_dep_value(metrics, "75")))
    expect(page.locator("#trend svg polyline")).not_to_have_count(0)
    expect(page.locator("#partners tbody tr[data-partner]")).not_to_have_count(0)
    expect(page.locator("#funnel .num").first).to_have_text(re.compile(r"\d"))

    # A new help event moves the number on screen; the page is not reloaded (the marker survives).
    page.evaluate("window.__notReloaded = true")
    value = digits(helped.inner_text())
    event = samples.attended(samples.ref(f"dash-live-{uuid.uuid4()}"), at=datetime(YEAR, 11, 5, 10, tzinfo=UTC))
    publish_all([(WORKSHOPS.name, event)])
    expect(helped).to_have_attribute("data-value", str(value + 1), timeout=30_000)
    assert digits(helped.inner_text()) == value + 1 == api_value(metrics, "people_helped")
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator('#map .tile[data-dep="75"]')).to_have_attribute(
        "data-value", str(_dep_value(metrics, "75")), timeout=30_000
    )
    assert errors == []

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # The map coloured against territorial goals, and the partner filter.
    page.get_by_role("button", name="Par rapport à l'objectif territorial").click()
    expect(page.locator('#map .tile[data-dep="93"] title')).to_contain_text("objectif 60")
    expect(page.locator('#map .tile[data-dep="2B"] title')).to_contain_text("pas d'objectif territorial")
    page.get_by_role("button", name="Volume").click()
    page.locator("#partner-filter").fill("face-lyon")
    expect(page.locator("#partners tbody tr[data-partner]").first).to_have_attribute(
        "data-partner", re.compile("face-lyon")
    )
    expect(page.locator('#partners tbody tr[data-partner]:not([data-partner*="face-lyon"])')).to_have_count(0)
    expect(page.locator("#partner-count")).to_have_text(re.compile(r"^\d+ partenaires?$"))
    page.close()


def _dep_value(metrics: Service, code: str) -> int:
    rows = metrics.http.get(
        "/v1/breakdown", params={"indicator": "people_helped", "dimension": "departement", "year": YEAR}
    ).json()["rows"]
    return next((r["value"] for r in rows if r["key"] == code), 0)


@pytest.mark.parametrize("size", [(1366, 768), (2560, 1440)], ids=["laptop", "wall"])
def test_dashboard_fits_a_laptop_and_a_wall_screen(year_with_data: Service, browser, size: tuple[int, int]) -> None:
    page = browser.new_page(viewport={"width": size[0], "height": size[1]}, locale="fr-FR")
    page.goto(f"{year_with_data.url}/?year={YEAR}")
    playwright_api.expect(page.locator("#map .tile")).to_have_count(101)
    playwright_api.expect(page.locator('[data-indicator="people_helped"]')).to_have_attribute(
        "data-value", re.compile(r"\d")
    )
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {size}"
    if size[0] >= 1800:  # a wall screen shows everything at once: nothing below the fold
        below = page.evaluate("document.documentElement.scrollHeight - window.innerHeight")
        assert below <= 0, f"the wall layout needs {below}px more height"
    assert page.locator("html").get_attribute("lang") == "fr"
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{size[0]}x{size[1]}.png"), full_page=True)
    page.close()
