"""Pure rules of the partners context: legal identifiers, communes, the lifecycle, event ids."""

from __future__ import annotations

from datetime import date

import pytest

from services.partners import domain
from services.partners.domain import EndReason, Invalid, Refused, Status

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value, ok",
    [
        ("73282932000074", True),  # a well-formed SIRET (Luhn)
        ("732 829 320 00074", True),  # written with spaces
        ("73282932000075", False),  # one digit off
        ("35600000000048", True),  # La Poste's head office (Luhn)
        ("35600000000001", True),  # a La Poste establishment: sum of digits a multiple of 5, not Luhn
        ("35600000000002", False),
        ("35700000000001", False),  # the exception is La Poste's alone
        ("W751234567", True),
        ("w751234567", True),
        ("W75123456", False),
        ("W75123456A", False),
        ("1234567890", False),
        ("", False),
    ],
)
def test_legal_identifiers(value: str, ok: bool) -> None:
    assert (domain.legal_id_problem(value) is None) is ok


def test_siret_luhn_catches_single_digit_errors() -> None:
    good = "73282932000074"
    for i in range(14):
        for d in "0123456789":
            typo = good[:i] + d + good[i + 1 :]
            if typo != good:
                assert not domain.siret_is_valid(typo), typo


@pytest.mark.parametrize("code, dep", [("75056", "75"), ("2A004", "2A"), ("2B033", "2B"), ("97411", "974")])
def test_commune_codes_give_their_departement(code: str, dep: str) -> None:
    assert domain.commune_departement(code) == dep


@pytest.mark.parametrize("code", ["20004", "99123", "7505", "750560", "2C004", "97811x"])
def test_bad_commune_codes(code: str) -> None:
    with pytest.raises(ValueError):
        domain.commune_departement(code)


def test_ids_are_stable() -> None:
    assert domain.partner_id_for("w751234567") == domain.partner_id_for("W751234567")
    assert domain.partnership_id_for("REF-1") == domain.partnership_id_for(" REF-1 ")
    assert domain.partnership_id_for("REF-1") != domain.partnership_id_for("REF-2")
    assert domain.event_id("ps-1", "signed") == domain.event_id("ps-1", "signed") != domain.event_id("ps-1", "ended")


def _draft(**over) -> dict:
    return {"status": "draft", "starts_on": "2031-04-01", "ends_on": "2032-03-31", "renewals": []} | over


def _apply(doc: dict, step: domain.Step) -> dict:
    out = {**doc, **step.set_fields}
    if step.push:
        out["renewals"] = [*doc.get("renewals", []), step.push["renewals"]]
    return out


def test_full_lifecycle() -> None:
    doc = _apply(_draft(), domain.plan_sign(_draft(), date(2031, 3, 15)))
    assert doc["status"] == "signed" and doc["signed_year"] == 2031
    doc = _apply(doc, domain.plan_activate(doc, date(2031, 4, 1)))
    assert doc["status"] == "active"
    step = domain.plan_renew(doc, date(2032, 2, 1), date(2033, 3, 31))
    assert step.expect == {"status": "active", "ends_on": "2032-03-31"}
    doc = _apply(doc, step)
    assert doc["status"] == "active" and doc["ends_on"] == "2033-03-31" and len(doc["renewals"]) == 1
    doc = _apply(doc, domain.plan_end(doc, date(2033, 1, 1), EndReason.OBJECTIVES_MET))
    assert doc["status"] == "ended" and doc["end_reason"] == "objectives_met"


def test_retrying_the_same_command_is_a_noop() -> None:
    signed = _apply(_draft(), domain.plan_sign(_draft(), date(2031, 3, 15)))
    assert domain.plan_sign(signed, date(2031, 3, 15)).noop
    with pytest.raises(Refused):
        domain.plan_sign(signed, date(2031, 3, 16))
    renewed = _apply(signed, domain.plan_renew(signed, date(2032, 1, 1), date(2033, 3, 31)))
    assert domain.plan_renew(renewed, date(2032, 1, 1), date(2033, 3, 31)).noop
    ended = _apply(renewed, domain.plan_end(renewed, date(2033, 1, 1), EndReason.EXPIRED))
    assert domain.plan_end(ended, date(2033, 1, 1), EndReason.EXPIRED).noop
    with pytest.raises(Refused):
        domain.plan_end(ended, date(2033, 1, 2), EndReason.EXPIRED)


@pytest.mark.parametrize(
    "status, action",
    [
        (Status.DRAFT, "activate"),
        (Status.DRAFT, "renew"),
        (Status.DRAFT, "end"),
        (Status.SIGNED, "sign"),
        (Status.ACTIVE, "activate"),
        (Status.ENDED, "renew"),
        (Status.ENDED, "end"),
        (Status.ENDED, "activate"),
    ],
)
def test_invalid_transitions_are_refused_with_the_state(status: Status, action: str) -> None:
    doc = _draft(status=status.value, signed_on="2031-03-01", activated_on="2031-04-01", ended_on="2031-06-01")
    d = date(2031, 5, 2)
    plans = {
        "sign": lambda: domain.plan_sign(doc, d),
        "activate": lambda: domain.plan_activate(doc, d),
        "renew": lambda: domain.plan_renew(doc, d, date(2034, 1, 1)),
        "end": lambda: domain.plan_end(doc, d, EndReason.OTHER),
    }
    with pytest.raises(Refused, match=status.value):
        plans[action]()


def test_dates_must_hold_together() -> None:
    signed = _apply(_draft(), domain.plan_sign(_draft(), date(2031, 3, 15)))
    with pytest.raises(Invalid, match="before signed_on"):
        domain.plan_activate(signed, date(2031, 3, 1))
    with pytest.raises(Invalid, match="later than"):
        domain.plan_renew(signed, date(2031, 6, 1), date(2032, 3, 31))
    with pytest.raises(Invalid, match="before signed_on"):
        domain.plan_end(signed, date(2031, 1, 1), EndReason.OTHER)
    with pytest.raises(Invalid, match="after starts_on"):
        domain.check_terms(date(2031, 4, 1), date(2031, 4, 1))
    with pytest.raises(Invalid, match="before ends_on"):
        domain.plan_sign(_draft(), date(2032, 4, 1))
    with pytest.raises(Refused, match="open-ended"):
        domain.plan_renew({**signed, "ends_on": None}, date(2031, 6, 1), date(2035, 1, 1))


def test_mission_completion_needs_volunteers_once() -> None:
    mission = {"status": "published", "published_on": "2031-02-01", "volunteers": []}
    with pytest.raises(Refused, match="without volunteers"):
        domain.plan_mission_completion(mission, date(2031, 3, 1), 10)
    mission["volunteers"] = ["FAKE-1"]
    with pytest.raises(Invalid):
        domain.plan_mission_completion(mission, date(2031, 1, 1), 10)
    done = {**mission, **domain.plan_mission_completion(mission, date(2031, 3, 1), 10).set_fields}
    assert done["status"] == "completed" and done["completed_year"] == 2031
    assert domain.plan_mission_completion(done, date(2031, 3, 1), 10).noop
    with pytest.raises(Refused, match="already completed"):
        domain.plan_mission_completion(done, date(2031, 3, 2), 10)
