"""Contract tests: every event type is registered, round-trips through JSON and its JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from shared import events as ev
from shared.serde import InvalidEvent, decode, encode, json_schema
from shared.topics import topic_for
from tests import samples

pytestmark = pytest.mark.unit
ALL = samples.every_event_type()


def test_every_registered_type_has_a_sample() -> None:
    assert {e.type for e in ALL} == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("event", ALL, ids=lambda e: e.type)
def test_round_trip_through_json(event: ev.Envelope) -> None:
    raw = encode(event)
    back = decode(raw)
    assert back == event
    assert type(back.data) is type(event.data)
    assert encode(back) == raw


@pytest.mark.parametrize("event", ALL, ids=lambda e: e.type)
def test_json_validates_against_exported_schema(event: ev.Envelope) -> None:
    schema = json_schema(event.type)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(encode(event)), schema)


@pytest.mark.parametrize("event", ALL, ids=lambda e: e.type)
def test_schema_refuses_unknown_payload_fields(event: ev.Envelope) -> None:
    doc = json.loads(encode(event))
    doc["data"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json_schema(event.type))
    with pytest.raises(InvalidEvent, match="surprise"):
        decode(json.dumps(doc))


@pytest.mark.parametrize("event", ALL, ids=lambda e: e.type)
def test_every_type_has_a_topic_and_a_key(event: ev.Envelope) -> None:
    assert topic_for(event.type).name
    assert event.key


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{not json", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"type": "nope.happened"}', "unknown event type"),
        (None, "empty record"),
    ],
)
def test_unparseable_records_say_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode(raw)


def test_future_schema_version_is_refused_with_reason() -> None:
    doc = json.loads(encode(ALL[0]))
    doc["dataschema"] = doc["dataschema"].rsplit(":", 1)[0] + ":99"
    with pytest.raises(InvalidEvent, match="newer than this reader"):
        decode(json.dumps(doc))


def test_old_version_is_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared import serde

    event = samples.detected(samples.ref(7))
    doc = json.loads(encode(event))
    doc["dataschema"] = doc["dataschema"].rsplit(":", 1)[0] + ":0"
    doc["data"]["needs"] = doc["data"].pop("needs")[0]  # pretend v0 carried a single need
    monkeypatch.setitem(serde.UPCASTERS, ("illectronism.detected", 0), lambda d: {**d, "needs": [d["needs"]]})
    assert decode(json.dumps(doc)) == event


def test_territory_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="region"):
        ev.VenueOpened(
            venue_id="v",
            kind="france_services",
            opened_on="2022-01-01",
            departement="75",
            region="84",
            timezone="Europe/Paris",
        )
    with pytest.raises(ValueError, match="unknown département"):
        ev.AdviserDeployed(adviser_id="a", departement="99", deployed_on="2022-01-01")


def test_naive_event_time_is_refused() -> None:
    doc = json.loads(encode(ALL[0]))
    doc["time"] = "2022-05-01T10:00:00"
    with pytest.raises(InvalidEvent, match="time"):
        decode(json.dumps(doc))


def test_anonymous_help_is_keyed_by_its_own_id_and_its_retraction_follows() -> None:
    anon = samples.attended(None)
    assert anon.key == f"anon:{anon.id}"
    assert samples.retraction(anon).key == anon.key


def test_an_anonymous_detection_has_no_person_reference_its_own_key_and_its_schema() -> None:
    event = samples.detected(None, referred=False)
    assert event.data.person_ref is None and event.key == f"anon:{event.id}"
    doc = json.loads(encode(event))
    jsonschema.validate(doc, json_schema(event.type))
    assert decode(encode(event)) == event
    assert "person_ref" not in json_schema(event.type)["properties"]["data"]["required"]


@pytest.mark.parametrize("when", ["1999-12-31T23:59:59+00:00", "9999-12-31T23:30:00+00:00", "2100-01-01T00:00:00Z"])
def test_fact_times_outside_the_plausible_years_are_refused(when: str) -> None:
    """A year-9999 attendance must never reach the counters: the same contract refuses it on both sides."""
    event = next(e for e in samples.every_event_type() if e.type == "workshop.attended")
    doc = json.loads(encode(event))
    doc["time"] = when
    with pytest.raises(InvalidEvent, match="outside 2000-2099"):
        decode(json.dumps(doc).encode())


def test_fact_dates_outside_the_plausible_years_are_refused() -> None:
    event = next(e for e in samples.every_event_type() if e.type == "partnership.signed")
    doc = json.loads(encode(event))
    doc["data"]["signed_on"] = "0001-01-01"
    with pytest.raises(InvalidEvent, match="outside 2000-2099"):
        decode(json.dumps(doc).encode())
