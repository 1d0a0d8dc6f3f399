"""Platform users: argon2-hashed passwords in the partners database, and the access tokens they get."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from services.partners.schemas import UserCreate
from services.partners.store import Store
from shared.aggregates import Change, Version
from shared.docstore import DuplicateKey
from shared.errors import Conflict
from shared.identity import Principal, Role

__all__ = ["hash_password", "verify_password", "create_user", "authenticate", "ensure_bootstrap_admin", "user_key"]

log = logging.getLogger(__name__)
_hasher = PasswordHasher()
BOOTSTRAP_ADMIN_ID = "u-bootstrap-admin"
# Verified when the user does not exist, so that an unknown name costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0000")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher.verify, stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def user_key(username: str) -> str:
    """The user's aggregate id: one per username, so that creating a user is a unique insert and signing in
    an exact `_id` look-up. The platform-wide user id (the tokens' subject) is a separate random id."""
    return f"user:{username.lower()}"


def _state(
    username: str, role: Role, partner_id: str | None, user_id: str, password_hash: str, adviser_id: str | None = None
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "username": username.lower(),
        "password_hash": password_hash,
        "role": role.value,
        "partner_id": partner_id,
        "adviser_id": adviser_id,
        "active": True,
        "created_at": datetime.now(UTC),
    }


async def create_user(store: Store, cmd: UserCreate) -> dict[str, Any]:
    """A new user (Conflict if the username is taken); returns its record."""
    user_id = f"u-{uuid.uuid4()}"
    state = _state(cmd.username, cmd.role, cmd.partner_id, user_id, await hash_password(cmd.password), cmd.adviser_id)
    try:
        version = await store.users.create(user_key(cmd.username), Change(state))
    except DuplicateKey:
        raise Conflict("this username is taken") from None
    log.info("user created", extra={"user_id": state["user_id"], "role": state["role"], "partner_id": cmd.partner_id})
    return version.head()


async def authenticate(store: Store, username: str, password: str) -> Principal | None:
    version = await store.users.get(user_key(username))
    user = version.state if version and version.state.get("active") else None
    ok = await verify_password(user["password_hash"] if user else _DUMMY_HASH, password)
    if not (user and ok):
        log.info("sign-in refused")  # never the username: it may be an e-mail address
        return None
    if _hasher.check_needs_rehash(user["password_hash"]):
        old, new = user["password_hash"], await hash_password(password)

        def rehash(current: Version) -> Change | None:
            if current.state.get("password_hash") != old:
                return None  # changed meanwhile: keep what is stored
            return Change({**current.state, "password_hash": new})

        await store.users.change(user_key(username), rehash, what="user")
    return Principal(user["user_id"], Role(user["role"]), user.get("partner_id"), user.get("adviser_id"))


async def ensure_bootstrap_admin(store: Store, username: str, password: str) -> None:
    """Create the first La Poste admin if there is none yet (its password is never overwritten)."""
    if await store.users.get(user_key(username)) is not None:
        return  # the bootstrap admin, or a user who has that username already
    if await store.users.count({"user_id": BOOTSTRAP_ADMIN_ID}):
        return  # created earlier under another username
    state = _state(username, Role.ADMIN, None, BOOTSTRAP_ADMIN_ID, await hash_password(password))
    try:
        await store.users.create(user_key(username), Change(state))
    except DuplicateKey:
        pass  # another instance created it first
