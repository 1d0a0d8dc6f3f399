"""Composition root of the workshops service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.workshops.api import router
from services.workshops.settings import WorkshopsSettings
from services.workshops.store import Store
from shared.layout import ensure_layout
from shared.logs import configure_logging
from shared.service import kafka_and_mongo, standard_checks
from shared.web import create_app

__all__ = ["build_app", "app"]


def build_app(settings: WorkshopsSettings | None = None) -> FastAPI:
    settings = settings or WorkshopsSettings()
    configure_logging("workshops", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kafka_and_mongo(app, settings, "workshops"):
            store = Store.open(app.state.mongo[settings.mongodb_database], app.state.publisher)
            await ensure_layout(store.docs, "workshops")  # refuses data of an earlier layout (says `make reset`)
            await store.ensure_indexes()
            app.state.store = store
            relay = asyncio.create_task(store.outbox.relay_forever(settings.outbox_interval_s))
            try:
                yield
            finally:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay

    app = create_app("workshops", title="Alliance Dynamique — workshops", lifespan=lifespan, checks=standard_checks)
    app.include_router(router)
    return app


app = build_app()
