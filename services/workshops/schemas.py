"""HTTP schemas of the workshops service (events live in shared/, not here)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NaiveDatetime,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict

from shared.events import EARLIEST, LATEST, Commitment, DepartementCode, FactDate, Need, WorkshopTheme

__all__ = [
    "AttendanceCreate",
    "AttendancePublic",
    "RetractionCreate",
    "VenueCreate",
    "FacilitatorCreate",
    "WorkshopCreate",
    "RegistrationCreate",
    "CheckIn",
    "CancellationCreate",
    "AccompanimentCreate",
    "RecordPublic",
    "RegistrationPublic",
    "SheetReport",
]

ID_PATTERN = r"^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$"
KEY_PATTERN = r"^[A-Za-z0-9_:-]+$"  # ids used as keys inside a document: no dots
ID = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
CLIENT_REFERENCE = Field(
    None,
    min_length=1,
    max_length=128,
    description="the client's identifier; hashed on arrival and never stored. Absent: anonymous",
)


def _not_in_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + timedelta(minutes=5):
        raise ValueError("is in the future")
    return value


def _within_contract_years(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{value.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}")
    return value


# A fact that has happened: not in the future (said first: that is what a year 2999 is), and within the years of
# the event contracts (shared.events.FactTime), so that the command is refused here rather than by the contract.
PastFactTime = Annotated[AwareDatetime, AfterValidator(_not_in_future), AfterValidator(_within_contract_years)]


def _day_not_in_future(value: date) -> date:
    if value > datetime.now(UTC).date() + timedelta(days=1):
        raise ValueError("is in the future: record the fact when it has happened")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Body fields of facts the registry holds: accepted for the callers that send them, checked for form, and ignored
# (services/workshops/registry.py); the answer's `ignored` lists those that said otherwise.
REGISTRY_DECIDES: JsonDict = {"deprecated": True}


def _ignored(what: str) -> str:
    return f"ignored: {what} is taken from the registry (an answer's `ignored` lists it when this said otherwise)"


IGNORED_DESCRIPTION = (
    "body fields that the registry decides and that said otherwise: ignored, the registry's values were used"
)


class AttendanceCreate(_Strict):
    """One attendance at a session, workshop-agnostic check-in: the caller names the session and the time; the
    venue, département, region, QPV, rural, time zone, theme and partner are the session's."""

    attendance_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="the caller's id for this attendance: sending it again is harmless",
    )
    workshop_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=ID_PATTERN,
        description="a session of the caller's organisation (404 when unknown or another organisation's)",
    )
    attended_at: PastFactTime = Field(
        description="when the person attended: within the session, from an hour before its start to an hour after "
        "its end (422 otherwise)"
    )
    client_reference: str | None = CLIENT_REFERENCE
    venue_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=ID_PATTERN,
        description="optional: if given, the session's venue (422 when another venue, 404 when an unknown one)",
    )
    partner_id: str | None = Field(None, description="optional: if given, the session's partner (422 otherwise)")
    theme: WorkshopTheme | None = Field(
        None, description=_ignored("the session's theme"), json_schema_extra=REGISTRY_DECIDES
    )
    departement: DepartementCode | None = Field(
        None, description=_ignored("the venue's département"), json_schema_extra=REGISTRY_DECIDES
    )
    qpv: bool | None = Field(
        None, description=_ignored("whether the venue is in a QPV"), json_schema_extra=REGISTRY_DECIDES
    )
    rural: bool | None = Field(
        None, description=_ignored("whether the venue is rural"), json_schema_extra=REGISTRY_DECIDES
    )


class AttendancePublic(BaseModel):
    status: str
    attendance_id: str
    event_id: str
    published: bool
    ignored: list[str] = Field(default_factory=list, description=IGNORED_DESCRIPTION)


class RetractionCreate(_Strict):
    reason: str = Field(min_length=3, max_length=500)


class CancellationCreate(_Strict):
    reason: str = Field(min_length=3, max_length=500)


class VenueCreate(_Strict):
    venue_id: str = ID
    name: str = Field(min_length=1, max_length=120, description="the place's name (never a person's)")
    kind: Literal["post_office_room", "partner_premises", "france_services"]
    commune_insee: str = Field(pattern=r"^(\d{5}|2[AB]\d{3})$", description="INSEE code of the commune")
    qpv: bool = False
    rural: bool = False
    newly_equipped: bool = Field(False, description="one of the renovated post offices lent to partners")
    partner_id: str | None = Field(None, description="the partner whose premises these are")
    opened_on: FactDate

    _opened = field_validator("opened_on")(_day_not_in_future)

    @model_validator(mode="after")
    def _consistent(self) -> VenueCreate:
        if self.kind == "partner_premises" and not self.partner_id:
            raise ValueError("partner premises must name their partner_id")
        if self.newly_equipped and self.kind != "post_office_room":
            raise ValueError("newly equipped places are post-office rooms")
        return self

    @property
    def departement(self) -> str:
        code = self.commune_insee
        return code[:3] if code.startswith("97") else code[:2]


