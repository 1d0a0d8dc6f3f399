"""Composition root of the partners service (walking skeleton: health, database, publisher)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import Field

from shared.logs import configure_logging
from shared.service import kafka_and_mongo, standard_checks
from shared.settings import CommonSettings
from shared.web import create_app

__all__ = ["PartnersSettings", "build_app", "app"]


class PartnersSettings(CommonSettings):
    mongodb_database: str = Field("partners", alias="PARTNERS_DB")


def build_app(settings: PartnersSettings | None = None) -> FastAPI:
    settings = settings or PartnersSettings()
    configure_logging("partners", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kafka_and_mongo(app, settings, "partners"):
            yield

    return create_app("partners", title="Alliance Dynamique — partners", lifespan=lifespan, checks=standard_checks)


app = build_app()
