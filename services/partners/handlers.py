"""One function per command of the partners context; each receives the Store it works on."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.partners import domain
from services.partners.domain import Status, Step
from services.partners.schemas import (
    ActivateCommand,
    CompletionCommand,
    EndCommand,
    MissionCreate,
    PartnerCreate,
    PartnershipCreate,
    PartnershipUpdate,
    PartnerUpdate,
    RenewCommand,
    SignCommand,
)
from services.partners.store import Store
from shared.events import (
    Envelope,
    EventData,
    PartnershipActivated,
    PartnershipEnded,
    PartnershipRenewed,
    PartnershipSigned,
    SkillsMissionCompleted,
    SkillsMissionPublished,
    new_event,
)
from shared.outbox import outbox_append, outbox_entries

__all__ = [
    "SOURCE",
    "Conflict",
    "NotFound",
    "create_partner",
    "update_partner",
    "set_skills_label",
    "create_partnership",
    "update_partnership",
    "delete_draft",
    "transition",
    "partnership_events",
    "create_mission",
    "add_volunteer",
    "complete_mission",
]

SOURCE = "/services/partners"
PARIS = ZoneInfo("Europe/Paris")


class Conflict(Exception):
    """The command collides with what is stored (HTTP 409)."""


class NotFound(Exception):
    pass


def _at_noon(day: date) -> datetime:
    # Event time of a dated fact: noon in Paris that day (deterministic, same civil day everywhere in France).
    return datetime.combine(day, time(12), PARIS)


def _event(data: EventData, day: date, *id_parts: Any) -> Envelope:
    subject = getattr(data, "partnership_id", None) or getattr(data, "mission_id", None)
    return new_event(data, source=SOURCE, time=_at_noon(day), event_id=domain.event_id(*id_parts), subject=subject)


def _now() -> datetime:
    return datetime.now(UTC)


# --- partners -------------------------------------------------------------------------------------


def partner_doc(cmd: PartnerCreate) -> dict[str, Any]:
    return {
        "_id": domain.partner_id_for(cmd.legal_id),
        "name": cmd.name,
        "kind": cmd.kind.value,
        "legal_id": cmd.legal_id,
        "address": cmd.address.model_dump(),
        "home_departement": domain.commune_departement(cmd.address.commune_insee),
        "departements": list(cmd.departements),
        "contacts": [c.model_dump() for c in cmd.contacts],
        "skills_label": False,
        "skills_labelled_on": None,
        "created_at": _now(),
    }


async def create_partner(store: Store, cmd: PartnerCreate) -> dict[str, Any]:
    doc = partner_doc(cmd)
    try:
        await store.partners.insert_one(doc)
    except DuplicateKeyError:
        raise Conflict(f"a partner with legal identifier {cmd.legal_id} already exists: {doc['_id']}") from None
    return doc


async def update_partner(store: Store, partner_id: str, cmd: PartnerUpdate) -> dict[str, Any]:
    changes = cmd.model_dump(exclude_unset=True, mode="json")
    if "address" in changes:
        changes["home_departement"] = domain.commune_departement(changes["address"]["commune_insee"])
    if not changes:
        doc = await store.partners.find_one({"_id": partner_id})
    else:
        changes["updated_at"] = _now()
        doc = await store.partners.find_one_and_update(
            {"_id": partner_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
    if doc is None:
        raise NotFound(f"no partner {partner_id}")
    return doc


async def set_skills_label(store: Store, partner_id: str, labelled: bool, on: date | None) -> dict[str, Any]:
    fields = {"skills_label": labelled, "skills_labelled_on": on.isoformat() if labelled and on else None}
    doc = await store.partners.find_one_and_update(
        {"_id": partner_id}, {"$set": fields}, return_document=ReturnDocument.AFTER
    )
    if doc is None:
        raise NotFound(f"no partner {partner_id}")
    return doc


# --- partnerships ---------------------------------------------------------------------------------

_TERMS = ("title", "partnership_type", "commitments", "departements", "starts_on", "ends_on")


def terms_of(cmd: PartnershipCreate | PartnershipUpdate) -> dict[str, Any]:
    return cmd.model_dump(include=set(_TERMS), exclude_unset=isinstance(cmd, PartnershipUpdate), mode="json")


async def create_partnership(store: Store, partner_id: str, cmd: PartnershipCreate) -> tuple[bool, dict[str, Any]]:
    """Returns (created, doc); the same external_ref with the same terms again returns (False, doc)."""
    if not await store.exists(store.partners, partner_id):
        raise NotFound(f"no partner {partner_id}")
    pid = domain.partnership_id_for(cmd.external_ref) if cmd.external_ref else f"ps-{uuid.uuid4()}"
    terms = terms_of(cmd)
    doc = {
        "_id": pid,
        "partner_id": partner_id,
        "external_ref": cmd.external_ref,
        **terms,
        "status": Status.DRAFT.value,
        "renewals": [],
        "created_at": _now(),
        **outbox_entries([]),
    }
    try:
        await store.partnerships.collection.insert_one(doc)
    except DuplicateKeyError:
        existing = await store.partnerships.collection.find_one({"_id": pid})
        if existing and existing["partner_id"] == partner_id and all(existing.get(k) == v for k, v in terms.items()):
            return False, existing
        raise Conflict(f"external_ref {cmd.external_ref} is already used by another partnership") from None
    return True, doc


async def update_partnership(store: Store, doc: dict[str, Any], cmd: PartnershipUpdate) -> dict[str, Any]:
    changes = terms_of(cmd)
    merged = {**doc, **changes}
    domain.check_terms(domain._d(merged.get("starts_on")), domain._d(merged.get("ends_on")))
    if doc["status"] != Status.DRAFT.value:
        raise domain.Refused(f"only a draft can be edited; this partnership is {doc['status']} (renew or end it)")
    updated = await store.partnerships.collection.find_one_and_update(
        {"_id": doc["_id"], "status": Status.DRAFT.value},
        {"$set": {**changes, "updated_at": _now()}},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise domain.Refused("the partnership was signed meanwhile; only a draft can be edited")
    return updated


async def delete_draft(store: Store, doc: dict[str, Any]) -> None:
    result = await store.partnerships.collection.delete_one({"_id": doc["_id"], "status": Status.DRAFT.value})
    if result.deleted_count == 0:
        raise domain.Refused(f"only a draft can be deleted; this partnership is {doc['status']} (end it instead)")


def _signed(doc: dict[str, Any]) -> Envelope:
    data = PartnershipSigned(
        partnership_id=doc["_id"],
        partner_id=doc["partner_id"],
        partnership_type=doc["partnership_type"],
        commitments=doc["commitments"],
        departements=doc["departements"],
        signed_on=doc["signed_on"],
        starts_on=doc["starts_on"],
        ends_on=doc.get("ends_on"),
    )
    return _event(data, data.signed_on, doc["_id"], "signed")


def _activated(doc: dict[str, Any]) -> Envelope:
    data = PartnershipActivated(
        partnership_id=doc["_id"], partner_id=doc["partner_id"], activated_on=doc["activated_on"]
    )
    return _event(data, data.activated_on, doc["_id"], "activated")


def _renewed(doc: dict[str, Any], renewal: dict[str, Any]) -> Envelope:
    data = PartnershipRenewed(
        partnership_id=doc["_id"],
        partner_id=doc["partner_id"],
        renewed_on=renewal["renewed_on"],
        ends_on=renewal["ends_on"],
    )
    return _event(data, data.renewed_on, doc["_id"], "renewed", renewal["ends_on"])


def _ended(doc: dict[str, Any]) -> Envelope:
    data = PartnershipEnded(
        partnership_id=doc["_id"], partner_id=doc["partner_id"], ended_on=doc["ended_on"], reason=doc["end_reason"]
    )
    return _event(data, data.ended_on, doc["_id"], "ended")


def partnership_events(doc: dict[str, Any]) -> list[Envelope]:
    """Every event a partnership in this state has produced (used by the import)."""
    events = []
    if doc.get("signed_on"):
        events.append(_signed(doc))
    if doc.get("activated_on"):
        events.append(_activated(doc))
    events.extend(_renewed(doc, r) for r in doc.get("renewals", []))
    if doc.get("ended_on"):
        events.append(_ended(doc))
    return events


Planner = Callable[[dict[str, Any]], Step]


def planner(cmd: SignCommand | ActivateCommand | RenewCommand | EndCommand) -> Planner:
    if isinstance(cmd, SignCommand):
        return lambda doc: domain.plan_sign(doc, cmd.signed_on)
    if isinstance(cmd, ActivateCommand):
        return lambda doc: domain.plan_activate(doc, cmd.activated_on)
    if isinstance(cmd, RenewCommand):
        return lambda doc: domain.plan_renew(doc, cmd.renewed_on, cmd.ends_on)
    return lambda doc: domain.plan_end(doc, cmd.ended_on, cmd.reason)


def _event_of(cmd: Any, after: dict[str, Any], step: Step) -> Envelope:
    if isinstance(cmd, SignCommand):
        return _signed(after)
    if isinstance(cmd, ActivateCommand):
        return _activated(after)
    if isinstance(cmd, RenewCommand):
        return _renewed(after, step.push["renewals"] if step.push else {})
    return _ended(after)


async def transition(
    store: Store, doc: dict[str, Any], cmd: SignCommand | ActivateCommand | RenewCommand | EndCommand
) -> tuple[dict[str, Any], bool]:
    """Apply one lifecycle command; state and event are written in one document. Returns (doc, published)."""
    plan = planner(cmd)
    step = plan(doc)
    if step.noop:
        # Already done with exactly these values (a retry): nothing new, but make sure its event went out.
        published = await store.publish(store.partnerships, doc["_id"])
        return doc, published
    after = {**doc, **step.set_fields}
    if step.push:
        after["renewals"] = [*doc.get("renewals", []), step.push["renewals"]]
    event = _event_of(cmd, after, step)
    extra = {"end_note": cmd.note} if isinstance(cmd, EndCommand) and cmd.note else {}
    update = outbox_append([event], {**step.set_fields, **extra, "updated_at": _now()})
    if step.push:
        update["$push"]["renewals"] = step.push["renewals"]
    await store.partnerships.note([doc["_id"]])
    updated = await store.partnerships.collection.find_one_and_update(
        {"_id": doc["_id"], **step.expect}, update, return_document=ReturnDocument.AFTER
    )
    if updated is None:
        raise domain.Refused("the partnership changed meanwhile; read it again and retry")
    published = await store.publish(store.partnerships, doc["_id"])
    return updated, published


# --- skills sponsorship ---------------------------------------------------------------------------


async def create_mission(store: Store, partner: dict[str, Any], cmd: MissionCreate) -> tuple[bool, dict, bool]:
    """Publish a mission announcement of a labelled association. Returns (created, doc, published)."""
    if not partner.get("skills_label"):
        raise domain.Refused("only associations labelled for skills sponsorship publish missions")
    mid = f"mi-{domain.event_id('mission', cmd.external_ref)}" if cmd.external_ref else f"mi-{uuid.uuid4()}"
    fields = cmd.model_dump(exclude={"partner_id"}, mode="json")
    data = SkillsMissionPublished(
        mission_id=mid,
        partner_id=partner["_id"],
        departement=cmd.departement,
        commitment=cmd.commitment,
        published_on=cmd.published_on,
    )
    event = _event(data, cmd.published_on, mid, "published")
    doc = {
        "_id": mid,
        "partner_id": partner["_id"],
        **fields,
        "status": domain.MissionStatus.PUBLISHED.value,
        "volunteers": [],
        "created_at": _now(),
        **outbox_entries([event]),
    }
    await store.missions.note([mid])
    try:
        await store.missions.collection.insert_one(doc)
    except DuplicateKeyError:
        existing = await store.missions.collection.find_one({"_id": mid})
        if (
            existing
            and existing["partner_id"] == partner["_id"]
            and all(existing.get(k) == v for k, v in fields.items())
        ):
            return False, existing, await store.publish(store.missions, mid)
        raise Conflict(f"external_ref {cmd.external_ref} is already used by another mission") from None
    return True, doc, await store.publish(store.missions, mid)


async def add_volunteer(store: Store, mission: dict[str, Any], staff_id: str) -> dict[str, Any]:
    """A postal employee volunteers (their staff number stays in this database; events carry only counts)."""
    if mission["status"] != domain.MissionStatus.PUBLISHED.value:
        raise domain.Refused(f"the mission is {mission['status']}; volunteers join published missions only")
    if staff_id in mission.get("volunteers", []):
        return mission
    if len(mission.get("volunteers", [])) >= mission["places"]:
        raise domain.Refused(f"the mission is full ({mission['places']} places)")
    updated = await store.missions.collection.find_one_and_update(
        {"_id": mission["_id"], "status": domain.MissionStatus.PUBLISHED.value},
        {"$addToSet": {"volunteers": staff_id}},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise domain.Refused("the mission changed meanwhile; read it again")
    return updated


async def complete_mission(store: Store, mission: dict[str, Any], cmd: CompletionCommand) -> tuple[dict, bool]:
    step = domain.plan_mission_completion(mission, cmd.completed_on, cmd.hours)
    if step.noop:
        return mission, await store.publish(store.missions, mission["_id"])
    data = SkillsMissionCompleted(
        mission_id=mission["_id"],
        partner_id=mission["partner_id"],
        departement=mission["departement"],
        commitment=mission["commitment"],
        volunteers=len(mission["volunteers"]),
        hours=cmd.hours,
        completed_on=cmd.completed_on,
    )
    event = _event(data, cmd.completed_on, mission["_id"], "completed")
    await store.missions.note([mission["_id"]])
    updated = await store.missions.collection.find_one_and_update(
        {"_id": mission["_id"], **step.expect, "volunteers": mission["volunteers"]},
        outbox_append([event], {**step.set_fields, "updated_at": _now()}),
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise domain.Refused("the mission changed meanwhile; read it again and retry")
    return updated, await store.publish(store.missions, mission["_id"])
