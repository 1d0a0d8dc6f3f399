"""The partner portal in headless Chromium (Debian's `chromium`, driven by Playwright) against the real stack:
a partner schedules a workshop, registers people, takes attendance at the door and by sheet, and the operations
dashboard moves; another partner cannot see or touch it; an admin signs a partnership; every page passes axe-core.

It works in a year nobody else uses (2013), so no other suite moves the dashboard's numbers under it.
Screenshots go to .run/screenshots/portal-*.png (git-ignored).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api as playwright_api

from services.partners.settings import DEV_BOOTSTRAP_ADMIN_PASSWORD
from tests.conftest import ROOT, Service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

YEAR = 2013
SCREENSHOTS = ROOT / ".run" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
expect = playwright_api.expect
ADDRESS = {"street": "1 rue de la Paix", "postcode": "93200", "city": "Saint-Denis", "commune_insee": "93066"}
# What axe found on each page checked (impact → count), printed at the end of the module for the record.
A11Y: dict[str, dict[str, int]] = {}


# --- the world the tests act in (made through the APIs, as an operator would) ------------------------------


class World:
    def __init__(self, services: dict[str, Service], portal: Service) -> None:
        self.partners, self.workshops, self.metrics = services["partners"], services["workshops"], services["metrics"]
        self.portal = portal
        self.run = uuid.uuid4().hex[:8]
        self.admin = self.sign_in("admin", DEV_BOOTSTRAP_ADMIN_PASSWORD)
        self.accounts: dict[str, dict[str, str]] = {}
        self.venue_id = ""

    def sign_in(self, username: str, password: str) -> dict[str, str]:
        r = self.partners.http.post("/v1/auth/token", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def partner(self, tag: str) -> dict[str, str]:
        """A partner organisation in Seine-Saint-Denis and one staff account of it."""
        legal_id = "W" + str(secrets.randbelow(10**9)).zfill(9)
        body = {
            "name": f"Association Portail {tag} {self.run}",
            "kind": "association",
            "legal_id": legal_id,
            "address": {
                "street": "1 rue de la Paix",
                "postcode": "93200",
                "city": "Saint-Denis",
                "commune_insee": "93066",
            },
            "departements": ["93"],
        }
        r = self.partners.http.post("/v1/partners", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        account = {"partner_id": r.json()["id"], "legal_id": legal_id, "username": f"portail-{tag}-{self.run}"}
        account["password"] = secrets.token_urlsafe(16)
        user = {"username": account["username"], "password": account["password"], "role": "partner"}
        r = self.partners.http.post("/v1/users", json=user | {"partner_id": account["partner_id"]}, headers=self.admin)
        assert r.status_code == 201, r.text
        self.accounts[tag] = account
        return account

    def venue(self) -> str:
        venue_id = f"v-portal-{self.run}"
        body = {
            "venue_id": venue_id,
            "name": f"Bureau de poste de Saint-Denis {self.run}",
            "kind": "post_office_room",
            "commune_insee": "93066",
            "qpv": True,
            "opened_on": f"{YEAR - 1}-01-02",
        }
        r = self.workshops.http.post("/v1/venues", json=body, headers=self.admin)
        assert r.status_code in (200, 201), r.text
        return venue_id

    def draft(self, partner_id: str) -> str:
        body = {
            "partner_id": partner_id,
            "title": f"Ateliers numériques {self.run}",
            "partnership_type": "social_innovation",
            "commitments": ["digital_inclusion"],
            "departements": ["93"],
            "starts_on": f"{YEAR}-01-15",
            "ends_on": f"{YEAR + 2}-01-14",
        }
        r = self.partners.http.post("/v1/partnerships", json=body, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()["id"]


@pytest.fixture(scope="module")
def world(services: dict[str, Service], portal: Service) -> World:
    assert AXE.is_file(), "axe-core is missing: run `npm ci` (make install does)"
    w = World(services, portal)
    w.partner("a")
    w.partner("b")
    w.venue_id = w.venue()
    return w


@pytest.fixture(scope="module")
def browser(browser: Any) -> Iterator[Any]:
    """The shared headless Chromium (conftest.py); the accessibility findings are printed once all pages ran."""
    yield browser
    print("\naxe-core findings per page (impact: count):", A11Y)


def new_page(browser: Any) -> Any:
    # bypass_csp: axe is injected as an inline script, which the portal's CSP refuses (as it should).
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return page


def sign_in(page: Any, portal: Service, username: str, password: str, *, here: bool = False) -> None:
    if not here:  # else: the sign-in page the portal sent us to, with where to go next
        page.goto(f"{portal.url}/connexion")
    page.get_by_label("Identifiant", exact=True).fill(username)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()


def check_page(page: Any, name: str) -> None:
    """A full-page screenshot, then axe-core over the page: no serious or critical violation."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"portal-{name}.png"), full_page=True)
    assert page.locator("html").get_attribute("lang") == "fr"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    counts: dict[str, int] = {}
    for violation in result["violations"]:
        counts[violation["impact"]] = counts.get(violation["impact"], 0) + 1
    A11Y[name] = counts
    bad = [
        (v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:5])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{name}: {bad}"
    assert page.js_errors == [], page.js_errors


