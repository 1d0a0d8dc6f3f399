"""The event catalog: a CloudEvents-style envelope around typed, versioned payloads.

Every event is a past-tense fact. `id` (a UUID set by the producer) is the idempotency key end to end;
`time` is when the fact happened (event time, timezone-aware), not when it was published.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    model_validator,
)

from shared import geo
from shared.privacy import PERSON_REF_PATTERN

__all__ = [
    "SPECVERSION",
    "Envelope",
    "EventData",
    "PersonRef",
    "DepartementCode",
    "Commitment",
    "PartnershipType",
    "Channel",
    "Need",
    "WorkshopTheme",
    "Territory",
    "HelpFacts",
    "PartnershipSigned",
    "PartnershipActivated",
    "PartnershipRenewed",
    "PartnershipEnded",
    "SkillsMissionPublished",
    "SkillsMissionCompleted",
    "Referral",
    "IllectronismDetected",
    "WorkshopScheduled",
    "WorkshopCancelled",
    "WorkshopAttended",
    "AttendanceRetracted",
    "AccompanimentCompleted",
    "AccompanimentRetracted",
    "AdviserDeployed",
    "VenueOpened",
    "EVENT_TYPES",
    "HELP_TYPES",
    "RETRACTION_TYPES",
    "new_event",
    "EARLIEST",
    "LATEST",
    "FactTime",
    "FactDate",
    "model_for",
    "dataschema",
]

# Facts happen between these bounds: a time outside them is a producer's mistake (a year 1900 or 9999), refused
# by every producer and by every consumer (which dead-letters it) alike.
EARLIEST = datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))
LATEST = datetime(2100, 1, 1, tzinfo=ZoneInfo("UTC"))


def _plausible_time(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{value.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return value


def _plausible_date(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"{value.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return value


FactTime = Annotated[AwareDatetime, AfterValidator(_plausible_time)]
FactDate = Annotated[date, AfterValidator(_plausible_date)]

SPECVERSION: Literal["1.0"] = "1.0"
SCHEMA_URN = "urn:alliance-dynamique:schema"

PersonRef = Annotated[str, Field(pattern=PERSON_REF_PATTERN, description="keyed hash of the client identifier")]


def _check_departement(code: str) -> str:
    try:
        geo.departement(code)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    return code


DepartementCode = Annotated[str, Field(pattern=r"^(\d{2}|2A|2B|97\d)$"), AfterValidator(_check_departement)]


class Commitment(StrEnum):
    """The four societal commitments that tag every partnership and activity."""

    TERRITORIAL_COHESION = "territorial_cohesion"
    SOCIAL_INCLUSION = "social_inclusion"
    DIGITAL_INCLUSION = "digital_inclusion"
    ECOLOGICAL_TRANSITION = "ecological_transition"


class PartnershipType(StrEnum):
    INCLUSIVE_PURCHASING = "inclusive_purchasing"
    SKILLS_SPONSORSHIP = "skills_sponsorship"
    ECONOMIC_COOPERATION = "economic_cooperation"
    SOCIAL_INNOVATION = "social_innovation"


class Channel(StrEnum):
    """Where a person was helped."""

    WORKSHOP = "workshop"
    FRANCE_SERVICES = "france_services"
    ADVISER = "adviser"
    PARTNER = "partner"


class Need(StrEnum):
    ONLINE_BANKING = "online_banking"
    ADMIN_PROCEDURES = "admin_procedures"
    DEVICE_BASICS = "device_basics"
    EMAIL = "email"
    TAXES = "taxes"
    BENEFITS = "benefits"
    HEALTH_INSURANCE = "health_insurance"
    EMPLOYMENT = "employment"
    IDENTITY_DOCUMENTS = "identity_documents"
    OTHER = "other"


class WorkshopTheme(StrEnum):
    ONLINE_BANKING = "online_banking"
    SMARTPHONE_BASICS = "smartphone_basics"
    TABLET_BASICS = "tablet_basics"
    SENIOR_TABLET_ONBOARDING = "senior_tablet_onboarding"
    ONLINE_ADMIN = "online_admin"
    EMAIL_AND_MESSAGING = "email_and_messaging"
    ONLINE_SAFETY = "online_safety"


class EventData(BaseModel):
    """Base of every payload: strict about unknown fields, immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    # The payload field that keys the event on its topic (None: the producer decides, e.g. anonymous help).
    KEY_FIELD: ClassVar[str | None] = None


