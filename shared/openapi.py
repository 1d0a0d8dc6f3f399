"""The published OpenAPI says what a refusal looks like: `{"detail": "<reason>"}` on every 4xx and 503.

FastAPI documents only its own request-validation 422 (`detail` a list of field errors); the platform's refusals
(`shared.errors`, the request limits, HTTPException) answer `detail` as a string. Both shapes are documented so
that a client generator or a fuzzer checking responses against the spec sees what the services really send.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI

__all__ = ["REFUSAL", "document_refusals", "install", "inline_defs"]

REFUSAL = {
    "title": "Refusal",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail", "description": "why, in words a caller can act on"}},
    "required": ["detail"],
}
_REF = "#/components/schemas/"
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _json(schema: Mapping[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(schema)}}}


def document_refusals(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the `Refusal` schema and document it on every operation's 4xx (a `4XX` range) and 503, and as the
    other shape of its 422 (in place; returns `spec`)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Refusal"] = REFUSAL
    refusal = {"$ref": _REF + "Refusal"}
    for path_item in spec.get("paths", {}).values():
        for method, op in path_item.items():
            if method not in _METHODS or "ops" in op.get("tags", ()):
                continue  # /healthz, /readyz: their bodies are their own
            responses = op.setdefault("responses", {})
            current = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema")
            if current == {"$ref": _REF + "HTTPValidationError"}:
                responses["422"] = _json(
                    {"anyOf": [current, refusal]},
                    "refused: field errors (`detail` a list) or a rule the request breaks (`detail` a string)",
                )
            responses.setdefault("4XX", _json(refusal, "refused; `detail` says why"))
            unavailable = _json(refusal, "a dependency does not answer; nothing was accepted, retry after the delay")
            unavailable["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
            responses.setdefault("503", unavailable)
    return spec


def install(app: FastAPI) -> None:
    """Make `app.openapi()` document the refusals (computed once, like FastAPI's own)."""
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        spec = original()
        return document_refusals(spec) if fresh else spec

    app.openapi = openapi  # type: ignore[method-assign]


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic model's JSON schema made self-contained (its `$defs` written in place of their `$ref`s), for a
    schema placed by hand in the OpenAPI (a `$ref` there would point into the OpenAPI document, not the schema).
    The models inlined are not recursive."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)
