"""The metrics read API over the real broker: breakdowns, funnel, trend, partners, CSV export, territorial goals.

Events are published straight to Kafka in years nobody else uses (2006, 2007), with partner ids unique to the
run, so other suites sharing the broker cannot disturb the assertions; counts that others could touch are
compared as deltas.
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared import events as ev
from shared.identity import Principal, Role, issue_token
from shared.serde import encode
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from shared.topics import DETECTION, EVENT_TOPICS, WORKSHOPS
from tests import samples
from tests.conftest import TEST_ENV, Service, wait_until
from tests.kafka_tools import produce

# The first run of a fresh consumer group catches up with the whole log before it sees these events.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
CATCH_UP = 300

YEAR = 2006
FUNNEL_YEAR = 2007
CORSICA = {"departement": "2A", "region": "94", "timezone": "Europe/Paris"}
TOKEN_KEY = TEST_ENV.get("PLATFORM_TOKEN_KEY") or os.environ.get("PLATFORM_TOKEN_KEY", DEV_PLATFORM_TOKEN_KEY)


def bearer(role: Role, partner_id: str | None = None) -> dict[str, str]:
    token = issue_token(Principal(f"user-{role.value}", role, partner_id=partner_id), TOKEN_KEY)
    return {"Authorization": f"Bearer {token}"}


def publish(event: ev.Envelope) -> None:
    topic = DETECTION if isinstance(event.data, ev.IllectronismDetected) else WORKSHOPS
    produce(topic.name, encode(event), event.key.encode())


def helped(person: str, *, partner: str, at: datetime, territory: dict | None = None) -> ev.Envelope:
    data = ev.AccompanimentCompleted(
        accompaniment_id=str(uuid.uuid4()),
        person_ref=person,
        channel="partner",
        need="benefits",
        duration_minutes=45,
        partner_id=partner,
        **(territory or CORSICA),
    )
    return ev.new_event(data, source="/tests/metrics-api", time=at)


def detected_in_france_services(person: str, at: datetime, *, referred: bool) -> ev.Envelope:
    data = ev.IllectronismDetected(
        detection_id=str(uuid.uuid4()),
        office_id="o-fs",
        terminal_id="t-fs",
        france_services=True,
        person_ref=person,
        consent=True,
        needs=["benefits"],
        referral=ev.Referral() if referred else None,
        **CORSICA,
    )
    return ev.new_event(data, source="/tests/metrics-api", time=at)


def rows(metrics: Service, **params) -> dict[str, dict]:
    r = metrics.http.get("/v1/breakdown", params=params)
    assert r.status_code == 200, r.text
    return {row["key"]: row for row in r.json()["rows"]}


def partner_value(metrics: Service, partner: str, year: int = YEAR) -> int:
    row = rows(metrics, indicator="people_helped", dimension="partner", year=year).get(partner)
    return row["value"] if row else 0


@pytest.fixture(scope="module")
def run() -> str:
    """A tag unique to this run, for partner ids."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def partners_published(services: dict[str, Service], run: str) -> dict[str, int]:
    """Three partners of this run helping 2, 3 and 7 people in Corse-du-Sud in YEAR (one person helped twice)."""
    metrics = services["metrics"]
    before = rows(metrics, indicator="people_helped", dimension="departement", year=YEAR).get("2A")
    sizes = {f"small-a-{run}": 2, f"small-b-{run}": 3, f"large-{run}": 7}
    at = datetime(YEAR, 3, 1, 10, tzinfo=UTC)  # week 09
    for partner, size in sizes.items():
        for i in range(size):
            person = samples.ref(f"{partner}-{i}")
            publish(helped(person, partner=partner, at=at))
            if i == 0:
                publish(helped(person, partner=partner, at=at + timedelta(days=1)))
    for partner, size in sizes.items():
        wait_until(lambda p=partner, n=size: partner_value(metrics, p) == n, CATCH_UP, f"{partner} to reach {size}")
    return {"corsica_before": before["value"] if before else 0, **sizes}


