"""Composition root of the metrics service: the Faust worker and the HTTP API share one event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from faust.contrib.asgi import faust_app_running

from services.metrics.agents import MetricsWorker
from services.metrics.api import router
from services.metrics.goals import load_goal_file
from services.metrics.runtime import Runtime
from services.metrics.settings import MetricsSettings
from shared.kafka import ensure_topics
from shared.layout import ensure_layout
from shared.logs import configure_logging
from shared.mongo import mongo_client, ping
from shared.web import create_app

__all__ = ["build_app", "app"]

DASHBOARD = Path(__file__).with_name("dashboard.html")


def build_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    configure_logging("metrics", settings.log_level)
    holder: dict[str, Runtime] = {}
    worker = MetricsWorker(settings, on_change=lambda: holder["rt"].notify() if "rt" in holder else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap_servers)
        mongo = mongo_client(settings.mongodb_uri, app_name="metrics")
        runtime = Runtime(settings, worker, load_goal_file(settings.goals_file), mongo)
        await ensure_layout(runtime.docs, "metrics")
        await runtime.load_saved_goals()
        holder["rt"] = app.state.runtime = runtime
        async with faust_app_running(worker.app):
            yield
            await worker.save_at_stop()  # a clean stop: the next start reads the counters (snapshot.py)
        await mongo.close()

    def checks(app: FastAPI):  # type: ignore[no-untyped-def]
        async def kafka() -> bool:
            return worker.recovered and worker.app.consumer is not None and await worker.broker_answers()

        async def mongodb() -> bool:
            return await ping(app.state.runtime.mongo)

        return {"kafka": kafka, "mongodb": mongodb}

    app = create_app(
        "metrics",
        title="Alliance Dynamique — metrics",
        lifespan=lifespan,
        checks=checks,
        progress=lambda app: {"recovery": worker.recovery()},
    )
    app.include_router(router)

    @app.get("/v1/worker", tags=["ops"])
    async def worker_status() -> dict:
        """What the stream worker has done since it started (for operators and benchmarks), how far behind the
        log it is (`lag`, per source partition in `partitions`) and how old the newest applied event is."""
        health = await worker.health() if worker.recovered else {"lag": None, "partitions": []}
        return {
            "app_id": settings.app_id,
            "recovered": worker.recovered,
            "recovery": worker.recovery(),
            "store": settings.store,
            "counters_from": worker.counters_from,
            "processed": worker.processed,
            "dead_lettered": worker.dead_lettered,
            "rewinds": worker.positions.rewinds,
            "keys": worker.keys(),
            "version": worker.counters.version,
            "newest_event_age_seconds": None,
            **health,
        }

    @app.get("/v1/snapshot", tags=["ops"])
    async def snapshot() -> dict:
        """Every non-zero counter cell, and the source positions they reflect (every record before `applied` of
        each partition), read at one instant: the replay command rebuilds the log up to exactly those positions
        and compares, however fast the log moves meanwhile."""
        return {"app_id": settings.app_id, "cells": worker.counters.snapshot(), "positions": worker.applied_positions()}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD.read_text(encoding="utf-8"))

    return app


app = build_app()
