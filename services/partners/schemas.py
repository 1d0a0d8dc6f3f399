"""HTTP schemas of the partners service (events live in shared/, not here)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.partners import domain
from services.partners.domain import EndReason, PartnerKind, Status
from shared.events import Commitment, DepartementCode, FactDate, PartnershipType
from shared.identity import Role

__all__ = [
    "Address",
    "Contact",
    "PartnerCreate",
    "PartnerUpdate",
    "PartnerPublic",
    "PartnershipCreate",
    "PartnershipUpdate",
    "PartnershipPublic",
    "SignCommand",
    "ActivateCommand",
    "RenewCommand",
    "EndCommand",
    "MissionCreate",
    "MissionPublic",
    "VolunteerCreate",
    "CompletionCommand",
    "UserCreate",
    "UserPublic",
    "TokenRequest",
    "TokenPublic",
    "Page",
    "ImportReport",
]

T = TypeVar("T")
ExternalRef = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:/-]+$")]


def _legal_id(value: str) -> str:
    problem = domain.legal_id_problem(value)
    if problem:
        raise ValueError(problem)
    return domain.normalise_legal_id(value)


def _commune(value: str) -> str:
    domain.commune_departement(value)
    return value


LegalId = Annotated[str, AfterValidator(_legal_id)]
CommuneCode = Annotated[str, AfterValidator(_commune)]


def _distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Patch(Strict):
    """A partial update: a field left out is unchanged; a field the record must have may not be sent as null."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _no_null_for_required(self):  # type: ignore[no-untyped-def]
        nulls = [name for name in self.REQUIRED if name in self.model_fields_set and getattr(self, name) is None]
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may not be null (leave a field out to keep it)")
        return self


class Address(Strict):
    street: str = Field(min_length=1, max_length=200)
    postcode: str = Field(pattern=r"^\d{5}$")
    city: str = Field(min_length=1, max_length=100)
    commune_insee: CommuneCode = Field(description="INSEE code of the commune (COG), e.g. 75056, 2A004, 97411")


