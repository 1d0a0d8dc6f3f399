"""The backfill path over the real stack: a 2022 detection sent by an admin years later is counted in 2022 by the
running metrics worker, once however often it is sent; a terminal's token is refused; every backfill is audited;
an anonymous detection is a detection and not a person detected.

Years 2022 (backfill) and 2023 (anonymous) are left alone by the other suites: the metrics figures are compared
as deltas, and each step waits until the worker has applied it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.identity import Principal, Role, issue_token
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from tests.conftest import Service, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

RUN = uuid.uuid4().hex[:8]
SETTLE = 60  # the worker applies an event within seconds; the session fixture has caught it up already


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def platform(role: Role, subject: str, partner_id: str | None = None) -> dict[str, str]:
    return bearer(issue_token(Principal(subject, role, partner_id=partner_id), DEV_PLATFORM_TOKEN_KEY))


ADMIN = platform(Role.ADMIN, f"backfill-admin-{RUN}")


def item(at: datetime, client: str | None, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "detection_id": f"bf-{uuid.uuid4().hex}",
        "occurred_at": at.isoformat(),
        "needs": ["admin_procedures"],
        "consent": True,
    }
    if client is not None:
        body["client_reference"] = client
    return body | over


@pytest.fixture(scope="module")
def office(services: dict[str, Service]) -> dict[str, Any]:
    """An office of the registry in Seine-Saint-Denis (Europe/Paris) and a terminal of its own."""
    detection = services["detection"]
    office_id = f"o-bf-{RUN}"
    body = {"office_id": office_id, "name": "Bureau de test backfill", "commune_insee": "93066", "qpv": True}
    assert detection.http.put(f"/v1/offices/{office_id}", json=body, headers=ADMIN).status_code == 201
    r = detection.http.post("/v1/terminals", json={"office_id": office_id, "label": "guichet 1"}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"office_id": office_id, "terminal": r.json()}


def figures(metrics: Service, year: int) -> dict[str, int]:
    """The year's indicator values, and the funnel's detected persons."""
    progress = metrics.http.get("/v1/progress", params={"year": year})
    assert progress.status_code == 200, progress.text
    out = {i["id"]: i["value"] for i in progress.json()["indicators"]}
    out["funnel_detected"] = metrics.http.get("/v1/funnel", params={"year": year}).json()["total"]["detected"]
    return out


def backfill(detection: Service, office_id: str, *items: dict[str, Any], headers: dict[str, str] = ADMIN) -> Any:
    body = {"office_id": office_id, "reason": f"counter files of a past year ({RUN})", "detections": list(items)}
    return detection.http.post("/v1/backfill/detections", json=body, headers=headers)


def test_a_2022_detection_backfilled_counts_once_in_2022_and_is_audited(
    services: dict[str, Service], office: dict[str, Any]
) -> None:
    detection, metrics = services["detection"], services["metrics"]
    client = f"FAKE-CLIENT-BACKFILL-{uuid.uuid4().hex}"
    # 31 December 2021, 23:30 UTC: already 1 January 2022 at the office (Paris), so a 2022 detection.
    past = item(datetime(2021, 12, 31, 23, 30, tzinfo=UTC), client)
    live = detection.http.post("/v1/detections", json=past, headers=bearer(office["terminal"]["token"]))
    assert live.status_code == 422 and "older than the accepted window" in live.text

    before = figures(metrics, 2022)
    first = backfill(detection, office["office_id"], past)
    assert first.status_code == 200, first.text
    assert (first.json()["accepted"], first.json()["results"][0]["status"]) == (1, "accepted")
    assert client not in first.text
    wait_until(lambda: figures(metrics, 2022)["detections"] == before["detections"] + 1, SETTLE, "2022 to move")

    second = backfill(detection, office["office_id"], past)
    assert second.status_code == 200 and second.json()["duplicates"] == 1, second.text
    assert second.json()["results"][0]["event_id"] == first.json()["results"][0]["event_id"]
    # A later event of the same person (same key, so the same partition, applied after anything sent before it).
    before_2021 = figures(metrics, 2021)["detections"]
    marker = backfill(detection, office["office_id"], item(datetime(2021, 6, 1, 10, tzinfo=UTC), client))
    assert marker.json()["accepted"] == 1, marker.text
    wait_until(lambda: figures(metrics, 2021)["detections"] == before_2021 + 1, SETTLE, "the marker to count")
    after = figures(metrics, 2022)
    assert after["detections"] == before["detections"] + 1
    assert after["people_detected"] == before["people_detected"] + 1

    # The audit: who, what, when, for each of the three requests.
    record = detection.http.get(f"/v1/backfills/{first.json()['backfill_id']}", headers=ADMIN)
    assert record.status_code == 200, record.text
    audit = record.json()
    assert audit["by"] == f"backfill-admin-{RUN}" and audit["role"] == "admin" and audit["status"] == "done"
    assert audit["office_id"] == office["office_id"] and RUN in audit["reason"]
    assert datetime.fromisoformat(audit["earliest"]) == datetime.fromisoformat(past["occurred_at"])
    assert datetime.now(UTC) - datetime.fromisoformat(audit["at"]) < timedelta(minutes=10)
    assert audit["results"] == [
        {"detection_id": past["detection_id"], "status": "accepted", "event_id": first.json()["results"][0]["event_id"]}
    ]
    assert client not in record.text
    listed = detection.http.get("/v1/backfills", params={"office_id": office["office_id"]}, headers=ADMIN).json()
    ids = [b["backfill_id"] for b in listed]
    for answer in (first, second, marker):
        assert answer.json()["backfill_id"] in ids
    assert ids.index(marker.json()["backfill_id"]) < ids.index(first.json()["backfill_id"])  # newest first
    assert next(b for b in listed if b["backfill_id"] == second.json()["backfill_id"])["duplicates"] == 1


def test_only_a_platform_admin_may_backfill_or_read_the_audit(
    services: dict[str, Service], office: dict[str, Any]
) -> None:
    detection = services["detection"]
    past = item(datetime(2022, 5, 2, 9, tzinfo=UTC), f"FAKE-CLIENT-{uuid.uuid4().hex}")
    terminal = bearer(office["terminal"]["token"])
    r = backfill(detection, office["office_id"], past, headers=terminal)
    assert r.status_code == 403 and "terminal token may not backfill" in r.text
    assert backfill(detection, office["office_id"], past, headers={}).status_code == 401
    assert backfill(detection, office["office_id"], past, headers=bearer("nonsense")).status_code == 401
    for role, partner in ((Role.PARTNER, "p-1"), (Role.MONITORING, None), (Role.ADVISER, None)):
        r = backfill(detection, office["office_id"], past, headers=platform(role, "someone", partner))
        assert r.status_code == 403, (role, r.text)
    assert detection.http.get("/v1/backfills", headers=terminal).status_code == 401
    assert detection.http.get("/v1/backfills", headers=platform(Role.MONITORING, "m")).status_code == 403
    # Nothing was recorded by the refused requests: the admin's own send of it is accepted.
    assert backfill(detection, office["office_id"], past).json()["accepted"] == 1
    r = backfill(detection, f"o-none-{RUN}", past)
    assert r.status_code == 404 and "no office" in r.text
    r = backfill(detection, office["office_id"], *[past] * 501)
    assert r.status_code == 413 and "at most 500" in r.text


def test_an_anonymous_detection_counts_as_a_detection_not_as_a_person_detected(
    services: dict[str, Service], office: dict[str, Any]
) -> None:
    detection, metrics = services["detection"], services["metrics"]
    before = figures(metrics, 2023)
    anonymous = item(datetime(2023, 9, 12, 14, tzinfo=UTC), None)
    r = backfill(detection, office["office_id"], anonymous)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    wait_until(lambda: figures(metrics, 2023)["detections"] == before["detections"] + 1, SETTLE, "2023 to move")
    after = figures(metrics, 2023)
    # One event updates every cell of its key at once: had it counted a person, it would show by now.
    assert after["people_detected"] == before["people_detected"]
    assert after["funnel_detected"] == before["funnel_detected"]
    referred = item(datetime(2023, 9, 12, 15, tzinfo=UTC), None, referral={"theme": "online_banking"})
    r = backfill(detection, office["office_id"], referred)
    assert r.json()["rejected"] == 1 and "referral needs a client_reference" in r.json()["results"][0]["reason"]
