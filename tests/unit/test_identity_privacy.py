"""Identity tokens and person references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.identity import InvalidToken, Principal, Role, issue_token, verify_token
from shared.privacy import person_ref
from shared.settings import CommonSettings

pytestmark = pytest.mark.unit
KEY = "unit-test-platform-token-key-0123456789"


def test_token_round_trip_and_scope() -> None:
    p = Principal("u-1", Role.PARTNER, partner_id="p-1")
    back = verify_token(issue_token(p, KEY), KEY)
    assert back == p
    assert back.can_access_partner("p-1") and not back.can_access_partner("p-2")
    assert Principal("m", Role.MONITORING).can_access_partner("p-2")
    assert not Principal("m", Role.MONITORING).can_write


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: issue_token(Principal("u", Role.ADMIN), "another-key-entirely-0123456789abcdef"),
        lambda t: issue_token(Principal("u", Role.ADMIN), KEY, now=datetime.now(UTC) - timedelta(days=2)),
    ],
)
def test_tampered_foreign_or_expired_tokens_are_refused(mutate) -> None:
    token = issue_token(Principal("u", Role.ADMIN), KEY)
    with pytest.raises(InvalidToken):
        verify_token(mutate(token), KEY)


def test_person_ref_is_keyed_stable_and_normalised() -> None:
    key = b"k" * 32
    assert person_ref("AB-123 ", key) == person_ref("ab-123", key)
    assert person_ref("AB-123", key) != person_ref("AB-124", key)
    assert person_ref("AB-123", key) != person_ref("AB-123", b"j" * 32)
    assert len(person_ref("x", key)) == 64 and "AB-123" not in person_ref("AB-123", key)
    with pytest.raises(ValueError):
        person_ref("   ", key)


def test_placeholder_secrets_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ValueError, match="person_ref_key"):
        CommonSettings()
