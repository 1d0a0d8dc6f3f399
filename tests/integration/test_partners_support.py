"""Helpers of the partners tests (no tests here): made-up organisations, sign-in, CSV rows."""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx

from services.partners.domain import siret_is_valid
from services.partners.settings import DEV_BOOTSTRAP_ADMIN_PASSWORD

ADMIN = {"username": "admin", "password": DEV_BOOTSTRAP_ADMIN_PASSWORD}
PASSWORD = "test-only-password-0123"


def fake_siret(rng: random.Random | None = None) -> str:
    """A made-up SIRET with a valid Luhn checksum (never La Poste's own SIREN)."""
    rng = rng or random.Random()
    while True:
        head = "9" + "".join(rng.choice("0123456789") for _ in range(12))
        for last in "0123456789":
            if siret_is_valid(head + last):
                return head + last


def fake_rna() -> str:
    return "W" + "".join(random.choice("0123456789") for _ in range(9))


def sign_in(http: httpx.Client, username: str, password: str) -> dict[str, str]:
    r = http.post("/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def partner_body(legal_id: str | None = None, **over: Any) -> dict[str, Any]:
    body = {
        "name": f"Association Test {uuid.uuid4().hex[:6]}",
        "kind": "association",
        "legal_id": legal_id or fake_siret(),
        "address": {"street": "1 rue de l'Exemple", "postcode": "69001", "city": "Lyon", "commune_insee": "69123"},
        "departements": ["69", "01"],
        "contacts": [
            {"name": "Contact Fictif", "email": "contact.fictif@example.invalid", "phone": "+33 1 00 00 00 00"}
        ],
    }
    return body | over


def partnership_body(partner_id: str | None, **over: Any) -> dict[str, Any]:
    body = {
        "partnership_type": "skills_sponsorship",
        "commitments": ["digital_inclusion", "social_inclusion"],
        "departements": ["69"],
        "starts_on": "2031-04-01",
        "ends_on": "2032-03-31",
    }
    if partner_id:
        body["partner_id"] = partner_id
    return body | over


def new_partner(http: httpx.Client, admin: dict[str, str], **over: Any) -> dict[str, Any]:
    r = http.post("/v1/partners", json=partner_body(**over), headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


def new_user(http: httpx.Client, admin: dict[str, str], role: str, partner_id: str | None = None) -> dict[str, str]:
    username = f"{role}-{uuid.uuid4().hex[:10]}@example.invalid"
    body = {"username": username, "password": PASSWORD, "role": role, "partner_id": partner_id}
    r = http.post("/v1/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return sign_in(http, username, PASSWORD)
