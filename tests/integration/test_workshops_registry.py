"""Help records against the registry, over the real broker and database server: an attendance names a session of
the caller's organisation and is dated within it, an accompaniment a venue it may use, and both are filed where the
registry says, whatever the body says.

The counted attendance is held in 2011, a year no other suite uses, so the metrics figure compared is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.identity import Role
from shared.topics import WORKSHOPS
from tests.conftest import Service, wait_until
from tests.integration.test_workshops import ADMIN, baseline, bearer, events_on, new_venue, new_workshop, uid
from tests.kafka_tools import tail

pytestmark = pytest.mark.integration
YEAR = 2011
SESSION_START = f"{YEAR}-06-14T14:00:00"  # Paris, summer time: 12:00 UTC, two hours
IN_SESSION = f"{YEAR}-06-14T14:30:00+02:00"


@pytest.fixture(scope="module")
def world(services: dict[str, Service]) -> dict[str, Any]:
    """Two partners; one partner's session at a Paris post office in 2011, and each partner's own premises."""
    ws = services["workshops"]
    mine, theirs = uid("p-mine"), uid("p-theirs")
    paris = new_venue(ws, commune_insee="75056", qpv=False, opened_on="2010-01-04")["venue_id"]
    session = new_workshop(ws, paris, partner_id=mine, starts_local=SESSION_START, duration_minutes=120)["id"]
    own = new_venue(ws, kind="partner_premises", partner_id=mine, commune_insee="13055", qpv=False)["venue_id"]
    foreign = new_venue(ws, kind="partner_premises", partner_id=theirs, commune_insee="69123")["venue_id"]
    return {
        "paris": paris,
        "session": session,
        "own": own,
        "foreign": foreign,
        "mine": bearer(Role.PARTNER, partner_id=mine),
        "theirs": bearer(Role.PARTNER, partner_id=theirs),
        "partner": mine,
    }


@pytest.fixture
def ws(services: dict[str, Service]) -> Service:
    return services["workshops"]


def attendance(workshop_id: str, **over: Any) -> dict[str, Any]:
    body = {"attendance_id": uid("att"), "workshop_id": workshop_id, "attended_at": IN_SESSION}
    return body | {"client_reference": uid("client")} | over


def departements(metrics: Service) -> dict[str, int]:
    r = metrics.http.get(
        "/v1/breakdown", params={"indicator": "workshop_attendances", "dimension": "departement", "year": YEAR}
    )
    assert r.status_code == 200, r.text
    return {row["key"]: row["value"] for row in r.json()["rows"]}


def test_an_attendance_at_an_unknown_workshop_is_not_found(ws: Service, world: dict[str, Any]) -> None:
    r = ws.http.post("/v1/attendances", json=attendance("w-nobody-scheduled"), headers=world["mine"])
    assert r.status_code == 404 and r.json()["detail"] == "no workshop w-nobody-scheduled", r.text
    assert ws.http.post("/v1/attendances", json=attendance(uid("w")), headers=ADMIN).status_code == 404


def test_an_attendance_at_another_organisations_workshop_is_not_found(ws: Service, world: dict[str, Any]) -> None:
    body = attendance(world["session"])
    r = ws.http.post("/v1/attendances", json=body, headers=world["theirs"])
    assert r.status_code == 404 and r.json()["detail"] == f"no workshop {world['session']}", r.text  # as if none
    listed = ws.http.get(f"/v1/workshops/{world['session']}/attendances", headers=ADMIN).json()
    assert body["attendance_id"] not in {a["id"] for a in listed}


def test_an_attendance_saying_971_at_a_paris_venue_is_published_and_counted_under_75(
    ws: Service, world: dict[str, Any], services: dict[str, Service]
) -> None:
    metrics = services["metrics"]
    baseline(metrics, "workshop_attendances", YEAR)  # the worker has caught up: the figures below are settled
    before = departements(metrics)
    body = attendance(world["session"], departement="971", qpv=True, rural=True, theme="tablet_basics")
    with tail(WORKSHOPS.name) as records:
        r = ws.http.post("/v1/attendances", json=body, headers=world["mine"])
        assert r.status_code == 201, r.text
        assert r.json()["ignored"] == ["theme", "departement", "qpv", "rural"]
        got = wait_until(lambda: events_on(records(0.3), attendance_id=body["attendance_id"]), 10, "the event")
    data = got[0]["data"]
    assert (data["departement"], data["region"], data["timezone"]) == ("75", "11", "Europe/Paris")
    assert (data["qpv"], data["rural"], data["theme"], data["venue_id"]) == (
        False,
        False,
        "online_banking",
        world["paris"],
    )
    assert data["partner_id"] == world["partner"]
    stored = ws.http.get(f"/v1/workshops/{world['session']}/attendances", headers=world["mine"]).json()
    assert [a["departement"] for a in stored if a["id"] == body["attendance_id"]] == ["75"]
    wait_until(lambda: departements(metrics).get("75", 0) == before.get("75", 0) + 1, 20, "75 + 1 in 2011")
    assert departements(metrics).get("971", 0) == before.get("971", 0)
    # The same attendance again, saying yet another département: the same record, counted once.
    again = ws.http.post("/v1/attendances", json=body | {"departement": "13"}, headers=world["mine"])
    assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text


def test_an_attendance_outside_its_session_is_refused(ws: Service, world: dict[str, Any]) -> None:
    for when in (f"{YEAR}-06-14T12:59:00+02:00", f"{YEAR}-06-14T17:01:00+02:00", f"{YEAR}-06-15T14:30:00+02:00"):
        r = ws.http.post("/v1/attendances", json=attendance(world["session"], attended_at=when), headers=world["mine"])
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert detail.startswith("attended_at ") and "is outside the session" in detail
        assert "from 2011-06-14T13:00 to 2011-06-14T17:00 at the venue (Europe/Paris)" in detail
    edge = attendance(world["session"], attended_at=f"{YEAR}-06-14T13:00:00+02:00")  # the doors open
    assert ws.http.post("/v1/attendances", json=edge, headers=world["mine"]).status_code == 201
    # A check-in sheet goes through the same rule, line by line.
    sheet = f"seat,attended_at\n1,{YEAR}-06-14T18:00:00+02:00\n2,{YEAR}-06-14T15:55:00+02:00\n"
    url = f"/v1/workshops/{world['session']}/attendance-sheet"
    report = ws.http.post(url, files={"sheet": ("s.csv", sheet.encode(), "text/csv")}, headers=world["mine"]).json()
    assert [(row["line"], row["status"]) for row in report["rows"]] == [(2, "rejected"), (3, "recorded")]
    assert "is outside the session" in report["rows"][0]["reason"]


def test_a_venue_or_partner_beside_the_session_must_be_the_sessions(ws: Service, world: dict[str, Any]) -> None:
    session = world["session"]
    elsewhere = ws.http.post("/v1/attendances", json=attendance(session, venue_id=world["own"]), headers=world["mine"])
    assert elsewhere.status_code == 422 and elsewhere.json()["detail"].startswith("venue_id: "), elsewhere.text
    foreign = ws.http.post(
        "/v1/attendances", json=attendance(session, venue_id=world["foreign"]), headers=world["mine"]
    )
    assert foreign.status_code == 404 and foreign.json()["detail"] == f"no venue {world['foreign']}"
    other = ws.http.post("/v1/attendances", json=attendance(session, partner_id="p-else"), headers=ADMIN)
    assert other.status_code == 422 and other.json()["detail"].startswith("partner_id: "), other.text
    same = attendance(session, venue_id=world["paris"], partner_id=world["partner"])
    assert ws.http.post("/v1/attendances", json=same, headers=world["mine"]).status_code == 201


def accompaniment(venue_id: str, partner_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "accompaniment_id": uid("acc"),
        "channel": "partner",
        "partner_id": partner_id,
        "need": "benefits",
        "duration_minutes": 30,
        "completed_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "venue_id": venue_id,
    }
    return body | over


def test_an_accompaniment_at_an_unknown_or_another_partners_venue_is_refused(
    ws: Service, world: dict[str, Any]
) -> None:
    mine, partner = world["mine"], world["partner"]
    for venue in ("v-nowhere", world["foreign"]):
        r = ws.http.post("/v1/accompaniments", json=accompaniment(venue, partner), headers=mine)
        assert r.status_code == 404 and r.json()["detail"] == f"no venue {venue}", r.text
    r = ws.http.post("/v1/accompaniments", json=accompaniment(world["foreign"], partner), headers=ADMIN)
    assert r.status_code == 422 and "premises of another partner" in r.text
    no_venue = accompaniment(world["own"], partner, departement="13")
    del no_venue["venue_id"]
    assert ws.http.post("/v1/accompaniments", json=no_venue, headers=mine).status_code == 422


def test_an_accompaniment_is_filed_where_its_venue_is(ws: Service, world: dict[str, Any]) -> None:
    body = accompaniment(world["own"], world["partner"], departement="971", qpv=True)
    with tail(WORKSHOPS.name) as records:
        r = ws.http.post("/v1/accompaniments", json=body, headers=world["mine"])
        assert r.status_code == 201, r.text
        got = wait_until(lambda: events_on(records(0.3), accompaniment_id=body["accompaniment_id"]), 10, "event")
    assert r.json()["ignored"] == ["departement", "qpv"]
    assert (r.json()["record"]["departement"], r.json()["record"]["qpv"]) == ("13", False)
    data = got[0]["data"]
    assert (data["departement"], data["region"], data["qpv"], data["venue_id"]) == ("13", "93", False, world["own"])


def test_a_partner_sees_la_postes_venues_and_its_own_premises_only(ws: Service, world: dict[str, Any]) -> None:
    def listed(departement: str) -> set[str]:
        params = {"departement": departement, "limit": 1000}
        return {v["id"] for v in ws.http.get("/v1/venues", params=params, headers=world["mine"]).json()}

    assert world["paris"] in listed("75") and world["own"] in listed("13") and world["foreign"] not in listed("69")
    assert ws.http.get(f"/v1/venues/{world['foreign']}", headers=world["mine"]).status_code == 404
    assert ws.http.get(f"/v1/venues/{world['foreign']}", headers=world["theirs"]).status_code == 200
    assert ws.http.get(f"/v1/venues/{world['foreign']}", headers=ADMIN).status_code == 200