def test_breakdown_by_partner_and_departement_with_labels(services: dict[str, Service], partners_published) -> None:
    metrics = services["metrics"]
    large = next(p for p in partners_published if p.startswith("large-"))
    body = metrics.http.get(
        "/v1/breakdown", params={"indicator": "people_helped", "dimension": "partner", "year": YEAR}
    )
    assert body.status_code == 200
    assert body.json()["dimension_label"] == "Partenaire" and body.json()["label"] == "Personnes accompagnées"
    values = [r["value"] for r in body.json()["rows"]]
    assert values == sorted(values, reverse=True)
    visits = rows(metrics, indicator="accompaniments", dimension="partner", year=YEAR)
    assert visits[large]["value"] == 8  # 7 people, one of them twice

    corsica = rows(metrics, indicator="people_helped", dimension="departement", year=YEAR)["2A"]
    assert corsica["label"] == "Corse-du-Sud"
    assert corsica["value"] >= partners_published["corsica_before"] + 12
    region = rows(metrics, indicator="people_helped", dimension="region", year=YEAR)["94"]
    assert region["label"] == "Corse" and region["value"] >= corsica["value"]
    every = rows(metrics, indicator="people_helped", dimension="departement", year=YEAR, include_zero="true")
    assert len(every) == 101 and every["976"]["label"] == "Mayotte"


@pytest.mark.parametrize(
    "params, reason",
    [
        ({"indicator": "people_saved", "dimension": "departement"}, "unknown indicator 'people_saved'"),
        ({"indicator": "people_helped", "dimension": "colour"}, "unknown dimension 'colour'"),
        ({"indicator": "venues_opened", "dimension": "partner"}, "expected one of: week, departement, region"),
        ({"indicator": "active_partnerships", "dimension": "departement"}, "no breakdown"),
    ],
)
def test_unknown_indicator_or_dimension_is_refused_with_a_reason(
    services: dict[str, Service], params: dict, reason: str
) -> None:
    metrics = services["metrics"]
    for path in ("/v1/breakdown", "/v1/export.csv"):
        r = metrics.http.get(path, params=params)
        assert r.status_code == 422 and reason in r.json()["detail"], (path, r.text)
    if "dimension" in params and params["indicator"] == "people_saved":
        r = metrics.http.get("/v1/trend", params={"indicator": "people_saved"})
        assert r.status_code == 422 and reason in r.json()["detail"]
    assert metrics.http.get("/v1/funnel", params={"by": "channel"}).status_code == 422


def test_territorial_goals_need_an_admin_and_show_in_the_breakdown(services: dict[str, Service], run) -> None:
    metrics = services["metrics"]
    goal = {"indicator": "people_helped", "year": YEAR, "goal": 48, "territory": "2A"}
    assert metrics.http.put("/v1/goals", json=goal, headers=bearer(Role.MONITORING)).status_code == 403
    assert metrics.http.put("/v1/goals", json=goal, headers=bearer(Role.PARTNER, "p-1")).status_code == 403
    assert metrics.http.put("/v1/goals", json=goal).status_code == 401
    bad = metrics.http.put("/v1/goals", json=goal | {"territory": "99"}, headers=bearer(Role.ADMIN))
    assert bad.status_code == 422 and "unknown territory" in bad.text
    ok = metrics.http.put("/v1/goals", json=goal, headers=bearer(Role.ADMIN))
    assert ok.status_code == 200, ok.text
    region_goal = {"indicator": "people_helped", "year": YEAR, "goal": 96, "territory": "region:94"}
    assert metrics.http.put("/v1/goals", json=region_goal, headers=bearer(Role.ADMIN)).status_code == 200
    assert goal | {"goal": 48.0} in metrics.http.get("/v1/goals").json()["goals"]

    corsica = rows(metrics, indicator="people_helped", dimension="departement", year=YEAR)
    row = corsica.get("2A") or {"value": 0}
    assert row.get("goal") == 48 and row["goal_inherited"] is False
    assert row["ratio"] == round(row["value"] / 48, 6)
    later = rows(metrics, indicator="people_helped", dimension="departement", year=YEAR + 1, include_zero="true")
    assert later["2A"]["goal"] == 48 and later["2A"]["goal_inherited"] is True and later["2A"]["goal_year"] == YEAR
    assert later["2B"]["goal"] is None
    region = rows(metrics, indicator="people_helped", dimension="region", year=YEAR, include_zero="true")["94"]
    assert region["goal"] == 96


