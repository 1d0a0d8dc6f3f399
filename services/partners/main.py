"""Composition root of the partners service: the one place that wires store, publisher, relay and routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from services.partners.api import router
from services.partners.api_partnerships import MAX_IMPORT_BYTES
from services.partners.auth import ensure_bootstrap_admin
from services.partners.settings import PartnersSettings
from services.partners.store import Store
from shared.docstore import MongoDocuments
from shared.layout import ensure_layout
from shared.logs import configure_logging
from shared.ratelimit import RateLimit
from shared.service import kafka_and_mongo, standard_checks
from shared.web import create_app

__all__ = ["PartnersSettings", "build_app", "app"]


@dataclass(frozen=True)
class SignInLimits:
    per_client: RateLimit
    failures: RateLimit


def build_app(settings: PartnersSettings | None = None) -> FastAPI:
    settings = settings or PartnersSettings()
    configure_logging("partners", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kafka_and_mongo(app, settings, "partners"):
            docs = MongoDocuments(app.state.mongo[settings.mongodb_database])
            await ensure_layout(docs, "partners")  # refuses data of the mutable-document layout
            store = Store.over(docs, app.state.publisher, fault_exit_before_publish=settings.fault_exit_before_publish)
            await store.ensure_indexes()
            await ensure_bootstrap_admin(store, settings.bootstrap_admin_username, settings.bootstrap_admin_password)
            app.state.store = store
            # One relay for every kind: it publishes whatever a crash or a Kafka outage left noted.
            relay = asyncio.create_task(store.outbox.relay_forever(settings.outbox_interval_s))
            try:
                yield
            finally:
                relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay

    app = create_app(
        "partners",
        title="Alliance Dynamique — partners",
        lifespan=lifespan,
        checks=standard_checks,
        max_body=MAX_IMPORT_BYTES + 64 * 1024,  # a CSV import up to its own limit, with its multipart envelope
    )
    app.state.sign_in_limits = SignInLimits(
        per_client=RateLimit(settings.auth_rate_limit, "sign-ins from this address"),
        failures=RateLimit(settings.login_failure_limit, "failed sign-ins for this account"),
    )
    app.include_router(router)
    return app


app = build_app()