class FacilitatorCreate(_Strict):
    facilitator_id: str = ID
    kind: Literal["adviser", "partner_mediator", "volunteer"]
    departement: DepartementCode
    partner_id: str | None = None
    deployed_on: FactDate | None = Field(None, description="for a digital adviser: when they took up the post")

    _deployed = field_validator("deployed_on")(lambda v: v if v is None else _day_not_in_future(v))

    @model_validator(mode="after")
    def _consistent(self) -> FacilitatorCreate:
        if self.kind == "adviser" and self.deployed_on is None:
            raise ValueError("a digital adviser needs deployed_on")
        if self.kind == "partner_mediator" and not self.partner_id:
            raise ValueError("a partner mediator needs partner_id")
        if self.kind != "partner_mediator" and self.partner_id:
            raise ValueError("only partner mediators belong to a partner")
        return self


class WorkshopCreate(_Strict):
    workshop_id: str = ID
    theme: WorkshopTheme
    venue_id: str = ID
    facilitator_id: str | None = None
    partner_id: str | None = None
    starts_local: NaiveDatetime = Field(description="wall-clock time at the venue, e.g. 2026-03-12T14:00")

    @field_validator("starts_local")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        # The contracts' years (shared.events.FactTime) at the venue; the event contract checks the exact instant.
        if not EARLIEST.year <= value.year < LATEST.year:
            raise ValueError(f"{value.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}")
        return value

    duration_minutes: int = Field(120, ge=15, le=8 * 60)
    capacity: int = Field(ge=1, le=500)
    commitment: Commitment = Commitment.DIGITAL_INCLUSION


class RegistrationCreate(_Strict):
    registration_id: str | None = Field(None, min_length=1, max_length=64, pattern=KEY_PATTERN)
    origin: Literal["referral", "walk_in"]
    client_reference: str | None = CLIENT_REFERENCE

    @model_validator(mode="after")
    def _referral_names_the_person(self) -> RegistrationCreate:
        if self.origin == "referral" and not self.client_reference:
            raise ValueError("a referral names the client (client_reference) so that it links to the detection")
        if not self.client_reference and not self.registration_id:
            raise ValueError("an anonymous walk-in needs a registration_id (the caller's id, for retries)")
        return self


class CheckIn(_Strict):
    seat: str | None = Field(None, min_length=1, max_length=16)
    registration_id: str | None = Field(None, min_length=1, max_length=64)
    client_reference: str | None = CLIENT_REFERENCE
    attended_at: PastFactTime | None = Field(None, description="defaults to the session's start")


class AccompanimentCreate(_Strict):
    """One one-to-one accompaniment at a venue: its département, region, QPV, rural and time zone are the venue's."""

    accompaniment_id: str = ID
    channel: Literal["france_services", "adviser", "partner"]
    need: Need
    duration_minutes: int = Field(ge=1, le=8 * 60)
    completed_at: PastFactTime
    venue_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=ID_PATTERN,
        description="where it took place: one of La Poste's venues or the partner's own premises (404 when unknown "
        "or another partner's; 422 when another partner's premises are named by an admin, or when a France "
        "Services accompaniment is elsewhere than in an Espace France Services)",
    )
    departement: DepartementCode | None = Field(
        None, description=_ignored("the venue's département"), json_schema_extra=REGISTRY_DECIDES
    )
    qpv: bool | None = Field(
        None, description=_ignored("whether the venue is in a QPV"), json_schema_extra=REGISTRY_DECIDES
    )
    rural: bool | None = Field(
        None, description=_ignored("whether the venue is rural"), json_schema_extra=REGISTRY_DECIDES
    )
    adviser_id: str | None = None
    partner_id: str | None = None
    commitment: Commitment = Commitment.DIGITAL_INCLUSION
    client_reference: str | None = CLIENT_REFERENCE

    @model_validator(mode="after")
    def _consistent(self) -> AccompanimentCreate:
        if self.channel == "adviser" and not self.adviser_id:
            raise ValueError("an adviser session names its adviser_id")
        if self.channel == "partner" and not self.partner_id:
            raise ValueError("a partner session names its partner_id")
        return self


class RecordPublic(BaseModel):
    status: str
    id: str
    published: bool
    event_ids: list[str] = []
    record: dict[str, Any] = {}
    ignored: list[str] = Field(default_factory=list, description=IGNORED_DESCRIPTION)


class RegistrationPublic(BaseModel):
    status: str
    workshop_id: str
    registration_id: str
    registration_status: str
    waiting_position: int | None = None
    promoted_registration_id: str | None = None


class SheetReport(BaseModel):
    workshop_id: str
    rows: list[dict[str, Any]]
    recorded: int
    duplicates: int
    rejected: int
    published: bool