class Territory(BaseModel):
    """Where something happened, as the metrics need it (no address, no person)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    departement: DepartementCode
    region: str = Field(pattern=r"^\d{2}$")
    qpv: bool = False
    rural: bool = False
    timezone: str = Field(description="IANA zone of the venue or office; the civil year is read in it")

    @model_validator(mode="after")
    def _consistent(self) -> Territory:
        dep = geo.departement(self.departement)
        if self.region != dep.region:
            raise ValueError(f"département {dep.code} is in region {dep.region}, not {self.region}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone!r}") from None
        return self


class HelpFacts(Territory):
    """What every help event carries: whom (maybe nobody known), where, through which channel."""

    person_ref: PersonRef | None = Field(None, description="absent for an anonymous person")
    channel: Channel
    commitment: Commitment = Commitment.DIGITAL_INCLUSION
    partner_id: str | None = None


# --- partners context -------------------------------------------------------------------------------


class PartnershipSigned(EventData):
    TYPE: ClassVar[str] = "partnership.signed"
    KEY_FIELD: ClassVar[str | None] = "partnership_id"

    partnership_id: str
    partner_id: str
    partnership_type: PartnershipType
    commitments: list[Commitment] = Field(min_length=1)
    departements: list[DepartementCode] = Field(min_length=1)
    signed_on: FactDate
    starts_on: FactDate
    ends_on: FactDate | None = None


class PartnershipActivated(EventData):
    TYPE: ClassVar[str] = "partnership.activated"
    KEY_FIELD: ClassVar[str | None] = "partnership_id"

    partnership_id: str
    partner_id: str
    activated_on: FactDate


class PartnershipRenewed(EventData):
    TYPE: ClassVar[str] = "partnership.renewed"
    KEY_FIELD: ClassVar[str | None] = "partnership_id"

    partnership_id: str
    partner_id: str
    renewed_on: FactDate
    ends_on: FactDate | None = None


class PartnershipEnded(EventData):
    TYPE: ClassVar[str] = "partnership.ended"
    KEY_FIELD: ClassVar[str | None] = "partnership_id"

    partnership_id: str
    partner_id: str
    ended_on: FactDate
    reason: str = Field(min_length=1, max_length=500)


class SkillsMissionPublished(EventData):
    TYPE: ClassVar[str] = "skills_mission.published"
    KEY_FIELD: ClassVar[str | None] = "mission_id"

    mission_id: str
    partner_id: str
    departement: DepartementCode
    commitment: Commitment
    published_on: FactDate


class SkillsMissionCompleted(EventData):
    TYPE: ClassVar[str] = "skills_mission.completed"
    KEY_FIELD: ClassVar[str | None] = "mission_id"

    mission_id: str
    partner_id: str
    departement: DepartementCode
    commitment: Commitment
    volunteers: int = Field(ge=1)
    hours: float = Field(gt=0)
    completed_on: FactDate


# --- detection context ------------------------------------------------------------------------------


class Referral(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_id: str | None = None
    theme: WorkshopTheme | None = None


class IllectronismDetected(Territory, EventData):
    TYPE: ClassVar[str] = "illectronism.detected"
    KEY_FIELD: ClassVar[str | None] = "person_ref"

    detection_id: str = Field(description="the terminal's own id for the detection (its idempotency key)")
    office_id: str
    terminal_id: str
    france_services: bool = False
    # Absent for an anonymous detection: it counts as a detection, not as a person detected (no one to follow).
    person_ref: PersonRef | None = Field(None, description="keyed hash of the client identifier; absent: anonymous")
    consent: bool
    needs: list[Need] = Field(min_length=1)
    referral: Referral | None = None


# --- workshops context ------------------------------------------------------------------------------


class WorkshopScheduled(Territory, EventData):
    TYPE: ClassVar[str] = "workshop.scheduled"
    KEY_FIELD: ClassVar[str | None] = "workshop_id"

    workshop_id: str
    theme: WorkshopTheme
    venue_id: str
    partner_id: str | None = None
    facilitator_id: str | None = None
    starts_at: FactTime
    capacity: int = Field(ge=1)
    commitment: Commitment = Commitment.DIGITAL_INCLUSION


class WorkshopCancelled(EventData):
    TYPE: ClassVar[str] = "workshop.cancelled"
    KEY_FIELD: ClassVar[str | None] = "workshop_id"

    workshop_id: str
    reason: str = Field(min_length=1, max_length=500)
    registered_person_refs: list[PersonRef] = Field(default_factory=list)


class WorkshopAttended(HelpFacts, EventData):
    TYPE: ClassVar[str] = "workshop.attended"
    KEY_FIELD: ClassVar[str | None] = "person_ref"

    attendance_id: str
    workshop_id: str
    theme: WorkshopTheme
    venue_id: str
    channel: Literal[Channel.WORKSHOP] = Channel.WORKSHOP


class AccompanimentCompleted(HelpFacts, EventData):
    TYPE: ClassVar[str] = "accompaniment.completed"
    KEY_FIELD: ClassVar[str | None] = "person_ref"

    accompaniment_id: str
    need: Need
    duration_minutes: int = Field(ge=1, le=8 * 60)
    venue_id: str | None = None
    adviser_id: str | None = None


class _Retraction(EventData):
    KEY_FIELD: ClassVar[str | None] = "person_ref"

    retracted_event_id: uuid.UUID = Field(description="the `id` of the help event this retracts")
    person_ref: PersonRef | None = None
    reason: str = Field(min_length=1, max_length=500)


class AttendanceRetracted(_Retraction):
    TYPE: ClassVar[str] = "attendance.retracted"

    attendance_id: str


class AccompanimentRetracted(_Retraction):
    TYPE: ClassVar[str] = "accompaniment.retracted"

    accompaniment_id: str


class AdviserDeployed(EventData):
    TYPE: ClassVar[str] = "adviser.deployed"
    KEY_FIELD: ClassVar[str | None] = "adviser_id"

    adviser_id: str
    departement: DepartementCode
    deployed_on: FactDate


class VenueOpened(Territory, EventData):
    TYPE: ClassVar[str] = "venue.opened"
    KEY_FIELD: ClassVar[str | None] = "venue_id"

    venue_id: str
    kind: Literal["post_office_room", "partner_premises", "france_services"]
    newly_equipped: bool = False
    opened_on: FactDate


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.TYPE: cls
    for cls in (
        PartnershipSigned,
        PartnershipActivated,
        PartnershipRenewed,
        PartnershipEnded,
        SkillsMissionPublished,
        SkillsMissionCompleted,
        IllectronismDetected,
        WorkshopScheduled,
        WorkshopCancelled,
        WorkshopAttended,
        AttendanceRetracted,
        AccompanimentCompleted,
        AccompanimentRetracted,
        AdviserDeployed,
        VenueOpened,
    )
}
HELP_TYPES = frozenset({WorkshopAttended.TYPE, AccompanimentCompleted.TYPE})
RETRACTION_TYPES = frozenset({AttendanceRetracted.TYPE, AccompanimentRetracted.TYPE})


def dataschema(event_type: str, version: int) -> str:
    return f"{SCHEMA_URN}:{event_type}:{version}"


class Envelope(BaseModel):
    """CloudEvents 1.0 attributes around one typed payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = SPECVERSION
    id: uuid.UUID
    type: str
    source: str = Field(min_length=1, description="the producing service, e.g. /services/workshops")
    time: FactTime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    data: SerializeAsAny[EventData]

    @property
    def key(self) -> str:
        """The Kafka key: the payload's key field; anonymous help is keyed by its own id."""
        field = self.data.KEY_FIELD
        value = getattr(self.data, field) if field else None
        if value is None:
            target = getattr(self.data, "retracted_event_id", None) or self.id
            return f"anon:{target}"
        return str(value)


def new_event(
    data: EventData, *, source: str, time: datetime, event_id: uuid.UUID | None = None, subject: str | None = None
) -> Envelope:
    """Wrap a payload in an envelope; `time` is when the fact happened."""
    return Envelope(
        id=event_id or uuid.uuid4(),
        type=data.TYPE,
        source=source,
        time=time,
        subject=subject,
        dataschema=dataschema(data.TYPE, data.VERSION),
        data=data,
    )


def model_for(event_type: str) -> type[EventData]:
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}") from None
