"""The XLSX exports, read back with openpyxl: typed cells, French headers, the CSV's rows and its suppression."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest

from services.metrics import exports, views
from services.metrics.domain import Counters, Ledger
from services.metrics.goals import GoalBook
from services.partners.csvio import PARTNER_EXPORT, PARTNERSHIP_EXPORT
from services.partners.exports import PARTNER_XLSX, PARTNERSHIP_XLSX
from services.portal import figures
from shared import events as ev
from shared.xlsx import Column, workbook
from tests import samples

pytestmark = pytest.mark.unit


def read(body: bytes) -> tuple[Any, list[str], list[tuple[Any, ...]]]:
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    rows = list(sheet.iter_rows(values_only=True))
    return sheet, list(rows[0]), rows[1:]


def test_cells_keep_their_types_and_text_is_never_a_formula() -> None:
    columns = [
        Column("code", "Code"),
        Column("n", "Valeur", "number"),
        Column("day", "Début", "date"),
        Column("month", "Mois", "month"),
        Column("flag", "Secret statistique", "bool"),
        Column("deps", "Départements", "list"),
    ]
    rows = [
        {"code": "01", "n": 3, "day": "2031-03-01", "month": "2013-03", "flag": "true", "deps": ["93", "2A"]},
        {"code": '=HYPERLINK("x")', "n": "", "day": None, "month": "Total", "flag": False, "deps": []},
    ]
    sheet, header, values = read(workbook(columns, rows, sheet="Ventilation: a/b"))
    assert header == ["Code", "Valeur", "Début", "Mois", "Secret statistique", "Départements"]
    assert values == [
        ("01", 3, datetime(2031, 3, 1), datetime(2013, 3, 1), True, "93;2A"),
        ('=HYPERLINK("x")', None, None, "Total", False, None),
    ]
    assert sheet["A3"].data_type == "s"  # a string, not a formula
    assert sheet["C2"].number_format == "dd/mm/yyyy" and "mmmm yyyy" in sheet["D2"].number_format
    assert sheet.freeze_panes == "A2" and sheet.title == "Ventilation  a b"
    assert sheet.column_dimensions["E"].width >= len("Secret statistique")


def test_the_breakdown_xlsx_has_the_csv_rows_and_the_same_suppression() -> None:
    def helped(person: str, partner: str) -> ev.Envelope:
        data = ev.AccompanimentCompleted(
            accompaniment_id=str(uuid.uuid4()),
            person_ref=person,
            channel="partner",
            need="taxes",
            duration_minutes=20,
            partner_id=partner,
            **samples.PARIS,
        )
        return ev.new_event(data, source="/tests", time=datetime(2022, 3, 1, 10, tzinfo=UTC))

    ledger = Ledger()
    for partner, size in (("large", 9), ("small-a", 2), ("small-b", 3), ("mid", 6)):
        for i in range(size):
            ledger.add(helped(samples.ref(f"{partner}-{i}"), partner))
    view = views.breakdown(ledger.counters, GoalBook([], []), "people_helped", "partner", 2022, sort="key")
    for public in (True, False):
        rows = exports.export_rows(view, public=public)
        as_csv = list(csv.DictReader(io.StringIO(exports.to_csv(rows))))
        _, header, values = read(exports.to_xlsx(rows, "Partenaire 2022"))
        assert header == ["Année", "Indicateur", "Dimension", "Code", "Libellé", "Valeur", "Secret statistique"]
        assert [
            {
                "year": str(year),
                "indicator": ind,
                "dimension": dim,
                "code": code,
                "label": lab,
                "value": "" if value is None else str(value),
                "secret": str(secret).lower(),
            }
            for year, ind, dim, code, lab, value, secret in values
        ] == as_csv
        assert all(isinstance(v[5], int) for v in values if v[5] is not None)
    public_rows = exports.export_rows(view, public=True)
    _, _, values = read(exports.to_xlsx(public_rows, "x"))
    hidden = {v[3] for v in values if v[6]}
    assert hidden == exports.secret_cells({"large": 9, "small-a": 2, "small-b": 3, "mid": 6})
    assert {"small-a", "small-b"} <= hidden and all(v[5] is None for v in values if v[6])


def test_the_partners_xlsx_columns_are_the_csv_columns() -> None:
    assert tuple(c.key for c in PARTNER_XLSX) == PARTNER_EXPORT
    assert tuple(c.key for c in PARTNERSHIP_XLSX) == PARTNERSHIP_EXPORT
    assert len({c.header for c in PARTNERSHIP_XLSX}) == len(PARTNERSHIP_XLSX)
    kinds = {c.key: c.kind for c in PARTNERSHIP_XLSX}
    assert kinds["starts_on"] == kinds["signed_on"] == "date" and kinds["renewals"] == "number"


def months_body() -> dict[str, Any]:
    indicators = ["people_helped", "workshop_attendances", "accompaniments"]
    months = [
        {"month": f"2013-{m:02d}", "label": "x", **{i: (2 if m == 3 else 0) for i in indicators}} for m in range(1, 13)
    ]
    return {
        "partner": "pa-1",
        "year": 2013,
        "indicators": indicators,
        "months": months,
        "total": dict.fromkeys(indicators, 2),
    }


def test_the_portal_figures_files_hold_the_months_then_the_total() -> None:
    body = months_body()
    text = figures.to_csv(body)
    assert text.startswith("\ufeff")
    lines = text[1:].splitlines()
    assert lines[0] == "Année;Mois;Personnes accompagnées;Participations aux ateliers;Accompagnements individuels"
    assert lines[3] == "2013;2013-03;2;2;2" and lines[-1] == "2013;Total;2;2;2" and len(lines) == 14
    sheet, header, values = read(figures.to_xlsx(body))
    assert header == [
        "Année",
        "Mois",
        "Personnes accompagnées",
        "Participations aux ateliers",
        "Accompagnements individuels",
    ]
    assert values[2] == (2013, datetime(2013, 3, 1), 2, 2, 2)
    assert values[-1] == (2013, "Total", 2, 2, 2) and sheet["C14"].font.b is True
    assert sheet.title == "Chiffres 2013"


def test_counters_without_cells_give_an_empty_export() -> None:
    view = views.breakdown(Counters(), GoalBook([], []), "people_helped", "departement", 2022)
    _, header, values = read(exports.to_xlsx(exports.export_rows(view, public=True), "vide"))
    assert header[0] == "Année" and values == []
