"""Partners handlers through the in-memory document store and a publisher that records what it is given."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date

import pytest

from services.partners import handlers
from services.partners.domain import EndReason
from services.partners.schemas import (
    ActivateCommand,
    CompletionCommand,
    EndCommand,
    MissionCreate,
    PartnerCreate,
    PartnershipCreate,
    PartnershipUpdate,
    PartnerUpdate,
    RenewCommand,
    SignCommand,
)
from services.partners.store import Store
from shared.docstore import MemoryDocuments
from shared.errors import Conflict, Invalid, NotFound
from shared.events import Envelope

pytestmark = pytest.mark.unit


class RecordingPublisher:
    """Kafka as far as the outbox can tell: it acknowledges and keeps every event."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def publish_many(self, events: Sequence[Envelope], *, topic: str | None = None) -> None:
        self.events.extend(events)

    def types(self, subject: str) -> list[str]:
        return [e.type for e in self.events if e.subject == subject]


def partner_cmd(legal_id: str = "73282932000074") -> PartnerCreate:
    return PartnerCreate.model_validate(
        {
            "name": "Association Fictive",
            "kind": "association",
            "legal_id": legal_id,
            "address": {"street": "1 rue Fictive", "postcode": "69001", "city": "Lyon", "commune_insee": "69123"},
            "departements": ["69"],
        }
    )


def terms(**over: object) -> PartnershipCreate:
    body = {
        "partnership_type": "skills_sponsorship",
        "commitments": ["digital_inclusion"],
        "departements": ["69"],
        "starts_on": "2031-04-01",
        "ends_on": "2032-03-31",
    }
    return PartnershipCreate.model_validate(body | over)


@pytest.fixture
def kafka() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def store(kafka: RecordingPublisher) -> Store:
    return Store.in_memory(kafka)  # type: ignore[arg-type]


async def draft(store: Store, **over: object) -> str:
    partner = await handlers.create_partner(store, partner_cmd())
    return (await handlers.create_partnership(store, partner.record["_id"], terms(**over))).record["_id"]


async def test_partner_is_one_per_legal_identifier_and_edits_are_versions(store: Store) -> None:
    created = await handlers.create_partner(store, partner_cmd())
    assert created.created and created.record["version"] == 1
    with pytest.raises(Conflict, match="already exists"):
        await handlers.create_partner(store, partner_cmd("732 829 320 00074"))
    pid = created.record["_id"]
    edited = await handlers.update_partner(store, pid, PartnerUpdate(name="Nouveau nom"))
    assert edited.outcome == "changed" and edited.record["name"] == "Nouveau nom" and edited.record["version"] == 2
    same = await handlers.update_partner(store, pid, PartnerUpdate(name="Nouveau nom"))
    assert same.outcome == "duplicate" and same.record["version"] == 2
    labelled = await handlers.set_skills_label(store, pid, True, date(2031, 1, 10))
    assert labelled.record["skills_label"] is True and labelled.record["skills_labelled_on"] == "2031-01-10"
    assert [v.number for v in await store.partners.history(pid)] == [1, 2, 3]
    with pytest.raises(NotFound):
        await handlers.update_partner(store, "pa-missing", PartnerUpdate(name="Autre nom"))


