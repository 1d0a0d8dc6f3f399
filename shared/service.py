"""The running parts every HTTP service shares: its topics, its database client, its publisher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.kafka import Publisher, ensure_topics
from shared.mongo import mongo_client, ping
from shared.settings import CommonSettings
from shared.web import ReadinessCheck

__all__ = ["kafka_and_mongo", "standard_checks"]


@asynccontextmanager
async def kafka_and_mongo(app: FastAPI, settings: CommonSettings, service: str) -> AsyncIterator[None]:
    """Open the database client and the publisher; close them all at the end.

    The service starts even when Kafka is away: topics are created and the publisher connects in the background,
    retrying; until then /readyz says `kafka: false` and every change is stored with its events noted in the
    outbox (answered 202), which the relay publishes once the broker answers.
    Sets `app.state.settings`, `app.state.mongo` and `app.state.publisher`.
    """
    mongo = mongo_client(settings.mongodb_uri, app_name=service)
    publisher = Publisher(settings.kafka_bootstrap_servers, client_id=service)

    async def topics() -> None:
        await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap_servers)

    connecting = asyncio.create_task(publisher.start_when_reachable(then=topics))
    app.state.settings, app.state.mongo, app.state.publisher = settings, mongo, publisher
    try:
        yield
    finally:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await publisher.stop()
        await mongo.close()


def standard_checks(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    async def kafka() -> bool:
        publisher = app.state.publisher
        if not hasattr(publisher, "reachable"):  # a stand-in until the broker first answers
            return bool(publisher.ready)
        return bool(await publisher.reachable())

    async def mongodb() -> bool:
        return await ping(app.state.mongo)

    return {"kafka": kafka, "mongodb": mongodb}
