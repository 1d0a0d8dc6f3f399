"""Who may call: counter terminals (their own token) and La Poste admins (a platform token, Role.ADMIN); a
backfill of past detections needs the admin token, never a terminal's."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.detection.domain import Office
from services.detection.store import Store
from shared.identity import InvalidToken, Principal, Role, require_roles, verify_token
from shared.terminal_sdk import split_token, token_hash, verify_signature

__all__ = [
    "Terminal",
    "TerminalDep",
    "AdminDep",
    "ReaderDep",
    "BackfillerDep",
    "TerminalRefused",
    "terminal_for_record",
]

_bearer = HTTPBearer(auto_error=False)
AdminDep = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
ReaderDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MONITORING))]


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str
    office: Office


class TerminalRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def _registered(store: Store, terminal_id: str) -> tuple[dict, Office]:
    doc = await store.terminal(terminal_id)
    if doc is None:
        raise TerminalRefused(401, "unknown terminal")
    if doc.get("revoked"):
        raise TerminalRefused(401, "this terminal's token has been revoked")
    office = await store.office(doc["office_id"])
    if office is None or not office.active:
        raise TerminalRefused(403, f"office {doc['office_id']} is not open in the registry")
    return doc, office


async def terminal_for_token(store: Store, token: str) -> Terminal:
    try:
        terminal_id, secret = split_token(token)
    except ValueError:
        raise TerminalRefused(401, "not a terminal token") from None
    doc = await store.terminal(terminal_id)
    # Unknown terminal and wrong secret answer alike: the answer does not tell which terminal ids exist.
    if doc is None or not hmac.compare_digest(token_hash(secret), doc["token_hash"]):
        raise TerminalRefused(401, "invalid terminal token")
    _, office = await _registered(store, terminal_id)
    return Terminal(terminal_id, office)


async def terminal_for_record(store: Store, terminal_id: str, office_id: str, value: bytes, signature: str) -> Terminal:
    """The Kafka path: the record is signed with the terminal's stored token hash and names its office."""
    doc, office = await _registered(store, terminal_id)
    if not verify_signature(value, signature, doc["token_hash"]):
        raise TerminalRefused(401, "bad terminal signature")
    if office_id != office.office_id:
        raise TerminalRefused(403, f"terminal {terminal_id} is not registered to office {office_id}")
    return Terminal(terminal_id, office)


async def current_terminal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Terminal:
    if credentials is None:
        raise HTTPException(401, "a terminal token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return await terminal_for_token(request.app.state.store, credentials.credentials)
    except TerminalRefused as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        raise HTTPException(exc.status, str(exc), headers=headers) from None


TerminalDep = Annotated[Terminal, Depends(current_terminal)]


async def current_backfiller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """A platform admin token (the partners service issues it to La Poste admins). A terminal's own token is a
    valid credential that may not do this: 403, not 401."""
    if credentials is None:
        raise HTTPException(401, "a platform admin token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        principal = verify_token(credentials.credentials, request.app.state.settings.platform_token_key)
    except InvalidToken as exc:
        try:
            await terminal_for_token(request.app.state.store, credentials.credentials)
        except TerminalRefused:
            raise HTTPException(401, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from None
        raise HTTPException(403, "a terminal token may not backfill: send a platform admin token") from None
    if principal.role != Role.ADMIN:
        raise HTTPException(403, f"role {principal.role.value} may not backfill detections")
    return principal


BackfillerDep = Annotated[Principal, Depends(current_backfiller)]