async def test_lifecycle_publishes_one_event_per_step_and_refuses_the_rest(
    store: Store, kafka: RecordingPublisher
) -> None:
    ps = await draft(store)
    with pytest.raises(Conflict, match="draft"):
        await handlers.transition(store, ps, EndCommand(ended_on=date(2031, 5, 1), reason=EndReason.OTHER))
    signed = await handlers.transition(store, ps, SignCommand(signed_on=date(2031, 3, 15)))
    assert signed.outcome == "changed" and signed.published and signed.record["status"] == "signed"
    with pytest.raises(Conflict, match="signed"):
        await handlers.transition(store, ps, SignCommand(signed_on=date(2031, 3, 16)))
    with pytest.raises(Invalid, match="before signed_on"):
        await handlers.transition(store, ps, ActivateCommand(activated_on=date(2031, 3, 1)))
    await handlers.transition(store, ps, ActivateCommand(activated_on=date(2031, 4, 1)))
    renewed = await handlers.transition(store, ps, RenewCommand(renewed_on=date(2032, 2, 1), ends_on=date(2033, 3, 31)))
    assert renewed.record["renewals"] == [
        {"renewed_on": "2032-02-01", "previous_ends_on": "2032-03-31", "ends_on": "2033-03-31"}
    ]
    end = EndCommand(ended_on=date(2032, 6, 30), reason=EndReason.PARTNER_WITHDREW, note="internal")
    ended = await handlers.transition(store, ps, end)
    assert ended.record["status"] == "ended" and ended.record["end_note"] == "internal"
    assert kafka.types(ps) == [
        "partnership.signed",
        "partnership.activated",
        "partnership.renewed",
        "partnership.ended",
    ]
    assert "internal" not in "".join(e.model_dump_json() for e in kafka.events)
    assert await store.outbox.pending() == 0


async def test_a_retry_answers_the_state_and_publishes_nothing_new(store: Store, kafka: RecordingPublisher) -> None:
    ps = await draft(store)
    first = await handlers.transition(store, ps, SignCommand(signed_on=date(2031, 3, 15)))
    again = await handlers.transition(store, ps, SignCommand(signed_on=date(2031, 3, 15)))
    assert again.outcome == "duplicate" and again.published and again.record == first.record
    assert kafka.types(ps) == ["partnership.signed"]


async def test_a_draft_is_edited_then_deleted_and_then_gone(store: Store) -> None:
    ps = await draft(store, external_ref="REF-DRAFT-1")
    edited = await handlers.update_partnership(store, ps, PartnershipUpdate(title="Ateliers"))
    assert edited.record["title"] == "Ateliers" and edited.record["version"] == 2
    with pytest.raises(Invalid, match="after starts_on"):
        await handlers.update_partnership(store, ps, PartnershipUpdate(ends_on=date(2031, 1, 1)))
    await handlers.delete_draft(store, ps)
    with pytest.raises(NotFound):
        await handlers.update_partnership(store, ps, PartnershipUpdate(title="Encore"))
    with pytest.raises(NotFound):
        await handlers.transition(store, ps, SignCommand(signed_on=date(2031, 3, 15)))
    with pytest.raises(NotFound):
        await handlers.delete_draft(store, ps)
    assert [v.state["status"] for v in await store.partnerships.history(ps)] == ["draft", "draft", "deleted"]
    # Its external reference is free again: the same terms make a new draft (a new version of the same id).
    partner_id = edited.record["partner_id"]
    again = await handlers.create_partnership(store, partner_id, terms(external_ref="REF-DRAFT-1"))
    assert again.created and again.record["_id"] == ps and again.record["status"] == "draft"


async def test_only_a_draft_is_edited_or_deleted(store: Store) -> None:
    ps = await draft(store)
    await handlers.transition(store, ps, SignCommand(signed_on=date(2031, 3, 15)))
    with pytest.raises(Conflict, match="only a draft"):
        await handlers.update_partnership(store, ps, PartnershipUpdate(title="Trop tard"))
    with pytest.raises(Conflict, match="only a draft"):
        await handlers.delete_draft(store, ps)


async def test_same_external_ref_is_the_same_partnership_other_terms_a_conflict(store: Store) -> None:
    partner = await handlers.create_partner(store, partner_cmd())
    pid = partner.record["_id"]
    first = await handlers.create_partnership(store, pid, terms(external_ref="REF-1"))
    again = await handlers.create_partnership(store, pid, terms(external_ref="REF-1"))
    assert first.created and again.outcome == "duplicate" and again.record["_id"] == first.record["_id"]
    with pytest.raises(Conflict, match="external_ref"):
        await handlers.create_partnership(store, pid, terms(external_ref="REF-1", departements=["75"]))
    with pytest.raises(NotFound):
        await handlers.create_partnership(store, "pa-missing", terms())


