"""Platform identity: who is calling, and what they may see.

The partners service authenticates people and issues signed access tokens (JWT, HS256, signed with
PLATFORM_TOKEN_KEY); every other service verifies them locally with the same key, so a partner signs in
once. Services never call each other: the token carries what authorisation needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

__all__ = [
    "Role",
    "Principal",
    "issue_token",
    "verify_token",
    "InvalidToken",
    "current_principal",
    "require_roles",
    "PrincipalDep",
    "ISSUER",
]

ISSUER = "alliance-dynamique/partners"
ALGORITHM = "HS256"


class Role(StrEnum):
    ADMIN = "admin"  # La Poste staff: everything
    PARTNER = "partner"  # a partner organisation's user: its own organisation only
    ADVISER = "adviser"  # a digital adviser: their own sessions
    MONITORING = "monitoring"  # read-only


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str  # user id (never a name or an e-mail)
    role: Role
    partner_id: str | None = None
    adviser_id: str | None = None

    def can_access_partner(self, partner_id: str | None) -> bool:
        """Admins and monitoring see every partner; a partner user only its own organisation."""
        if self.role in (Role.ADMIN, Role.MONITORING):
            return True
        return self.role == Role.PARTNER and partner_id is not None and partner_id == self.partner_id

    @property
    def can_write(self) -> bool:
        return self.role != Role.MONITORING


class InvalidToken(Exception):
    pass


def issue_token(
    principal: Principal, key: str, *, ttl: timedelta = timedelta(hours=8), now: datetime | None = None
) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": principal.subject,
        "role": principal.role.value,
        "iat": issued,
        "exp": issued + ttl,
    }
    if principal.partner_id:
        claims["partner_id"] = principal.partner_id
    if principal.adviser_id:
        claims["adviser_id"] = principal.adviser_id
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_token(token: str, key: str) -> Principal:
    try:
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "iat", "sub", "iss"]}
        )
        role = Role(claims["role"])
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise InvalidToken(str(exc) or "invalid token") from None
    if role == Role.PARTNER and not claims.get("partner_id"):
        raise InvalidToken("a partner token must name its partner")
    return Principal(claims["sub"], role, claims.get("partner_id"), claims.get("adviser_id"))


_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """FastAPI dependency: the verified caller (401 without a valid token). The app's settings must have
    `platform_token_key`."""
    if credentials is None:
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return verify_token(credentials.credentials, request.app.state.settings.platform_token_key)
    except InvalidToken as exc:
        raise HTTPException(401, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from None


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """FastAPI dependency factory: 403 unless the caller has one of `roles`."""

    def check(principal: PrincipalDep) -> Principal:
        if principal.role not in roles:
            raise HTTPException(403, f"role {principal.role.value} may not do this")
        return principal

    return check
