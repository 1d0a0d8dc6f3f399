"""Composition root of the partners service: the one place that wires store, publisher, relay and routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.partners.api import install_error_handlers, router
from services.partners.auth import ensure_bootstrap_admin
from services.partners.settings import PartnersSettings
from services.partners.store import Store
from shared.logs import configure_logging
from shared.service import kafka_and_mongo, standard_checks
from shared.web import create_app

__all__ = ["PartnersSettings", "build_app", "app"]


def build_app(settings: PartnersSettings | None = None) -> FastAPI:
    settings = settings or PartnersSettings()
    configure_logging("partners", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kafka_and_mongo(app, settings, "partners"):
            store = Store.open(
                app.state.mongo[settings.mongodb_database],
                app.state.publisher,
                fault_exit_before_publish=settings.fault_exit_before_publish,
            )
            await store.ensure_indexes()
            for outbox in (store.partnerships, store.missions):
                await outbox.sweep()  # whatever a crash left pending, however old
            await ensure_bootstrap_admin(store, settings.bootstrap_admin_username, settings.bootstrap_admin_password)
            app.state.store = store
            relays = [
                asyncio.create_task(outbox.relay_forever(settings.outbox_interval_s))
                for outbox in (store.partnerships, store.missions)
            ]
            try:
                yield
            finally:
                for relay in relays:
                    relay.cancel()
                for relay in relays:
                    with contextlib.suppress(asyncio.CancelledError):
                        await relay

    app = create_app("partners", title="Alliance Dynamique — partners", lifespan=lifespan, checks=standard_checks)
    install_error_handlers(app)
    app.include_router(router)
    return app


app = build_app()
