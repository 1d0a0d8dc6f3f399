"""One function per command of the partners context: each decides purely on the latest version and stores the next.

Every change goes through `Aggregates.create` / `change`: winning the insert of the next version is what makes
a lifecycle step, an edit or a volunteer count exact when many callers (and several instances) act at once; a
loser decides again on the newer state, which usually refuses it with the reason (`shared.errors`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from services.partners import domain
from services.partners.domain import DELETED, Status, Step
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
from shared.aggregates import Aggregates, Change, Version
from shared.docstore import DuplicateKey
from shared.errors import Conflict, NotFound
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
from shared.outbox import RELAY_GRACE
from shared.results import Outcome, Result

__all__ = [
    "SOURCE",
    "Outcome",
    "Result",
    "LifecycleCommand",
    "partner_state",
    "create_partner",
    "update_partner",
    "set_skills_label",
    "create_partnership",
    "update_partnership",
    "delete_draft",
    "transition",
    "planner",
    "partnership_events",
    "create_mission",
    "add_volunteer",
    "complete_mission",
]

SOURCE = "/services/partners"
PARIS = ZoneInfo("Europe/Paris")
LifecycleCommand = SignCommand | ActivateCommand | RenewCommand | EndCommand


def _result(outcome: Outcome, record: dict[str, Any], *, published: bool = True) -> Result:
    return Result(outcome, record["_id"], record, published=published)


def _at_noon(day: date) -> datetime:
    # Event time of a dated fact: noon in Paris that day (deterministic, same civil day everywhere in France).
    return datetime.combine(day, time(12), PARIS)


def _event(data: EventData, day: date, *id_parts: Any) -> Envelope:
    subject = getattr(data, "partnership_id", None) or getattr(data, "mission_id", None)
    return new_event(data, source=SOURCE, time=_at_noon(day), event_id=domain.event_id(*id_parts), subject=subject)


def _now() -> datetime:
    return datetime.now(UTC)


async def _stored(series: Aggregates, version: Version, changed: bool) -> Result:
    """The result of a `change`: a new version, or the current one when the command was already done."""
    if changed:
        return _result("changed", version.head(), published=await series.published(version))
    published = await series.settled(version)
    if not published and series.outbox.clock() - version.at >= RELAY_GRACE:
        # A retry of a command whose writer never published (it died): publish now rather than wait for the
        # relay. A younger note belongs to a writer that is publishing it at this moment.
        published = await series.republish(version)
    return _result("duplicate", version.head(), published=published)


def _live(version: Version, what: str) -> dict[str, Any]:
    """The state of a record that may be acted on (a deleted draft is gone)."""
    if version.state.get("status") == DELETED:
        raise NotFound(f"no {what} {version.aggregate_id}")
    return version.state


# --- partners -------------------------------------------------------------------------------------


def partner_state(cmd: PartnerCreate) -> dict[str, Any]:
    return {
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


async def create_partner(store: Store, cmd: PartnerCreate) -> Result:
    # One legal entity, one partner: the id follows from the legal identifier, so the insert is the check.
    partner_id = domain.partner_id_for(cmd.legal_id)
    try:
        version = await store.partners.create(partner_id, Change(partner_state(cmd)))
    except DuplicateKey:
        raise Conflict(f"a partner with legal identifier {cmd.legal_id} already exists: {partner_id}") from None
    return _result("created", version.head())


def _edit(changes: dict[str, Any]) -> Callable[[Version], Change | None]:
    def decide(current: Version) -> Change | None:
        after = {**current.state, **changes}
        return None if after == current.state else Change(after)

    return decide


async def update_partner(store: Store, partner_id: str, cmd: PartnerUpdate) -> Result:
    changes = cmd.model_dump(exclude_unset=True, mode="json")
    if "address" in changes:
        changes["home_departement"] = domain.commune_departement(changes["address"]["commune_insee"])
    version, changed = await store.partners.change(partner_id, _edit(changes), what="partner")
    return await _stored(store.partners, version, changed)


async def set_skills_label(store: Store, partner_id: str, labelled: bool, on: date | None) -> Result:
    fields = {"skills_label": labelled, "skills_labelled_on": on.isoformat() if labelled and on else None}
    version, changed = await store.partners.change(partner_id, _edit(fields), what="partner")
    return await _stored(store.partners, version, changed)


# --- partnerships ---------------------------------------------------------------------------------

_TERMS = ("title", "partnership_type", "commitments", "departements", "starts_on", "ends_on")


def terms_of(cmd: PartnershipCreate | PartnershipUpdate) -> dict[str, Any]:
    return cmd.model_dump(include=set(_TERMS), exclude_unset=isinstance(cmd, PartnershipUpdate), mode="json")


async def create_partnership(store: Store, partner_id: str, cmd: PartnershipCreate) -> Result:
    """A draft; the same external_ref with the same terms again is the same partnership ("duplicate")."""
    if await store.partners.get(partner_id) is None:
        raise NotFound(f"no partner {partner_id}")
    pid = domain.partnership_id_for(cmd.external_ref) if cmd.external_ref else f"ps-{uuid.uuid4()}"
    terms = terms_of(cmd)
    state = {
        "partner_id": partner_id,
        "external_ref": cmd.external_ref,
        **terms,
        "status": Status.DRAFT.value,
        "renewals": [],
        "created_at": _now(),
    }
    try:
        return _result("created", (await store.partnerships.create(pid, Change(state))).head())
    except DuplicateKey:
        pass

    def again(current: Version) -> Change | None:
        existing = current.state
        if existing.get("status") == DELETED:
            return Change(state)  # the reference of a deleted draft is free again
        if existing["partner_id"] == partner_id and all(existing.get(k) == v for k, v in terms.items()):
            return None
        raise Conflict(f"external_ref {cmd.external_ref} is already used by another partnership")

    version, changed = await store.partnerships.change(pid, again, what="partnership")
    if changed:
        return _result("created", version.head())
    return await _stored(store.partnerships, version, False)


async def update_partnership(store: Store, partnership_id: str, cmd: PartnershipUpdate) -> Result:
    changes = terms_of(cmd)

    def decide(current: Version) -> Change | None:
        state = _live(current, "partnership")
        merged = {**state, **changes}
        domain.check_terms(domain._d(merged.get("starts_on")), domain._d(merged.get("ends_on")))
        if state["status"] != Status.DRAFT.value:
            raise domain.Refused(f"only a draft can be edited; this partnership is {state['status']} (renew or end it)")
        return None if merged == state else Change(merged)

    version, changed = await store.partnerships.change(partnership_id, decide, what="partnership")
    return await _stored(store.partnerships, version, changed)


async def delete_draft(store: Store, partnership_id: str) -> Result:
    """A draft is deleted by a last version marked deleted (nothing is removed in place); reads then 404."""

    def decide(current: Version) -> Change:
        state = _live(current, "partnership")
        if state["status"] != Status.DRAFT.value:
            raise domain.Refused(f"only a draft can be deleted; this partnership is {state['status']} (end it instead)")
        return Change({**state, "status": DELETED, "deleted_at": _now().isoformat()})

    version, changed = await store.partnerships.change(partnership_id, decide, what="partnership")
    return _result("changed" if changed else "duplicate", version.head())


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
    """Every event a partnership in this state (with its `_id`) has produced (used by the import)."""
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


def planner(cmd: LifecycleCommand) -> Planner:
    if isinstance(cmd, SignCommand):
        return lambda doc: domain.plan_sign(doc, cmd.signed_on)
    if isinstance(cmd, ActivateCommand):
        return lambda doc: domain.plan_activate(doc, cmd.activated_on)
    if isinstance(cmd, RenewCommand):
        return lambda doc: domain.plan_renew(doc, cmd.renewed_on, cmd.ends_on)
    return lambda doc: domain.plan_end(doc, cmd.ended_on, cmd.reason)


def _event_of(cmd: LifecycleCommand, after: dict[str, Any], step: Step) -> Envelope:
    if isinstance(cmd, SignCommand):
        return _signed(after)
    if isinstance(cmd, ActivateCommand):
        return _activated(after)
    if isinstance(cmd, RenewCommand):
        return _renewed(after, step.push["renewals"] if step.push else {})
    return _ended(after)


def decide_transition(partnership_id: str, cmd: LifecycleCommand) -> Callable[[Version], Change | None]:
    """The pure decision of one lifecycle command: the next state with its one event, None if already done
    with exactly these values (a retry), or a refusal saying why not in this state."""
    plan = planner(cmd)

    def decide(current: Version) -> Change | None:
        state = _live(current, "partnership")
        step = plan(state)
        if step.noop:
            return None
        after = domain.apply(state, step)
        if isinstance(cmd, EndCommand) and cmd.note:
            after["end_note"] = cmd.note  # internal: stored, never in the event
        return Change(after, [_event_of(cmd, {**after, "_id": partnership_id}, step)])

    return decide


async def transition(store: Store, partnership_id: str, cmd: LifecycleCommand) -> Result:
    """Apply one lifecycle command: its state and its event are one new version."""
    decide = decide_transition(partnership_id, cmd)
    version, changed = await store.partnerships.change(partnership_id, decide, what="partnership")
    return await _stored(store.partnerships, version, changed)


# --- skills sponsorship ---------------------------------------------------------------------------


async def create_mission(store: Store, partner: dict[str, Any], cmd: MissionCreate) -> Result:
    """Publish a mission announcement of a labelled association (`partner` is its record)."""
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
    state = {
        "partner_id": partner["_id"],
        **fields,
        "status": domain.MissionStatus.PUBLISHED.value,
        "volunteers": [],
        "created_at": _now(),
    }
    # A retry is recognised before inserting: a create that loses notes its version for the relay again.
    existing = await store.missions.get(mid) if cmd.external_ref else None
    if existing is None:
        try:
            event = _event(data, cmd.published_on, mid, "published")
            version = await store.missions.create(mid, Change(state, [event]))
            return _result("created", version.head(), published=await store.missions.published(version))
        except DuplicateKey:
            existing = await store.missions.require(mid, "mission")
    same = existing.state["partner_id"] == partner["_id"]
    if not (same and all(existing.state.get(k) == v for k, v in fields.items())):
        raise Conflict(f"external_ref {cmd.external_ref} is already used by another mission")
    first = (await store.missions.history(mid))[0]  # the announcement's own event
    published = await store.missions.settled(first)
    if not published and store.outbox.clock() - first.at >= RELAY_GRACE:
        published = await store.missions.republish(first)
    return _result("duplicate", existing.head(), published=published)


async def add_volunteer(store: Store, mission_id: str, staff_id: str) -> Result:
    """A postal employee volunteers, once, within the places (their staff number stays in this database;
    events carry only counts)."""

    def decide(current: Version) -> Change | None:
        step = domain.plan_volunteer(current.state, staff_id)
        return None if step.noop else Change(domain.apply(current.state, step))

    version, changed = await store.missions.change(mission_id, decide, what="mission")
    return await _stored(store.missions, version, changed)


async def complete_mission(store: Store, mission_id: str, cmd: CompletionCommand) -> Result:
    def decide(current: Version) -> Change | None:
        mission = current.state
        step = domain.plan_mission_completion(mission, cmd.completed_on, cmd.hours)
        if step.noop:
            return None
        data = SkillsMissionCompleted(
            mission_id=mission_id,
            partner_id=mission["partner_id"],
            departement=mission["departement"],
            commitment=mission["commitment"],
            volunteers=len(mission["volunteers"]),
            hours=cmd.hours,
            completed_on=cmd.completed_on,
        )
        return Change(domain.apply(mission, step), [_event(data, cmd.completed_on, mission_id, "completed")])

    version, changed = await store.missions.change(mission_id, decide, what="mission")
    return await _stored(store.missions, version, changed)
