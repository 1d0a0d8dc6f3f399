"""The AsyncAPI event catalog matches the contracts and the live broker: every topic with its partitions and
retention, every event type with its version and schema, served by every service."""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from shared.asyncapi import document
from shared.events import EVENT_TYPES
from shared.serde import json_schema
from shared.topics import ALL_TOPICS
from tests.conftest import KAFKA, ROOT

pytestmark = pytest.mark.integration
# The official AsyncAPI 3.0.0 JSON Schema, from npm @asyncapi/specs (installed by `make install` with `npm ci`).
SPEC = ROOT / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"


def test_catalog_is_a_valid_asyncapi_3_document() -> None:
    schema = json.loads(SPEC.read_text(encoding="utf-8"))
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(document())]
    assert not errors, errors[:5]


def test_catalog_channels_are_the_live_topics(services) -> None:
    doc = document()
    channels = {c["address"]: c for c in doc["channels"].values()}
    assert set(channels) == {t.name for t in ALL_TOPICS}
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    try:
        described = {t["name"]: t for t in admin.describe_topics(list(channels))}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in channels])
    finally:
        admin.close()
    retention = {name: int(entries["retention.ms"]["value"]) for name, entries in configs["topic"].items()}
    for name, channel in channels.items():
        kafka = channel["bindings"]["kafka"]
        assert kafka["partitions"] == len(described[name]["partitions"]), name
        assert kafka["topicConfiguration"]["retention.ms"] == retention[name], name


def test_catalog_names_every_event_type_with_its_version_schema_and_producer() -> None:
    doc = document()
    messages = {m["name"]: m for m in doc["components"]["messages"].values()}
    for event_type, model in EVENT_TYPES.items():
        message = messages[event_type]
        assert message["x-version"] == model.VERSION
        schema = doc["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
        assert schema["properties"]["dataschema"] == json_schema(event_type)["properties"]["dataschema"]
    senders = {op["x-service"] for op in doc["operations"].values() if op["action"] == "send"}
    assert {"partners", "workshops", "detection"} <= senders
    receivers = {
        op["channel"]["$ref"]
        for op in doc["operations"].values()
        if op["x-service"] == "metrics" and op["action"] == "receive"
    }
    assert len(receivers) == 3  # the metrics worker reads the three event topics


def test_every_service_serves_the_catalog(services) -> None:
    for svc in services.values():
        r = httpx.get(f"{svc.url}/asyncapi.json", timeout=10)
        assert r.status_code == 200 and r.json()["asyncapi"] == "3.0.0", svc.name
