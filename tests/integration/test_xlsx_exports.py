"""Every XLSX export downloaded from the real services and read back with openpyxl: French headers, the CSV's
rows, the same small-cell suppression and the same authorisation; a partner's figures by month.

Help events go straight to Kafka in a year nobody else uses (2015), for partner ids unique to the run.
"""

from __future__ import annotations

import csv
import io
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest

from shared import events as ev
from shared.identity import Principal, Role, issue_token
from shared.serde import encode
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from shared.topics import WORKSHOPS
from shared.xlsx import XLSX_MEDIA_TYPE
from tests import samples
from tests.conftest import TEST_ENV, Service, wait_until
from tests.integration.test_partners_support import ADMIN, new_partner, new_user, partnership_body, sign_in
from tests.kafka_tools import produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]
YEAR = 2015
CATCH_UP = 300
TOKEN_KEY = TEST_ENV.get("PLATFORM_TOKEN_KEY") or os.environ.get("PLATFORM_TOKEN_KEY", DEV_PLATFORM_TOKEN_KEY)
BREAKDOWN_HEADERS = ["Année", "Indicateur", "Dimension", "Code", "Libellé", "Valeur", "Secret statistique"]


def bearer(role: Role, partner_id: str | None = None) -> dict[str, str]:
    token = issue_token(Principal(f"user-{role.value}", role, partner_id=partner_id), TOKEN_KEY)
    return {"Authorization": f"Bearer {token}"}


