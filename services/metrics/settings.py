"""Metrics service settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from shared.settings import CommonSettings

__all__ = ["MetricsSettings"]


class MetricsSettings(CommonSettings):
    app_id: str = Field("alliance-metrics", alias="METRICS_APP_ID")
    data_dir: Path = Field(Path(".data/faust"), alias="METRICS_DATA_DIR")
    # rocksdb: the table is kept on local disk under data_dir and a restart reads only the changelog's tail;
    # memory: every start rebuilds the table from the whole changelog.
    store: Literal["rocksdb", "memory"] = Field("rocksdb", alias="METRICS_STORE")
    goals_file: Path = Field(Path(__file__).with_name("goals.json"), alias="METRICS_GOALS_FILE")
    mongodb_database: str = Field("metrics", alias="METRICS_DB")
    # A restarted worker waits for the killed one's session to expire before it gets its partitions back.
    session_timeout: float = Field(10.0, alias="METRICS_SESSION_TIMEOUT", ge=6.0)
    # Workers of one app share its consumer group; each has its own local store and name (services.sh numbers them).
    worker_id: str = Field("1", alias="METRICS_WORKER_ID", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    # How often a worker publishes its partitions' partials (partials.py), at most.
    partials_interval: float = Field(0.2, alias="METRICS_PARTIALS_INTERVAL", gt=0, le=10)