def mission(places: int) -> MissionCreate:
    return MissionCreate.model_validate(
        {
            "title": "Mission fictive",
            "departement": "69",
            "commitment": "digital_inclusion",
            "published_on": "2031-02-01",
            "places": places,
        }
    )


async def labelled_partner(store: Store) -> dict:
    partner = await handlers.create_partner(store, partner_cmd("W751234567"))
    return (await handlers.set_skills_label(store, partner.record["_id"], True, date(2031, 1, 1))).record


async def test_mission_volunteers_within_places_once_then_completion(store: Store, kafka: RecordingPublisher) -> None:
    partner = await handlers.create_partner(store, partner_cmd())
    with pytest.raises(Conflict, match="labelled"):
        await handlers.create_mission(store, partner.record, mission(2))
    created = await handlers.create_mission(store, await labelled_partner(store), mission(2))
    mid = created.record["_id"]
    done = CompletionCommand(completed_on=date(2031, 3, 1), hours=14)
    with pytest.raises(Conflict, match="without volunteers"):
        await handlers.complete_mission(store, mid, done)
    for staff in ("FAKE-0001", "FAKE-0002", "FAKE-0001"):
        await handlers.add_volunteer(store, mid, staff)
    with pytest.raises(Conflict, match="full"):
        await handlers.add_volunteer(store, mid, "FAKE-0003")
    completed = await handlers.complete_mission(store, mid, done)
    assert completed.record["status"] == "completed" and completed.record["volunteers"] == ["FAKE-0001", "FAKE-0002"]
    assert (await handlers.complete_mission(store, mid, done)).outcome == "duplicate"
    with pytest.raises(Conflict, match="volunteers join published missions only"):
        await handlers.add_volunteer(store, mid, "FAKE-0004")
    assert kafka.types(mid) == ["skills_mission.published", "skills_mission.completed"]
    assert "FAKE-000" not in "".join(e.model_dump_json() for e in kafka.events)


async def test_conflicting_lifecycle_commands_on_two_stores_one_winner_one_event(kafka: RecordingPublisher) -> None:
    docs = MemoryDocuments()
    one, two = Store.in_memory(kafka, docs), Store.in_memory(kafka, docs)  # type: ignore[arg-type]
    ps = await draft(one)
    commands = [SignCommand(signed_on=date(2031, 3, 1 + i)) for i in range(16)]
    commands += [EndCommand(ended_on=date(2031, 2, 1), reason=EndReason.OTHER) for _ in range(4)]
    outcomes = await asyncio.gather(
        *(handlers.transition(one if i % 2 else two, ps, cmd) for i, cmd in enumerate(commands)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, handlers.Result)]
    assert len(won) == 1 and won[0].outcome == "changed"
    assert all(isinstance(o, Conflict | Invalid) and str(o) for o in outcomes if o not in won)
    assert kafka.types(ps) == ["partnership.signed"]
    assert [v.state["status"] for v in await one.partnerships.history(ps)] == ["draft", "signed"]


async def test_concurrent_volunteers_on_two_stores_never_exceed_the_places(kafka: RecordingPublisher) -> None:
    docs = MemoryDocuments()
    one, two = Store.in_memory(kafka, docs), Store.in_memory(kafka, docs)  # type: ignore[arg-type]
    mid = (await handlers.create_mission(one, await labelled_partner(one), mission(5))).record["_id"]
    staff = [f"FAKE-{i % 20:04d}" for i in range(30)]  # ten of them volunteer twice
    outcomes = await asyncio.gather(
        *(handlers.add_volunteer(one if i % 2 else two, mid, s) for i, s in enumerate(staff)),
        return_exceptions=True,
    )
    kept = (await two.missions.require(mid, "mission")).state["volunteers"]
    assert len(kept) == 5 and len(set(kept)) == 5
    accepted = {s for s, o in zip(staff, outcomes, strict=True) if isinstance(o, handlers.Result)}
    assert accepted == set(kept)
    assert all(isinstance(o, Conflict) and "full" in str(o) for o in outcomes if not isinstance(o, handlers.Result))
