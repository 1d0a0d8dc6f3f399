"""Partners HTTP routes of identity: sign-in, the caller, users."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request
from pydantic import ValidationError

from services.partners import auth
from services.partners.api_common import Admin, StoreDep
from services.partners.schemas import TokenPublic, TokenRequest, UserCreate, UserPublic
from shared.errors import Invalid
from shared.identity import PrincipalDep, issue_token
from shared.ratelimit import client_address

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["identity"])


@router.post("/auth/token", response_model=TokenPublic)
async def token(request: Request, store: StoreDep) -> TokenPublic:
    """Sign in (JSON or the OAuth2 password form): an access token the whole platform accepts. 429 past the
    rate of sign-ins per client address (the person's, which the portal vouches for when it signs them in), and
    for an account after repeated failures (until they age out)."""
    limits = request.app.state.sign_in_limits
    peer = request.client.host if request.client else None
    await limits.per_client.hit(client_address(request.headers, peer, request.app.state.settings.platform_token_key))
    try:
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = await request.form()
            creds = TokenRequest(username=str(form.get("username", "")), password=str(form.get("password", "")))
        else:
            creds = TokenRequest.model_validate(await request.json())
    except (ValidationError, ValueError):
        raise Invalid("username and password are required") from None
    account = auth.user_key(creds.username)
    await limits.failures.check(account)  # locked: refused before the password is even looked at
    principal = await auth.authenticate(store, creds.username, creds.password)
    if principal is None:
        await limits.failures.count(account)
        raise HTTPException(401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"})
    await limits.failures.clear(account)
    settings = request.app.state.settings
    ttl = timedelta(minutes=settings.token_ttl_minutes)
    return TokenPublic(
        access_token=issue_token(principal, settings.platform_token_key, ttl=ttl),
        expires_in=int(ttl.total_seconds()),
        role=principal.role,
        partner_id=principal.partner_id,
    )


@router.get("/auth/me", response_model=UserPublic)
async def me(principal: PrincipalDep) -> UserPublic:
    return UserPublic(
        id=principal.subject, role=principal.role, partner_id=principal.partner_id, adviser_id=principal.adviser_id
    )


@router.post("/users", status_code=201, response_model=UserPublic)
async def create_user(body: UserCreate, store: StoreDep, _: Admin) -> UserPublic:
    if body.partner_id and await store.partners.get(body.partner_id) is None:
        raise Invalid(f"no partner {body.partner_id}")
    doc = await auth.create_user(store, body)
    return UserPublic(
        id=doc["user_id"], role=doc["role"], partner_id=doc["partner_id"], adviser_id=doc.get("adviser_id")
    )
