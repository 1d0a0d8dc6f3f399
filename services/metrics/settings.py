"""Metrics service settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import CommonSettings

__all__ = ["MetricsSettings"]


class MetricsSettings(CommonSettings):
    app_id: str = Field("alliance-metrics", alias="METRICS_APP_ID")
    data_dir: Path = Field(Path(".data/faust"), alias="METRICS_DATA_DIR")
    goals_file: Path = Field(Path(__file__).with_name("goals.json"), alias="METRICS_GOALS_FILE")
    mongodb_database: str = Field("metrics", alias="METRICS_DB")
    # A restarted worker waits for the killed one's session to expire before it gets its partitions back.
    session_timeout: float = Field(10.0, alias="METRICS_SESSION_TIMEOUT", ge=6.0)
