"""The event catalog as an AsyncAPI 3 document, generated from the contracts (`shared.events`, `shared.topics`):
every topic, its key, every event type and version, who publishes and who consumes. Served by every service at
`GET /asyncapi.json`; `python -m shared.asyncapi` prints it."""

from __future__ import annotations

import json
from typing import Any

from shared.events import EVENT_TYPES, SPECVERSION
from shared.serde import json_schema
from shared.topics import ALL_TOPICS, DEAD_LETTER, DETECTION, DETECTION_INGEST, PARTNERS, WORKSHOPS, Topic, topic_for

__all__ = ["document", "PRODUCERS", "CONSUMERS"]

# Who writes and who reads each topic (the services are the design card's; terminals are the counters' software).
PRODUCERS: dict[str, tuple[str, ...]] = {
    PARTNERS.name: ("partners",),
    WORKSHOPS.name: ("workshops",),
    DETECTION.name: ("detection",),
    DETECTION_INGEST.name: ("terminals",),
    DEAD_LETTER.name: ("detection", "metrics"),
}
CONSUMERS: dict[str, tuple[str, ...]] = {
    PARTNERS.name: ("metrics",),
    WORKSHOPS.name: ("metrics",),
    DETECTION.name: ("metrics",),
    DETECTION_INGEST.name: ("detection",),
    DEAD_LETTER.name: ("operations",),
}
KEYS: dict[str, str] = {
    PARTNERS.name: "the partnership or mission id",
    WORKSHOPS.name: "the person reference for help and its retractions (`anon:<event id>` when anonymous); "
    "the workshop, adviser or venue id otherwise",
    DETECTION.name: "the person reference (`anon:<event id>` when anonymous)",
    DETECTION_INGEST.name: "the terminal id; the value is the terminal's signed record",
    DEAD_LETTER.name: "the refused record's own key",
}


def _channel_id(topic: Topic) -> str:
    return topic.name.replace(".", "-")


def _message_id(event_type: str) -> str:
    return event_type.replace(".", "-")


def _payload(event_type: str) -> dict[str, Any]:
    """The envelope's JSON Schema for one type, its local `$defs` references made absolute in this document."""
    schema = json_schema(event_type)
    schema.pop("$schema", None)
    base = f"#/components/schemas/{_message_id(event_type)}/$defs/"
    text = json.dumps(schema).replace('"#/$defs/', f'"{base}')
    return json.loads(text)


def document(version: str = "1") -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    by_topic: dict[str, list[str]] = {t.name: [] for t in ALL_TOPICS}
    for event_type, model in sorted(EVENT_TYPES.items()):
        mid = _message_id(event_type)
        topic = topic_for(event_type)
        by_topic[topic.name].append(mid)
        schemas[mid] = _payload(event_type)
        messages[mid] = {
            "name": event_type,
            "title": f"{event_type} v{model.VERSION}",
            "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else event_type,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{mid}"},
            "headers": {
                "type": "object",
                "properties": {"ce_type": {"const": event_type}, "ce_id": {"type": "string", "format": "uuid"}},
            },
            "bindings": {"kafka": {"key": {"type": "string", "description": KEYS[topic.name]}}},
            "x-version": model.VERSION,
            "x-key-field": model.KEY_FIELD,
        }
    for topic in ALL_TOPICS:
        cid = _channel_id(topic)
        refs = {m: {"$ref": f"#/components/messages/{m}"} for m in by_topic[topic.name]}
        if not refs:  # raw terminal records and dead letters are not envelopes
            refs = {f"{cid}-record": {"$ref": f"#/components/messages/{cid}-record"}}
            messages[f"{cid}-record"] = {
                "name": f"{topic.name} record",
                "contentType": "application/json",
                "payload": {"type": "object"},
                "bindings": {"kafka": {"key": {"type": "string", "description": KEYS[topic.name]}}},
            }
        channels[cid] = {
            "address": topic.name,
            "description": f"Key: {KEYS[topic.name]}.",
            "messages": refs,
            "bindings": {
                "kafka": {
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "replicas": 1,
                    "topicConfiguration": {"retention.ms": topic.retention_ms},
                }
            },
        }
        message_refs = [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in refs]
        for service in PRODUCERS[topic.name]:
            operations[f"{service}-sends-{cid}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": message_refs,
                "x-service": service,
            }
        for service in CONSUMERS[topic.name]:
            operations[f"{service}-receives-{cid}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": message_refs,
                "x-service": service,
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Alliance Dynamique — events",
            "version": version,
            "description": (
                f"CloudEvents {SPECVERSION} envelopes with a typed `data` payload; `id` is the idempotency key end "
                "to end. Generated from shared/events.py and shared/topics.py."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "KAFKA_BOOTSTRAP_SERVERS"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, ensure_ascii=False))
