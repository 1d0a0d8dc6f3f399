"""Demo flow for `make run`: a year of venues, advisers, workshops and accompaniments, through the handlers.

Deterministic (seeded by year) and idempotent: the whole year is planned first, then everything that has
already happened by now is recorded; running it again records only what has happened since (the rest comes
back as duplicates, with the same event ids). Client references are made up (`demo-<year>-client-<n>`).

    python -m services.workshops.demo [--year 2026] [--scale 0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.partners.demo import NETWORK, network_partner_ids
from services.workshops import checkins, handlers
from services.workshops.handlers import Result
from services.workshops.schemas import (
    AccompanimentCreate,
    CheckIn,
    FacilitatorCreate,
    RegistrationCreate,
    VenueCreate,
    WorkshopCreate,
)
from services.workshops.settings import WorkshopsSettings
from services.workshops.store import Store
from shared import geo
from shared.errors import Conflict, Invalid, NotFound, Refusal
from shared.events import Commitment, WorkshopTheme
from shared.identity import Principal, Role
from shared.kafka import Publisher, ensure_topics
from shared.layout import ensure_layout
from shared.mongo import mongo_client

__all__ = ["plan", "load", "main"]

LOADER = Principal("demo-loader", Role.ADMIN)
BATCH = 250  # accompaniments written per bulk insert
SCALE = 0.25  # what `make run` loads: the detection demo detects the people of this plan
# Partner organisations of the kind the source names: the partners demo registers them (their platform ids and
# names are the partners service's business), so every page reads their names.
PARTNERS = ["pimms", "face", "admr", "emmaus-connect", "wetechcare", "croix-rouge", "secours-populaire", "ufcc"]
PARTNER_IDS = network_partner_ids()
PARTNER_TAGS = {pid: tag for tag, pid in PARTNER_IDS.items()}
THEMES = {  # theme → weight
    "online_banking": 5,
    "smartphone_basics": 5,
    "tablet_basics": 3,
    "senior_tablet_onboarding": 3,
    "online_admin": 4,
    "email_and_messaging": 2,
    "online_safety": 2,
}
NEEDS = {"taxes": 4, "benefits": 4, "health_insurance": 3, "identity_documents": 2, "employment": 2,
         "online_banking": 2, "device_basics": 2, "email": 1, "admin_procedures": 3, "other": 1}  # fmt: skip


@dataclass
class Plan:
    year: int
    venues: list[VenueCreate] = field(default_factory=list)
    facilitators: list[FacilitatorCreate] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    accompaniments: list[dict[str, Any]] = field(default_factory=list)  # validated when they have happened
    retractions: list[str] = field(default_factory=list)  # accompaniment ids recorded by mistake


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _commune(rng: random.Random, dep: str) -> str:
    # A well-formed INSEE commune code of the département (synthetic number: no commune list is shipped).
    return f"{dep}{rng.randint(1, 60):02d}" if dep.startswith("97") else f"{dep}{rng.randint(1, 300):03d}"


def _day(rng: random.Random, year: int, start: date | None = None) -> date:
    first = start or date(year, 1, 1)
    return first + timedelta(days=rng.randrange((date(year, 12, 31) - first).days + 1))


def plan(year: int, scale: float = 1.0) -> Plan:
    """Everything the year holds, decided by the seed alone (never by the clock)."""
    rng = random.Random(f"alliance-dynamique-demo-{year}")
    p = Plan(year)
    tag = f"demo{year}"
    deps = sorted(geo.departements())
    adviser_deps = sorted(rng.sample(deps, 57))  # 100 digital advisers in 57 départements
    adviser_homes = adviser_deps + [rng.choice(adviser_deps) for _ in range(100 - 57)]
    april = date(year, 4, 1)
    for n, dep in enumerate(adviser_homes, 1):
        # As in the source, from April; a first fifth from January, so that the demo is on pace any day of the year.
        start = date(year, 1, 4) if n <= 20 else april
        p.facilitators.append(
            FacilitatorCreate.model_construct(
                facilitator_id=f"{tag}-cn-{n:03d}",
                kind="adviser",
                departement=dep,
                deployed_on=start + timedelta(days=rng.randrange(0, 150)),
            )
        )
    for partner in PARTNERS:
        for n in (1, 2):
            p.facilitators.append(
                FacilitatorCreate.model_construct(
                    facilitator_id=f"{tag}-med-{partner}-{n}",
                    kind="partner_mediator",
                    departement=rng.choice(deps),
                    partner_id=PARTNER_IDS[partner],
                )
            )
    for n in range(1, 21):
        p.facilitators.append(
            FacilitatorCreate.model_construct(
                facilitator_id=f"{tag}-vol-{n:02d}", kind="volunteer", departement=rng.choice(deps), partner_id=None
            )
        )
    # 100 newly equipped post-office rooms, opening through the year; Espaces France Services; partner premises.
    for n in range(1, 101):
        dep = rng.choice(adviser_deps if rng.random() < 0.6 else deps)
        p.venues.append(
            VenueCreate.model_construct(
                venue_id=f"{tag}-room-{n:03d}",
                name=f"Bureau de poste — espace numérique {n}",
                kind="post_office_room",
                commune_insee=_commune(rng, dep),
                qpv=rng.random() < 0.3,
                rural=rng.random() < 0.35,
                newly_equipped=True,
                opened_on=_day(rng, year),
            )
        )
    for n in range(1, max(2, round(35 * scale)) + 1):
        dep = rng.choice(deps)
        p.venues.append(
            VenueCreate.model_construct(
                venue_id=f"{tag}-efs-{n:03d}",
                name=f"Espace France Services La Poste {n}",
                kind="france_services",
                commune_insee=_commune(rng, dep),
                rural=rng.random() < 0.7,
                opened_on=date(year, 1, 1),
            )
        )
    for partner in PARTNERS:
        for n in (1, 2, 3):
            p.venues.append(
                VenueCreate.model_construct(
                    venue_id=f"{tag}-prem-{partner}-{n}",
                    name=f"Locaux {NETWORK[partner][0].removesuffix(' (démo)')} {n}",
                    kind="partner_premises",
                    partner_id=PARTNER_IDS[partner],
                    commune_insee=_commune(rng, rng.choice(deps)),
                    qpv=partner in ("pimms", "face") or rng.random() < 0.2,
                    opened_on=date(year, 1, 1),
                )
            )
    advisers_by_dep: dict[str, list[str]] = {}
    for f in p.facilitators:
        if f.kind == "adviser":
            advisers_by_dep.setdefault(f.departement, []).append(f.facilitator_id)
    clients = max(50, round(6000 * scale))
    rooms = [v for v in p.venues if v.kind == "post_office_room"]
    premises = [v for v in p.venues if v.kind == "partner_premises"]
    for n in range(1, round(700 * scale) + 1):
        partner_run = rng.random() < 0.45
        venue = rng.choice(premises) if partner_run and rng.random() < 0.5 else rng.choice(rooms)
        owner = venue.partner_id or (PARTNER_IDS[rng.choice(PARTNERS)] if partner_run else None)
        if owner:
            facilitator = f"{tag}-med-{PARTNER_TAGS[owner]}-{rng.randint(1, 2)}"
        else:
            local = advisers_by_dep.get(venue.departement)
            facilitator = rng.choice(local) if local else f"{tag}-vol-{rng.randint(1, 20):02d}"
        day = _day(rng, year, max(venue.opened_on, date(year, 1, 2)))
        while day.weekday() == 6:
            day -= timedelta(days=1)
        capacity = rng.choice([6, 8, 8, 10, 12])
        session = {
            "create": WorkshopCreate(
                workshop_id=f"{tag}-w-{n:04d}",
                theme=WorkshopTheme(_pick(rng, THEMES)),
                venue_id=venue.venue_id,
                facilitator_id=facilitator,
                partner_id=owner,
                starts_local=datetime(day.year, day.month, day.day, rng.choice([9, 10, 14, 15])),
                capacity=capacity,
                commitment=Commitment.SOCIAL_INCLUSION
                if venue.qpv and rng.random() < 0.3
                else Commitment.DIGITAL_INCLUSION,
            ),
            "cancelled": rng.random() < 0.03,
            "sheet": rng.random() < 0.4,
            "registrations": [
                f"{tag}-client-{rng.randrange(clients):06d}" for _ in range(rng.randint(capacity - 3, capacity + 3))
            ],
            "shows": rng.random(),
            "walk_ins": rng.randint(0, 3),
        }
        p.sessions.append(session)
    channels = {"france_services": round(3000 * scale), "adviser": round(2000 * scale), "partner": round(600 * scale)}
    fs_venues = [v for v in p.venues if v.kind == "france_services"]
    la_poste = [v for v in p.venues if v.partner_id is None]
    advisers = [f for f in p.facilitators if f.kind == "adviser"]
    for channel, count in channels.items():
        for n in range(1, count + 1):
            minute = rng.randrange(365 * 24 * 60)
            at = datetime(year, 1, 1, 9, tzinfo=UTC) + timedelta(minutes=minute % (364 * 24 * 60))
            body: dict[str, Any] = {
                "accompaniment_id": f"{tag}-acc-{channel[:2]}-{n:05d}",
                "channel": channel,
                "need": _pick(rng, NEEDS),
                "duration_minutes": rng.choice([15, 20, 30, 30, 45, 60, 90]),
                "completed_at": at,
                "client_reference": None if rng.random() < 0.1 else f"{tag}-client-{rng.randrange(clients):06d}",
            }
            if channel == "france_services":
                body["venue_id"] = rng.choice(fs_venues).venue_id
            elif channel == "adviser":
                adviser = rng.choice(advisers)
                body["adviser_id"] = adviser.facilitator_id
                assert adviser.deployed_on is not None
                body["completed_at"] = max(at, datetime.combine(adviser.deployed_on, datetime.min.time(), UTC))
                # A venue of La Poste's open by then, in the adviser's département when there is one (the
                # Espaces France Services are open from 1 January).
                held_on = body["completed_at"].date()
                near = [v for v in la_poste if v.departement == adviser.departement and v.opened_on <= held_on]
                body["venue_id"] = rng.choice(near or fs_venues).venue_id
            else:
                partner = rng.choice(PARTNERS)
                body |= {"partner_id": PARTNER_IDS[partner], "venue_id": f"{tag}-prem-{partner}-{rng.randint(1, 3)}"}
            p.accompaniments.append(body)
            if rng.random() < 0.01:
                p.retractions.append(body["accompaniment_id"])
    return p


class Loader:
    def __init__(self, store: Store, key: bytes, now: datetime, concurrency: int = 8) -> None:
        self.store, self.key, self.now = store, key, now
        self.counts: Counter[str] = Counter()
        self._gate = asyncio.Semaphore(concurrency)

    async def _one(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            result = await call
        except (Conflict, Invalid, NotFound) as exc:
            self.counts[f"{what} refused"] += 1
            print(f"demo: {what} refused: {exc.reason}", file=sys.stderr)
            return None
        status = result.outcome if isinstance(result, Result) else "done"
        self.counts[f"{what} {status}"] += 1
        return result

    def record(self, what: str, result: Result | Refusal) -> None:
        """Counts one result of a bulk command (a refusal is reported, as `_one` does)."""
        if isinstance(result, Refusal):
            self.counts[f"{what} refused"] += 1
            print(f"demo: {what} refused: {result.reason}", file=sys.stderr)
        else:
            self.counts[f"{what} {result.outcome}"] += 1

    async def _gated(self, what: str, call: Awaitable[Any]) -> Any:
        async with self._gate:
            return await self._one(what, call)

    async def all(self, what: str, calls: Iterable[Awaitable[Any]]) -> list[Any]:
        """Runs `calls` a few at a time (each session's own steps stay in order)."""
        return await asyncio.gather(*(self._gated(what, c) for c in calls))

    async def session(self, s: dict[str, Any]) -> None:
        cmd: WorkshopCreate = s["create"]
        wid = cmd.workshop_id
        store, key = self.store, self.key
        if await self._one("workshop", handlers.schedule_workshop(store, LOADER, cmd)) is None:
            return
        bodies = [  # one registration per person, in the order they came
            RegistrationCreate(origin="referral" if int(client[-6:]) % 3 else "walk_in", client_reference=client)
            for client in dict.fromkeys(s["registrations"])
        ]
        got = await self._one("registrations", handlers.register_many(store, LOADER, wid, bodies, key=key))
        regs = [r.id for r in got or []]
        self.counts.update(f"registration {r.outcome}" for r in got or [])
        if s["cancelled"]:
            await self._one("cancellation", handlers.cancel_workshop(store, LOADER, wid, "facilitator unavailable"))
            return
        workshop = await store.workshops.require(wid, "workshop")
        if workshop.state["starts_at"] + timedelta(hours=2) > self.now:
            return  # not held yet
        registrations = workshop.state["registrations"]
        seated = [r for r in regs if registrations[r]["status"] == "registered"]
        came = seated[: max(1, round(len(seated) * (0.65 + 0.3 * s["shows"])))]
        seats = [str(n) for n in range(len(came) + 1, len(came) + 1 + s["walk_ins"])]  # anonymous walk-ins
        if s["sheet"]:
            lines = ["seat,registration_id"] + [f"{n},{r}" for n, r in enumerate(came, 1)] + [f"{n}," for n in seats]
            await self._one("sheet", checkins.check_in_sheet(store, LOADER, wid, "\n".join(lines), key=key))
            return
        items = [CheckIn(registration_id=r) for r in came] + [CheckIn(seat=n) for n in seats]
        for item in items:
            await self._one("attendance", checkins.check_in(store, LOADER, wid, item, key=key))


async def load(p: Plan, store: Store, key: bytes, now: datetime) -> Counter[str]:
    loader = Loader(store, key, now)
    today = now.astimezone(ZoneInfo(geo.PARIS)).date()
    # Planned without validation (a place opening next month is not a fact yet); checked once it has happened.
    venues = [VenueCreate.model_validate(v.model_dump()) for v in p.venues if v.opened_on <= today]
    await loader.all("venue", (handlers.open_venue(store, LOADER, v) for v in venues))
    facilitators = [
        FacilitatorCreate.model_validate(f.model_dump())
        for f in p.facilitators
        if f.deployed_on is None or f.deployed_on <= today
    ]
    await loader.all("facilitator", (handlers.add_facilitator(store, LOADER, f) for f in facilitators))
    opened = {v.venue_id for v in p.venues if v.opened_on <= today}
    known = {f.facilitator_id for f in facilitators}
    sessions = [s for s in p.sessions if s["create"].venue_id in opened and s["create"].facilitator_id in known]
    await loader.all("session", (loader.session(s) for s in sessions))
    done = [AccompanimentCreate.model_validate(a) for a in p.accompaniments if a["completed_at"] <= now]
    for chunk in range(0, len(done), BATCH):
        for result in await checkins.record_accompaniments(store, LOADER, done[chunk : chunk + BATCH], key=key):
            loader.record("accompaniment", result)
    ids = {a.accompaniment_id for a in done}
    reason = "recorded twice by mistake"
    retract = (checkins.retract_accompaniment(store, LOADER, i, reason) for i in p.retractions if i in ids)
    await loader.all("accompaniment retraction", retract)
    return loader.counts


async def _main(year: int, scale: float) -> None:
    settings = WorkshopsSettings()
    await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap_servers)
    mongo = mongo_client(settings.mongodb_uri, app_name="workshops-demo")
    publisher = Publisher(settings.kafka_bootstrap_servers, client_id="workshops-demo")
    await publisher.start()
    try:
        # Registrations, accompaniments and sheets go in bulk (one version, or `create_many`); the other writes
        # publish as they go: measured faster here than leaving thousands of notes to one relay pass at the end,
        # which only sends what Kafka did not take in time.
        store = Store.open(mongo[settings.mongodb_database], publisher)
        await ensure_layout(store.docs, "workshops")
        await store.ensure_indexes()
        started = time.perf_counter()
        counts = await load(plan(year, scale), store, settings.person_ref_key_bytes, datetime.now(UTC))
        counts["events left to the relay, sent"] = await store.outbox.relay_once(grace=timedelta(0))
    finally:
        await publisher.stop()
        await mongo.close()
    for name, n in sorted(counts.items()):
        print(f"  {name:<32} {n:>7}")
    print(f"workshops demo for {year} loaded in {time.perf_counter() - started:.1f}s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=datetime.now(ZoneInfo(geo.PARIS)).year)
    parser.add_argument(
        "--scale",
        type=float,
        default=SCALE,
        help="volume of sessions and accompaniments (1.0: 700 sessions, 5,600 accompaniments)",
    )
    args = parser.parse_args(argv)
    asyncio.run(_main(args.year, args.scale))


if __name__ == "__main__":
    main()
