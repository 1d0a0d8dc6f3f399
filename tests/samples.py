"""One valid example of every event type, built from made-up, non-personal values."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from shared import events as ev
from shared.privacy import person_ref

KEY = b"tests-only-person-ref-key-0123456789"
PARIS = {"departement": "75", "region": "11", "timezone": "Europe/Paris"}
REUNION = {"departement": "974", "region": "04", "timezone": "Indian/Reunion"}


def ref(n: int | str) -> str:
    return person_ref(f"client-{n}", KEY)


def attended(
    person: str | None,
    *,
    at: datetime | None = None,
    territory: dict | None = None,
    event_id: uuid.UUID | None = None,
    theme: str = "online_banking",
) -> ev.Envelope:
    data = ev.WorkshopAttended(
        attendance_id=str(uuid.uuid4()),
        workshop_id="w-1",
        theme=theme,
        venue_id="v-1",
        person_ref=person,
        **(territory or PARIS),
    )
    return ev.new_event(data, source="/tests", time=at or datetime.now(UTC), event_id=event_id)


def accompanied(
    person: str | None, *, channel: str = "france_services", at: datetime | None = None, territory: dict | None = None
) -> ev.Envelope:
    data = ev.AccompanimentCompleted(
        accompaniment_id=str(uuid.uuid4()),
        person_ref=person,
        channel=channel,
        need="taxes",
        duration_minutes=30,
        **(territory or PARIS),
    )
    return ev.new_event(data, source="/tests", time=at or datetime.now(UTC))


def retraction(of: ev.Envelope) -> ev.Envelope:
    data = ev.AttendanceRetracted(
        retracted_event_id=of.id,
        attendance_id=of.data.attendance_id,
        person_ref=of.data.person_ref,
        reason="recorded by mistake",
    )
    return ev.new_event(data, source="/tests", time=datetime.now(UTC))


def detected(person: str | None, *, at: datetime | None = None, referred: bool = True) -> ev.Envelope:
    data = ev.IllectronismDetected(
        detection_id=str(uuid.uuid4()),
        office_id="o-1",
        terminal_id="t-1",
        person_ref=person,
        consent=True,
        needs=["online_banking"],
        qpv=True,
        referral=ev.Referral(theme="online_banking") if referred else None,
        **PARIS,
    )
    return ev.new_event(data, source="/tests", time=at or datetime.now(UTC))


def every_event_type() -> list[ev.Envelope]:
    now = datetime.now(UTC)
    pid = str(uuid.uuid4())
    att = attended(ref(1))
    datas: list[ev.EventData] = [
        ev.PartnershipSigned(
            partnership_id=pid,
            partner_id="p-1",
            partnership_type="skills_sponsorship",
            commitments=["digital_inclusion"],
            departements=["75", "2A"],
            signed_on=date(2022, 3, 1),
            starts_on=date(2022, 4, 1),
        ),
        ev.PartnershipActivated(partnership_id=pid, partner_id="p-1", activated_on=date(2022, 4, 1)),
        ev.PartnershipRenewed(partnership_id=pid, partner_id="p-1", renewed_on=date(2023, 4, 1)),
        ev.PartnershipEnded(partnership_id=pid, partner_id="p-1", ended_on=date(2024, 1, 1), reason="goal met"),
        ev.SkillsMissionPublished(
            mission_id="m-1",
            partner_id="p-1",
            departement="69",
            commitment="social_inclusion",
            published_on=date(2022, 5, 1),
        ),
        ev.SkillsMissionCompleted(
            mission_id="m-1",
            partner_id="p-1",
            departement="69",
            commitment="social_inclusion",
            volunteers=3,
            hours=12.5,
            completed_on=date(2022, 6, 1),
        ),
        detected(ref(1)).data,
        ev.WorkshopScheduled(
            workshop_id="w-1", theme="tablet_basics", venue_id="v-1", starts_at=now, capacity=12, **PARIS
        ),
        ev.WorkshopCancelled(workshop_id="w-1", reason="facilitator ill", registered_person_refs=[ref(2)]),
        att.data,
        retraction(att).data,
        accompanied(None).data,
        ev.AccompanimentRetracted(retracted_event_id=uuid.uuid4(), accompaniment_id="a-1", reason="duplicate"),
        ev.AdviserDeployed(adviser_id="cn-1", departement="971", deployed_on=date(2022, 4, 1)),
        ev.VenueOpened(
            venue_id="v-9", kind="post_office_room", newly_equipped=True, opened_on=date(2022, 9, 1), **REUNION
        ),
    ]
    return [ev.new_event(d, source="/tests", time=now) for d in datas]
