"""What every page shares: templates, the session on each request, sign-in and role checks, CSRF, errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.portal.backends import Api, ApiError, Backends
from services.portal.formats import FILTERS
from services.portal.labels import LABELS, label, refusal
from services.portal.session import Session

__all__ = [
    "templates",
    "render",
    "redirect",
    "NeedSignIn",
    "Forbidden",
    "CsrfFailed",
    "Page",
    "PageDep",
    "role_page",
    "checked_form",
    "FormDep",
    "NOT_FOUND",
    "RecordId",
]

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.filters.update(FILTERS)
templates.env.globals.update(label=label, LABELS=LABELS)
# An id in a page's address: what the APIs' ids look like (never a path of its own, such as `..`).
RecordId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,63}$")]
NOT_FOUND = (403, 404)  # another partner's record answers like a missing one: its existence is not told


class NeedSignIn(Exception):
    def __init__(self, next_path: str, expired: bool = False) -> None:
        self.next_path, self.expired = next_path, expired


class Forbidden(Exception):
    """This role has no such page (a partner on an admin page …)."""


class CsrfFailed(Exception):
    pass


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    session: Session = request.state.session
    flash = session.flash
    if flash:
        request.state.session = session.with_flash(None)
    base = {"session": session, "csrf": session.csrf, "flash": flash, "path": request.url.path}
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(request: Request, to: str, flash: str | None = None) -> RedirectResponse:
    if flash:
        request.state.session = request.state.session.with_flash(flash)
    return RedirectResponse(to, status_code=303)


class Page:
    """One signed-in request: the session and the APIs called with the person's own token."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.session: Session = request.state.session
        backends: Backends = request.app.state.backends
        self.partners: Api = backends.partners(self.session.token)
        self.workshops: Api = backends.workshops(self.session.token)
        self.metrics: Api = backends.metrics(self.session.token)

    @property
    def partner_id(self) -> str | None:
        return self.session.partner_id

    @property
    def role(self) -> str | None:
        return self.session.role


def _signed_in(request: Request) -> Page:
    if not request.state.session.signed_in:
        raise NeedSignIn(request.url.path, expired=getattr(request.state, "expired", False))
    return Page(request)


PageDep = Annotated[Page, Depends(_signed_in)]


def role_page(*roles: str) -> Callable[[Request], Page]:
    """A dependency: the page for these roles only (others get a 403 page)."""

    def check(request: Request) -> Page:
        page = _signed_in(request)
        if page.role not in roles:
            raise Forbidden()
        return page

    return check


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF field matches this session's secret."""
    form = await request.form()
    if not request.state.session.csrf_ok(form.get("csrf")):
        raise CsrfFailed()
    return form


FormDep = Annotated[FormData, Depends(checked_form)]


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, title=title, message=message)


def install_errors(app: Any) -> None:
    """Refusals as pages: sign-in needed, another role's page, a form from elsewhere, an API's refusal."""

    @app.exception_handler(NeedSignIn)
    async def _sign_in(request: Request, exc: NeedSignIn) -> Response:
        target = f"/connexion?suite={quote(exc.next_path)}" + ("&expiree=1" if exc.expired else "")
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return error_page(request, 403, "Accès refusé", "Cette page n'est pas ouverte à votre rôle.")

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> Response:
        message = "Ce formulaire a expiré ou ne vient pas de ce portail : rechargez la page et recommencez."
        return error_page(request, 403, "Formulaire refusé", message)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:  # the token expired or was revoked: sign in again
            request.state.session = type(request.state.session).anonymous()
            return RedirectResponse(f"/connexion?suite={quote(request.url.path)}&expiree=1", status_code=303)
        if exc.status in NOT_FOUND:
            return error_page(request, 404, "Page introuvable", "Cette page n'existe pas ou ne vous est pas ouverte.")
        return error_page(request, exc.status, "Demande refusée", refusal(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if any(error.get("loc", [""])[0] == "path" for error in exc.errors()):
            return error_page(request, 404, "Page introuvable", "Cette page n'existe pas ou ne vous est pas ouverte.")
        return error_page(request, 422, "Demande refusée", "L'adresse de cette page contient une valeur invalide.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_page(request, 404, "Page introuvable", "Cette page n'existe pas ou ne vous est pas ouverte.")
        return error_page(request, exc.status_code, "Demande refusée", str(exc.detail))
