"""The one vocabulary of refusals every handler raises; `shared.web.create_app` maps it to HTTP once."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure

__all__ = ["Refusal", "Invalid", "NotFound", "Forbidden", "Conflict", "Busy", "Unavailable", "TooMany", "install"]


class Refusal(Exception):
    """A command the platform will not carry out; the message says why, in words a caller can act on."""

    status = 400
    retry_after: int | None = None  # seconds, for refusals that a retry may overcome

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Invalid(Refusal):
    """The command breaks a rule or names something that cannot be used (HTTP 422)."""

    status = 422


class NotFound(Refusal):
    status = 404


class Forbidden(Refusal):
    status = 403


class Conflict(Refusal):
    """The command collides with what is stored: already done otherwise, full, in the wrong state (HTTP 409)."""

    status = 409


class Busy(Conflict):
    """Too many concurrent changes of one record: nothing was written, the caller may retry (HTTP 409)."""

    retry_after = 1


class Unavailable(Refusal):
    """A dependency (the database, the broker) did not answer in time: nothing was accepted (HTTP 503)."""

    status = 503
    retry_after = 5


class TooMany(Refusal):
    """Past a rate limit (shared.ratelimit): nothing was done; retry after the delay given (HTTP 429)."""

    status = 429

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def install(app: FastAPI) -> None:
    """Every `Refusal` becomes its HTTP status with `{"detail": reason}`, the shape FastAPI uses for its own; an
    event contract that refuses what a command would publish (a date out of bounds …) is a 422 too, and a
    database that does not answer a 503."""

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own shape (a list of errors), with values JSON cannot carry (Infinity, NaN) given as text:
        # its default handler answers 500 when the refused input is such a number.
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _contract(request: Request, exc: ValidationError) -> JSONResponse:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"refused by the {exc.title} contract: {reasons}"}, status_code=422)

    @app.exception_handler(ConnectionFailure)
    async def _database_away(request: Request, exc: ConnectionFailure) -> JSONResponse:
        return JSONResponse(
            {"detail": "the database does not answer; nothing was written, retry later"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=headers)
