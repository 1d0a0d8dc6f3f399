"""The partners service dies between its database write and its publish: the event still goes out, once."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from services.partners.store import FAULT_EXIT_CODE
from shared.topics import PARTNERS
from tests.conftest import DBS, INSTANCE, start_service, stop_service, wait_ready, wait_until
from tests.integration.test_partners_support import ADMIN, new_partner, partnership_body, sign_in
from tests.kafka_tools import read_all, tail

pytestmark = pytest.mark.integration
PORT = 18091 + 100 * INSTANCE  # a partners process of this test's own, beside the shared fixture's
DB = f"{DBS['partners']}_crash"  # its own database: no other process's outbox relay may help it


def event_ids(records) -> Counter:
    return Counter(dict(r.headers).get("ce_id", b"").decode() for r in records)


def test_event_written_before_a_crash_is_published_once_after_restart(stack: None, mongo) -> None:
    mongo.drop_database(DB)  # an earlier run's data (perhaps of another storage layout)
    doomed = start_service("partners", PORT, {"PARTNERS_DB": DB, "PARTNERS_FAULT_EXIT_BEFORE_PUBLISH": "1"})
    try:
        wait_ready(doomed)
        admin = sign_in(doomed.http, ADMIN["username"], ADMIN["password"])
        org = new_partner(doomed.http, admin)
        created = doomed.http.post("/v1/partnerships", json=partnership_body(org["id"]), headers=admin)
        assert created.status_code == 201, created.text  # a draft queues no event: no fault yet
        pid = created.json()["id"]
        with tail(PARTNERS.name) as records:
            with pytest.raises(httpx.HTTPError):
                doomed.http.post(f"/v1/partnerships/{pid}/sign", json={"signed_on": "2031-05-02"}, headers=admin)
            assert doomed.proc.wait(timeout=30) == FAULT_EXIT_CODE
            version_id = f"{pid}@0000000002"  # version 1 is the draft
            stored = mongo[DB]["partnerships_versions"].find_one({"_id": version_id})
            assert stored["state"]["status"] == "signed", "the state change was written"
            assert [e["type"] for e in stored["events"]] == ["partnership.signed"], "with its event"
            event_id = stored["events"][0]["id"]
            assert mongo[DB]["outbox"].find_one({"v": version_id}) is not None, "noted as not yet published"
            assert event_id not in event_ids(records(1.0)), "nothing was published before the crash"
    finally:
        stop_service(doomed)

    revived = start_service("partners", PORT, {"PARTNERS_DB": DB})
    try:
        wait_ready(revived)
        wait_until(
            lambda: mongo[DB]["outbox"].find_one({"v": version_id}) is None,
            30,
            "the relay to publish what the crash left behind",
        )
        # A client retrying the command it never got an answer for changes nothing and publishes nothing new.
        admin = sign_in(revived.http, ADMIN["username"], ADMIN["password"])
        retry = revived.http.post(f"/v1/partnerships/{pid}/sign", json={"signed_on": "2031-05-02"}, headers=admin)
        assert retry.status_code == 200 and retry.json()["status"] == "signed"
    finally:
        stop_service(revived)
    published = [r for r in read_all(PARTNERS.name, timeout_s=20) if r.key == pid.encode()]
    assert event_ids(published) == Counter({event_id: 1})
