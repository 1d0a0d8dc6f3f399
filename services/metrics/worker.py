"""The metrics worker process: the Faust worker counting the events of the source partitions it owns, which it
publishes as per-partition partials (partials.py) for the metrics API to sum. Any number of workers may run
(one consumer group; at most one per partition does work); each one serves its own health and figures:
`/readyz`, `/metrics`, `/v1/worker` and `/v1/snapshot` (the cells of the partitions it owns).

    uvicorn services.metrics.worker:app --port 8011     # METRICS_WORKER_ID names its local store
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faust.contrib.asgi import faust_app_running

from services.metrics.agents import MetricsWorker
from services.metrics.partials import ensure_metrics_topics
from services.metrics.settings import MetricsSettings
from shared.logs import configure_logging
from shared.web import create_app

__all__ = ["build_app", "app"]


def build_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    configure_logging("metrics-worker", settings.log_level)
    holder: dict[str, MetricsWorker] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        partitions = await asyncio.to_thread(ensure_metrics_topics, settings.kafka_bootstrap_servers, settings.app_id)
        worker = holder["worker"] = app.state.worker = MetricsWorker(settings, partitions)
        async with faust_app_running(worker.app):
            yield
            await worker.save_at_stop()  # a clean stop: the next start reads the counters (snapshot.py)
        await worker.close_partials()

    def checks(app: FastAPI):  # type: ignore[no-untyped-def]
        async def kafka() -> bool:
            worker = holder.get("worker")
            if worker is None:
                return False
            return worker.recovered and worker.app.consumer is not None and await worker.broker_answers()

        return {"kafka": kafka}

    def progress(app: FastAPI) -> dict:
        worker = holder.get("worker")
        return {"recovery": worker.recovery() if worker else {"state": "starting"}}

    app = create_app(
        "metrics-worker",
        title="Alliance Dynamique — metrics worker",
        lifespan=lifespan,
        checks=checks,
        progress=progress,
    )

    @app.get("/v1/worker", tags=["ops"])
    async def worker_status() -> dict:
        """What this worker has done since it started (for operators and benchmarks), how far behind the log its
        partitions are (`lag`, per source partition in `partitions`) and how old the newest applied event is."""
        worker = holder["worker"]
        health = await worker.health() if worker.recovered else {"lag": None, "partitions": []}
        return {
            "app_id": settings.app_id,
            "worker": settings.worker_id,
            "recovered": worker.recovered,
            "recovery": worker.recovery(),
            "store": settings.store,
            "counters_from": worker.counters_from,
            "processed": worker.processed,
            "dead_lettered": worker.dead_lettered,
            "rewinds": worker.positions.rewinds,
            "keys": worker.keys(),
            "owned": sorted(worker.ledgers),
            "published_records": worker.published_records,
            "newest_event_age_seconds": None,
            **health,
        }

    @app.get("/v1/snapshot", tags=["ops"])
    async def snapshot() -> dict:
        """Every non-zero counter cell of the partitions this worker owns, and the source positions they reflect
        (every record before `applied` of each partition), read at one instant."""
        worker = holder["worker"]
        return {"app_id": settings.app_id, "cells": worker.counters.snapshot(), "positions": worker.applied_positions()}

    return app


app = build_app()
