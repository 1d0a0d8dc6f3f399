"""The demo's year at the counters: people detected before the workshops demo helps them, and others never helped.

Deterministic (seeded by year, like the workshops plan it reads). Of the people the workshops demo helps (by
client reference), about two in three were first detected at a post office of the département where they are
helped, 1 to 75 days before their first planned help; about as many again are detected and never helped; some
come back to a counter. Only what has happened by now is sent, through the backfill path (the counter files of
the year, by office), so a second run finds every detection there already (`duplicate`).
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from services.detection.schemas import OfficeIn
from services.workshops.demo import plan as workshops_plan
from shared import geo
from shared.events import Need, WorkshopTheme

__all__ = ["Person", "helped_people", "plan", "send", "REASON"]

REASON = "démo : fichiers des guichets de l'année"
BATCH = 500  # the detection service's default DETECTION_MAX_BATCH
NEEDS = [n.value for n in Need]
THEMES = [t.value for t in WorkshopTheme]


@dataclass(frozen=True, slots=True)
class Person:
    client: str
    first_help: datetime  # the first help the workshops demo plans for them (UTC)
    departement: str
    theme: str | None  # the theme of the workshop they registered for, if that was their first help
    referred: bool  # registered through a referral (the workshops demo's rule), so detected with one


def helped_people(year: int, scale: float) -> list[Person]:
    """Everyone the workshops demo plans to help in `year`, with their first planned help."""
    p = workshops_plan(year, scale)
    venues = {v.venue_id: v for v in p.venues}
    first: dict[str, Person] = {}

    def keep(person: Person) -> None:
        if person.client not in first or person.first_help < first[person.client].first_help:
            first[person.client] = person

    for s in p.sessions:
        cmd = s["create"]
        if s["cancelled"] or cmd.venue_id not in venues:
            continue
        dep = venues[cmd.venue_id].departement
        at = cmd.starts_local.replace(tzinfo=geo.timezone_of(dep)).astimezone(UTC)
        for client in dict.fromkeys(s["registrations"]):
            keep(Person(client, at, dep, cmd.theme.value, bool(int(client[-6:]) % 3)))
    for a in p.accompaniments:
        client, venue = a.get("client_reference"), venues.get(a.get("venue_id") or "")
        where = venue.departement if venue else a.get("departement")
        if client and where:
            keep(Person(client, a["completed_at"], where, None, False))
    return sorted(first.values(), key=lambda person: person.client)


def _counter_time(rng: random.Random, day: datetime, zone: ZoneInfo) -> datetime:
    """A moment of opening hours (Monday to Saturday, 9:00-17:59) on `day` or the working day before it."""
    local = day.astimezone(zone)
    if local.weekday() == 6:
        local -= timedelta(days=1)
    return local.replace(hour=rng.randint(9, 17), minute=rng.randrange(60), second=rng.randrange(60), microsecond=0)


def _counters(offices: list[OfficeIn]) -> dict[str, list[OfficeIn]]:
    """Per département, the offices the demo detects at: a main one (in a priority neighbourhood where there is
    one) and a second one (an Espace France Services, else a rural office)."""
    by_dep: dict[str, list[OfficeIn]] = defaultdict(list)
    for o in sorted(offices, key=lambda o: o.office_id):
        if o.departement:
            by_dep[o.departement].append(o)
    out = {}
    for dep, here in by_dep.items():
        main = next((o for o in here if o.qpv), None) or next((o for o in here if not o.rural), here[0])
        second = next((o for o in here if o.france_services), None) or next((o for o in here if o.rural), None)
        out[dep] = [main] + ([second] if second and second != main else [])
    return out


def plan(year: int, scale: float, offices: list[OfficeIn], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The detection items of the year that have happened by `now`, by office id."""
    rng = random.Random(f"alliance-dynamique-detections-{year}")
    counters = _counters(offices)
    deps = sorted(counters)
    start = datetime(year, 1, 1, 9, tzinfo=UTC)
    people: list[tuple[str, datetime, str, dict[str, Any] | None, bool]] = []
    for person in helped_people(year, scale):
        if rng.random() >= 2 / 3:
            continue
        at = person.first_help - timedelta(days=rng.randint(1, 75), hours=rng.randint(0, 23))
        referral = {"theme": person.theme} if person.referred and person.theme else None
        people.append((person.client, at, person.departement, referral, True))
    for n in range(len(people)):  # as many again, never helped (yet)
        at = start + timedelta(minutes=rng.randrange(364 * 24 * 60))
        referral = {"theme": rng.choice(THEMES)} if rng.random() < 0.2 else None
        people.append((f"demo{year}-counter-{n:06d}", at, rng.choice(deps), referral, rng.random() < 0.7))
    batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    n = 0
    for client, at, dep, referral, consent in people:
        if dep not in counters:
            continue
        visits = [at] + ([at + timedelta(days=rng.randint(3, 40))] if rng.random() < 0.1 else [])
        for visit in visits:
            # Every draw is made before the clock is looked at: the items of one day are those of the next.
            office = counters[dep][0] if rng.random() < 0.75 or len(counters[dep]) == 1 else counters[dep][1]
            moment = _counter_time(rng, visit, geo.timezone_of(dep))
            needs = rng.sample(NEEDS, rng.choice((1, 1, 2)))
            n += 1
            if not start <= moment <= now or moment.year != year:
                continue
            item: dict[str, Any] = {
                "detection_id": f"demo{year}-det-{n:06d}",
                "occurred_at": moment.isoformat(),
                "needs": needs,
                "client_reference": client,
                "consent": consent or referral is not None,
            }
            if referral and visit is visits[0]:
                item["referral"] = referral
            batches[office.office_id].append(item)
    return dict(batches)


def send(url: str, admin_token: str, batches: dict[str, list[dict[str, Any]]]) -> Counter[str]:
    """Every batch through POST /v1/backfill/detections, waiting when the service asks to (429)."""
    totals: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for office_id, items in sorted(batches.items()):
            for chunk in range(0, len(items), BATCH):
                body = {"office_id": office_id, "reason": REASON, "detections": items[chunk : chunk + BATCH]}
                while (r := http.post("/v1/backfill/detections", json=body)).status_code == 429:
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                if r.status_code not in (200, 202):
                    raise RuntimeError(f"backfill of {office_id}: {r.status_code} {r.text[:500]}")
                report = r.json()
                totals.update(accepted=report["accepted"], duplicate=report["duplicates"])
                totals["rejected"] += report["rejected"]
                for result in report["results"]:
                    if result["status"] == "rejected":
                        raise RuntimeError(f"backfill of {office_id} refused {result['detection_id']}: {result}")
    return totals
