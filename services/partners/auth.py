"""Platform users: argon2-hashed passwords in the partners database, and the access tokens they get."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pymongo.errors import DuplicateKeyError

from services.partners.schemas import UserCreate
from services.partners.store import Store
from shared.identity import Principal, Role

__all__ = ["hash_password", "verify_password", "create_user", "authenticate", "ensure_bootstrap_admin"]

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


class UserExists(Exception):
    pass


async def create_user(store: Store, cmd: UserCreate) -> dict[str, Any]:
    doc = {
        "_id": f"u-{uuid.uuid4()}",
        "username": cmd.username.lower(),
        "password_hash": await hash_password(cmd.password),
        "role": cmd.role.value,
        "partner_id": cmd.partner_id,
        "active": True,
        "created_at": datetime.now(UTC),
    }
    try:
        await store.users.insert_one(doc)
    except DuplicateKeyError:
        raise UserExists("this username is taken") from None
    log.info("user created", extra={"user_id": doc["_id"], "role": doc["role"], "partner_id": doc["partner_id"]})
    return doc


async def authenticate(store: Store, username: str, password: str) -> Principal | None:
    user = await store.users.find_one({"username": username.lower(), "active": True})
    ok = await verify_password(user["password_hash"] if user else _DUMMY_HASH, password)
    if not (user and ok):
        log.info("sign-in refused")  # never the username: it may be an e-mail address
        return None
    if _hasher.check_needs_rehash(user["password_hash"]):
        await store.users.update_one({"_id": user["_id"]}, {"$set": {"password_hash": await hash_password(password)}})
    return Principal(user["_id"], Role(user["role"]), user.get("partner_id"))


async def ensure_bootstrap_admin(store: Store, username: str, password: str) -> None:
    """Create the first La Poste admin if there is none yet (its password is never overwritten)."""
    if await store.exists(store.users, BOOTSTRAP_ADMIN_ID):
        return
    doc = {
        "username": username.lower(),
        "password_hash": await hash_password(password),
        "role": Role.ADMIN.value,
        "partner_id": None,
        "active": True,
        "created_at": datetime.now(UTC),
    }
    try:
        await store.users.update_one({"_id": BOOTSTRAP_ADMIN_ID}, {"$setOnInsert": doc}, upsert=True)
    except DuplicateKeyError:
        pass  # another instance created it first, or the username already belongs to a user
