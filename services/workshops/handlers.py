"""Commands on venues, facilitators, workshops and registrations: each one read → decide (pure) → insert.

Every handler has the shape `handler(store, who, <what it acts on>…, [key=]) -> Result`; refusals are
`shared.errors` (the app maps them to HTTP). Attendance and accompaniments live in `checkins.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.workshops import domain
from services.workshops.domain import RuleBroken, can_manage, event_id
from services.workshops.schemas import FacilitatorCreate, RegistrationCreate, VenueCreate, WorkshopCreate
from services.workshops.store import Store
from shared import geo, results
from shared.aggregates import Aggregates, Change, Version
from shared.docstore import DuplicateKey
from shared.errors import Conflict, Forbidden, Invalid, NotFound
from shared.events import (
    AdviserDeployed,
    Envelope,
    EventData,
    VenueOpened,
    WorkshopCancelled,
    WorkshopScheduled,
    new_event,
)
from shared.identity import Principal, Role
from shared.privacy import person_ref
from shared.results import Outcome

__all__ = [
    "SOURCE",
    "Outcome",
    "Result",
    "open_venue",
    "add_facilitator",
    "schedule_workshop",
    "cancel_workshop",
    "register",
    "register_many",
    "cancel_registration",
]

SOURCE = "/services/workshops"
TERRITORY = ("departement", "region", "qpv", "rural", "timezone")
Decide = Callable[[Version], Change | None]


@dataclass(frozen=True)
class Result(results.Result):
    """The shared result; for a cancelled registration the waiting one its seat went to; for a help record the
    body fields that the registry decides and that said otherwise (ignored, see `registry.py`)."""

    promoted: str | None = None
    ignored: tuple[str, ...] = ()


# --- helpers shared with checkins.py ----------------------------------------------------------------


def make_event(data: EventData, kind: str, record: str, time: datetime, subject: str | None = None) -> Envelope:
    return new_event(data, source=SOURCE, time=time, event_id=event_id(kind, record), subject=subject)


def ids_of(events: Iterable[Envelope]) -> tuple[str, ...]:
    return tuple(str(e.id) for e in events)


def territory(departement: str, qpv: bool, rural: bool) -> dict[str, Any]:
    try:
        dep = geo.departement(departement)
    except KeyError:
        raise Invalid(f"{departement} is no known département") from None
    return {"departement": dep.code, "region": dep.region, "qpv": qpv, "rural": rural, "timezone": dep.timezone}


def ref_of(client_reference: str | None, key: bytes) -> str | None:
    """The person reference of a client reference (None or empty: anonymous); one of blanks only names nobody:
    refused."""
    if not client_reference:
        return None
    try:
        return person_ref(client_reference, key)
    except ValueError as exc:
        raise Invalid(f"client_reference: {exc} (leave it out for an anonymous person)") from None


def require_manage(principal: Principal, partner_id: str | None, facilitator_id: str | None, what: str) -> None:
    if not can_manage(principal, partner_id, facilitator_id):
        raise Forbidden(f"{principal.role.value} {principal.subject} may not manage {what}")


def require_manage_record(principal: Principal, state: dict[str, Any], manager: str, what: str) -> None:
    """An existing record: another organisation's is 404, as if unknown (its existence is not told); one the
    caller may read but not change (monitoring) is 403."""
    partner_id, manager_id = state.get("partner_id"), state.get(manager)
    if not domain.can_read(principal, partner_id, manager_id):
        raise NotFound(f"no {what}")
    require_manage(principal, partner_id, manager_id, what)


async def create_once(series: Aggregates, record_id: str, change: Change, compare: Sequence[str], what: str) -> Result:
    """Version 1 of a new record; the same record sent again is a duplicate (its events are made sure to have
    gone out), the same id with other `compare` values a Conflict."""
    try:
        version = await series.create(record_id, change)
    except DuplicateKey:  # the loser's own outbox note is forgotten: a retry publishes nothing new
        return await duplicate_of(series, record_id, change, compare, what)
    return Result("created", record_id, version.head(), ids_of(version.events), await published_now(series, version))


async def duplicate_of(series: Aggregates, record_id: str, change: Change, compare: Sequence[str], what: str) -> Result:
    """A record sent again that exists already: a duplicate if `compare` values are the same, else a Conflict."""
    existing = await series.require(record_id, what)
    if any(existing.state.get(k) != change.state.get(k) for k in compare):
        raise Conflict(f"{what} {record_id} was already recorded with other details")
    # Later versions (a retraction) carry their own events; version 1's went out with it or by the relay.
    published = await series.republish(existing) if existing.number == 1 else await series.settled(existing)
    return Result("duplicate", record_id, existing.head(), ids_of(change.events), published)


async def published_now(series: Aggregates, version: Version) -> bool:
    """Whether the events of a version just written are on Kafka (a bulk load leaves them to the relay)."""
    return series.publish_now and await series.published(version)


async def changed_or_duplicate(
    series: Aggregates, version: Version, changed: bool, event_ids: tuple[str, ...], **extra: Any
) -> Result:
    """The result of a `change` whose retries find it done: the change is then the latest version."""
    done = await (published_now(series, version) if changed else series.republish(version))
    outcome: Outcome = "changed" if changed else "duplicate"
    return Result(outcome, version.aggregate_id, version.head(), event_ids, done, **extra)


# --- venues and facilitators ------------------------------------------------------------------------


async def open_venue(store: Store, who: Principal, cmd: VenueCreate) -> Result:
    if who.role != Role.ADMIN and not (
        who.role == Role.PARTNER and cmd.kind == "partner_premises" and cmd.partner_id == who.partner_id
    ):
        raise Forbidden("only La Poste admins open venues; a partner user may add its own premises")
    try:
        where = territory(cmd.departement, cmd.qpv, cmd.rural)
    except Invalid:
        raise Invalid(f"commune {cmd.commune_insee} is in no known département") from None
    data = VenueOpened(
        venue_id=cmd.venue_id, kind=cmd.kind, newly_equipped=cmd.newly_equipped, opened_on=cmd.opened_on, **where
    )
    event = make_event(data, "venue.opened", cmd.venue_id, domain.local_midnight(cmd.opened_on, where["timezone"]))
    fields = cmd.model_dump(mode="json", exclude={"venue_id"}) | where
    state = {**fields, "event_id": str(event.id), "recorded_at": store.outbox.clock()}
    return await create_once(store.venues, cmd.venue_id, Change(state, [event]), list(fields), "venue")


async def add_facilitator(store: Store, who: Principal, cmd: FacilitatorCreate) -> Result:
    if who.role != Role.ADMIN and not (
        who.role == Role.PARTNER and cmd.kind == "partner_mediator" and cmd.partner_id == who.partner_id
    ):
        raise Forbidden("only La Poste admins add facilitators; a partner user may add its own mediators")
    events = []
    if cmd.kind == "adviser":
        assert cmd.deployed_on is not None
        data = AdviserDeployed(adviser_id=cmd.facilitator_id, departement=cmd.departement, deployed_on=cmd.deployed_on)
        tz = geo.departement(cmd.departement).timezone
        at = domain.local_midnight(cmd.deployed_on, tz)
        events.append(make_event(data, "adviser.deployed", cmd.facilitator_id, at))
    fields = cmd.model_dump(mode="json", exclude={"facilitator_id"})
    state = {**fields, "recorded_at": store.outbox.clock()}
    return await create_once(store.facilitators, cmd.facilitator_id, Change(state, events), list(fields), "facilitator")


# --- workshops --------------------------------------------------------------------------------------


async def schedule_workshop(store: Store, who: Principal, cmd: WorkshopCreate) -> Result:
    require_manage(who, cmd.partner_id, cmd.facilitator_id, "this workshop (name your own partner or yourself)")
    venue = await store.venues.get(cmd.venue_id)
    if venue is None:
        raise Invalid(f"no venue {cmd.venue_id}")
    if venue.state.get("partner_id") and venue.state["partner_id"] != cmd.partner_id:
        raise Invalid(f"venue {cmd.venue_id} is the premises of another partner")
    if cmd.facilitator_id:
        fac = await store.facilitators.get(cmd.facilitator_id)
        if fac is None:
            raise Invalid(f"no facilitator {cmd.facilitator_id}")
        if fac.state.get("partner_id") and fac.state["partner_id"] != cmd.partner_id:
            raise Invalid(f"facilitator {cmd.facilitator_id} is a mediator of another partner")
    try:
        starts_at = domain.local_to_aware(cmd.starts_local, venue.state["timezone"])
    except RuleBroken as exc:
        raise Invalid(str(exc)) from None
    where = {k: venue.state[k] for k in TERRITORY}
    data = WorkshopScheduled(
        workshop_id=cmd.workshop_id,
        theme=cmd.theme,
        venue_id=cmd.venue_id,
        partner_id=cmd.partner_id,
        facilitator_id=cmd.facilitator_id,
        starts_at=starts_at,
        capacity=cmd.capacity,
        commitment=cmd.commitment,
        **where,
    )
    now = store.outbox.clock()
    event = make_event(data, "workshop.scheduled", cmd.workshop_id, now, subject=cmd.workshop_id)
    fields = cmd.model_dump(mode="json", exclude={"workshop_id"}) | where | {"starts_at": starts_at}
    state = {**fields, "status": "scheduled", "registrations": {}, "event_id": str(event.id), "recorded_at": now}
    compare = [k for k in fields if k != "starts_at"]  # compared through starts_local (no tz round-trip)
    return await create_once(store.workshops, cmd.workshop_id, Change(state, [event]), compare, "workshop")


def _seats(state: dict[str, Any]) -> domain.Seats:
    # Copies: a version's state is shared with the cache and must never be changed in place.
    return domain.Seats(state["capacity"], {k: dict(v) for k, v in state.get("registrations", {}).items()})


def _manage_workshop(who: Principal, state: dict[str, Any], workshop_id: str) -> None:
    require_manage_record(who, state, "facilitator_id", f"workshop {workshop_id}")


def decide_cancel_workshop(who: Principal, workshop_id: str, reason: str, now: datetime) -> Decide:
    def decide(current: Version) -> Change | None:
        state = current.state
        _manage_workshop(who, state, workshop_id)
        if state["status"] == "cancelled":
            return None
        refs = domain.active_person_refs(_seats(state))
        data = WorkshopCancelled(workshop_id=workshop_id, reason=reason, registered_person_refs=refs)
        event = make_event(data, "workshop.cancelled", workshop_id, now, subject=workshop_id)
        fields = {"status": "cancelled", "cancellation_reason": reason, "cancelled_at": now}
        return Change({**state, **fields}, [event])

    return decide


async def cancel_workshop(store: Store, who: Principal, workshop_id: str, reason: str) -> Result:
    """Cancels the session and tells everyone registered or waiting (an event); nothing changes it afterwards,
    so a retry finds the cancelling version as the latest one."""
    decide = decide_cancel_workshop(who, workshop_id, reason, store.outbox.clock())
    version, changed = await store.workshops.change(workshop_id, decide, what="workshop")
    ids = (str(event_id("workshop.cancelled", workshop_id)),)
    return await changed_or_duplicate(store.workshops, version, changed, ids)


def _already(seats: domain.Seats, registration_id: str, ref: str | None) -> str | None:
    """The registration that a retry of this one finds (same id, or the same person's active one)."""
    existing = seats.registrations.get(registration_id)
    if existing is not None:
        if existing["person_ref"] != ref:
            raise Conflict(f"registration {registration_id} is another person's")
        return registration_id
    return seats.holder(ref) if ref else None


@dataclass(frozen=True)
class Newcomer:
    registration_id: str
    person_ref: str | None
    origin: str


def decide_register(who: Principal, workshop_id: str, newcomers: Sequence[Newcomer], added: set[str]) -> Decide:
    """Seats each newcomer if a seat is free in the version it reads, else puts them at the end of the waiting
    list: the order of the waiting list is the order in which registrations won their version."""

    def decide(current: Version) -> Change | None:
        state = current.state
        _manage_workshop(who, state, workshop_id)
        seats = _seats(state)
        added.clear()  # the decision that is stored is the last one made
        for n in newcomers:
            if _already(seats, n.registration_id, n.person_ref):
                continue  # a retry, or the same person twice in one list
            if state["status"] != "scheduled":
                raise Conflict(f"the workshop is {state['status']}")
            domain.register(seats, n.registration_id, n.person_ref, n.origin)
            added.add(n.registration_id)
        return Change({**state, "registrations": seats.registrations}) if added else None

    return decide


def _newcomer(workshop_id: str, cmd: RegistrationCreate, key: bytes) -> Newcomer:
    ref = ref_of(cmd.client_reference, key)
    return Newcomer(cmd.registration_id or domain.record_id("reg", workshop_id, ref or ""), ref, cmd.origin)


async def register_many(
    store: Store, who: Principal, workshop_id: str, cmds: Sequence[RegistrationCreate], *, key: bytes
) -> list[Result]:
    """Registers people in the order given, in one version (a referral list, a bulk load); a refusal refuses
    the whole list. Each result says whether that registration is new or was there already."""
    newcomers = [_newcomer(workshop_id, cmd, key) for cmd in cmds]
    added: set[str] = set()
    version, changed = await store.workshops.change(
        workshop_id, decide_register(who, workshop_id, newcomers, added), what="workshop"
    )
    results = []
    for n in newcomers:
        if changed and n.registration_id in added:
            results.append(Result("created", n.registration_id, version.head()))
            continue
        held = _already(_seats(version.state), n.registration_id, n.person_ref)
        assert held is not None  # nothing to do for it: the registration is there
        results.append(Result("duplicate", held, version.head()))
    return results


async def register(store: Store, who: Principal, workshop_id: str, cmd: RegistrationCreate, *, key: bytes) -> Result:
    return (await register_many(store, who, workshop_id, [cmd], key=key))[0]


def decide_cancel_registration(
    who: Principal, workshop_id: str, registration_id: str, promoted: list[str | None]
) -> Decide:
    def decide(current: Version) -> Change | None:
        state = current.state
        _manage_workshop(who, state, workshop_id)
        seats = _seats(state)
        reg = seats.registrations.get(registration_id)
        if reg is None:
            raise NotFound(f"no registration {registration_id} in workshop {workshop_id}")
        if reg["status"] == domain.CANCELLED:
            return None
        if state["status"] != "scheduled":
            raise Conflict(f"the workshop is {state['status']}")
        promoted[:] = [domain.cancel_registration(seats, registration_id)]  # the decision that was stored last
        return Change({**state, "registrations": seats.registrations})

    return decide


async def cancel_registration(store: Store, who: Principal, workshop_id: str, registration_id: str) -> Result:
    """Cancels one registration; a freed seat goes to the first on the waiting list (`Result.promoted`)."""
    promoted: list[str | None] = [None]
    decide = decide_cancel_registration(who, workshop_id, registration_id, promoted)
    version, changed = await store.workshops.change(workshop_id, decide, what="workshop")
    outcome: Outcome = "changed" if changed else "duplicate"
    return Result(outcome, registration_id, version.head(), promoted=promoted[0] if changed else None)