def dashboard(browser: Any, metrics: Service) -> tuple[Any, dict[str, Any]]:
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, locale="fr-FR")
    page.goto(f"{metrics.url}/?year={YEAR}")
    values = {}
    for indicator in ("people_helped", "new_partnerships"):
        cell = page.locator(f'[data-indicator="{indicator}"]')
        expect(cell).to_have_attribute("data-value", re.compile(r"^\d+$"))
        values[indicator] = cell
    page.evaluate("window.__notReloaded = true")
    return page, values


def value(cell: Any) -> int:
    return int(cell.get_attribute("data-value"))


def flash(page: Any) -> Any:
    return page.locator("main .fr-alert--success")


# --- the partner's day -------------------------------------------------------------------------------------


def test_a_partner_runs_a_workshop_and_the_dashboard_moves(world: World, browser: Any) -> None:
    board, cells = dashboard(browser, world.metrics)
    helped_before = value(cells["people_helped"])
    account = world.accounts["a"]
    page = new_page(browser)
    page.goto(f"{world.portal.url}/ateliers")
    expect(page).to_have_url(re.compile(r"/connexion\?suite=/ateliers"))  # signed out: sent to sign in first
    check_page(page, "sign-in")
    sign_in(page, world.portal, account["username"], account["password"], here=True)
    expect(page).to_have_url(re.compile(r"/ateliers$"))
    page.goto(f"{world.portal.url}/")
    expect(page.locator("h1")).to_have_text(f"Association Portail a {world.run}")
    check_page(page, "home-partner")

    # Schedule: an empty form is answered field by field, next to each field.
    page.goto(f"{world.portal.url}/ateliers/nouveau")
    page.locator("#f-duree").fill("")
    page.get_by_role("button", name="Programmer l'atelier").click()
    expect(page.locator("#f-lieu-error")).to_have_text("Choisissez le lieu de l'atelier.")
    expect(page.locator("#f-jour-error")).to_contain_text("Indiquez la date")
    expect(page.locator("#f-duree-error")).to_contain_text("entre 15 et 480")
    assert page.locator("#f-jour").get_attribute("aria-describedby") == "f-jour-error"
    check_page(page, "workshop-new-errors")
    page.locator("#f-lieu").select_option(world.venue_id)
    page.locator("#f-theme").select_option("online_banking")
    page.locator("#f-jour").fill(f"{YEAR}-03-12")
    page.locator("#f-heure").fill("14:00")
    page.locator("#f-duree").fill("90")
    page.locator("#f-capacite").fill("1")
    check_page(page, "workshop-new")
    page.get_by_role("button", name="Programmer l'atelier").click()
    expect(flash(page)).to_have_text(f"Atelier programmé le 12 mars {YEAR} à 14 h 00 (heure de Paris).")
    workshop_url = page.url
    assert re.search(r"/ateliers/ws-[0-9a-f]{32}$", workshop_url), workshop_url

    # Two people: the first takes the only seat, the second is told the workshop is full and waits.
    first, second = f"PORTAIL-{world.run}-1", f"PORTAIL-{world.run}-2"
    for reference in (first, second):
        page.get_by_role("radio", name="Orientée par La Poste").check()
        page.locator("#f-reference-inscription").fill(reference)
        page.get_by_role("button", name="Inscrire", exact=True).click()
    expect(flash(page)).to_contain_text(
        "L'atelier est complet : la personne est inscrite en liste d'attente (position 1)"
    )
    expect(page.locator("tr[data-registration]")).to_have_count(1)
    expect(page.locator("tr[data-waiting]")).to_have_count(1)
    expect(page.locator("[data-registered]")).to_contain_text("l'atelier est complet")
    # The same person again is no second registration.
    page.locator("#f-reference-inscription").fill(first)
    page.get_by_role("button", name="Inscrire", exact=True).click()
    expect(flash(page)).to_contain_text("déjà inscrite")

    # A pre-filled sheet to print: one line per seated person, with their registration number.
    template = page.request.get(f"{workshop_url}/feuille-modele.csv")
    assert template.headers["content-type"].startswith("text/csv")
    lines = template.text().splitlines()
    assert lines[0] == "seat,client_reference,registration_id,attended_at" and len(lines) == 2
    assert lines[1].startswith("1,,reg-")

    # Attendance at the door for the first, with the keyboard only (see the dedicated test too).
    keyboard_check_in(page, first)
    expect(flash(page)).to_have_text("Présence enregistrée.")
    expect(page.locator("tr[data-registration]").first).to_contain_text("Présente à 14 h 00")
    check_page(page, "workshop")

    # The check-in sheet for the second, with a line that cannot be right: the report says which and why.
    sheet = f"seat,client_reference,registration_id\n1,{second},\n2,,reg-does-not-exist\n"
    page.locator("#f-sheet").set_input_files(
        files=[{"name": "feuille.csv", "mimeType": "text/csv", "buffer": sheet.encode()}]
    )
    page.get_by_role("button", name="Déposer la feuille").click()
    report = page.locator("#rapport")
    expect(report).to_contain_text("1 présence enregistrée, 0 déjà enregistrée, 1 ligne refusée")
    expect(report.locator('tr[data-line="2"]')).to_have_attribute("data-status", "recorded")
    expect(report.locator('tr[data-line="3"]')).to_contain_text(
        "Aucune inscription active ne porte ce numéro dans cette séance."
    )
    check_page(page, "sheet-report")

    # The dashboard, never reloaded, counts the two people.
    expect(cells["people_helped"]).to_have_attribute("data-value", str(helped_before + 2), timeout=60_000)
    assert board.evaluate("window.__notReloaded") is True
    progress = world.metrics.http.get("/v1/progress", params={"year": YEAR}).json()
    assert next(i["value"] for i in progress["indicators"] if i["id"] == "people_helped") == helped_before + 2

    # The partner's own figures: the metrics API's numbers by month, in French, with a CSV download (the XLSX one
    # is read back in test_portal_figures.py).
    page.goto(f"{world.portal.url}/chiffres?annee={YEAR}")
    expect(page.locator('[data-figure="people_helped"]')).to_have_attribute("data-value", "2")
    expect(page.locator('[data-figure="workshop_attendances"]')).to_have_text("2")
    check_page(page, "figures")
    with page.expect_download() as download:
        page.get_by_role("link", name="Télécharger ces chiffres (CSV)").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("Année;Mois;Personnes accompagnées;Participations aux ateliers;")
    assert lines[3].startswith(f"{YEAR};{YEAR}-03;2;2;") and lines[-1].startswith(f"{YEAR};Total;2;2;")

    page.goto(f"{world.portal.url}/ateliers")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text(f"12 mars {YEAR} à 14 h 00")
    check_page(page, "workshops")
    page.goto(f"{world.portal.url}/organisation")
    check_page(page, "organisation")
    board.close()
    page.context.close()


