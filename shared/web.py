"""What every HTTP service has: the app factory, health and readiness probes, Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from shared import asyncapi, errors, openapi
from shared.limits import FORM_TYPES, JSON_TYPES, RequestLimits

__all__ = ["create_app", "ReadinessCheck", "REQUESTS", "LATENCY"]

ReadinessCheck = Callable[[], Awaitable[bool]]

REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("http_request_seconds", "HTTP request latency", ["service", "route"])


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


def create_app(
    service: str,
    *,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
    checks: Callable[[FastAPI], Mapping[str, ReadinessCheck]] | None = None,
    progress: Callable[[FastAPI], Mapping[str, Any]] | None = None,
    max_body: int = 1024 * 1024,
    media_types: Sequence[str] = JSON_TYPES + FORM_TYPES,
) -> FastAPI:
    """A FastAPI app with /healthz (alive), /readyz (dependencies answer), /metrics, and every
    `shared.errors.Refusal` answered with its HTTP status; request bodies past `max_body` bytes get 413, other
    media types than `media_types` 415 (see shared.limits); its OpenAPI documents those refusals (shared.openapi)."""
    app = FastAPI(title=title, lifespan=lifespan)
    errors.install(app)
    openapi.install(app)
    app.add_middleware(RequestLimits, max_body=max_body, media_types=media_types)

    @app.middleware("http")
    async def _measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_of(request)
        REQUESTS.labels(service, request.method, route, str(response.status_code)).inc()
        LATENCY.labels(service, route).observe(time.perf_counter() - started)
        return response

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in (checks(app) if checks else {}).items()}
        ready = all(results.values())
        body: dict[str, Any] = {"ready": ready, "checks": results}
        if progress:  # what a starting service is still doing (e.g. the metrics worker's recovery)
            body["progress"] = progress(app)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/asyncapi.json", tags=["ops"])
    async def event_catalog() -> dict[str, Any]:
        """The platform's event catalog (AsyncAPI 3): topics, keys, event types and versions, producers and
        consumers, generated from the shared contracts."""
        return asyncapi.document()

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
