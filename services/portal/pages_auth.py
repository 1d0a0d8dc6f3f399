"""Sign-in, sign-out, each role's home page and the accessibility statement."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.portal.backends import Api, ApiError
from services.portal.figures import partner_figures
from services.portal.labels import refusal
from services.portal.session import Session
from services.portal.web import FormDep, PageDep, redirect, render
from shared.ratelimit import vouch_for_client

__all__ = ["router"]

router = APIRouter()


def _safe_next(target: Any) -> str:
    """Only a path of this site (no `//host`, no scheme) is followed after sign-in."""
    text = str(target or "/")
    return text if text.startswith("/") and not text.startswith("//") and "\\" not in text else "/"


@router.get("/connexion", include_in_schema=False)
async def sign_in_page(request: Request, suite: str = "/", expiree: bool = False) -> Response:
    if request.state.session.signed_in:
        return redirect(request, _safe_next(suite))
    notice = "Votre session a expiré : reconnectez-vous pour continuer." if expiree else None
    return render(request, "signin.html", title="Connexion", suite=_safe_next(suite), notice=notice, errors={})


@router.post("/connexion", include_in_schema=False)
async def sign_in(request: Request, form: FormDep) -> Response:
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    suite = _safe_next(form.get("suite"))
    errors = {}
    if not username:
        errors["username"] = "Saisissez votre identifiant."
    if not password:
        errors["password"] = "Saisissez votre mot de passe."
    message, status = None, 422
    if not errors:
        api = Api(request.app.state.backends.partners_http, None)
        # The sign-in limit per address counts this person's address, not the portal's (shared.ratelimit).
        client = vouch_for_client(request.app.state.settings.platform_token_key, _address(request))
        try:
            body = await api.post("/v1/auth/token", {"username": username, "password": password}, headers=client)
        except ApiError as exc:
            message, status = refusal(exc.detail), exc.status
        else:
            session: Session = request.state.session
            request.state.session = session.signed_in_as(
                body["access_token"], body["role"], body.get("partner_id"), username, int(body["expires_in"])
            )
            return redirect(request, suite)
    context = {"title": "Connexion", "suite": suite, "errors": errors, "username": username, "message": message}
    return render(request, "signin.html", status=status, **context)


@router.post("/deconnexion", include_in_schema=False)
async def sign_out(request: Request, form: FormDep) -> Response:
    request.state.session = Session.anonymous().with_flash("Vous êtes déconnecté·e.")
    return redirect(request, "/connexion")


@router.get("/accessibilite", include_in_schema=False)
async def accessibility(request: Request) -> Response:
    return render(request, "accessibility.html", title="Accessibilité")


@router.get("/", include_in_schema=False)
async def home(page: PageDep) -> Response:
    year = date.today().year
    if page.role == "partner":
        partner, partnerships, workshops, figures = await asyncio.gather(
            page.partners.get(f"/v1/partners/{page.partner_id}"),
            page.partners.get("/v1/partnerships", page_size=100),
            page.workshops.get("/v1/workshops", limit=1000),
            partner_figures(page.metrics, page.partner_id or "", year),
        )
        today = date.today().isoformat()
        upcoming = [w for w in workshops if w.get("status") == "scheduled" and w["starts_local"] >= today]
        context = {"partner": partner, "partnerships": partnerships, "upcoming": upcoming, "figures": figures}
        return render(page.request, "home_partner.html", title="Accueil", year=year, **context)
    if page.role in ("admin", "monitoring"):
        statuses = ("draft", "signed", "active", "ended")
        totals = await asyncio.gather(
            *(page.partners.get("/v1/partnerships", status=s, page_size=1) for s in statuses),
            page.partners.get("/v1/partnerships", signed_year=year, page_size=1),
        )
        counts = {s: t["total"] for s, t in zip(statuses, totals, strict=False)}
        return render(
            page.request, "home_admin.html", title="Accueil", counts=counts, signed=totals[-1]["total"], year=year
        )
    sessions, accompaniments = await asyncio.gather(
        page.workshops.get("/v1/workshops", limit=200), page.workshops.get("/v1/accompaniments", limit=200)
    )
    return render(page.request, "home_adviser.html", title="Accueil", sessions=sessions, accompaniments=accompaniments)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
