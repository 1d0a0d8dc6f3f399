"""Pure rules of the partners context: legal identifiers, places, the partnership lifecycle. No I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from shared import errors, geo

__all__ = [
    "PartnerKind",
    "Status",
    "EndReason",
    "MissionStatus",
    "DELETED",
    "Refused",
    "Invalid",
    "Step",
    "siret_is_valid",
    "legal_id_problem",
    "normalise_legal_id",
    "commune_departement",
    "partner_id_for",
    "partnership_id_for",
    "event_id",
    "plan_sign",
    "plan_activate",
    "plan_renew",
    "plan_end",
    "check_terms",
    "plan_mission_completion",
    "apply",
    "plan_volunteer",
]

_NS = uuid.UUID("2d0f6a43-8c1e-4f7b-9b7a-5e1c3a9d4b21")
LA_POSTE_SIREN = "356000000"


class PartnerKind(StrEnum):
    ASSOCIATION = "association"
    FEDERATION = "federation"
    SOCIAL_IMPACT_STARTUP = "social_impact_startup"
    ADAPTED_COMPANY = "adapted_company"  # entreprise adaptée (EA)
    PROTECTED_WORK = "protected_work"  # ESAT
    INTEGRATION_STRUCTURE = "integration_structure"  # SIAE
    COOPERATIVE = "cooperative"
    FOUNDATION = "foundation"
    PUBLIC_BODY = "public_body"


class Status(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    ACTIVE = "active"
    ENDED = "ended"


class EndReason(StrEnum):
    """Why a partnership ended: a code, so that no free text (maybe personal) reaches the events."""

    EXPIRED = "expired"
    OBJECTIVES_MET = "objectives_met"
    PARTNER_WITHDREW = "partner_withdrew"
    LA_POSTE_WITHDREW = "la_poste_withdrew"
    PARTNER_DISSOLVED = "partner_dissolved"
    MERGED = "merged"
    BREACH = "breach"
    OTHER = "other"


class MissionStatus(StrEnum):
    PUBLISHED = "published"
    COMPLETED = "completed"


# A deleted draft stays as its last version with this status (nothing is removed in place); reads treat it as
# missing.
DELETED = "deleted"


class Refused(errors.Conflict):
    """The command is valid but not in this state (HTTP 409)."""


class Invalid(errors.Invalid):
    """The command contradicts itself or the record's dates (HTTP 422)."""


# --- legal identifiers and places ---------------------------------------------------------------


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def siret_is_valid(siret: str) -> bool:
    if not re.fullmatch(r"\d{14}", siret):
        return False
    if _luhn_ok(siret):
        return True
    # La Poste's establishments (thousands of them) exhaust the Luhn space: theirs use a sum-of-digits rule.
    return siret.startswith(LA_POSTE_SIREN) and sum(int(c) for c in siret) % 5 == 0


def normalise_legal_id(value: str) -> str:
    """SIRETs are often written with spaces; RNA numbers in lower case."""
    return re.sub(r"[\s.]", "", value).upper()


def legal_id_problem(value: str) -> str | None:
    """None if `value` is a valid SIRET (14 digits, Luhn checksum) or RNA number (W + 9 digits)."""
    v = normalise_legal_id(value)
    if v.startswith("W"):
        return None if re.fullmatch(r"W\d{9}", v) else "an RNA number is W followed by 9 digits"
    if not re.fullmatch(r"\d{14}", v):
        return "the legal identifier must be a SIRET (14 digits) or an RNA number (W + 9 digits)"
    if not siret_is_valid(v):
        return "the SIRET checksum is wrong (Luhn)"
    return None


