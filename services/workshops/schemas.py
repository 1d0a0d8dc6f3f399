"""HTTP schemas of the workshops service (events live in shared/, not here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.events import DepartementCode, WorkshopTheme

__all__ = ["AttendanceCreate", "AttendancePublic", "RetractionCreate"]

ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")


class AttendanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attendance_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="the caller's id for this attendance: sending it again is harmless",
    )
    workshop_id: str = ID
    theme: WorkshopTheme
    venue_id: str = ID
    departement: DepartementCode
    qpv: bool = False
    rural: bool = False
    partner_id: str | None = None
    attended_at: AwareDatetime
    client_reference: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="the client's identifier; hashed on arrival and never stored. Absent: anonymous",
    )

    @field_validator("attended_at")
    @classmethod
    def _not_in_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + timedelta(minutes=5):
            raise ValueError("attended_at is in the future")
        return value


class AttendancePublic(BaseModel):
    status: str
    attendance_id: str
    event_id: str
    published: bool


class RetractionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500)