def keyboard_check_in(page: Any, reference: str) -> None:
    """Tab from the top of the page to the attendance field, type, Tab to its button, Enter: no mouse."""
    page.evaluate("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    page.locator("body").focus()
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "f-presence":
            break
    else:
        pytest.fail("the attendance field cannot be reached with the Tab key")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused field shows no focus ring"
    page.keyboard.type(reference)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Enregistrer la présence"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    page.wait_for_load_state()


def test_the_attendance_form_can_be_completed_with_the_keyboard_alone(world: World, browser: Any) -> None:
    account = world.accounts["b"]  # not "a": its figures for the year are checked above
    workshop_id = schedule_by_api(world, account, "2013-05-06T10:00")
    page = new_page(browser)
    sign_in(page, world.portal, account["username"], account["password"])
    page.goto(f"{world.portal.url}/ateliers/{workshop_id}")
    keyboard_check_in(page, f"PORTAIL-{world.run}-walk-in")
    expect(flash(page)).to_have_text("Présence enregistrée.")
    expect(page.locator("tr[data-attendance]")).to_have_count(1)
    # An empty field is answered next to the field, and the message is tied to it.
    keyboard_check_in(page, "")
    expect(page.locator("#f-presence-error")).to_have_text("Saisissez la référence client de la personne présente.")
    assert "f-presence-error" in page.locator("#f-presence").get_attribute("aria-describedby")
    check_page(page, "attendance-error")
    page.context.close()


def schedule_by_api(world: World, account: dict[str, str], starts_local: str) -> str:
    token = world.sign_in(account["username"], account["password"])
    workshop_id = f"ws-api-{uuid.uuid4().hex[:12]}"
    body = {
        "workshop_id": workshop_id,
        "theme": "smartphone_basics",
        "venue_id": world.venue_id,
        "partner_id": account["partner_id"],
        "starts_local": starts_local,
        "capacity": 8,
    }
    r = world.workshops.http.post("/v1/workshops", json=body, headers=token)
    assert r.status_code == 201, r.text
    return workshop_id


# --- one partner never reaches another's data --------------------------------------------------------------


def test_a_partner_cannot_open_or_change_another_partners_workshop(world: World, browser: Any) -> None:
    a, b = world.accounts["a"], world.accounts["b"]
    workshop_id = schedule_by_api(world, a, "2013-04-02T09:30")
    partnership_id = world.draft(a["partner_id"])
    page = new_page(browser)
    sign_in(page, world.portal, b["username"], b["password"])
    response = page.goto(f"{world.portal.url}/ateliers/{workshop_id}")
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page introuvable")
    check_page(page, "not-found")
    assert page.goto(f"{world.portal.url}/partenariats/{partnership_id}").status == 404
    page.goto(f"{world.portal.url}/ateliers")
    expect(page.locator(f'a[href="/ateliers/{workshop_id}"]')).to_have_count(0)

    # Posting to it with B's own valid session and CSRF secret changes nothing.
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    posts = {
        "inscriptions": {"origin": "referral", "client_reference": "INTRUS-1", "form_id": uuid.uuid4().hex},
        "presences": {"client_reference": "INTRUS-1"},
    }
    for action, form in posts.items():
        r = page.request.post(f"{world.portal.url}/ateliers/{workshop_id}/{action}", form={"csrf": csrf, **form})
        assert r.status in (403, 404), (action, r.status)
    token = world.sign_in(a["username"], a["password"])
    seen = world.workshops.http.get(f"/v1/workshops/{workshop_id}", headers=token).json()
    assert seen["registrations"] == []
    assert world.workshops.http.get(f"/v1/workshops/{workshop_id}/attendances", headers=token).json() == []

    # A form without the session's CSRF secret is refused, even from a signed-in browser.
    r = page.request.post(f"{world.portal.url}/ateliers/nouveau", form={"csrf": "forged", "lieu": "x"})
    assert r.status == 403
    # Admin pages are not a partner's.
    assert page.goto(f"{world.portal.url}/admin/partenariats").status == 403
    page.context.close()


def test_session_cookie_and_sign_out(world: World, browser: Any) -> None:
    account = world.accounts["b"]
    page = new_page(browser)
    sign_in(page, world.portal, account["username"], account["password"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "portail_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert cookie["expires"] > 0  # lives as long as the token, not the browser
    headers = page.goto(f"{world.portal.url}/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    # A tampered cookie is no session.
    forged = {**cookie, "value": cookie["value"][:-4] + "AAAA"}
    page.context.add_cookies([forged])
    page.goto(f"{world.portal.url}/organisation")
    expect(page).to_have_url(re.compile(r"/connexion"))
    sign_in(page, world.portal, account["username"], account["password"])
    page.get_by_role("button", name="Se déconnecter").click()
    expect(flash(page)).to_have_text("Vous êtes déconnecté·e.")
    page.goto(f"{world.portal.url}/organisation")
    expect(page).to_have_url(re.compile(r"/connexion\?suite=/organisation"))
    # Wrong password: said in words, next to nothing sensitive.
    page.get_by_label("Identifiant", exact=True).fill(account["username"])
    page.get_by_label("Mot de passe").fill("not-the-password")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("main .fr-alert--error")).to_have_text("Identifiant ou mot de passe incorrect.")
    page.context.close()


# --- La Poste staff ----------------------------------------------------------------------------------------


def test_an_admin_signs_a_draft_and_new_partnerships_moves(world: World, browser: Any) -> None:
    draft = world.draft(world.accounts["a"]["partner_id"])
    board, cells = dashboard(browser, world.metrics)
    before = value(cells["new_partnerships"])
    page = new_page(browser)
    sign_in(page, world.portal, "admin", DEV_BOOTSTRAP_ADMIN_PASSWORD)
    check_page(page, "home-admin")
    page.goto(f"{world.portal.url}/admin/partenariats?statut=draft")
    expect(page.locator("tbody tr").first).to_be_visible()
    check_page(page, "admin-partnerships")
    page.goto(f"{world.portal.url}/partenariats/{draft}")
    stale = page.context.new_page()  # the same page, opened earlier in another tab
    stale.goto(page.url)
    check_page(page, "partnership-draft")
    page.locator("#f-signer-signed_on").fill(f"{YEAR}-06-20")
    page.get_by_role("button", name="Signer", exact=True).click()
    expect(flash(page)).to_have_text("Partenariat signé.")
    expect(page.locator("main")).to_contain_text(f"Signé le 20 juin {YEAR}")
    check_page(page, "partnership-signed")
    expect(cells["new_partnerships"]).to_have_attribute("data-value", str(before + 1), timeout=60_000)
    assert board.evaluate("window.__notReloaded") is True

    # The other tab still offers to sign: the conflict is said in words.
    stale.locator("#f-signer-signed_on").fill(f"{YEAR}-06-21")
    stale.get_by_role("button", name="Signer", exact=True).click()
    expect(stale.locator("#action-error")).to_have_text(
        "Ce partenariat est déjà signé : il ne peut pas l'être une seconde fois."
    )
    assert value(cells["new_partnerships"]) == before + 1

    # Activate, then end with a reason: the history grows.
    page.locator("#f-activer-activated_on").fill(f"{YEAR}-07-01")
    page.get_by_role("button", name="Activer", exact=True).click()
    expect(flash(page)).to_have_text("Partenariat activé.")
    page.locator("#f-renouveler-ends_on").fill(f"{YEAR + 3}-01-14")
    page.locator("#f-renouveler-renewed_on").fill(f"{YEAR}-12-01")
    page.get_by_role("button", name="Renouveler", exact=True).click()
    expect(flash(page)).to_have_text("Partenariat renouvelé.")
    expect(page.locator("main")).to_contain_text(f"fin reportée du 14 janvier {YEAR + 2} au 14 janvier {YEAR + 3}")
    page.locator("#f-terminer-ended_on").fill(f"{YEAR + 1}-02-01")
    page.locator("#f-reason").select_option("objectives_met")
    page.get_by_role("button", name="Mettre fin").click()
    expect(flash(page)).to_have_text("Partenariat terminé.")
    expect(page.locator("main")).to_contain_text(f"Terminé le 1er février {YEAR + 1} — Objectifs atteints")
    board.close()
    page.context.close()


def test_an_admin_imports_partnerships_and_reads_the_report(world: World, browser: Any) -> None:
    legal_id = world.accounts["b"]["legal_id"]
    ref = f"PORTAIL-IMPORT-{world.run}"
    csv_text = (
        "external_ref,partner_legal_id,partnership_type,commitments,departements,status,starts_on\n"
        f"{ref},{legal_id},inclusive_purchasing,digital_inclusion,93,draft,{YEAR}-09-01\n"
        f"{ref}-2,{legal_id},inclusive_purchasing,digital_inclusion,93,draft,not-a-date\n"
    )
    page = new_page(browser)
    sign_in(page, world.portal, "admin", DEV_BOOTSTRAP_ADMIN_PASSWORD)
    page.goto(f"{world.portal.url}/admin/import")
    page.locator("#f-file").set_input_files(
        files=[{"name": "import.csv", "mimeType": "text/csv", "buffer": csv_text.encode()}]
    )
    page.get_by_role("button", name="Importer").click()
    report = page.locator("#rapport")
    expect(report).to_contain_text("2 lignes lues : 1 importée, 0 inchangée, 1 refusée")
    expect(report.locator('tr[data-line="3"]')).to_contain_text("Colonne starts_on : « not-a-date » n'est pas une date")
    check_page(page, "admin-import")
    page.goto(f"{world.portal.url}/admin/organisations")
    check_page(page, "admin-organisations")
    page.context.close()
    listed = httpx.get(
        f"{world.partners.url}/v1/partnerships",
        params={"partner_id": world.accounts["b"]["partner_id"]},
        headers=world.admin,
    ).json()
    assert [p["external_ref"] for p in listed["items"]] == [ref]


# --- the demo accounts `make run` creates ------------------------------------------------------------------


def test_the_demo_loader_makes_accounts_that_sign_in_and_keeps_them(world: World, browser: Any, tmp_path: Path) -> None:
    from services.portal import demo

    path = tmp_path / "demo-credentials-portal.json"
    first = demo.load(world.partners.http, world.workshops.http, "admin", DEV_BOOTSTRAP_ADMIN_PASSWORD, path)
    demo.write_credentials(first, path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = demo.load(world.partners.http, world.workshops.http, "admin", DEV_BOOTSTRAP_ADMIN_PASSWORD, path)
    assert again["accounts"] == first["accounts"]  # a second run changes nothing
    assert len({a["partner_id"] for a in first["accounts"]}) == 2
    account = first["accounts"][0]
    page = new_page(browser)
    sign_in(page, world.portal, account["username"], account["password"])
    page.goto(f"{world.portal.url}/ateliers/nouveau")
    venue = f"demo-portail-{account['organisation_tag']}"
    expect(page.locator(f'#f-lieu option[value="{venue}"]')).to_have_count(1)  # its own premises are offered
    page.goto(f"{world.portal.url}/organisation")
    expect(page.locator("tbody")).to_contain_text("Ateliers numériques de proximité")
    page.context.close()


def test_a_partner_records_and_retracts_an_accompaniment(world: World, browser: Any) -> None:
    account = world.accounts["b"]
    page = new_page(browser)
    sign_in(page, world.portal, account["username"], account["password"])
    page.goto(f"{world.portal.url}/accompagnements")
    page.locator("#f-need").select_option("online_banking")
    page.locator("#f-lieu").select_option(world.venue_id)
    page.locator("#f-jour").fill(f"{YEAR}-06-03")
    page.locator("#f-heure").fill("10:00")
    page.locator("#f-duree").fill("45")
    page.locator("#f-client_reference").fill(f"PORTAIL-{world.run}-acc")
    page.get_by_role("button", name="Enregistrer l'accompagnement").click()
    expect(flash(page)).to_have_text("Accompagnement enregistré.")
    row = page.locator("tr[data-accompaniment]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"3 juin {YEAR} à 10 h 00")
    check_page(page, "accompaniments")
    row.get_by_label("Motif du retrait").fill("saisie en double")
    row.get_by_role("button", name="Retirer").click()
    expect(flash(page)).to_have_text("Accompagnement retiré : il ne compte plus.")
    expect(page.locator("tr[data-accompaniment]")).to_contain_text("Retiré")
    page.context.close()


def test_a_cancelled_seat_goes_to_the_first_waiting_and_a_workshop_can_be_cancelled(world: World, browser: Any) -> None:
    account = world.accounts["b"]
    token = world.sign_in(account["username"], account["password"])
    workshop_id = schedule_by_api(world, account, "2013-09-10T18:00")
    for n in range(10):  # capacity 8: the last two wait
        body = {"origin": "referral", "client_reference": f"PORTAIL-{world.run}-w{n}"}
        r = world.workshops.http.post(f"/v1/workshops/{workshop_id}/registrations", json=body, headers=token)
        assert r.status_code == 201, r.text
    page = new_page(browser)
    sign_in(page, world.portal, account["username"], account["password"])
    page.goto(f"{world.portal.url}/ateliers/{workshop_id}")
    expect(page.locator("tr[data-waiting]")).to_have_count(2)
    page.get_by_role("button", name="Annuler l'inscription n° 3").click()
    expect(flash(page)).to_have_text(
        "Inscription n° 3 annulée. La place libérée revient à la personne n° 9, qui attendait."
    )
    expect(page.locator("tr[data-waiting]")).to_have_count(1)
    expect(page.locator("tr[data-registration]")).to_have_count(8)
    page.locator("#f-annulation-motif").fill("salle indisponible")
    page.get_by_role("button", name="Annuler l'atelier").click()
    expect(flash(page)).to_contain_text("Atelier annulé")
    expect(page.locator("main")).to_contain_text("Atelier annulé : salle indisponible.")
    expect(page.locator("#inscription")).to_have_count(0)  # no more registrations nor attendance
    check_page(page, "workshop-cancelled")
    page.context.close()


# --- an adviser (conseiller numérique) -----------------------------------------------------------------------


def test_an_adviser_signs_in_and_sees_their_own_sessions_only(world: World, browser: Any) -> None:
    """An adviser account is bound to the adviser's facilitator id: the portal shows their sessions, not a
    colleague's, through the same authorisation as the workshops API."""
    mine, theirs = f"cn-mine-{world.run}", f"cn-theirs-{world.run}"
    for facilitator in (mine, theirs):
        body = {"facilitator_id": facilitator, "kind": "adviser", "departement": "93", "deployed_on": f"{YEAR}-01-02"}
        r = world.workshops.http.post("/v1/facilitators", json=body, headers=world.admin)
        assert r.status_code == 201, r.text
    themes = {mine: "online_banking", theirs: "online_safety"}
    for n, (facilitator, theme) in enumerate(themes.items()):
        body = {
            "workshop_id": f"ws-cn-{n}-{world.run}",
            "theme": theme,
            "venue_id": world.venue_id,
            "facilitator_id": facilitator,
            "starts_local": f"{YEAR + 1}-03-1{n}T14:00",
            "capacity": 8,
        }
        r = world.workshops.http.post("/v1/workshops", json=body, headers=world.admin)
        assert r.status_code == 201, r.text
    username, password = f"cn-{world.run}", secrets.token_urlsafe(16)
    refused = {"username": username, "password": password, "role": "adviser"}
    r = world.partners.http.post("/v1/users", json=refused, headers=world.admin)
    assert r.status_code == 422 and "adviser_id" in r.text, r.text  # an adviser account names its adviser
    r = world.partners.http.post("/v1/users", json=refused | {"adviser_id": mine}, headers=world.admin)
    assert r.status_code == 201 and r.json()["adviser_id"] == mine, r.text

    page = new_page(browser)
    sign_in(page, world.portal, username, password)
    expect(page.get_by_role("heading", name="Mes séances et accompagnements")).to_be_visible()
    sessions = page.get_by_role("table").first
    expect(sessions).to_contain_text("Banque en ligne")
    expect(sessions).not_to_contain_text("Sécurité en ligne")
    check_page(page, "adviser-home")
    page.context.close()
    # The API says the same: the adviser's token reads their session and not the colleague's.
    token = world.sign_in(username, password)
    listed = world.workshops.http.get("/v1/workshops", params={"limit": 1000}, headers=token).json()
    assert {w["facilitator_id"] for w in listed} == {mine}
