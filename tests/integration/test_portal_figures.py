"""A partner's figures for the year, month by month, in the portal (headless Chromium against the real stack):
the numbers the metrics API gives, for the partner's own organisation only, with the XLSX and CSV files read back.

Help events for the run's own partner go straight to Kafka in a year nobody else uses (2014). The screenshot is
.run/screenshots/portal-figures-months.png (git-ignored), beside the other portal pages'.
"""

from __future__ import annotations

import csv
import io
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from playwright import sync_api as playwright_api

from services.partners.settings import DEV_BOOTSTRAP_ADMIN_PASSWORD
from shared import events as ev
from shared.serde import encode
from shared.topics import WORKSHOPS
from tests import samples
from tests.conftest import Service, wait_until
from tests.integration.test_portal import check_page, new_page, sign_in
from tests.kafka_tools import produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

YEAR = 2014
CATCH_UP = 300
PARIS = {"departement": "93", "region": "11", "timezone": "Europe/Paris"}
REUNION = {"departement": "974", "region": "04", "timezone": "Indian/Reunion"}
expect = playwright_api.expect


class Partner:
    """An organisation made through the partners API (as an operator would), one staff account, its token."""

    def __init__(self, partners: Service, admin: dict[str, str], tag: str) -> None:
        body = {
            "name": f"Association Chiffres {tag}",
            "kind": "association",
            "legal_id": "W" + str(secrets.randbelow(10**9)).zfill(9),
            "address": {
                "street": "1 rue de la Paix",
                "postcode": "93200",
                "city": "Saint-Denis",
                "commune_insee": "93066",
            },
            "departements": ["93"],
        }
        r = partners.http.post("/v1/partners", json=body, headers=admin)
        assert r.status_code == 201, r.text
        self.id = r.json()["id"]
        self.username, self.password = f"chiffres-{tag}", secrets.token_urlsafe(16)
        user = {"username": self.username, "password": self.password, "role": "partner", "partner_id": self.id}
        assert partners.http.post("/v1/users", json=user, headers=admin).status_code == 201
        r = partners.http.post("/v1/auth/token", json={"username": self.username, "password": self.password})
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}


def attended(person: str, partner: str, at: datetime, territory: dict[str, str] = PARIS) -> ev.Envelope:
    data = ev.WorkshopAttended(
        attendance_id=str(uuid.uuid4()),
        workshop_id=f"ws-{uuid.uuid4().hex[:8]}",
        theme="online_banking",
        venue_id="v-figures",
        person_ref=person,
        partner_id=partner,
        **territory,
    )
    return ev.new_event(data, source="/tests/portal-figures", time=at)


def accompanied(person: str, partner: str, at: datetime) -> ev.Envelope:
    data = ev.AccompanimentCompleted(
        accompaniment_id=str(uuid.uuid4()),
        person_ref=person,
        channel="partner",
        need="admin_procedures",
        duration_minutes=40,
        partner_id=partner,
        **PARIS,
    )
    return ev.new_event(data, source="/tests/portal-figures", time=at)


@pytest.fixture(scope="module")
def partners_of_run(services: dict[str, Service], portal: Service) -> dict[str, Partner]:
    partners = services["partners"]
    r = partners.http.post("/v1/auth/token", json={"username": "admin", "password": DEV_BOOTSTRAP_ADMIN_PASSWORD})
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    run = uuid.uuid4().hex[:8]
    return {"a": Partner(partners, admin, f"a-{run}"), "b": Partner(partners, admin, f"b-{run}")}


