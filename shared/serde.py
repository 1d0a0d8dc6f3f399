"""JSON (de)serialisation of envelopes, schema versions, and the exported JSON Schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from shared.events import EVENT_TYPES, SCHEMA_URN, Envelope, EventData, model_for

__all__ = ["InvalidEvent", "encode", "decode", "decode_record", "decode_json", "json_schema", "UPCASTERS"]

# (type, from_version) → function turning that version's payload into the next version's.
# Old versions stay readable: when a payload changes shape, its model's VERSION goes up and an
# upcaster for the previous version is registered here.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class InvalidEvent(ValueError):
    """A record that cannot be turned into a valid event; the message is the reason, for the dead letter."""


def encode(event: Envelope) -> bytes:
    return event.model_dump_json().encode("utf-8")


def _version_of(dataschema: Any, event_type: str) -> int:
    prefix = f"{SCHEMA_URN}:{event_type}:"
    if not isinstance(dataschema, str) or not dataschema.startswith(prefix):
        raise InvalidEvent(f"dataschema must look like '{prefix}<version>', got {dataschema!r}")
    try:
        return int(dataschema.removeprefix(prefix))
    except ValueError:
        raise InvalidEvent(f"dataschema version is not an integer: {dataschema!r}") from None


def _upcast(event_type: str, version: int, data: Any, model: type[EventData]) -> Any:
    if version > model.VERSION:
        raise InvalidEvent(f"{event_type} version {version} is newer than this reader ({model.VERSION})")
    while version < model.VERSION:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise InvalidEvent(f"no upcaster from {event_type} version {version}")
        data = step(data)
        version += 1
    return data


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def decode_json(doc: Any) -> Envelope:
    """Validate an already-parsed JSON document as an envelope of a known event type."""
    if not isinstance(doc, dict):
        raise InvalidEvent("an event must be a JSON object")
    event_type = doc.get("type")
    if not isinstance(event_type, str):
        raise InvalidEvent("missing or non-string 'type'")
    try:
        model = model_for(event_type)
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from None
    version = _version_of(doc.get("dataschema"), event_type)
    try:
        data = model.model_validate(_upcast(event_type, version, doc.get("data"), model))
        fields = {k: v for k, v in doc.items() if k != "data"}
        fields["dataschema"] = f"{SCHEMA_URN}:{event_type}:{model.VERSION}"
        return Envelope.model_validate({**fields, "data": data})
    except ValidationError as exc:
        raise InvalidEvent(f"invalid {event_type}: {_reason(exc)}") from None


def decode(raw: bytes | str | None) -> Envelope:
    """Parse and validate one record value; InvalidEvent says why it was refused."""
    if raw is None:
        raise InvalidEvent("empty record (no value)")
    try:
        doc = orjson.loads(raw)  # stricter than json (no NaN, valid UTF-8 only) and ~4x faster
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not JSON: {exc}") from None
    return decode_json(doc)


def decode_record(key: bytes | None, value: bytes | str | None) -> Envelope:
    """Decode one Kafka record: its value, and its key, which must be the event's own key."""
    envelope = decode(value)
    if key is not None and key.decode("utf-8", "replace") != envelope.key:
        raise InvalidEvent(f"record key {key!r} does not match the event's key {envelope.key!r}")
    return envelope


def json_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type: the envelope with `type` fixed and `data` that type's payload."""
    model = model_for(event_type)
    envelope = Envelope.model_json_schema()
    payload = model.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**envelope.pop("$defs", {}), **payload.pop("$defs", {})}
    defs.pop("EventData", None)
    props = dict(envelope["properties"])
    props["type"] = {"const": event_type, "type": "string"}
    props["dataschema"] = {"const": f"{SCHEMA_URN}:{event_type}:{model.VERSION}", "type": "string"}
    props["data"] = payload
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_URN}:{event_type}:{model.VERSION}",
        "title": f"{event_type} v{model.VERSION}",
        "type": "object",
        "properties": props,
        "required": sorted(set(envelope.get("required", [])) | {"type", "dataschema", "data"}),
        "additionalProperties": False,
        "$defs": defs,
    }


def all_json_schemas() -> dict[str, dict[str, Any]]:
    return {event_type: json_schema(event_type) for event_type in EVENT_TYPES}
