"""Composition root of the partner portal: the API clients, the session cookie, static DSFR files, the pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from services.portal import (
    pages_accompaniments,
    pages_admin,
    pages_attendance,
    pages_auth,
    pages_partner,
    pages_workshops,
)
from services.portal.backends import Backends
from services.portal.session import Session, SessionCodec
from services.portal.settings import PortalSettings
from services.portal.web import install_errors
from shared.limits import FORM_TYPES
from shared.logs import configure_logging
from shared.web import create_app

__all__ = ["build_app", "app"]

STATIC = Path(__file__).with_name("static")
MAX_BODY = 11 * 1024 * 1024  # the partnerships import takes files up to 10 MiB
# Scripts and styles come from this server only; no page may be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def build_app(settings: PortalSettings | None = None) -> FastAPI:
    settings = settings or PortalSettings()
    codec = SessionCodec(settings.session_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("portal", settings.log_level)  # when serving: importing the app changes no logging
        backends = Backends(settings.partners_url, settings.workshops_url, settings.metrics_url, settings.api_timeout_s)
        app.state.backends = backends
        try:
            yield
        finally:
            await backends.close()

    def checks(app: FastAPI) -> dict:
        async def assets() -> bool:
            return (settings.assets_dir / "dsfr.min.css").is_file()

        return {"apis": app.state.backends.reachable, "assets": assets}

    app = create_app(
        "portal",
        title="Alliance Dynamique — portail partenaires",
        lifespan=lifespan,
        checks=checks,
        max_body=MAX_BODY,
        media_types=FORM_TYPES,
    )
    app.state.settings = settings
    install_errors(app)

    @app.middleware("http")
    async def _session(request: Request, call_next):  # type: ignore[no-untyped-def]
        if request.url.path.startswith("/static/"):
            return await call_next(request)
        read = codec.read(request)
        session = read if read is not None else Session.anonymous()
        if session.token and not session.signed_in:  # the token has expired: signed out, and told so
            request.state.expired = True
            session = Session.anonymous()
        request.state.session = session
        response: Response = await call_next(request)
        if request.state.session is not read:
            codec.write(response, request.state.session, secure=settings.cookie_secure(request.url.scheme))
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.mount("/static/dsfr", StaticFiles(directory=settings.assets_dir, check_dir=False), name="dsfr")
    app.mount("/static/portal", StaticFiles(directory=STATIC), name="portal")
    for module in (pages_auth, pages_partner, pages_workshops, pages_attendance, pages_accompaniments, pages_admin):
        app.include_router(module.router)
    return app


app = build_app()
