"""The partnership CSV import is checked line by line, with the lifecycle's own rules (no I/O)."""

from __future__ import annotations

import pytest

from services.partners.csvio import IMPORT_COLUMNS, parse_import, render_csv
from services.partners.handlers import partnership_events

pytestmark = pytest.mark.unit
HEADER = ",".join(IMPORT_COLUMNS)
PARTNER = "73282932000074,Association Fictive,association,1 rue Fictive,75001,Paris,75056"


def row(ref: str, status: str, dates: str, ptype: str = "skills_sponsorship", deps: str = "75;93") -> str:
    return f"{ref},{PARTNER},{ptype},digital_inclusion,{deps},,{status},{dates}"


def test_valid_rows_become_documents_in_their_state() -> None:
    text = "\n".join(
        [
            HEADER,
            row("R1", "draft", "2031-01-01,,,,,"),
            row("R2", "active", "2031-01-01,2032-01-01,2030-12-01,,,"),
            row("R3", "ended", "2030-01-01,,2030-01-01,2030-02-01,2031-01-01,objectives_met"),
        ]
    )
    rows, errors = parse_import(text)
    assert errors == []
    assert [r.line for r in rows] == [2, 3, 4]
    docs = [r.partnership for r in rows]
    assert [d["status"] for d in docs] == ["draft", "active", "ended"]
    assert docs[1]["activated_on"] == "2031-01-01"  # defaults to starts_on
    assert docs[0]["departements"] == ["75", "93"]
    events = partnership_events({**docs[2], "_id": "ps-x", "partner_id": "pa-x"})
    assert [e.type for e in events] == ["partnership.signed", "partnership.activated", "partnership.ended"]
    assert rows[1].partner and rows[1].partner["home_departement"] == "75"


def test_every_bad_line_is_reported_with_its_number_and_reasons() -> None:
    text = "\n".join(
        [
            HEADER,
            row("R1", "signed", "2031-01-01,,,,,"),  # 2: no signed_on
            row("R2", "active", "2031-01-01,2030-01-01,2030-12-01,,,"),  # 3: ends before it starts
            row("R3", "draft", "2031-01-01,,,,,", ptype="charity"),  # 4
            row("R4", "draft", "2031-01-01,,,,,", deps="75;00"),  # 5
            row("R5", "ended", "2031-01-01,,2031-01-01,,2031-02-01,bored"),  # 6
            row("R6", "draft", "1er janvier,,,,,"),  # 7
            row("R7", "active", "2031-01-01,,2031-01-01,,,"),  # 8: valid
            row("R7", "active", "2031-01-01,,2031-01-01,,,"),  # 9: repeated ref
            "R8,W12,,,,,,,skills_sponsorship,digital_inclusion,75,,draft,2031-01-01,,,,,",  # 10
            "",  # blank lines are skipped
        ]
    )
    rows, errors = parse_import(text)
    assert [r.external_ref for r in rows] == ["R7"]
    by_line = {e.line: " ".join(e.reasons) for e in errors}
    assert sorted(by_line) == [2, 3, 4, 5, 6, 7, 9, 10]
    assert "needs signed_on" in by_line[2]
    assert "after starts_on" in by_line[3]
    assert "charity" in by_line[4]
    assert "'00'" in by_line[5]
    assert "bored" in by_line[6]
    assert "not a date" in by_line[7]
    assert "repeats line 8" in by_line[9]
    assert "RNA" in by_line[10]


def test_semicolon_files_and_missing_columns() -> None:
    semi = HEADER.replace(",", ";") + "\n" + row("R1", "draft", "2031-01-01,,,,,").replace(";", "|").replace(",", ";")
    rows, errors = parse_import(semi)
    assert errors == [] and rows[0].partnership["departements"] == ["75", "93"]
    rows, errors = parse_import("external_ref,title\nR1,x\n")
    assert rows == [] and errors[0].line == 1 and "partner_legal_id" in errors[0].reasons[0]


def test_same_row_same_fingerprint() -> None:
    text = HEADER + "\n" + row("R1", "draft", "2031-01-01,,,,,")
    assert parse_import(text)[0][0].fingerprint == parse_import(text + "\n")[0][0].fingerprint


def test_export_neutralises_formulas() -> None:
    out = "".join(
        render_csv(
            ("id", "title", "departements"), [{"id": "ps-1", "title": "=HYPERLINK()", "departements": ["75", "2A"]}]
        )
    )
    assert out.splitlines()[1] == "ps-1,'=HYPERLINK(),75;2A"