def commune_departement(insee: str) -> str:
    """The département of an INSEE commune code (5 characters: 75056, 2A004, 97411); ValueError otherwise."""
    if not re.fullmatch(r"(\d{5}|2[AB]\d{3})", insee):
        raise ValueError(f"{insee!r} is not an INSEE commune code (5 characters, e.g. 75056 or 2A004)")
    dep = insee[:3] if insee.startswith("97") else insee[:2]
    if dep == "20":
        raise ValueError("Corsican communes are coded 2A… or 2B…")
    try:
        geo.departement(dep)
    except KeyError:
        raise ValueError(f"INSEE code {insee!r} is in no known département") from None
    return dep


# --- identifiers --------------------------------------------------------------------------------


def partner_id_for(legal_id: str) -> str:
    """One legal entity, one partner: the id follows from the normalised legal identifier."""
    return f"pa-{uuid.uuid5(_NS, 'partner:' + normalise_legal_id(legal_id))}"


def partnership_id_for(external_ref: str) -> str:
    """A partnership created with an external reference (import, partner's own system) has a stable id."""
    return f"ps-{uuid.uuid5(_NS, 'partnership:' + external_ref.strip())}"


def event_id(*parts: Any) -> uuid.UUID:
    """Deterministic event id: the same fact always gets the same id, however often it is retried."""
    return uuid.uuid5(_NS, ":".join(str(p) for p in parts))


