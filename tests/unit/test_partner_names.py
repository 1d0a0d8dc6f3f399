"""Partner names for the read models: read page by page from the partners API, kept when it is away, never an id."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from services.metrics import views
from services.metrics.domain import Counters, apply
from services.metrics.goals import GoalBook
from services.metrics.partner_names import PartnerDirectory
from shared import events as ev
from shared.identity import Role, verify_token
from shared.settings import DEV_PLATFORM_TOKEN_KEY
from tests import samples

pytestmark = pytest.mark.unit


class FakePartners:
    """The partners API's `GET /v1/partners`, paged, with a switch to be away."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names, self.away, self.calls = names, False, 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.away:
            raise httpx.ConnectError("partners away", request=request)
        token = request.headers["authorization"].removeprefix("Bearer ")
        assert verify_token(token, DEV_PLATFORM_TOKEN_KEY).role == Role.MONITORING  # read-only
        page, size = int(request.url.params["page"]), int(request.url.params["page_size"])
        items = sorted(self.names.items())[(page - 1) * size : page * size]
        body = {"items": [{"id": i, "name": n} for i, n in items], "total": len(self.names), "page": page}
        return httpx.Response(200, json=body)


def directory(fake: FakePartners, **kw: float) -> PartnerDirectory:
    return PartnerDirectory(
        "http://partners", DEV_PLATFORM_TOKEN_KEY, page_size=2, transport=httpx.MockTransport(fake.handle), **kw
    )


async def test_the_first_lookup_reads_every_page_and_waits_for_it() -> None:
    fake = FakePartners({f"pa-{n}": f"Association {n} (démo)" for n in range(5)})
    names = await directory(fake).lookup(["pa-1"])
    assert dict(names) == {f"pa-{n}": f"Association {n} (démo)" for n in range(5)}
    assert fake.calls == 3  # 2 + 2 + 1


async def test_an_unknown_id_reads_again_once_and_an_absent_one_is_not_asked_for_again() -> None:
    fake = FakePartners({"pa-1": "Un"})
    names = directory(fake, retry_after=0)
    assert "pa-1" in await names.lookup(["pa-1"])
    fake.names["pa-2"] = "Deux"  # created since
    await names.lookup(["pa-2"])
    await names._task  # type: ignore[misc]  # the reading started in the background
    assert (await names.lookup(["pa-2"]))["pa-2"] == "Deux"
    calls = fake.calls
    await names.lookup(["p-not-a-partner"])
    await names._task  # type: ignore[misc]
    await names.lookup(["p-not-a-partner"])
    assert fake.calls == calls + 1  # known to be absent: no reading for it each time


async def test_partners_away_keeps_the_last_copy_and_answers_at_once() -> None:
    fake = FakePartners({"pa-1": "Un"})
    names = directory(fake, retry_after=0, max_age=0)
    assert await names.lookup([]) == {"pa-1": "Un"}
    fake.away = True
    assert await names.lookup([]) == {"pa-1": "Un"}
    await names._task  # type: ignore[misc]
    assert await names.lookup([]) == {"pa-1": "Un"}


async def test_nothing_known_when_the_partners_service_was_never_reached() -> None:
    fake = FakePartners({"pa-1": "Un"})
    fake.away = True
    assert await directory(fake).lookup(["pa-1"]) == {}


def helped_by(counters: Counters, partner: str, n: int) -> None:
    for k in range(n):
        data = ev.WorkshopAttended(
            attendance_id=f"att-{partner}-{k}",
            workshop_id="w-1",
            theme="online_banking",
            venue_id="v-1",
            person_ref=samples.ref(f"{partner}-{k}"),
            partner_id=partner,
            **samples.PARIS,
        )
        e = ev.new_event(data, source="/tests", time=datetime(2024, 3, 1, tzinfo=UTC))
        counters.replace(e.key, None, apply(None, e))


def test_the_partner_table_and_breakdown_read_names_never_ids() -> None:
    counters = Counters()
    helped_by(counters, "pa-aaa", 3)
    helped_by(counters, "p-unknown", 2)
    names = {"pa-aaa": "Fondation FACE (démo)"}
    table = views.partners(counters, 2024, names=names)
    assert [(r["partner"], r["name"], r["people_helped"]) for r in table["rows"]] == [
        ("pa-aaa", "Fondation FACE (démo)", 3),
        ("p-unknown", None, 2),
    ]
    assert [r["partner"] for r in views.partners(counters, 2024, query="face", names=names)["rows"]] == ["pa-aaa"]
    assert [r["partner"] for r in views.partners(counters, 2024, query="unknown", names=names)["rows"]] == ["p-unknown"]
    rows = views.breakdown(counters, GoalBook([], []), "people_helped", "partner", 2024, names=names)["rows"]
    assert {r["key"]: r["label"] for r in rows} == {
        "pa-aaa": "Fondation FACE (démo)",
        "p-unknown": "Partenaire non référencé",
    }
