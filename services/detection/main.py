"""Composition root of the detection service (walking skeleton: health, database, publisher)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import Field

from shared.logs import configure_logging
from shared.service import kafka_and_mongo, standard_checks
from shared.settings import CommonSettings
from shared.web import create_app

__all__ = ["DetectionSettings", "build_app", "app"]


class DetectionSettings(CommonSettings):
    mongodb_database: str = Field("detection", alias="DETECTION_DB")


def build_app(settings: DetectionSettings | None = None) -> FastAPI:
    settings = settings or DetectionSettings()
    configure_logging("detection", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kafka_and_mongo(app, settings, "detection"):
            yield

    return create_app("detection", title="Alliance Dynamique — detection", lifespan=lifespan, checks=standard_checks)


app = build_app()
