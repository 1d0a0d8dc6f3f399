"""Workshops service settings."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings

__all__ = ["WorkshopsSettings"]


class WorkshopsSettings(CommonSettings):
    mongodb_database: str = Field("workshops", alias="WORKSHOPS_DB")
    outbox_interval_s: float = Field(1.0, alias="WORKSHOPS_OUTBOX_INTERVAL_S", gt=0)
