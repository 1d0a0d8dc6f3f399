"""The signed session cookie: the platform token, who it is, when it expires, and the form (CSRF) secret.

The cookie is signed (itsdangerous), HttpOnly and SameSite=Lax; it lives as long as the token it holds, and a
request after that is treated as signed out. Visitors who are not signed in get a session too (no token), so
that the sign-in form carries a CSRF secret like every other form."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["COOKIE", "Session", "SessionCodec", "ANONYMOUS_TTL_S"]

COOKIE = "portail_session"
ANONYMOUS_TTL_S = 2 * 3600


@dataclass(frozen=True)
class Session:
    csrf: str
    token: str | None = None
    role: str | None = None
    partner_id: str | None = None
    username: str | None = None
    expires_at: float = 0.0  # epoch seconds: the token's expiry (or the anonymous session's)
    flash: str | None = None  # one message for the next page (after a form's redirect)

    @property
    def signed_in(self) -> bool:
        return self.token is not None and time.time() < self.expires_at

    @classmethod
    def anonymous(cls) -> Session:
        return cls(csrf=secrets.token_urlsafe(24), expires_at=time.time() + ANONYMOUS_TTL_S)

    def signed_in_as(self, token: str, role: str, partner_id: str | None, username: str, ttl_s: int) -> Session:
        # A new CSRF secret on sign-in: a secret seen before signing in is worth nothing afterwards.
        return Session(secrets.token_urlsafe(24), token, role, partner_id, username, time.time() + ttl_s)

    def with_flash(self, message: str | None) -> Session:
        return replace(self, flash=message)

    def csrf_ok(self, sent: Any) -> bool:
        return isinstance(sent, str) and hmac.compare_digest(sent.encode(), self.csrf.encode())


class SessionCodec:
    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="portal-session")

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=7 * 24 * 3600)
            session = Session(**data)
        except (BadSignature, TypeError, ValueError):
            return None
        return session

    def write(self, response: Response, session: Session, *, secure: bool) -> None:
        max_age = max(1, int(session.expires_at - time.time()))
        response.set_cookie(
            COOKIE,
            self._serializer.dumps(asdict(session)),
            max_age=max_age,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )
