"""Pure rules of the detection service: the accepted time window, checking one item, building its event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from services.detection.schemas import DetectionIn
from shared import geo
from shared.events import Envelope, IllectronismDetected, new_event
from shared.privacy import person_ref
from shared.terminal_sdk import detection_event_id

__all__ = [
    "SOURCE",
    "Office",
    "Rejected",
    "Checked",
    "check_time",
    "check_item",
    "office_from_doc",
    "record_id",
    "time_span",
]

SOURCE = "/services/detection"


class Rejected(ValueError):
    """An item the rules refuse; the message is the reason given back to the terminal."""


@dataclass(frozen=True, slots=True)
class Office:
    office_id: str
    departement: str
    region: str
    timezone: str
    qpv: bool
    rural: bool
    france_services: bool
    active: bool = True


def office_from_doc(doc: dict[str, Any]) -> Office:
    return Office(
        office_id=doc["_id"],
        departement=doc["departement"],
        region=doc["region"],
        timezone=doc["timezone"],
        qpv=bool(doc.get("qpv")),
        rural=bool(doc.get("rural")),
        france_services=bool(doc.get("france_services")),
        active=bool(doc.get("active", True)),
    )


def territory(departement: str) -> dict[str, str]:
    dep = geo.departement(departement)
    return {"departement": dep.code, "region": dep.region, "timezone": dep.timezone}


def record_id(office_id: str, detection_id: str) -> str:
    """The idempotency key: a detection id is unique within its office (a replaced terminal may resend)."""
    return f"{office_id}/{detection_id}"


def check_time(occurred_at: datetime, now: datetime, window: timedelta | None, skew: timedelta) -> None:
    """`window` None: no lower bound but the contract's (the backfill path; `FactTime` keeps 2000-2099)."""
    if occurred_at > now + skew:
        raise Rejected(f"occurred_at {occurred_at.isoformat()} is in the future")
    if window is not None and occurred_at < now - window:
        raise Rejected(f"occurred_at {occurred_at.isoformat()} is older than the accepted window ({window.days} days)")


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(item)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Checked:
    record_id: str
    detection_id: str
    event: Envelope


def check_item(
    raw: Any,
    office: Office,
    terminal_id: str,
    *,
    key: bytes,
    now: datetime,
    window: timedelta | None,
    skew: timedelta,
) -> Checked:
    """Validate one raw item and build its event (client reference hashed here, never kept; none: an anonymous
    detection); Rejected if bad."""
    if not isinstance(raw, dict):
        raise Rejected("a detection must be a JSON object")
    try:
        item = DetectionIn.model_validate(raw)
    except ValidationError as exc:
        raise Rejected(_reason(exc)) from None
    check_time(item.occurred_at, now, window, skew)
    try:
        ref = None if item.client_reference is None else person_ref(item.client_reference, key)
    except ValueError as exc:
        raise Rejected(f"client_reference: {exc}") from None
    data = IllectronismDetected(
        detection_id=item.detection_id,
        office_id=office.office_id,
        terminal_id=terminal_id,
        departement=office.departement,
        region=office.region,
        timezone=office.timezone,
        qpv=office.qpv,
        rural=office.rural,
        france_services=office.france_services,
        person_ref=ref,
        consent=item.consent,
        needs=item.needs,
        referral=item.referral,
    )
    event = new_event(
        data,
        source=SOURCE,
        time=item.occurred_at,
        event_id=detection_event_id(office.office_id, item.detection_id),
        subject=f"office/{office.office_id}",
    )
    return Checked(record_id(office.office_id, item.detection_id), item.detection_id, event)


def time_span(checked: list[Checked]) -> tuple[datetime, datetime] | None:
    """The earliest and latest event time of these items (None for none)."""
    times = [c.event.time for c in checked]
    return (min(times), max(times)) if times else None
