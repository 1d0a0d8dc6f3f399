"""The metrics' Prometheus gauges: each worker sets them for the partitions it owns, the API for the whole
deployment (from the partials), under the same names."""

from __future__ import annotations

from prometheus_client import Gauge

__all__ = ["LAG", "NEWEST_AGE"]

LAG = Gauge("metrics_consumer_lag", "Events on the log not yet applied, per source partition", ["topic", "partition"])
NEWEST_AGE = Gauge("metrics_newest_event_age_seconds", "Age of the newest applied event (broker timestamp)")