class Contact(Strict):
    """Personal data: kept in the partners database only, never in events, logs or exports."""

    name: str = Field(min_length=1, max_length=120)
    role: str | None = Field(None, max_length=120)
    email: str | None = Field(None, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(None, pattern=r"^\+?[0-9 .-]{6,20}$")


class PartnerCreate(Strict):
    name: str = Field(min_length=2, max_length=200)
    kind: PartnerKind
    legal_id: LegalId = Field(description="SIRET (14 digits, Luhn checksum) or RNA number (W + 9 digits)")
    address: Address
    departements: Annotated[list[DepartementCode], AfterValidator(_distinct)] = Field(
        min_length=1, description="départements where the partner acts"
    )
    contacts: list[Contact] = Field(default_factory=list, max_length=20)


class PartnerUpdate(Patch):
    REQUIRED = ("name", "kind", "address", "departements", "contacts")

    name: str | None = Field(None, min_length=2, max_length=200)
    kind: PartnerKind | None = None
    address: Address | None = None
    departements: Annotated[list[DepartementCode], AfterValidator(_distinct)] | None = Field(None, min_length=1)
    contacts: list[Contact] | None = Field(None, max_length=20)


class PartnerPublic(BaseModel):
    id: str
    name: str
    kind: PartnerKind
    legal_id: str
    address: Address
    home_departement: str
    departements: list[str]
    skills_label: bool = False
    skills_labelled_on: date | None = None
    contacts: list[Contact] | None = Field(None, description="only in the detail view")


class _Terms(Strict):
    title: str | None = Field(None, max_length=200)
    partnership_type: PartnershipType
    commitments: Annotated[list[Commitment], AfterValidator(_distinct)] = Field(min_length=1)
    departements: Annotated[list[DepartementCode], AfterValidator(_distinct)] = Field(
        min_length=1, description="the territory the partnership covers"
    )
    starts_on: FactDate
    ends_on: FactDate | None = None

    @model_validator(mode="after")
    def _dates(self):  # type: ignore[no-untyped-def]
        try:
            domain.check_terms(self.starts_on, self.ends_on)
        except domain.Invalid as exc:
            raise ValueError(str(exc)) from None
        return self


class PartnershipCreate(_Terms):
    partner_id: str | None = Field(None, description="required for La Poste staff; a partner user creates its own")
    external_ref: ExternalRef | None = Field(
        None, description="the caller's own reference: creating again with it is harmless (same partnership)"
    )


class PartnershipUpdate(Patch):
    """Only a draft can be edited; a signed partnership changes through renewal or end."""

    REQUIRED = ("partnership_type", "commitments", "departements", "starts_on")

    title: str | None = Field(None, max_length=200)
    partnership_type: PartnershipType | None = None
    commitments: Annotated[list[Commitment], AfterValidator(_distinct)] | None = Field(None, min_length=1)
    departements: Annotated[list[DepartementCode], AfterValidator(_distinct)] | None = Field(None, min_length=1)
    starts_on: FactDate | None = None
    ends_on: FactDate | None = None


class Renewal(BaseModel):
    renewed_on: date
    previous_ends_on: date
    ends_on: date


class PartnershipPublic(BaseModel):
    id: str
    partner_id: str
    external_ref: str | None = None
    title: str | None = None
    partnership_type: PartnershipType
    commitments: list[Commitment]
    departements: list[str]
    status: Status
    starts_on: date
    ends_on: date | None = None
    signed_on: date | None = None
    activated_on: date | None = None
    ended_on: date | None = None
    end_reason: EndReason | None = None
    renewals: list[Renewal] = Field(default_factory=list)
    published: bool = Field(True, description="false: stored, its event still waits in the outbox")


class SignCommand(Strict):
    signed_on: FactDate


class ActivateCommand(Strict):
    activated_on: FactDate


class RenewCommand(Strict):
    renewed_on: FactDate
    ends_on: FactDate = Field(description="the new end date, later than the current one")


class EndCommand(Strict):
    ended_on: FactDate
    reason: EndReason
    note: str | None = Field(None, max_length=500, description="internal note: stored, never published")


class MissionCreate(Strict):
    partner_id: str | None = None
    external_ref: ExternalRef | None = None
    title: str = Field(min_length=3, max_length=200)
    description: str | None = Field(None, max_length=4000)
    skills: list[str] = Field(default_factory=list, max_length=20)
    departement: DepartementCode
    commitment: Commitment
    published_on: FactDate
    places: int = Field(1, ge=1, le=500)


class MissionPublic(BaseModel):
    id: str
    partner_id: str
    external_ref: str | None = None
    title: str
    description: str | None = None
    skills: list[str]
    departement: str
    commitment: Commitment
    published_on: date
    places: int
    status: domain.MissionStatus
    volunteers: int
    completed_on: date | None = None
    hours: float | None = None
    published: bool = True


class VolunteerCreate(Strict):
    staff_id: str = Field(
        min_length=3, max_length=40, pattern=r"^[A-Za-z0-9-]+$", description="the postal employee's staff number"
    )


class CompletionCommand(Strict):
    completed_on: FactDate
    hours: float = Field(gt=0, le=100_000, description="total hours given by the volunteers")


class UserCreate(Strict):
    username: str = Field(min_length=3, max_length=120, pattern=r"^[A-Za-z0-9._@+-]+$")
    password: str = Field(min_length=12, max_length=200)
    role: Role
    partner_id: str | None = None
    adviser_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="advisers only: their facilitator id in the workshops registry (their sessions and "
        "accompaniments are theirs)",
    )

    @model_validator(mode="after")
    def _binding(self):  # type: ignore[no-untyped-def]
        if self.role == Role.PARTNER and not self.partner_id:
            raise ValueError("a partner user must be bound to a partner_id")
        if self.role != Role.PARTNER and self.partner_id:
            raise ValueError("only partner users are bound to a partner")
        if self.role == Role.ADVISER and not self.adviser_id:
            raise ValueError("an adviser user must be bound to an adviser_id (their facilitator id)")
        if self.role != Role.ADVISER and self.adviser_id:
            raise ValueError("only adviser users are bound to an adviser_id")
        return self


class UserPublic(BaseModel):
    id: str
    role: Role
    partner_id: str | None = None
    adviser_id: str | None = None
    active: bool = True


class TokenRequest(Strict):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)

    @field_validator("username")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    role: Role
    partner_id: str | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int


class RowProblem(BaseModel):
    line: int
    external_ref: str | None = None
    reasons: list[str]


class ImportReport(BaseModel):
    rows: int
    imported: int
    unchanged: int
    rejected: int
    partners_created: int
    problems: list[RowProblem]
