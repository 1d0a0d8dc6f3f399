"""Who may do what in the workshops service: the authorisation matrix, against the running service."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from shared.identity import Role
from tests.conftest import Service
from tests.integration.test_workshops import ADMIN, bearer, new_venue, new_workshop, uid

pytestmark = pytest.mark.integration

PARTNER, OTHER_PARTNER = "p-access-own", "p-access-other"
ROLES = {
    "admin": lambda ids: ADMIN,
    "partner": lambda ids: bearer(Role.PARTNER, partner_id=ids["partner"]),
    "other_partner": lambda ids: bearer(Role.PARTNER, partner_id=ids["other_partner"]),
    "adviser": lambda ids: bearer(Role.ADVISER, adviser_id=ids["adviser"]),
    "other_adviser": lambda ids: bearer(Role.ADVISER, adviser_id=ids["other_adviser"]),
    "monitoring": lambda ids: bearer(Role.MONITORING),
}


@pytest.fixture(scope="module")
def world(services: dict[str, Service]) -> dict[str, str]:
    """A workshop of one partner, facilitated by one adviser, with one attendance (set up by an admin)."""
    ws = services["workshops"]
    run = uuid.uuid4().hex[:8]
    ids = {"partner": f"{PARTNER}-{run}", "other_partner": f"{OTHER_PARTNER}-{run}"}
    for who in ("adviser", "other_adviser"):
        ids[who] = uid("cn")
        body = {"facilitator_id": ids[who], "kind": "adviser", "departement": "13", "deployed_on": "2022-04-01"}
        assert ws.http.post("/v1/facilitators", json=body, headers=ADMIN).status_code == 201
    ids["venue"] = new_venue(ws, commune_insee="13055")["venue_id"]
    ids["workshop"] = new_workshop(ws, ids["venue"], partner_id=ids["partner"], facilitator_id=ids["adviser"])["id"]
    r = ws.http.post(f"/v1/workshops/{ids['workshop']}/attendances", json={"seat": "1"}, headers=ADMIN)
    ids["attendance"] = r.json()["attendance_id"]
    return ids


def _fresh_workshop(ws: Service, ids: dict[str, str]) -> str:
    return new_workshop(ws, ids["venue"], partner_id=ids["partner"], facilitator_id=ids["adviser"])["id"]


def _attendance_of_fresh_workshop(ws: Service, ids: dict[str, str]) -> str:
    wid = _fresh_workshop(ws, ids)
    return ws.http.post(f"/v1/workshops/{wid}/attendances", json={"seat": "1"}, headers=ADMIN).json()["attendance_id"]


Action = Callable[[Service, dict[str, str], dict[str, str]], httpx.Response]

ACTIONS: dict[str, Action] = {
    "read workshop": lambda ws, ids, h: ws.http.get(f"/v1/workshops/{ids['workshop']}", headers=h),
    "read attendance": lambda ws, ids, h: ws.http.get(f"/v1/workshops/{ids['workshop']}/attendances", headers=h),
    "schedule workshop": lambda ws, ids, h: ws.http.post(
        "/v1/workshops",
        json={
            "workshop_id": uid("w"),
            "theme": "smartphone_basics",
            "venue_id": ids["venue"],
            "partner_id": ids["partner"],
            "facilitator_id": ids["adviser"],
            "starts_local": "2026-06-02T10:00:00",
            "capacity": 6,
        },
        headers=h,
    ),
    "register": lambda ws, ids, h: ws.http.post(
        f"/v1/workshops/{ids['workshop']}/registrations",
        json={"origin": "walk_in", "client_reference": uid("client")},
        headers=h,
    ),
    "check in": lambda ws, ids, h: ws.http.post(
        f"/v1/workshops/{ids['workshop']}/attendances", json={"client_reference": uid("client")}, headers=h
    ),
    "upload sheet": lambda ws, ids, h: ws.http.post(
        f"/v1/workshops/{ids['workshop']}/attendance-sheet",
        files={"sheet": ("s.csv", f"seat\n{uid('s')[:16]}\n".encode(), "text/csv")},
        headers=h,
    ),
    "retract attendance": lambda ws, ids, h: ws.http.post(
        f"/v1/attendances/{_attendance_of_fresh_workshop(ws, ids)}/retraction", json={"reason": "mistake"}, headers=h
    ),
    "cancel workshop": lambda ws, ids, h: ws.http.post(
        f"/v1/workshops/{_fresh_workshop(ws, ids)}/cancellation", json={"reason": "room flooded"}, headers=h
    ),
    "open post-office room": lambda ws, ids, h: ws.http.post(
        "/v1/venues",
        json={
            "venue_id": uid("v"),
            "name": "Salle",
            "kind": "post_office_room",
            "commune_insee": "13055",
            "opened_on": "2022-05-01",
        },
        headers=h,
    ),
    "add own premises": lambda ws, ids, h: ws.http.post(
        "/v1/venues",
        json={
            "venue_id": uid("v"),
            "name": "Local associatif",
            "kind": "partner_premises",
            "partner_id": ids["partner"],
            "commune_insee": "13055",
            "opened_on": "2022-05-01",
        },
        headers=h,
    ),
    "deploy adviser": lambda ws, ids, h: ws.http.post(
        "/v1/facilitators",
        json={"facilitator_id": uid("cn"), "kind": "adviser", "departement": "13", "deployed_on": "2022-04-01"},
        headers=h,
    ),
    "partner accompaniment": lambda ws, ids, h: ws.http.post(
        "/v1/accompaniments",
        json={
            "accompaniment_id": uid("acc"),
            "channel": "partner",
            "partner_id": ids["partner"],
            "need": "online_banking",
            "duration_minutes": 30,
            "completed_at": datetime.now(UTC).isoformat(),
            "venue_id": ids["venue"],
        },
        headers=h,
    ),
}

ALLOWED = {  # action → roles that may do it (every other role gets 403, or 404 for another organisation's record)
    "read workshop": {"admin", "partner", "adviser", "monitoring"},
    "read attendance": {"admin", "partner", "adviser", "monitoring"},
    "schedule workshop": {"admin", "partner", "adviser"},
    "register": {"admin", "partner", "adviser"},
    "check in": {"admin", "partner", "adviser"},
    "upload sheet": {"admin", "partner", "adviser"},
    "retract attendance": {"admin", "partner", "adviser"},
    "cancel workshop": {"admin", "partner", "adviser"},
    "open post-office room": {"admin"},
    "add own premises": {"admin", "partner"},
    "deploy adviser": {"admin"},
    "partner accompaniment": {"admin", "partner"},
}


# Actions on the world's workshop or attendance (the others create records of their own).
ON_EXISTING_RECORDS = {
    "read workshop",
    "read attendance",
    "register",
    "check in",
    "upload sheet",
    "retract attendance",
    "cancel workshop",
}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_authorisation_matrix(services: dict[str, Service], world: dict[str, str], action: str, role: str) -> None:
    ws = services["workshops"]
    r = ACTIONS[action](ws, world, ROLES[role](world))
    if role in ALLOWED[action]:
        assert r.status_code in (200, 201), f"{role} should be allowed to {action}: {r.status_code} {r.text}"
    elif role.startswith("other") and action in ON_EXISTING_RECORDS:
        # Another organisation's workshop or attendance is unknown to them: its existence is not told.
        assert r.status_code == 404, f"{role} should not see the record to {action}: {r.status_code} {r.text}"
    else:
        assert r.status_code == 403, f"{role} should be refused {action}: {r.status_code} {r.text}"


@pytest.mark.parametrize(
    "role, visible",
    [("admin", True), ("monitoring", True), ("partner", True), ("adviser", True)]
    + [("other_partner", False), ("other_adviser", False)],
)
def test_lists_show_only_what_the_caller_may_see(
    services: dict[str, Service], world: dict[str, str], role: str, visible: bool
) -> None:
    ws = services["workshops"]
    listed = ws.http.get("/v1/workshops", params={"limit": 1000}, headers=ROLES[role](world)).json()
    ids = {w["id"] for w in listed}
    assert (world["workshop"] in ids) is visible
    if role.startswith("other"):
        assert not ids & {world["workshop"]}
        mine = world["other_partner"] if role == "other_partner" else world["other_adviser"]
        assert all(mine in (w.get("partner_id"), w.get("facilitator_id")) for w in listed)


def test_partner_cannot_schedule_for_another_partner_or_on_its_premises(
    services: dict[str, Service], world: dict[str, str]
) -> None:
    ws = services["workshops"]
    partner = ROLES["partner"](world)
    body = {"workshop_id": uid("w"), "theme": "email_and_messaging", "venue_id": world["venue"], "capacity": 4}
    body["starts_local"] = "2026-06-02T10:00:00"
    assert (
        ws.http.post("/v1/workshops", json=body | {"partner_id": world["other_partner"]}, headers=partner).status_code
        == 403
    )
    assert ws.http.post("/v1/workshops", json=body, headers=partner).status_code == 403  # no partner named
    premises = new_venue(ws, kind="partner_premises", partner_id=world["other_partner"], commune_insee="13055")
    r = ws.http.post(
        "/v1/workshops", json=body | {"partner_id": world["partner"], "venue_id": premises["venue_id"]}, headers=partner
    )
    assert r.status_code == 422 and "another partner" in r.text
