"""HTTP and ingest schemas of the detection service (events live in shared/, not here)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events import DepartementCode, FactTime, Need, Referral

__all__ = [
    "DetectionIn",
    "BatchIn",
    "BackfillIn",
    "BackfillReport",
    "ItemResult",
    "Report",
    "OfficeIn",
    "OfficeImport",
    "TerminalCreate",
    "TerminalIssued",
]

ID_PATTERN = r"^[A-Za-z0-9_:-][A-Za-z0-9_:.-]*$"  # no "/": office/detection pairs are joined with it
TERMINAL_ID_PATTERN = r"^[A-Za-z0-9_:-]+$"  # no ".": it separates the terminal id from the token's secret


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectionIn(_Strict):
    """One detection as a terminal sends it (over HTTP or on the ingest topic)."""

    detection_id: str = Field(
        min_length=1, max_length=64, pattern=ID_PATTERN, description="the terminal's own id: its idempotency key"
    )
    occurred_at: FactTime = Field(description="when it happened at the counter (may be days ago)")
    needs: list[Need] = Field(min_length=1, max_length=len(Need))
    client_reference: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="the client's identifier; hashed on arrival, never stored. Absent: an anonymous detection "
        "(counted as a detection, not as a person detected, not in the funnel)",
    )
    consent: bool = Field(description="the person agreed to be followed up (referral)")
    referral: Referral | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DetectionIn:
        if self.referral is not None:
            if self.referral.partner_id is None and self.referral.theme is None:
                raise ValueError("a referral names a partner_id or a workshop theme")
            if not self.consent:
                raise ValueError("a referral needs the person's consent")
            if self.client_reference is None:
                raise ValueError("a referral needs a client_reference: the person is followed up by it")
        if len(set(self.needs)) != len(self.needs):
            raise ValueError("needs are listed once each")
        return self


class BatchIn(_Strict):
    """A backlog: the items are checked one by one (a bad item never rejects the others)."""

    office_id: str | None = Field(None, description="optional: must be the terminal's own office")
    detections: list[Any] = Field(min_length=1)


class BackfillIn(_Strict):
    """Past detections of one office, with their original times (older than the live window too)."""

    office_id: str = Field(min_length=1, max_length=64, description="an office of the registry (closed since: allowed)")
    terminal_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=TERMINAL_ID_PATTERN,
        description="the terminal that made them, if known: registered to this office (revoked since: allowed)",
    )
    reason: str = Field(
        min_length=1,
        max_length=500,
        description="why, for the audit record (e.g. 'counter files of 2022'); no personal data",
    )
    detections: list[Any] = Field(
        min_length=1, description="detections as for POST /v1/detections, each checked on its own"
    )


class ItemResult(BaseModel):
    detection_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None = None
    reason: str | None = None


class Report(BaseModel):
    office_id: str
    terminal_id: str
    accepted: int
    duplicates: int
    rejected: int
    published: bool = Field(description="false: accepted items are stored and the relay will publish them")
    results: list[ItemResult]


class BackfillReport(Report):
    backfill_id: str = Field(description="the audit record of this backfill: GET /v1/backfills/{backfill_id}")


class OfficeIn(_Strict):
    office_id: str = Field(min_length=1, max_length=64, pattern=TERMINAL_ID_PATTERN)
    name: str = Field(min_length=1, max_length=120, description="the place's name (never a person's)")
    commune_insee: str = Field(pattern=r"^(\d{5}|2[AB]\d{3})$")
    departement: DepartementCode | None = Field(None, description="default: from the commune code")
    qpv: bool = False
    rural: bool = False
    france_services: bool = False
    active: bool = True

    @model_validator(mode="after")
    def _departement_of_commune(self) -> OfficeIn:
        code = self.commune_insee
        derived = code[:3] if code.startswith("97") else code[:2]
        if self.departement is None:
            object.__setattr__(self, "departement", derived)
        elif self.departement != derived:
            raise ValueError(f"commune {code} is not in département {self.departement}")
        return self


class OfficeImport(_Strict):
    offices: list[OfficeIn] = Field(min_length=1, max_length=50_000)


class TerminalCreate(_Strict):
    office_id: str = Field(min_length=1, max_length=64)
    terminal_id: str | None = Field(None, min_length=1, max_length=64, pattern=TERMINAL_ID_PATTERN)
    label: str | None = Field(None, max_length=120, description="e.g. 'guichet 2' (never a person's name)")


class TerminalIssued(BaseModel):
    terminal_id: str
    office_id: str
    token: str = Field(description="shown once: only its hash is stored")