def sheet_of(response: Any) -> tuple[Any, list[str], list[tuple[Any, ...]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX_MEDIA_TYPE
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert sheet.freeze_panes == "A2"  # the header row stays in view
    return sheet, list(rows[0]), rows[1:]


def csv_of(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


def as_csv_text(value: Any, *, python_bools: bool = False) -> str:
    """A typed cell written the way the CSV writes it (the metrics CSV says `true`, the partners CSV `True`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value) if python_bools else str(value).lower()
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value)


# --- metrics: the breakdown exports ------------------------------------------------------------------------


def helped(person: str, partner: str, at: datetime) -> ev.Envelope:
    data = ev.AccompanimentCompleted(
        accompaniment_id=str(uuid.uuid4()),
        person_ref=person,
        channel="partner",
        need="benefits",
        duration_minutes=45,
        partner_id=partner,
        departement="2A",
        region="94",
        timezone="Europe/Paris",
    )
    return ev.new_event(data, source="/tests/xlsx", time=at)


@pytest.fixture(scope="module")
def published(services: dict[str, Service]) -> dict[str, int]:
    """Three partners of this run helping 2, 3 and 7 people in YEAR: two in March, the rest in April."""
    metrics = services["metrics"]
    run = uuid.uuid4().hex[:8]
    sizes = {f"xlsx-small-a-{run}": 2, f"xlsx-small-b-{run}": 3, f"xlsx-large-{run}": 7}
    for partner, size in sizes.items():
        for i in range(size):
            at = datetime(YEAR, 3 if i < 2 else 4, 10, 10, tzinfo=UTC)
            person = samples.ref(f"{partner}-{i}")
            for e in (helped(person, partner, at), helped(person, partner, at + timedelta(days=40))):
                produce(WORKSHOPS.name, encode(e), e.key.encode())

    def value(partner: str) -> int:
        body = metrics.http.get("/v1/partners", params={"year": YEAR, "q": partner}).json()
        return next((r["people_helped"] for r in body["rows"] if r["partner"] == partner), 0)

    for partner, size in sizes.items():
        wait_until(lambda p=partner, n=size: value(p) == n, CATCH_UP, f"{partner} to reach {size}")
    return sizes


def test_the_breakdown_xlsx_has_the_csv_rows_and_its_suppression(
    services: dict[str, Service], published: dict[str, int]
) -> None:
    metrics = services["metrics"]
    params = {"indicator": "people_helped", "dimension": "partner", "year": YEAR}
    public_csv = csv_of(metrics.http.get("/v1/export.csv", params=params))
    r = metrics.http.get("/v1/export.xlsx", params=params)
    assert f'filename="people_helped-partner-{YEAR}.xlsx"' in r.headers["content-disposition"]
    _, header, rows = sheet_of(r)
    assert header == BREAKDOWN_HEADERS
    assert [dict(zip(public_csv[0], map(as_csv_text, row), strict=True)) for row in rows] == public_csv
    by_code = {row[3]: row for row in rows}
    for partner, size in published.items():
        year, _, _, _, _, value, secret = by_code[partner]
        assert year == YEAR  # a number, not text
        assert (value, secret) == ((None, True) if size < 5 else (size, False)), partner
    assert all(isinstance(row[5], int) for row in rows if not row[6])

    exact = params | {"public": "false"}
    assert metrics.http.get("/v1/export.xlsx", params=exact).status_code == 401
    assert metrics.http.get("/v1/export.xlsx", params=exact, headers=bearer(Role.PARTNER, "p-1")).status_code == 403
    for role in (Role.MONITORING, Role.ADMIN):
        exact_csv = csv_of(metrics.http.get("/v1/export.csv", params=exact, headers=bearer(role)))
        _, _, rows = sheet_of(metrics.http.get("/v1/export.xlsx", params=exact, headers=bearer(role)))
        assert [dict(zip(exact_csv[0], map(as_csv_text, row), strict=True)) for row in rows] == exact_csv
        assert {row[3]: row[5] for row in rows if row[3] in published} == published

    refused = metrics.http.get("/v1/export.xlsx", params=params | {"dimension": "colour"})
    assert refused.status_code == 422 and "unknown dimension 'colour'" in refused.json()["detail"]
    assert "/v1/export.xlsx?indicator=" in metrics.http.get("/").text  # the dashboard links it beside the CSV


def test_a_partners_figures_by_month_are_its_own_and_add_up(
    services: dict[str, Service], published: dict[str, int]
) -> None:
    metrics = services["metrics"]
    large = next(p for p in published if "large" in p)
    url = f"/v1/partners/{large}/months"
    assert metrics.http.get(url, params={"year": YEAR}).status_code == 401
    assert metrics.http.get(url, params={"year": YEAR}, headers={"Authorization": "Bearer forged"}).status_code == 401
    other = metrics.http.get(url, params={"year": YEAR}, headers=bearer(Role.PARTNER, "someone-else"))
    assert other.status_code == 403
    assert metrics.http.get(url, params={"year": YEAR}, headers=bearer(Role.ADVISER)).status_code == 403
    for headers in (bearer(Role.PARTNER, large), bearer(Role.MONITORING), bearer(Role.ADMIN)):
        body = metrics.http.get(url, params={"year": YEAR}, headers=headers).json()
        months = {m["month"]: m for m in body["months"]}
        assert (months[f"{YEAR}-03"]["people_helped"], months[f"{YEAR}-04"]["people_helped"]) == (2, 5)
        # Everyone helped twice, 40 days apart: March's people come back in April, April's in May or June.
        assert months[f"{YEAR}-04"]["accompaniments"] == 5 + 2
        row = next(
            r
            for r in metrics.http.get("/v1/partners", params={"year": YEAR, "q": large}).json()["rows"]
            if r["partner"] == large
        )
        for indicator in body["indicators"]:
            assert body["total"][indicator] == row[indicator] == sum(m[indicator] for m in body["months"])


# --- partners: organisations and partnerships --------------------------------------------------------------


def same_rows(keys: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, str]]:
    return [{k: as_csv_text(v, python_bools=True) for k, v in zip(keys, row, strict=True)} for row in rows]


def test_the_partners_and_partnerships_xlsx_have_the_csv_rows(services: dict[str, Service]) -> None:
    http = services["partners"].http
    admin = sign_in(http, ADMIN["username"], ADMIN["password"])
    org, other = new_partner(http, admin, name="=Association XLSX"), new_partner(http, admin)
    made = []
    for dep in ("69", "01"):
        r = http.post("/v1/partnerships", json=partnership_body(org["id"], departements=[dep]), headers=admin)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    r = http.post(f"/v1/partnerships/{made[0]}/sign", json={"signed_on": "2031-03-15"}, headers=admin)
    assert r.status_code == 200, r.text
    http.post("/v1/partnerships", json=partnership_body(other["id"]), headers=admin).raise_for_status()

    params = {"partner_id": org["id"]}
    rows_csv = csv_of(http.get("/v1/partnerships/export.csv", params=params, headers=admin))
    r = http.get("/v1/partnerships/export.xlsx", params=params, headers=admin)
    assert 'filename="partnerships.xlsx"' in r.headers["content-disposition"]
    sheet, header, rows = sheet_of(r)
    assert header[:5] == ["Identifiant", "Référence externe", "Identifiant du partenaire"] + [
        "SIREN, SIRET ou RNA du partenaire",
        "Partenaire",
    ]
    assert "Début" in header and "Signé le" in header and "Renouvellements" in header
    assert len(rows) == len(rows_csv) == 2
    # The CSV neutralises a formula-looking name with a quote; the spreadsheet keeps it as plain text.
    expected = [{**r, "partner_name": r["partner_name"].removeprefix("'")} for r in rows_csv]
    assert same_rows(list(rows_csv[0]), rows) == expected
    signed = next(row for row in rows if row[0] == made[0])
    assert signed[header.index("Signé le")] == datetime(2031, 3, 15)  # a date cell
    assert signed[header.index("Renouvellements")] == 0
    assert sheet.cell(row=2, column=header.index("Partenaire") + 1).data_type == "s"

    partners_csv = csv_of(http.get("/v1/partners/export.csv", params={"departement": "69"}, headers=admin))
    _, header, rows = sheet_of(http.get("/v1/partners/export.xlsx", params={"departement": "69"}, headers=admin))
    assert header[:3] == ["Identifiant", "Nom", "Type d'organisation"]
    assert header[-1] == "Label mécénat de compétences"
    expected = [{**r, "name": r["name"].removeprefix("'")} for r in partners_csv]
    assert same_rows(list(partners_csv[0]), rows) == expected
    mine = next(row for row in rows if row[0] == org["id"])
    assert mine[1] == "=Association XLSX" and mine[-1] is False and mine[-2] == "69;01"

    # The same authorisation as the CSV: a partner exports its own records only, whatever it asks for.
    as_other = new_user(http, admin, "partner", other["id"])
    _, _, rows = sheet_of(http.get("/v1/partnerships/export.xlsx", params=params, headers=as_other))
    assert rows and {row[2] for row in rows} == {other["id"]}
    _, _, rows = sheet_of(http.get("/v1/partners/export.xlsx", headers=as_other))
    assert [row[0] for row in rows] == [other["id"]]
    monitoring = new_user(http, admin, "monitoring")
    assert http.get("/v1/partners/export.xlsx", headers=monitoring).status_code == 200
    assert http.get("/v1/partners/export.xlsx").status_code == 401
    assert http.get("/v1/partnerships/export.xlsx", headers=bearer(Role.ADVISER)).status_code == 403
