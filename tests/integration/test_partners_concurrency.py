"""Two partners-service instances, one database, many concurrent callers: lifecycle steps win once, a mission
never seats more volunteers than its places, and every acknowledged partner edit is one stored version."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.serde import decode
from shared.topics import PARTNERS
from tests.conftest import DBS, PORT_BASE, Service, start_service, stop_service, wait_ready, wait_until
from tests.integration.test_partners_support import ADMIN, new_partner, partnership_body, sign_in
from tests.kafka_tools import tail

pytestmark = pytest.mark.integration
PORTS = (PORT_BASE + 12, PORT_BASE + 13)
DB = f"{DBS['partners']}_concurrency"  # its own database: these two instances and nobody else


@pytest.fixture(scope="module")
def pair(stack: None, mongo: Any) -> Iterator[tuple[Service, Service]]:
    mongo.drop_database(DB)
    started: list[Service] = []
    try:
        for port in PORTS:  # one after the other: the first one marks the fresh database's layout
            svc = start_service("partners", port, {"PARTNERS_DB": DB})
            started.append(svc)
            wait_ready(svc)
        yield started[0], started[1]
    finally:
        for svc in started:
            stop_service(svc)


@pytest.fixture(scope="module")
def admin(pair: tuple[Service, Service]) -> dict[str, str]:
    return sign_in(pair[0].http, ADMIN["username"], ADMIN["password"])


def burst(pair: tuple[Service, Service], requests: list[tuple[str, str, dict[str, Any]]], headers: dict) -> list:
    """Send every request at once, alternately to each instance; the responses in the same order."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests))
        async with (
            httpx.AsyncClient(base_url=pair[0].url, timeout=60, limits=limits) as a,
            httpx.AsyncClient(base_url=pair[1].url, timeout=60, limits=limits) as b,
        ):
            calls = [
                (a if i % 2 else b).request(method, url, json=body, headers=headers)
                for i, (method, url, body) in enumerate(requests)
            ]
            return list(await asyncio.gather(*calls))

    return asyncio.run(run())


def test_conflicting_lifecycle_requests_one_wins_one_event(pair: tuple[Service, Service], admin: dict, mongo) -> None:
    http = pair[0].http
    org = new_partner(http, admin)
    created = http.post("/v1/partnerships", json=partnership_body(org["id"]), headers=admin)
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    url = f"/v1/partnerships/{pid}"
    # 14 signings on 14 different days, two of them sent twice (a client retrying), and 4 ends dated before any
    # of those days: whatever the order, exactly one signing can win.
    days = [f"2031-03-{d:02d}" for d in range(1, 15)]
    signs = [("POST", f"{url}/sign", {"signed_on": d}) for d in [*days, days[0], days[7]]]
    ends = [("POST", f"{url}/end", {"ended_on": "2031-02-01", "reason": "other"}) for _ in range(4)]
    requests = [r for pair_ in zip(signs[:4], ends, strict=True) for r in pair_] + signs[4:]
    with tail(PARTNERS.name) as records:
        answers = burst(pair, requests, admin)
        assert all(r.status_code != 500 for r in answers), [r.text for r in answers if r.status_code == 500]
        final = http.get(url, headers=admin).json()
        assert final["status"] == "signed"
        winner_day = final["signed_on"]
        for (_, action, body), r in zip(requests, answers, strict=True):
            if action.endswith("/sign") and body["signed_on"] == winner_day:
                assert r.status_code == 200 and r.json()["signed_on"] == winner_day, r.text
            elif action.endswith("/sign"):
                assert r.status_code == 409 and "signed" in r.json()["detail"], r.text
            else:  # refused before the signing (a draft) or after it (ended before it was signed)
                assert r.status_code in (409, 422) and r.json()["detail"], r.text
        # Once nothing waits in the outbox, a later step of the same partnership (same key, same partition)
        # marks the point by which every event of the burst has been read.
        wait_until(lambda: mongo[DB]["outbox"].count_documents({}) == 0, 30, "the outbox to be empty")
        later = http.post(f"{url}/activate", json={"activated_on": "2031-04-01"}, headers=admin)
        assert later.status_code == 200, later.text

        def mine() -> list:
            return [decode(r.value) for r in records(0.3) if r.key == pid.encode()]

        got = wait_until(lambda: any(e.type == "partnership.activated" for e in mine()) and mine(), 30, "events")
    assert [e.type for e in got] == ["partnership.signed", "partnership.activated"]
    assert got[0].data.signed_on.isoformat() == winner_day
    versions = sorted(d["n"] for d in mongo[DB]["partnerships_versions"].find({"a": pid}))
    assert versions == [1, 2, 3], "draft, signed, active: no other change was stored"


def test_concurrent_volunteers_never_exceed_the_places(pair: tuple[Service, Service], admin: dict, mongo) -> None:
    http = pair[0].http
    org = new_partner(http, admin)
    labelled = http.put(f"/v1/partners/{org['id']}/skills-label", json={"labelled": True}, headers=admin)
    assert labelled.status_code == 200, labelled.text
    body = {
        "partner_id": org["id"],
        "title": "Mission de test concurrente",
        "departement": "69",
        "commitment": "digital_inclusion",
        "published_on": "2031-02-01",
        "places": 5,
    }
    created = http.post("/v1/missions", json=body, headers=admin)
    assert created.status_code == 201, created.text
    mid = created.json()["id"]
    staff = [f"FAKE-{i:04d}" for i in range(30)]
    answers = burst(pair, [("POST", f"/v1/missions/{mid}/volunteers", {"staff_id": s}) for s in staff], admin)
    accepted = {s for s, r in zip(staff, answers, strict=True) if r.is_success}
    refused = [r for r in answers if not r.is_success]
    assert len(accepted) == 5
    assert all(r.status_code == 409 and "full" in r.json()["detail"] for r in refused), [r.text for r in refused]
    assert http.get(f"/v1/missions/{mid}", headers=admin).json()["volunteers"] == 5
    latest = max(mongo[DB]["missions_versions"].find({"a": mid}), key=lambda d: d["n"])
    assert set(latest["state"]["volunteers"]) == accepted, "every acknowledged volunteer is kept"


def test_concurrent_partner_edits_are_each_one_version(pair: tuple[Service, Service], admin: dict, mongo) -> None:
    org = new_partner(pair[0].http, admin)
    names = [f"Association Concurrente {i:02d}" for i in range(20)]
    answers = burst(pair, [("PATCH", f"/v1/partners/{org['id']}", {"name": n}) for n in names], admin)
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    versions = sorted(mongo[DB]["partners_versions"].find({"a": org["id"]}), key=lambda d: d["n"])
    assert [v["n"] for v in versions] == list(range(1, 22)), "one version per acknowledged edit"
    assert sorted(v["state"]["name"] for v in versions[1:]) == sorted(names), "none lost, none doubled"
    final = pair[1].http.get(f"/v1/partners/{org['id']}", headers=admin).json()
    assert final["name"] == versions[-1]["state"]["name"]