def test_public_csv_hides_small_cells_and_the_exact_export_needs_a_token(
    services: dict[str, Service], partners_published
) -> None:
    metrics = services["metrics"]
    params = {"indicator": "people_helped", "dimension": "partner", "year": YEAR}
    r = metrics.http.get("/v1/export.csv", params=params)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="people_helped-partner-2006.csv"' in r.headers["content-disposition"]
    public = {row["code"]: row for row in csv.DictReader(io.StringIO(r.content.decode("utf-8")))}
    assert r.text.splitlines()[0] == "year,indicator,dimension,code,label,value,secret"
    for partner, size in partners_published.items():
        if partner.startswith("small-"):
            assert (public[partner]["value"], public[partner]["secret"]) == ("", "true")
        elif partner.startswith("large-"):
            assert (public[partner]["value"], public[partner]["secret"]) == (str(size), "false")
    assert all(row["secret"] == "true" for row in public.values() if row["value"] == "")
    assert all(int(row["value"]) >= 5 for row in public.values() if row["value"] != "")

    exact = params | {"public": "false"}
    assert metrics.http.get("/v1/export.csv", params=exact).status_code == 401
    bad = metrics.http.get("/v1/export.csv", params=exact, headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 401
    partner = metrics.http.get("/v1/export.csv", params=exact, headers=bearer(Role.PARTNER, "p-1"))
    assert partner.status_code == 403
    for role in (Role.MONITORING, Role.ADMIN):
        r = metrics.http.get("/v1/export.csv", params=exact, headers=bearer(role))
        assert r.status_code == 200, r.text
        rows_ = {row["code"]: row for row in csv.DictReader(io.StringIO(r.text))}
        for partner_id, size in partners_published.items():
            if partner_id != "corsica_before":
                assert (rows_[partner_id]["value"], rows_[partner_id]["secret"]) == (str(size), "false")

    by_dep = metrics.http.get("/v1/export.csv", params=params | {"dimension": "departement"})
    assert "2A,Corse-du-Sud," in by_dep.content.decode("utf-8")


def test_trend_is_weekly_and_cumulative(services: dict[str, Service], partners_published) -> None:
    metrics = services["metrics"]
    body = metrics.http.get("/v1/trend", params={"indicator": "people_helped", "year": YEAR}).json()
    weeks = body["weeks"]
    assert len(weeks) == 53 and weeks[8]["week"] == "09" and weeks[8]["start"] == "2006-02-26"
    assert weeks[8]["value"] >= 12  # this run's people, all first helped on 1 March
    running = 0
    for week in weeks:
        running += week["value"]
        assert week["elapsed"] is True and week["cumulative"] == running
    assert body["total"] == running
    progress = metrics.http.get("/v1/progress", params={"year": YEAR}).json()
    assert running == next(i["value"] for i in progress["indicators"] if i["id"] == "people_helped")
    future = metrics.http.get("/v1/trend", params={"indicator": "people_helped", "year": 2099}).json()
    assert all(w["cumulative"] is None and w["elapsed"] is False for w in future["weeks"])


def test_partners_view_ranks_and_filters(services: dict[str, Service], partners_published, run: str) -> None:
    metrics = services["metrics"]
    body = metrics.http.get("/v1/partners", params={"year": YEAR, "q": run.upper()}).json()
    assert [(r["partner"], r["people_helped"], r["accompaniments"]) for r in body["rows"]] == [
        (f"large-{run}", 7, 8),
        (f"small-b-{run}", 3, 4),
        (f"small-a-{run}", 2, 3),
    ]
    assert metrics.http.get("/v1/partners", params={"year": YEAR, "q": run, "limit": 1}).json()["count"] == 3


def test_funnel_counts_rates_and_exact_median_delay(services: dict[str, Service], run: str) -> None:
    """Every run adds the same shape in FUNNEL_YEAR's France Services offices, so the median stays 3 days
    (the mean of the two middle delays, 2 and 4) however many runs the log holds."""
    metrics = services["metrics"]

    def france_services() -> dict:
        body = metrics.http.get("/v1/funnel", params={"year": FUNNEL_YEAR, "by": "office_type"}).json()
        return next((r for r in body["rows"] if r["key"] == "france_services"), {"detected": 0})

    before = france_services()
    at = datetime(FUNNEL_YEAR, 5, 4, 9, tzinfo=UTC)
    people = [samples.ref(f"funnel-{run}-{i}") for i in range(4)]
    publish(detected_in_france_services(people[0], at, referred=True))
    publish(helped(people[0], partner=f"funnel-{run}", at=at + timedelta(days=2, hours=3)))
    publish(detected_in_france_services(people[1], at, referred=True))
    publish(helped(people[1], partner=f"funnel-{run}", at=at + timedelta(days=4)))
    publish(detected_in_france_services(people[2], at, referred=True))
    publish(detected_in_france_services(people[3], at, referred=False))
    publish(helped(people[3], partner=f"funnel-{run}", at=at + timedelta(days=91)))  # too late to count
    wait_until(lambda: france_services()["detected"] == before["detected"] + 4, 30, "four more detected")
    wait_until(lambda: france_services().get("helped") == before.get("helped", 0) + 2, 30, "two more helped")
    row = france_services()
    assert row["label"] == "France Services"
    assert row["referred"] == before.get("referred", 0) + 3
    assert row["conversion_rate"] == round(row["helped"] / row["detected"], 6)
    assert row["referral_rate"] == round(row["referred"] / row["detected"], 6)
    assert row["median_delay_days"] == 3
    national = metrics.http.get("/v1/funnel", params={"year": FUNNEL_YEAR}).json()
    assert national["window_days"] == 90 and national["total"]["detected"] >= row["detected"]
    by_dep = metrics.http.get("/v1/funnel", params={"year": FUNNEL_YEAR, "by": "departement"}).json()
    assert next(r for r in by_dep["rows"] if r["key"] == "2A")["label"] == "Corse-du-Sud"


def test_anonymous_help_is_an_indicator_of_progress(services: dict[str, Service], run: str) -> None:
    metrics = services["metrics"]
    year = 2008

    def anonymous() -> int:
        body = metrics.http.get("/v1/progress", params={"year": year}).json()
        return next(i["value"] for i in body["indicators"] if i["id"] == "anonymous_help")

    before = anonymous()
    at = datetime(year, 2, 3, 10, tzinfo=UTC)
    publish(samples.attended(None, at=at))
    publish(samples.attended(None, at=at, territory=CORSICA))
    publish(samples.attended(samples.ref(f"named-{run}"), at=at))  # a person with a reference is not anonymous
    wait_until(lambda: anonymous() == before + 2, CATCH_UP, "two anonymous help events")
    body = metrics.http.get("/v1/progress", params={"year": year}).json()
    item = next(i for i in body["indicators"] if i["id"] == "anonymous_help")
    assert item["label"] == "Aides anonymes"
    assert "people_helped" in {i["id"] for i in body["indicators"]}  # added beside the others, none renamed
    assert rows(metrics, indicator="anonymous_help", dimension="departement", year=year)["2A"]["value"] >= 1


def test_worker_reports_lag_per_partition_and_newest_event_age(services: dict[str, Service], run: str) -> None:
    metrics = services["metrics"]
    publish(samples.attended(samples.ref(f"lag-{run}"), at=datetime(YEAR, 4, 1, tzinfo=UTC)))

    def caught_up() -> dict | None:
        body = metrics.http.get("/v1/worker").json()
        return body if body["lag"] == 0 and body["newest_event_age_seconds"] is not None else None

    body = wait_until(caught_up, CATCH_UP, "the worker to catch up")
    partitions = body["partitions_total"]
    assert body["partitions_reported"] == partitions and partitions >= 3
    assert {(p["topic"], p["partition"]) for p in body["partitions"]} == {
        (t.name, n) for t in EVENT_TOPICS for n in range(partitions)
    }
    worker = metrics.workers[0]
    for p in body["partitions"]:
        assert p["lag"] == p["end"] - p["applied"] == 0
        assert p["worker"] in body["workers"] and p["partition"] in body["workers"][p["worker"]]["partitions"]
    assert body["newest_event_age_seconds"] >= 0
    # The worker's own view: the positions it stored with its state are never ahead of what it applied.
    own = worker.http.get("/v1/worker").json()
    assert own["owned"] == list(range(partitions))
    for p in own["partitions"]:
        assert p["stored"] is None or p["stored"] <= p["applied"]

    def gauges(svc: Service) -> str | None:
        text = svc.http.get("/metrics").text
        return text if "metrics_consumer_lag{" in text else None

    for svc in (metrics, worker):
        exported = wait_until(lambda svc=svc: gauges(svc), 10, f"lag gauges on {svc.url}")
        assert f'metrics_consumer_lag{{partition="0",topic="{WORKSHOPS.name}"}}' in exported
        assert "metrics_newest_event_age_seconds " in exported
