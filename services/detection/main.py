"""Composition root of the detection service: registry store, publisher, outbox relay, ingest consumer.

The service starts even when Kafka is away (then /readyz says so and POST /v1/detections answers 503 without
writing anything); it connects in the background and starts the relay and the ingest consumer once connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from services.detection.api import router
from services.detection.handlers import Rules
from services.detection.ingest import IngestConsumer
from services.detection.journal import Journal
from services.detection.settings import DetectionSettings
from services.detection.store import Store
from shared.kafka import Publisher, PublishError, ensure_topics
from shared.layout import ensure_layout
from shared.logs import configure_logging
from shared.mongo import mongo_client
from shared.ratelimit import RateLimit
from shared.service import standard_checks
from shared.topics import ALL_TOPICS, DETECTION_INGEST, Topic
from shared.web import create_app

__all__ = ["DetectionSettings", "build_app", "app"]

log = logging.getLogger(__name__)


class _NotConnected:
    """Stands for the publisher until the broker answers."""

    ready = False

    async def stop(self) -> None:
        return None


async def _connect(settings: DetectionSettings, app: FastAPI) -> Publisher:
    topics = [*ALL_TOPICS, Topic(settings.ingest_topic, retention_ms=DETECTION_INGEST.retention_ms)]
    while True:
        publisher = Publisher(settings.kafka_bootstrap_servers, client_id="detection")
        try:
            await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap_servers, topics)
            await publisher.start()
            app.state.publisher = publisher
            log.info("connected to Kafka")
            return publisher
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await publisher._producer.stop()
            raise
        except Exception as exc:  # noqa: BLE001 - Kafka away: say so on /readyz and keep trying
            log.warning("Kafka not reachable; retrying", extra={"error": str(exc)})
            with contextlib.suppress(Exception):
                await publisher._producer.stop()
            await asyncio.sleep(settings.kafka_retry_s)


async def _relay(store: Store, publisher: Publisher, settings: DetectionSettings) -> None:
    grace = timedelta(seconds=settings.relay_grace_s)
    while True:
        try:
            sent = await store.relay_once(publisher, grace)
            if sent:
                log.info("relay published pending detections", extra={"count": sent})
        except PublishError as exc:
            log.warning("relay could not publish; will retry", extra={"error": str(exc)})
        except Exception:  # noqa: BLE001 - the relay must outlive a passing database error
            log.exception("relay failed; will retry")
        await asyncio.sleep(settings.relay_interval_s)


async def _run_kafka_side(
    app: FastAPI, settings: DetectionSettings, store: Store, journal: Journal, rules: Rules
) -> None:
    publisher = await _connect(settings, app)
    tasks = [asyncio.create_task(_relay(store, publisher, settings))]
    if settings.ingest_enabled:
        consumer = IngestConsumer(
            settings.kafka_bootstrap_servers,
            settings.ingest_topic,
            settings.ingest_group,
            store=store,
            journal=journal,
            publisher=publisher,
            rules=rules,
        )
        app.state.ingest = consumer
        tasks.append(asyncio.create_task(consumer.run()))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def build_app(settings: DetectionSettings | None = None) -> FastAPI:
    settings = settings or DetectionSettings()
    configure_logging("detection", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mongo = mongo_client(settings.mongodb_uri, app_name="detection")
        store = Store(mongo[settings.mongodb_database], cache_ttl=settings.cache_ttl_s)
        await ensure_layout(store.docs, "detection")
        await store.ensure_indexes()
        rules = Rules(
            key=settings.person_ref_key_bytes,
            window=timedelta(days=settings.window_days),
            skew=timedelta(seconds=settings.future_skew_s),
        )
        # Until Kafka answers: `ready` is False, so submissions get a 503 and /readyz says why.
        app.state.publisher = _NotConnected()
        journal = Journal(store)
        journal.start()
        app.state.settings, app.state.mongo, app.state.store, app.state.rules = settings, mongo, store, rules
        app.state.journal = journal
        # The backfill path: the same rules with no lower time bound but the event contract's (2000-2099).
        app.state.backfill_rules = Rules(key=rules.key, window=None, skew=rules.skew)
        kafka_side = asyncio.create_task(_run_kafka_side(app, settings, store, journal, rules))
        try:
            yield
        finally:
            kafka_side.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await kafka_side
            await journal.stop()
            await app.state.publisher.stop()
            await mongo.close()

    app = create_app(
        "detection",
        title="Alliance Dynamique — detection",
        lifespan=lifespan,
        checks=standard_checks,
        max_body=settings.max_body_bytes,
    )
    app.state.terminal_limit = RateLimit(settings.terminal_rate_limit, "requests from this terminal")
    app.state.backfill_limit = RateLimit(settings.backfill_rate_limit, "backfill requests from this account")
    app.include_router(router)
    return app


app = build_app()