# --- lifecycle ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What a command changes: the fields it sets (and a renewal it appends); `noop` when already done.

    `expect` names the state the step was planned from; the version number of the stored change is what makes
    it hold under concurrency (a concurrent change makes the plan run again on the newer state)."""

    expect: dict[str, Any]
    set_fields: dict[str, Any] = field(default_factory=dict)
    push: dict[str, Any] | None = None
    noop: bool = False


def _d(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _req(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def check_terms(starts_on: date | None, ends_on: date | None) -> None:
    if starts_on and ends_on and ends_on <= starts_on:
        raise Invalid(f"ends_on ({ends_on}) must be after starts_on ({starts_on})")


def _refuse(doc: dict[str, Any], action: str, allowed: str) -> Refused:
    return Refused(f"cannot {action} a partnership that is {doc['status']} (only {allowed})")


def plan_sign(doc: dict[str, Any], signed_on: date) -> Step:
    status = Status(doc["status"])
    if status == Status.SIGNED and _d(doc.get("signed_on")) == signed_on:
        return Step({}, noop=True)
    if status != Status.DRAFT:
        raise _refuse(doc, "sign", "a draft can be signed")
    check_terms(_d(doc.get("starts_on")), _d(doc.get("ends_on")))
    ends_on = _d(doc.get("ends_on"))
    if ends_on and signed_on >= ends_on:
        raise Invalid(f"signed_on ({signed_on}) must be before ends_on ({ends_on})")
    return Step(
        {"status": Status.DRAFT.value},
        {"status": Status.SIGNED.value, "signed_on": signed_on.isoformat(), "signed_year": signed_on.year},
    )


def plan_activate(doc: dict[str, Any], activated_on: date) -> Step:
    status = Status(doc["status"])
    if status == Status.ACTIVE and _d(doc.get("activated_on")) == activated_on:
        return Step({}, noop=True)
    if status != Status.SIGNED:
        raise _refuse(doc, "activate", "a signed partnership can be activated")
    signed_on = _req(doc["signed_on"])
    if activated_on < signed_on:
        raise Invalid(f"activated_on ({activated_on}) is before signed_on ({signed_on})")
    ends_on = _d(doc.get("ends_on"))
    if ends_on and activated_on >= ends_on:
        raise Invalid(f"activated_on ({activated_on}) is not before ends_on ({ends_on}): renew it first")
    return Step(
        {"status": Status.SIGNED.value},
        {"status": Status.ACTIVE.value, "activated_on": activated_on.isoformat()},
    )


def plan_renew(doc: dict[str, Any], renewed_on: date, new_ends_on: date) -> Step:
    """A renewal extends the same partnership (it is not a new one): same id, later end date."""
    status = Status(doc["status"])
    current_end = _d(doc.get("ends_on"))
    if status in (Status.SIGNED, Status.ACTIVE) and current_end == new_ends_on and doc.get("renewals"):
        last = doc["renewals"][-1]
        if last["ends_on"] == new_ends_on.isoformat() and last["renewed_on"] == renewed_on.isoformat():
            return Step({}, noop=True)
    if status not in (Status.SIGNED, Status.ACTIVE):
        raise _refuse(doc, "renew", "a signed or active partnership can be renewed")
    if current_end is None:
        raise Refused("an open-ended partnership (no ends_on) has nothing to renew")
    signed_on = _req(doc["signed_on"])
    if renewed_on < signed_on:
        raise Invalid(f"renewed_on ({renewed_on}) is before signed_on ({signed_on})")
    if new_ends_on <= current_end:
        raise Invalid(f"a renewal must move ends_on later than {current_end}, got {new_ends_on}")
    if new_ends_on <= renewed_on:
        raise Invalid(f"the new ends_on ({new_ends_on}) must be after renewed_on ({renewed_on})")
    renewal = {
        "renewed_on": renewed_on.isoformat(),
        "previous_ends_on": current_end.isoformat(),
        "ends_on": new_ends_on.isoformat(),
    }
    return Step(
        {"status": status.value, "ends_on": current_end.isoformat()},
        {"ends_on": new_ends_on.isoformat()},
        push={"renewals": renewal},
    )


def plan_end(doc: dict[str, Any], ended_on: date, reason: EndReason) -> Step:
    status = Status(doc["status"])
    if status == Status.ENDED and _d(doc.get("ended_on")) == ended_on and doc.get("end_reason") == reason.value:
        return Step({}, noop=True)
    if status not in (Status.SIGNED, Status.ACTIVE):
        hint = "delete the draft instead" if status == Status.DRAFT else "it has already ended"
        raise Refused(f"cannot end a partnership that is {status.value} ({hint})")
    signed_on = _req(doc["signed_on"])
    if ended_on < signed_on:
        raise Invalid(f"ended_on ({ended_on}) is before signed_on ({signed_on})")
    return Step(
        {"status": status.value},
        {"status": Status.ENDED.value, "ended_on": ended_on.isoformat(), "end_reason": reason.value},
    )


def plan_mission_completion(doc: dict[str, Any], completed_on: date, hours: float) -> Step:
    if doc["status"] == MissionStatus.COMPLETED.value:
        if doc.get("completed_on") == completed_on.isoformat() and doc.get("hours") == hours:
            return Step({}, noop=True)
        raise Refused("the mission is already completed")
    if not doc.get("volunteers"):
        raise Refused("a mission without volunteers cannot be completed")
    published_on = _req(doc["published_on"])
    if completed_on < published_on:
        raise Invalid(f"completed_on ({completed_on}) is before published_on ({published_on})")
    if hours <= 0:
        raise Invalid("hours must be positive")
    return Step(
        {"status": MissionStatus.PUBLISHED.value},
        {
            "status": MissionStatus.COMPLETED.value,
            "completed_on": completed_on.isoformat(),
            "completed_year": completed_on.year,
            "hours": hours,
        },
    )


def apply(doc: dict[str, Any], step: Step) -> dict[str, Any]:
    """The record after `step`."""
    after = {**doc, **step.set_fields}
    if step.push:
        after["renewals"] = [*doc.get("renewals", []), step.push["renewals"]]
    return after


def plan_volunteer(doc: dict[str, Any], staff_id: str) -> Step:
    """A postal employee joins a published mission once, within its places."""
    if doc["status"] != MissionStatus.PUBLISHED.value:
        raise Refused(f"the mission is {doc['status']}; volunteers join published missions only")
    volunteers = list(doc.get("volunteers", []))
    if staff_id in volunteers:
        return Step({}, noop=True)
    if len(volunteers) >= doc["places"]:
        raise Refused(f"the mission is full ({doc['places']} places)")
    return Step({"status": MissionStatus.PUBLISHED.value}, {"volunteers": [*volunteers, staff_id]})
