"""Pure rules of the detection service: item checks, the time window, ids, tokens, redaction, the demo network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.detection.domain import Office, Rejected, check_item, record_id
from services.detection.ingest import redact
from services.detection.network import generate
from services.detection.schemas import OfficeIn
from shared.privacy import person_ref
from shared.terminal_sdk import (
    detection_event_id,
    ingest_record,
    new_token,
    sign,
    split_token,
    token_hash,
    verify_signature,
)

pytestmark = pytest.mark.unit
KEY = b"unit-test-person-ref-key-0123456789"
NOW = datetime(2026, 6, 15, 10, 0, tzinfo=UTC)
OFFICE = Office("o-93", "93", "11", "Europe/Paris", qpv=True, rural=False, france_services=False)
RULES = {"key": KEY, "now": NOW, "window": timedelta(days=30), "skew": timedelta(minutes=5)}


def raw(**over) -> dict:
    body = {
        "detection_id": "d-1",
        "occurred_at": NOW.isoformat(),
        "needs": ["online_banking"],
        "client_reference": "FAKE-CLIENT-1",
        "consent": True,
    }
    return body | over


def test_a_good_item_becomes_an_enriched_pseudonymous_event() -> None:
    checked = check_item(raw(), OFFICE, "t-1", **RULES)
    event = checked.event
    assert event.id == detection_event_id("o-93", "d-1") and checked.record_id == record_id("o-93", "d-1")
    assert event.data.person_ref == person_ref("FAKE-CLIENT-1", KEY) and event.key == event.data.person_ref
    assert (event.data.region, event.data.qpv, event.data.timezone) == ("11", True, "Europe/Paris")
    assert "FAKE-CLIENT-1" not in event.model_dump_json()
    assert event.time == NOW


def test_the_event_id_depends_on_office_and_client_id_only() -> None:
    a = check_item(raw(), OFFICE, "t-1", **RULES).event
    b = check_item(raw(needs=["taxes"]), OFFICE, "t-2", **RULES).event
    other = Office("o-75", "75", "11", "Europe/Paris", qpv=False, rural=False, france_services=False)
    assert a.id == b.id != check_item(raw(), other, "t-1", **RULES).event.id


@pytest.mark.parametrize(
    "over, reason",
    [
        ({"occurred_at": (NOW + timedelta(minutes=6)).isoformat()}, "in the future"),
        ({"occurred_at": (NOW - timedelta(days=31)).isoformat()}, "older than the accepted window"),
        ({"occurred_at": "2026-06-15T10:00:00"}, "timezone"),
        ({"needs": ["online_banking", "online_banking"]}, "once each"),
        ({"referral": {}}, "partner_id or a workshop theme"),
        ({"consent": False, "referral": {"theme": "online_banking"}}, "consent"),
        ({"client_reference": "   "}, "empty"),
        ({"office_id": "o-75"}, "Extra inputs"),
    ],
)
def test_bad_items_are_rejected_with_a_reason(over: dict, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        check_item(raw(**over), OFFICE, "t-1", **RULES)


def test_an_item_without_client_reference_is_an_anonymous_detection() -> None:
    body = {k: v for k, v in raw().items() if k != "client_reference"}
    event = check_item(body, OFFICE, "t-1", **RULES).event
    assert event.data.person_ref is None and event.key == f"anon:{event.id}"
    assert event.id == detection_event_id("o-93", "d-1")  # the same idempotency as a named one
    with pytest.raises(Rejected, match="referral needs a client_reference"):
        check_item(body | {"referral": {"theme": "online_banking"}}, OFFICE, "t-1", **RULES)


def test_without_a_window_only_the_contract_bounds_and_the_future_are_refused() -> None:
    backfill = RULES | {"window": None}
    old = datetime(2022, 3, 1, 9, tzinfo=UTC)
    assert check_item(raw(occurred_at=old.isoformat()), OFFICE, "t-1", **backfill).event.time == old
    with pytest.raises(Rejected, match="outside 2000-2099"):
        check_item(raw(occurred_at="1999-12-31T23:00:00+00:00"), OFFICE, "t-1", **backfill)
    with pytest.raises(Rejected, match="in the future"):
        check_item(raw(occurred_at=(NOW + timedelta(hours=1)).isoformat()), OFFICE, "t-1", **backfill)
    with pytest.raises(Rejected, match="older than the accepted window"):
        check_item(raw(occurred_at=old.isoformat()), OFFICE, "t-1", **RULES)


def test_a_late_item_inside_the_window_keeps_its_time() -> None:
    late = NOW - timedelta(days=29, hours=23)
    assert check_item(raw(occurred_at=late.isoformat()), OFFICE, "t-1", **RULES).event.time == late


def test_rejection_reasons_never_echo_the_client_reference() -> None:
    with pytest.raises(Rejected) as exc:
        check_item(raw(client_reference="FAKE-" + "x" * 200), OFFICE, "t-1", **RULES)
    assert "xxxxxxxx" not in str(exc.value)


def test_tokens_hash_and_signatures() -> None:
    token, stored = new_token("t-1")
    terminal_id, secret = split_token(token)
    assert terminal_id == "t-1" and token_hash(secret) == stored and secret not in stored
    key, value = ingest_record("t-1", "o-1", raw())
    assert key == b"o-1/d-1"
    assert verify_signature(value, sign(value, stored), stored)
    assert not verify_signature(value + b" ", sign(value, stored), stored)
    assert not verify_signature(value, sign(value, new_token("t-1")[1]), stored)
    with pytest.raises(ValueError):
        split_token("no-separator")


def test_dead_letters_keep_no_client_reference() -> None:
    _, value = ingest_record("t-1", "o-1", raw(client_reference="FAKE-SECRET-REF"))
    kept = redact(value)
    assert b"FAKE-SECRET-REF" not in kept and json.loads(kept)["detection"]["needs"] == ["online_banking"]
    assert b"FAKE" not in redact(b'{"client_reference": "FAKE-1"')  # unreadable: withheld
    assert b"plain" not in redact(b"plain")  # not JSON: it cannot be told apart, withheld whole
    clean = b'{"v": 1, "detection": {"needs": ["email"]}}'
    assert redact(clean) == clean  # nothing to blank out: the same bytes


def test_redaction_parses_before_deciding_so_an_escaped_key_is_redacted() -> None:
    escaped = b'{"v": 1, "detection": {"client\\u005freference": "FAKE-ESCAPED-REF", "needs": ["email"]}}'
    assert json.loads(escaped)["detection"]["client_reference"] == "FAKE-ESCAPED-REF"
    kept = redact(escaped)
    assert b"FAKE-ESCAPED-REF" not in kept and json.loads(kept)["detection"]["client_reference"] == "[redacted]"
    nested = b'[{"items": [{"Client_Reference": "FAKE-NESTED"}]}]'
    assert b"FAKE-NESTED" not in redact(nested)
    assert b"FAKE" not in redact(b"[" * 10_000 + b'"FAKE-DEEP"' + b"]" * 10_000)  # no parser recursion


def test_office_departement_comes_from_the_commune() -> None:
    assert OfficeIn(office_id="o", name="n", commune_insee="97411").departement == "974"
    assert OfficeIn(office_id="o", name="n", commune_insee="2B033").departement == "2B"
    with pytest.raises(ValueError, match="not in département"):
        OfficeIn(office_id="o", name="n", commune_insee="75056", departement="93")


def test_the_demo_network_is_national_deterministic_and_has_the_source_figures() -> None:
    offices = generate()
    assert len(offices) == 17_000 and len({o.office_id for o in offices}) == 17_000
    assert sum(o.qpv for o in offices) == 500 and sum(o.france_services for o in offices) == 350
    assert len({o.departement for o in offices}) == 101
    assert not any(o.qpv and o.france_services for o in offices)
    assert [o.office_id for o in generate()[:50]] == [o.office_id for o in offices[:50]]
    assert generate(seed=1) != offices
