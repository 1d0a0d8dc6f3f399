"""Person references: a keyed hash of a client identifier, so no raw identifier ever leaves a service."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

__all__ = ["person_ref", "PERSON_REF_PATTERN"]

PERSON_REF_PATTERN = r"^[0-9a-f]{64}$"


def _normalise(client_reference: str) -> bytes:
    # The same client typed with other spacing or case must give the same reference.
    text = unicodedata.normalize("NFKC", client_reference).strip().casefold()
    if not text:
        raise ValueError("client reference is empty")
    return text.encode("utf-8")


def person_ref(client_reference: str, key: bytes) -> str:
    """HMAC-SHA256 of the normalised client reference under the platform's secret key, as hex."""
    if len(key) < 16:
        raise ValueError("person-reference key must be at least 16 bytes")
    return hmac.new(key, _normalise(client_reference), hashlib.sha256).hexdigest()