@pytest.fixture(scope="module")
def published(services: dict[str, Service], partners_of_run: dict[str, Partner]) -> dict[str, Any]:
    """For partner A: three people in February (one back in March), one accompaniment in March, and an
    attendance on 31 October at 21:00 UTC in La Réunion, which is already 1 November there."""
    a = partners_of_run["a"].id
    people = [samples.ref(f"figures-{a}-{i}") for i in range(5)]
    feb = datetime(YEAR, 2, 11, 9, tzinfo=UTC)
    events = [
        *(attended(p, a, feb + timedelta(hours=i)) for i, p in enumerate(people[:3])),
        attended(people[0], a, feb + timedelta(days=30)),
        accompanied(people[3], a, datetime(YEAR, 3, 20, 14, tzinfo=UTC)),
        attended(people[4], a, datetime(YEAR, 10, 31, 21, tzinfo=UTC), REUNION),
    ]
    for e in events:
        produce(WORKSHOPS.name, encode(e), e.key.encode())
    metrics = services["metrics"]
    headers = partners_of_run["a"].headers

    def months() -> dict[str, Any] | None:
        r = metrics.http.get(f"/v1/partners/{a}/months", params={"year": YEAR}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        return body if body["total"]["people_helped"] == 5 and body["total"]["workshop_attendances"] == 5 else None

    return wait_until(months, CATCH_UP, "partner A's five people in the metrics API")


def test_the_figures_page_shows_the_metrics_apis_months_and_its_files_hold_them(
    services: dict[str, Service],
    portal: Service,
    partners_of_run: dict[str, Partner],
    published: dict[str, Any],
    browser: Any,
) -> None:
    api = published
    months = {m["month"]: m for m in api["months"]}
    assert months[f"{YEAR}-02"]["people_helped"] == 3 and months[f"{YEAR}-03"]["workshop_attendances"] == 1
    assert months[f"{YEAR}-03"]["people_helped"] == 1 and months[f"{YEAR}-03"]["accompaniments"] == 1
    assert months[f"{YEAR}-11"]["people_helped"] == 1 and months[f"{YEAR}-10"]["people_helped"] == 0

    a = partners_of_run["a"]
    page = new_page(browser)
    sign_in(page, portal, a.username, a.password)
    page.goto(f"{portal.url}/chiffres?annee={YEAR}")
    expect(page.locator("h1")).to_have_text(f"Mes chiffres {YEAR}")
    rows = page.locator("tbody tr[data-month]")
    expect(rows).to_have_count(13)
    for indicator in api["indicators"]:
        expect(page.locator(f'[data-figure="{indicator}"]')).to_have_attribute(
            "data-value", str(api["total"][indicator])
        )
    shown = {
        row.get_attribute("data-month"): {
            cell.get_attribute("data-indicator"): int(cell.get_attribute("data-value"))
            for cell in row.locator("td").all()
        }
        for row in rows.all()
    }
    assert shown == {
        **{m["month"]: {i: m[i] for i in api["indicators"]} for m in api["months"]},
        "total": api["total"],
    }
    expect(page.locator(f'tr[data-month="{YEAR}-02"] th')).to_have_text(f"février {YEAR}")
    expect(page.locator('tr[data-month="total"] th')).to_have_text(f"Total {YEAR}")
    check_page(page, "figures-months")

    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger ces chiffres (XLSX)").click()
    assert download.value.suggested_filename == f"chiffres-{YEAR}.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active  # no suffix
    table = list(sheet.iter_rows(values_only=True))
    labels = {
        "people_helped": "Personnes accompagnées",
        "workshop_attendances": "Participations aux ateliers",
        "accompaniments": "Accompagnements individuels",
    }
    header = list(table[0])
    assert header[:2] == ["Année", "Mois"] and [header[2 + api["indicators"].index(i)] for i in labels] == list(
        labels.values()
    )
    assert sheet.freeze_panes == "A2" and len(table) == 14
    for m, line in zip(api["months"], table[1:13], strict=True):
        assert line[0] == YEAR and line[1] == datetime.fromisoformat(m["month"] + "-01")  # a real date
        assert list(line[2:]) == [m[i] for i in api["indicators"]]
    assert table[13] == (YEAR, "Total", *(api["total"][i] for i in api["indicators"]))

    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger ces chiffres (CSV)").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    lines = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert lines[0] == header
    assert lines[2] == [str(YEAR), f"{YEAR}-02", *(str(months[f"{YEAR}-02"][i]) for i in api["indicators"])]
    assert lines[-1] == [str(YEAR), "Total", *(str(api["total"][i]) for i in api["indicators"])]
    page.context.close()


def test_another_partner_sees_only_its_own_figures(
    services: dict[str, Service],
    portal: Service,
    partners_of_run: dict[str, Partner],
    published: dict[str, Any],
    browser: Any,
) -> None:
    a, b = partners_of_run["a"], partners_of_run["b"]
    metrics = services["metrics"]
    # The API the portal calls refuses B's token for A's figures: the portal cannot show them even by mistake.
    refused = metrics.http.get(f"/v1/partners/{a.id}/months", params={"year": YEAR}, headers=b.headers)
    assert refused.status_code == 403
    page = new_page(browser)
    sign_in(page, portal, b.username, b.password)
    page.goto(f"{portal.url}/chiffres?annee={YEAR}")
    expect(page.locator('[data-figure="people_helped"]')).to_have_attribute("data-value", "0")
    expect(page.locator('tr[data-month="total"] td[data-indicator="workshop_attendances"]')).to_have_attribute(
        "data-value", "0"
    )
    response = page.request.get(f"{portal.url}/chiffres.xlsx?annee={YEAR}")
    sheet = openpyxl.load_workbook(io.BytesIO(response.body())).active
    assert all(v == 0 for row in sheet.iter_rows(min_row=2, min_col=3, values_only=True) for v in row)
    page.context.close()
