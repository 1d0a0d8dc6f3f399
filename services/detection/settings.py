"""Detection service settings."""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.ratelimit import check_rules
from shared.settings import CommonSettings
from shared.topics import DETECTION_INGEST

__all__ = ["DetectionSettings"]


class DetectionSettings(CommonSettings):
    mongodb_database: str = Field("detection", alias="DETECTION_DB")
    max_batch: int = Field(500, alias="DETECTION_MAX_BATCH", ge=1, le=5000)
    max_body_bytes: int = Field(2 * 1024 * 1024, alias="DETECTION_MAX_BODY_BYTES", ge=1024)
    window_days: int = Field(30, alias="DETECTION_WINDOW_DAYS", ge=1, description="oldest detection accepted")
    future_skew_s: int = Field(300, alias="DETECTION_FUTURE_SKEW_S", ge=0, description="terminal clock tolerance")
    cache_ttl_s: float = Field(5.0, alias="DETECTION_CACHE_TTL_S", ge=0, description="office/terminal cache")
    relay_interval_s: float = Field(2.0, alias="DETECTION_RELAY_INTERVAL_S", gt=0)
    relay_grace_s: float = Field(30.0, alias="DETECTION_RELAY_GRACE_S", ge=0, description="age of a stuck batch")
    kafka_retry_s: float = Field(2.0, alias="DETECTION_KAFKA_RETRY_S", gt=0)
    # Requests of one terminal to POST /v1/detections (`limits` notation; a backlog is one request of many items).
    terminal_rate_limit: str = Field("20/second;600/minute", alias="DETECTION_TERMINAL_RATE_LIMIT")
    # Requests of one admin to POST /v1/backfill/detections (each a batch of up to DETECTION_MAX_BATCH items).
    backfill_rate_limit: str = Field("10/second;300/minute", alias="DETECTION_BACKFILL_RATE_LIMIT")
    ingest_enabled: bool = Field(True, alias="DETECTION_INGEST_ENABLED")
    ingest_topic: str = Field(DETECTION_INGEST.name, alias="DETECTION_INGEST_TOPIC")
    ingest_group_override: str | None = Field(None, alias="DETECTION_INGEST_GROUP")

    _rules = field_validator("terminal_rate_limit", "backfill_rate_limit")(check_rules)

    @property
    def ingest_group(self) -> str:
        # One consumer group per database: two copies of the service on one broker never steal each other's
        # records (each knows only its own terminals).
        return self.ingest_group_override or f"detection-ingest.{self.mongodb_database}"
