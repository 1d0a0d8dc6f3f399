"""Topic names, the events each one carries, and how they are created."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Topic",
    "PARTNERS",
    "WORKSHOPS",
    "DETECTION",
    "DETECTION_INGEST",
    "DEAD_LETTER",
    "EVENT_TOPICS",
    "ALL_TOPICS",
    "topic_for",
]

# One partition count for every event topic: person-keyed topics must be co-partitioned so that one
# person's detections and help meet in the same partition of one metrics worker. Twelve lets up to twelve
# workers share the load. Topics that already exist keep their count (see the README: moving keyed events to
# more partitions would split people across them).
PARTITIONS = 12


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    partitions: int = PARTITIONS
    # Event topics are the system of record for replay: they are never deleted by age.
    retention_ms: int = -1
    # A compacted topic keeps the latest record of each key (the metrics partials).
    compacted: bool = False

    @property
    def configs(self) -> dict[str, str]:
        configs = {"retention.ms": str(self.retention_ms), "min.insync.replicas": "1"}
        if self.compacted:
            # Segments roll every 10 minutes so that compaction, which never touches the open one, keeps up.
            configs |= {"cleanup.policy": "compact", "segment.ms": str(600_000), "min.cleanable.dirty.ratio": "0.1"}
        return configs


PARTNERS = Topic("partners.events")  # keyed by partnership or mission id
WORKSHOPS = Topic("workshops.events")  # help keyed by person reference; workshops by workshop id
DETECTION = Topic("detection.events")  # keyed by person reference
# Raw terminal records still hold the client's own reference until the detection service hashes it: kept
# one day only, long enough to ride out a service restart.
DETECTION_INGEST = Topic("detection.ingest", retention_ms=24 * 3600 * 1000)
# Refused records, with the reason: long enough to look into and replay them, not kept for ever (a refused record
# may carry what a producer should not have sent). `ensure_topics` only creates missing topics: one created
# before this bound keeps its own configuration until changed with Kafka's tools (kafka-configs.sh --alter).
DEAD_LETTER_RETENTION_DAYS = 30
DEAD_LETTER = Topic("platform.deadletter", retention_ms=DEAD_LETTER_RETENTION_DAYS * 24 * 3600 * 1000)

EVENT_TOPICS = (PARTNERS, WORKSHOPS, DETECTION)
ALL_TOPICS = (*EVENT_TOPICS, DETECTION_INGEST, DEAD_LETTER)

_BY_PREFIX = {
    "partnership.": PARTNERS,
    "skills_mission.": PARTNERS,
    "illectronism.": DETECTION,
    "workshop.": WORKSHOPS,
    "attendance.": WORKSHOPS,
    "accompaniment.": WORKSHOPS,
    "adviser.": WORKSHOPS,
    "venue.": WORKSHOPS,
}


def topic_for(event_type: str) -> Topic:
    """The topic an event type is published on (one topic per producing context)."""
    for prefix, topic in _BY_PREFIX.items():
        if event_type.startswith(prefix):
            return topic
    raise ValueError(f"no topic for event type {event_type!r}")
