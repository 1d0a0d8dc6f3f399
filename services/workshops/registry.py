"""What the registry decides for a help record: the session or venue it names, and where it happened.

A help record names a session (attendance) or a venue (accompaniment) of the registry. One the caller may not use
answers 404 like one that does not exist, so that nobody learns of another organisation's records; a body that
names a real, usable record but contradicts it (another venue, another partner) answers 422 naming the field.
The facts the registry holds — département, region, QPV, rural, time zone, and a session's theme — are taken from
it; what a body says of them is ignored (and listed in the answer's `ignored`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from services.workshops import domain
from services.workshops.handlers import require_manage_record
from services.workshops.store import Store
from shared.aggregates import Version
from shared.errors import Invalid, NotFound
from shared.identity import Principal

__all__ = ["ATTENDANCE_FACTS", "PLACE_FACTS", "session", "usable_venue", "held_at", "ignored"]

PLACE_FACTS = ("departement", "qpv", "rural")  # body fields of where a help happened: the venue's say
ATTENDANCE_FACTS = ("theme", *PLACE_FACTS)  # and, for an attendance, the session's theme


async def session(store: Store, who: Principal, workshop_id: str) -> Version:
    """The session an attendance names: unknown and another organisation's alike are 404; monitoring sees it but
    may not write (403)."""
    workshop = await store.workshops.get(workshop_id)
    if workshop is None:
        raise NotFound(f"no workshop {workshop_id}")
    require_manage_record(who, workshop.state, "facilitator_id", f"workshop {workshop_id}")
    return workshop


def usable_venue(venue: Version | None, who: Principal, venue_id: str) -> Version:
    """The venue looked up for `venue_id`, if the caller may use it (La Poste's, or its own premises); else 404."""
    if venue is None or not domain.can_use_venue(who, venue.state.get("partner_id")):
        raise NotFound(f"no venue {venue_id}")
    return venue


async def held_at(store: Store, who: Principal, workshop: Version, venue_id: str | None) -> None:
    """A venue named beside the session must be the session's (422), once it is one the caller may know (404)."""
    venue_of_session = workshop.state["venue_id"]
    if venue_id is None or venue_id == venue_of_session:
        return
    usable_venue(await store.venues.get(venue_id), who, venue_id)
    raise Invalid(f"venue_id: workshop {workshop.aggregate_id} is held at venue {venue_of_session}, not {venue_id}")


def ignored(cmd: BaseModel, registry: Mapping[str, Any], fields: Iterable[str]) -> tuple[str, ...]:
    """The registry's facts that the body also gave, with another value: ignored, and said so in the answer."""
    given = cmd.model_fields_set
    return tuple(f for f in fields if f in given and getattr(cmd, f) is not None and getattr(cmd, f) != registry.get(f))
