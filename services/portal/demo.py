"""Demo accounts for the portal, made through the partners and workshops APIs (never their databases): two
partner organisations, a draft partnership and a venue each, and one staff account each, whose usernames and
passwords go to .run/demo-credentials-portal.json (git-ignored, mode 600). Running it again changes nothing.

    python -m services.portal.demo
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from services.partners.domain import partner_id_for
from services.partners.settings import PartnersSettings
from services.portal.settings import ROOT, PortalSettings

__all__ = ["ORGANISATIONS", "CREDENTIALS", "load", "write_credentials", "main"]

CREDENTIALS = ROOT / ".run" / "demo-credentials-portal.json"
ORGANISATIONS: list[dict[str, Any]] = [
    {
        "tag": "pimms-saint-denis",
        "name": "PIMMS Médiation Saint-Denis (démo)",
        "legal_id": "W931000001",
        "address": {
            "street": "12 place du Caquet",
            "postcode": "93200",
            "city": "Saint-Denis",
            "commune_insee": "93066",
        },
        "departements": ["93", "95"],
    },
    {
        "tag": "connect-sud-marseille",
        "name": "Association Connect'Sud Marseille (démo)",
        "legal_id": "W133000002",
        "address": {
            "street": "5 rue de la République",
            "postcode": "13002",
            "city": "Marseille",
            "commune_insee": "13055",
        },
        "departements": ["13"],
    },
]


def _ok(response: httpx.Response, *allowed: int) -> dict[str, Any]:
    if response.status_code not in allowed:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json() if response.content else {}


def _wait(client: httpx.Client, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {what} service is not ready at {client.base_url}")
        time.sleep(1)


def _signs_in(partners: httpx.Client, username: str, password: str) -> bool:
    return partners.post("/v1/auth/token", json={"username": username, "password": password}).status_code == 200


def _account(partners: httpx.Client, admin: dict[str, str], known: dict[str, Any], org: dict[str, Any]) -> dict:
    """The organisation's staff account: the one already written down if it still signs in, else a new one."""
    partner_id = partner_id_for(org["legal_id"])
    if known and _signs_in(partners, known["username"], known["password"]):
        return known
    for attempt in range(1, 6):
        username = f"equipe.{org['tag']}" + (f"-{attempt}" if attempt > 1 else "")
        password = secrets.token_urlsafe(18)
        body = {"username": username, "password": password, "role": "partner", "partner_id": partner_id}
        r = partners.post("/v1/users", json=body, headers=admin)
        if r.status_code == 201:
            return {"username": username, "password": password, "role": "partner", "partner_id": partner_id}
        if r.status_code != 409:  # 409: taken by an earlier run whose password is lost; try the next name
            _ok(r, 201)
    raise RuntimeError(f"no free username for {org['tag']}")


def load(
    partners: httpx.Client,
    workshops: httpx.Client,
    admin_user: str,
    admin_password: str,
    known_file: Path = CREDENTIALS,
) -> dict[str, Any]:
    """Everything the demo needs, made or found again; the accounts already in `known_file` are kept."""
    token = _ok(partners.post("/v1/auth/token", json={"username": admin_user, "password": admin_password}), 200)
    admin = {"Authorization": f"Bearer {token['access_token']}"}
    known = {}
    if known_file.is_file():
        known = {a["organisation_tag"]: a for a in json.loads(known_file.read_text()).get("accounts", [])}
    accounts = []
    for n, org in enumerate(ORGANISATIONS, start=1):
        body = {k: org[k] for k in ("name", "legal_id", "address", "departements")} | {"kind": "association"}
        _ok(partners.post("/v1/partners", json=body, headers=admin), 201, 409)  # 409: there from an earlier run
        partner_id = partner_id_for(org["legal_id"])
        draft = {
            "partner_id": partner_id,
            "external_ref": f"DEMO-PORTAIL-{n}",
            "title": "Ateliers numériques de proximité",
            "partnership_type": "social_innovation",
            "commitments": ["digital_inclusion", "social_inclusion"],
            "departements": org["departements"],
            "starts_on": date(date.today().year, 1, 1).isoformat(),
            "ends_on": date(date.today().year + 3, 1, 1).isoformat(),
        }
        _ok(partners.post("/v1/partnerships", json=draft, headers=admin), 200, 201)
        venue = {
            "venue_id": f"demo-portail-{org['tag']}",
            "name": f"Locaux de {org['name'].removesuffix(' (démo)')}",
            "kind": "partner_premises",
            "commune_insee": org["address"]["commune_insee"],
            "partner_id": partner_id,
            "opened_on": date(date.today().year, 1, 2).isoformat(),
        }
        _ok(workshops.post("/v1/venues", json=venue, headers=admin), 200, 201, 202)
        account = _account(partners, admin, known.get(org["tag"], {}), org)
        accounts.append({**account, "organisation": org["name"], "organisation_tag": org["tag"]})
    return {
        "portal": f"http://127.0.0.1:{os.environ.get('PORTAL_PORT', '8005')}/",
        "admin": {"username": admin_user, "password_from": "PARTNERS_BOOTSTRAP_ADMIN_PASSWORD"},
        "accounts": accounts,
    }


def write_credentials(doc: dict[str, Any], path: Path = CREDENTIALS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out, ensure_ascii=False, indent=2)
    os.chmod(path, 0o600)  # also when the file was there with looser rights


def main() -> None:
    portal = PortalSettings()
    partners_settings = PartnersSettings()
    with (
        httpx.Client(base_url=portal.partners_url, timeout=30) as partners,
        httpx.Client(base_url=portal.workshops_url, timeout=30) as workshops,
    ):
        _wait(partners, "partners")
        _wait(workshops, "workshops")
        doc = load(
            partners, workshops, partners_settings.bootstrap_admin_username, partners_settings.bootstrap_admin_password
        )
    write_credentials(doc)
    names = ", ".join(a["username"] for a in doc["accounts"])
    print(f"portal demo accounts ready ({names}); passwords in {CREDENTIALS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
