"""Composition root of the metrics API: it sums the partials the metrics workers publish (partials.py) and
serves them. It counts nothing itself, so any number of instances may run behind a load balancer, each reading
every partition of the partials topic; the workers run apart (services/metrics/worker.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from services.metrics.api import router
from services.metrics.gauges import LAG, NEWEST_AGE
from services.metrics.goals import load_goal_file
from services.metrics.partials import PartialsReader, ensure_metrics_topics, partials_topic
from services.metrics.runtime import Runtime
from services.metrics.settings import MetricsSettings
from shared.layout import ensure_layout
from shared.logs import configure_logging
from shared.mongo import mongo_client, ping
from shared.topics import EVENT_TOPICS
from shared.web import create_app

__all__ = ["build_app", "app"]

DASHBOARD = Path(__file__).with_name("dashboard.html")
SOURCE_TOPICS = sorted(t.name for t in EVENT_TOPICS)
WORKER_FIGURES = ("processed", "dead_lettered", "keys", "store", "counters_from", "published_at")
log = logging.getLogger(__name__)


def build_app(settings: MetricsSettings | None = None) -> FastAPI:
    settings = settings or MetricsSettings()
    configure_logging("metrics", settings.log_level)
    holder: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        partitions = await asyncio.to_thread(ensure_metrics_topics, settings.kafka_bootstrap_servers, settings.app_id)
        mongo = mongo_client(settings.mongodb_uri, app_name="metrics")
        reader = PartialsReader(
            settings.kafka_bootstrap_servers,
            partials_topic(settings.app_id, partitions).name,
            partitions,
            on_change=lambda: holder["rt"].notify() if "rt" in holder else None,
        )
        runtime = Runtime(settings, reader.view, load_goal_file(settings.goals_file), mongo)
        await ensure_layout(runtime.docs, "metrics")
        await runtime.load_saved_goals()
        holder["reader"] = reader
        holder["rt"] = app.state.runtime = runtime
        await reader.start()
        gauges = asyncio.create_task(_refresh_gauges(reader), name="metrics-gauges")
        try:
            yield
        finally:
            gauges.cancel()
            await reader.stop()
            await mongo.close()

    def checks(app: FastAPI):  # type: ignore[no-untyped-def]
        async def kafka() -> bool:
            reader = holder.get("reader")
            return reader is not None and reader.ready() and await reader.broker_answers()

        async def mongodb() -> bool:
            return await ping(app.state.runtime.mongo)

        return {"kafka": kafka, "mongodb": mongodb}

    def progress(app: FastAPI) -> dict:
        reader = holder.get("reader")
        return {"recovery": _recovery(reader)}

    app = create_app(
        "metrics", title="Alliance Dynamique — metrics", lifespan=lifespan, checks=checks, progress=progress
    )
    app.include_router(router)

    @app.get("/v1/worker", tags=["ops"])
    async def worker_status() -> dict:
        """What the workers have counted, as their partials say: per source partition the next offset applied,
        the log's end and the lag, which worker owns it; per worker its figures; and how old the newest applied
        event is. `lag` is the total, what the dashboard shows beside "en direct"."""
        return {"app_id": settings.app_id, **await workers_status(holder["reader"])}

    @app.get("/v1/snapshot", tags=["ops"])
    async def snapshot() -> dict:
        """Every non-zero counter cell, and the source positions they reflect (every record before `applied` of
        each partition), read at one instant: the replay command rebuilds the log up to exactly those positions
        and compares, however fast the log moves meanwhile."""
        view = holder["reader"].view
        positions = [
            {"topic": topic, "partition": p, "applied": applied}
            for p, record in view.positions().items()
            for topic, applied in sorted(record["positions"].items())
        ]
        return {"app_id": settings.app_id, "cells": view.counters.snapshot(), "positions": positions}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD.read_text(encoding="utf-8"))

    return app


async def workers_status(reader: PartialsReader) -> dict[str, Any]:
    """The workers' figures from their latest position records, with the lag against the log's end now; the
    Prometheus gauges follow."""
    records = reader.view.positions()  # the ends are read after: a lag is never understated
    ends = await reader.source_ends(SOURCE_TOPICS)
    rows: list[dict[str, Any]] = []
    workers: dict[str, dict[str, Any]] = {}
    newest: float | None = None
    for p, record in records.items():
        name = record["worker"]
        for topic, applied in sorted(record["positions"].items()):
            end = ends.get((topic, p))
            lag = None if end is None else max(0, end - applied)
            rows.append({"topic": topic, "partition": p, "applied": applied, "end": end, "lag": lag, "worker": name})
            if lag is not None:
                LAG.labels(topic, str(p)).set(lag)
        seen = workers.get(name)
        if seen is None or record["published_at"] >= seen["published_at"]:
            figures = {k: record.get(k) for k in WORKER_FIGURES}
            workers[name] = figures | {"partitions": (seen or {}).get("partitions", [])}
        workers[name]["partitions"] = sorted({*workers[name]["partitions"], p})
        stamp = record.get("newest_event_timestamp")
        if stamp is not None and (newest is None or stamp > newest):
            newest = stamp
    lags = [r["lag"] for r in rows]
    age = None if newest is None else max(0.0, time.time() - newest)
    if age is not None:
        NEWEST_AGE.set(age)
    return {
        "recovered": reader.ready(),
        "recovery": _recovery(reader),
        "partitions_total": reader.partitions,
        "partitions_reported": len(records),
        "workers": workers,
        "processed": sum(w["processed"] or 0 for w in workers.values()),
        "dead_lettered": sum(w["dead_lettered"] or 0 for w in workers.values()),
        "keys": sum(w["keys"] or 0 for w in workers.values()),
        "version": reader.view.counters.version,
        "lag": None if not rows or None in lags else sum(lags),
        "partitions": rows,
        "newest_event_age_seconds": age,
    }


async def _refresh_gauges(reader: PartialsReader) -> None:
    """Keeps the Prometheus gauges current between two reads of /v1/worker."""
    while True:
        await asyncio.sleep(2.0)
        try:
            await workers_status(reader)
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not stop the refresh
            log.debug("gauges not refreshed", extra={"error": str(exc)})


def _recovery(reader: PartialsReader | None) -> dict[str, Any]:
    if reader is None:
        return {"state": "starting"}
    if reader.ready():
        return {"state": "done"}
    reported = len(reader.view.reported())
    return {
        "state": "waiting for the workers' partials",
        "read_to_end": reader.caught_up,
        "partitions_reported": reported,
        "partitions_total": reader.partitions,
    }


app = build_app()
