"""The portal's pure parts: French formats, refusals said in words, the session cookie, the schedule form."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.portal.formats import french_date, french_datetime, french_number, french_time
from services.portal.labels import field_errors, refusal
from services.portal.main import build_app
from services.portal.pages_auth import _safe_next
from services.portal.pages_workshops import _parse_schedule
from services.portal.session import COOKIE, Session, SessionCodec
from services.portal.settings import PortalSettings

pytestmark = pytest.mark.unit


def test_french_dates_times_and_numbers() -> None:
    assert french_date("2026-12-02") == "2 décembre 2026"
    assert french_date("2027-02-01") == "1er février 2027"
    assert french_date(None) == "—"
    # A UTC instant shown at the venue: Paris in winter is UTC+1, Réunion UTC+4.
    assert french_time("2026-12-02T13:05:00+00:00", "Europe/Paris") == "14 h 05"
    assert french_datetime("2026-12-02T13:05:00Z", "Indian/Reunion") == "2 décembre 2026 à 17 h 05"
    assert french_datetime("2026-03-12T14:00:00") == "12 mars 2026 à 14 h 00"  # a venue's wall-clock time
    assert french_number(1234567) == "1\u202f234\u202f567"
    assert french_number(12.5, 1) == "12,5"
    assert french_number(None) == "—"


def test_refusals_are_said_in_words() -> None:
    signed = "cannot sign a partnership that is signed (only a draft can be signed)"
    assert refusal(signed) == "Ce partenariat est déjà signé : il ne peut pas l'être une seconde fois."
    assert refusal("the same attendee is already on line 4") == "La même personne figure déjà à la ligne 4."
    outside = "attended_at 2026-06-14T12:59:00+02:00 is outside the session: check-in is open from 2026-06-14T13:00 to "
    assert refusal(outside + "2026-06-14T17:00 at the venue (Europe/Paris), …").startswith(
        "L'heure de présence est hors de la séance : les présences se datent de 13 h 00 à 17 h 00"
    )
    too_many = "too many failed sign-ins for this account (at most 5 per 15 minutes); retry in 42 s"
    assert refusal(too_many) == "Trop d'essais manqués pour ce compte : réessayez dans 42 secondes."
    assert refusal("something new") == "Le service a refusé la demande : something new"
    assert refusal("starts_on: 'x' is not a date (YYYY-MM-DD)", prefix=False).startswith("Colonne starts_on : « x »")
    detail = [{"loc": ["body", "capacity"], "msg": "Input should be less than or equal to 500"}]
    assert field_errors(detail, {"capacity": "capacite"}) == {
        "capacite": "Valeur refusée : Input should be less than or equal to 500"
    }


def _request(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def _cookie(response: Response) -> str:
    header = response.headers["set-cookie"]
    assert "httponly" in header.lower() and "samesite=lax" in header.lower()
    return header.split(";", 1)[0].split("=", 1)[1]


def test_the_session_cookie_is_signed_and_carries_its_expiry() -> None:
    codec = SessionCodec("k" * 40)
    session = Session.anonymous().signed_in_as("tok", "partner", "pa-1", "someone", ttl_s=600)
    response = Response()
    codec.write(response, session, secure=True)
    assert "secure" in response.headers["set-cookie"].lower()
    value = _cookie(response)
    assert codec.read(_request(value)) == session
    assert codec.read(_request(value[:-3] + "abc")) is None  # tampered
    assert SessionCodec("other" * 10).read(_request(value)) is None  # another secret
    assert not replace(session, expires_at=time.time() - 1).signed_in
    assert session.csrf_ok(session.csrf) and not session.csrf_ok("forged") and not session.csrf_ok(None)
    assert session.csrf != Session.anonymous().csrf


def test_only_local_paths_are_followed_after_sign_in() -> None:
    assert _safe_next("/ateliers/ws-1") == "/ateliers/ws-1"
    for target in ("//evil.example", "https://evil.example", "/\\evil", None, ""):
        assert _safe_next(target) == "/"


def test_the_schedule_form_is_checked_field_by_field() -> None:
    body, errors = _parse_schedule({})
    assert body == {} and {"lieu", "theme", "jour", "heure", "duree", "capacite", "engagement", "form"} <= set(errors)
    form = {
        "lieu": "v-1",
        "theme": "online_banking",
        "jour": "2026-12-02",
        "heure": "14:30",
        "duree": "90",
        "capacite": "12",
        "engagement": "digital_inclusion",
        "form_id": "0" * 32,
    }
    body, errors = _parse_schedule(form)
    assert errors == {}
    assert body["starts_local"] == "2026-12-02T14:30:00" and body["workshop_id"] == "ws-" + "0" * 32
    assert _parse_schedule(form | {"capacite": "501"})[1] == {
        "capacite": "Le nombre de places est un nombre entier entre 1 et 500."
    }


def _app(**overrides: object) -> FastAPI:
    fields = {"PORTAL_PARTNERS_URL": "http://127.0.0.1:9", "PORTAL_SESSION_KEY": "s" * 40, **overrides}
    return build_app(PortalSettings(**fields))  # type: ignore[arg-type]


def _signed_in_cookie(ttl_s: int, role: str = "partner") -> str:
    codec = SessionCodec("s" * 40)
    session = Session.anonymous().signed_in_as("tok", role, "pa-1", "someone", ttl_s=ttl_s)
    if ttl_s <= 0:
        session = replace(session, expires_at=time.time() - 5)
    response = Response()
    codec.write(response, session, secure=False)
    return _cookie(response)


def test_forms_need_the_sessions_csrf_secret_and_cookies_are_safe() -> None:
    with TestClient(_app()) as client:
        page = client.get("/connexion")
        assert page.status_code == 200
        header = page.headers["set-cookie"].lower()
        assert "httponly" in header and "samesite=lax" in header and "secure" not in header  # plain http here
        assert page.headers["x-frame-options"] == "DENY"
        refused = client.post("/connexion", data={"username": "a", "password": "b", "csrf": "forged"})
        assert refused.status_code == 403 and "Formulaire refusé" in refused.text
        empty = client.post("/connexion", data={"csrf": _csrf_of(page.text)})
        assert empty.status_code == 422 and "Saisissez votre identifiant." in empty.text
    with TestClient(_app(PORTAL_SECURE_COOKIES=True)) as client:
        assert "secure" in client.get("/connexion").headers["set-cookie"].lower()


def _csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_an_expired_session_is_signed_out_and_told_so() -> None:
    with TestClient(_app(), follow_redirects=False) as client:
        client.cookies.set(COOKIE, _signed_in_cookie(0))
        response = client.get("/ateliers")
        assert response.status_code == 303
        assert response.headers["location"] == "/connexion?suite=/ateliers&expiree=1"
        notice = client.get(response.headers["location"])
        assert "Votre session a expiré" in notice.text
        client.cookies.clear()
        client.cookies.set(COOKIE, _signed_in_cookie(600, role="partner"))
        assert client.get("/admin/import").status_code == 403  # another role's page
        assert client.get("/ateliers/a b").status_code == 404  # not an id: no API is asked


def test_production_refuses_the_development_secret_and_always_sets_secure() -> None:
    with pytest.raises(ValidationError, match="PORTAL_SESSION_KEY"):
        PortalSettings(APP_ENV="production", PLATFORM_TOKEN_KEY="t" * 40, PERSON_REF_KEY="r" * 40)  # type: ignore[call-arg]
    secrets = {"PLATFORM_TOKEN_KEY": "t" * 40, "PERSON_REF_KEY": "r" * 40, "PORTAL_SESSION_KEY": "p" * 40}
    settings = PortalSettings(APP_ENV="production", **secrets)  # type: ignore[arg-type]
    assert settings.cookie_secure("http") is True
