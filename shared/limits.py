"""Request limits every service applies before a route runs: body size (413), media type (415), JSON nesting and
number length (400).

An ASGI middleware rather than per-route checks, so a route cannot forget them and a 20 MB body is refused
from its length (or after `max_body` bytes of a chunked one) instead of being read and parsed first.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

__all__ = [
    "RequestLimits",
    "JSON_TYPES",
    "FORM_TYPES",
    "MAX_JSON_DEPTH",
    "MAX_NUMBER_CHARS",
    "too_deep",
    "json_problem",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPES = ("application/json",)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded", "text/csv")
MAX_JSON_DEPTH = 32
# No field of the platform needs a longer number; Python's own parser refuses past 4,300 digits with a ValueError
# that would surface as a 500, and a long one costs quadratic time to convert.
MAX_NUMBER_CHARS = 100
WITH_BODY = {"POST", "PUT", "PATCH"}


def json_problem(raw: bytes, depth_limit: int = MAX_JSON_DEPTH, number_limit: int = MAX_NUMBER_CHARS) -> str | None:
    """Why JSON text may not be parsed: nesting deeper than `depth_limit` or a number longer than `number_limit`
    characters (one scan, no parser recursion involved); None when neither."""
    depth = run = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
            continue
        if byte in _NUMBER_BYTES:
            run += 1
            if run > number_limit:
                return f"a number in the JSON body is longer than {number_limit} characters"
            continue
        run = 0
        if byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > depth_limit:
                return f"the JSON body nests deeper than {depth_limit} levels"
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return None


def too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than `limit`."""
    problem = json_problem(raw, depth_limit=limit, number_limit=len(raw) + 1)
    return problem is not None


_NUMBER_BYTES = frozenset(b"0123456789+-.eE")


class RequestLimits:
    def __init__(self, app: ASGIApp, *, max_body: int, media_types: Iterable[str] = JSON_TYPES + FORM_TYPES):
        self.app = app
        self.max_body = max_body
        self.media_types = tuple(media_types)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _refuse(send, 413, f"a request body is at most {self.max_body} bytes")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await _refuse(send, 413, f"a request body is at most {self.max_body} bytes")
                return
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and media not in self.media_types:
            allowed = ", ".join(self.media_types)
            await _refuse(send, 415, f"content-type {media or '(none)'} is not accepted here; send one of: {allowed}")
            return
        problem = json_problem(bytes(body)) if media in JSON_TYPES else None
        if problem:
            await _refuse(send, 400, problem)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Send, status: int, reason: str) -> None:
    payload = json.dumps({"detail": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
