"""Deterministic demo data: ~1,300 partnerships of ~1,050 made-up partners, ~150 signed this year, 120 labelled
associations with their skills-sponsorship missions, all loaded through the service's own handlers (so every
event is published through the outbox). Running it again changes nothing.

    python -m services.partners.demo [--as-of YYYY-MM-DD] [--csv partnerships.csv]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.partners import handlers
from services.partners.csvio import IMPORT_COLUMNS
from services.partners.domain import PartnerKind, partner_id_for, partnership_id_for, siret_is_valid
from services.partners.imports import import_csv
from services.partners.schemas import CompletionCommand, MissionCreate, RenewCommand
from services.partners.settings import PartnersSettings
from services.partners.store import Store
from shared import geo
from shared.events import Commitment, PartnershipType
from shared.kafka import Publisher, ensure_topics
from shared.mongo import mongo_client

__all__ = ["generate", "load", "main"]

SEED = 2022
PAST_YEARS = {2019: 90, 2020: 110, 2021: 140, 2022: 170, 2023: 190, 2024: 210, 2025: 240}
THIS_YEAR_SIGNED = 150
PARTNERS = 1050
LABELLED = 120
BIG = {"75", "13", "69", "59", "93", "33", "31", "44", "67", "34", "06", "76", "92", "94", "62", "974"}
KINDS = [
    (PartnerKind.ASSOCIATION, 70),
    (PartnerKind.FEDERATION, 7),
    (PartnerKind.SOCIAL_IMPACT_STARTUP, 8),
    (PartnerKind.ADAPTED_COMPANY, 5),
    (PartnerKind.PROTECTED_WORK, 4),
    (PartnerKind.INTEGRATION_STRUCTURE, 6),
]
TYPES = [
    (PartnershipType.INCLUSIVE_PURCHASING, 28),
    (PartnershipType.SKILLS_SPONSORSHIP, 24),
    (PartnershipType.ECONOMIC_COOPERATION, 20),
    (PartnershipType.SOCIAL_INNOVATION, 28),
]
COMMITMENTS = [
    (Commitment.DIGITAL_INCLUSION, 40),
    (Commitment.SOCIAL_INCLUSION, 30),
    (Commitment.TERRITORIAL_COHESION, 20),
    (Commitment.ECOLOGICAL_TRANSITION, 10),
]


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _day(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _fake_siret(n: int) -> str:
    head = f"99{n:07d}0001"  # the 99 prefix marks made-up identifiers
    return next(head + d for d in "0123456789" if siret_is_valid(head + d))


@dataclass
class Demo:
    rows: list[dict[str, str]]
    renewals: list[tuple[str, RenewCommand]]
    labelled: list[tuple[str, date]]
    missions: list[tuple[str, MissionCreate, list[str], CompletionCommand | None]]

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=IMPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buf.getvalue()


def _partners(rng: random.Random) -> list[dict[str, str]]:
    deps = list(geo.departements())
    weights = [4 if d in BIG else 1 for d in deps]
    out = []
    for n in range(1, PARTNERS + 1):
        kind = _pick(rng, KINDS)
        dep = rng.choices(deps, weights=weights)[0]
        commune = f"{dep}{rng.randint(1, 99):02d}" if len(dep) == 3 else f"{dep}{rng.randint(1, 300):03d}"
        postcode = {"2A": "20", "2B": "20"}.get(dep, dep)[:2] + f"{rng.randint(0, 999):03d}"
        legal = f"W9{n:08d}" if kind == PartnerKind.ASSOCIATION else _fake_siret(n)
        label = kind.value.replace("_", " ").capitalize()
        out.append(
            {
                "partner_legal_id": legal,
                "partner_name": f"{label} Démo {n:04d} ({geo.departement(dep).name})",
                "partner_kind": kind.value,
                "partner_street": f"{n} rue de la Démonstration",
                "partner_postcode": postcode,
                "partner_city": f"Commune démo {commune}",
                "partner_commune_insee": commune,
                "dep": dep,
            }
        )
    return out


def generate(as_of: date) -> Demo:
    """The same `as_of` always gives the same data."""
    rng = random.Random(SEED)
    partners = _partners(rng)
    this_year = as_of.year
    plan = [(y, n) for y, n in PAST_YEARS.items() if y < this_year] + [(this_year, THIS_YEAR_SIGNED)]
    rows: list[dict[str, str]] = []
    renewals: list[tuple[str, RenewCommand]] = []
    n = 0
    for year, count in plan:
        for _ in range(count):
            n += 1
            partner = partners[n - 1] if n <= len(partners) else rng.choice(partners)
            deps = [partner["dep"]]
            if rng.random() < 0.25:
                other = rng.choice(list(geo.departements()))
                deps += [other] if other not in deps else []
            k = rng.choice([1, 1, 2, 2, 3])
            commitments: list[str] = []
            while len(commitments) < k:
                c = _pick(rng, COMMITMENTS).value
                commitments += [c] if c not in commitments else []
            signed = _day(rng, date(year, 1, 2), min(date(year, 12, 20), as_of))
            starts = signed + timedelta(days=rng.randint(0, 30))
            ends = starts + timedelta(days=3 * 365) if rng.random() < 0.3 else None
            row = {
                **{k: v for k, v in partner.items() if k != "dep"},
                "external_ref": f"DEMO-{n:04d}",
                "partnership_type": _pick(rng, TYPES).value,
                "commitments": ";".join(commitments),
                "departements": ";".join(deps),
                "title": "",
                "status": "active" if starts <= as_of else "signed",
                "starts_on": starts.isoformat(),
                "ends_on": ends.isoformat() if ends else "",
                "signed_on": signed.isoformat(),
                "activated_on": starts.isoformat() if starts <= as_of else "",
                "ended_on": "",
                "end_reason": "",
            }
            if ends and ends - timedelta(days=30) <= as_of:
                if rng.random() < 0.4:
                    row.update(status="ended", ended_on=ends.isoformat(), end_reason="expired")
                else:
                    renewed_on = ends - timedelta(days=30)
                    new_end = ends + timedelta(days=3 * 365)
                    renewals.append((row["external_ref"], RenewCommand(renewed_on=renewed_on, ends_on=new_end)))
            elif year < this_year and rng.random() < 0.05 and starts < as_of:
                reason = rng.choice(["partner_withdrew", "partner_dissolved", "objectives_met", "merged"])
                row.update(status="ended", ended_on=_day(rng, starts, as_of).isoformat(), end_reason=reason)
            rows.append(row)

    associations = [p for p in partners if p["partner_kind"] == PartnerKind.ASSOCIATION.value][:LABELLED]
    labelled = [
        (partner_id_for(p["partner_legal_id"]), _day(rng, date(2019, 1, 1), date(2025, 12, 31))) for p in associations
    ]
    missions = []
    m = 0
    for partner, p in zip(labelled, associations, strict=True):
        for _ in range(rng.choice([1, 1, 2])):
            m += 1
            published = _day(rng, date(this_year, 1, 2), as_of)
            places = rng.randint(1, 4)
            cmd = MissionCreate(
                external_ref=f"DEMO-M-{m:04d}",
                title=f"Mission de mécénat de compétences démo {m:04d}",
                skills=rng.sample(["pédagogie", "numérique", "gestion", "communication", "logistique"], 2),
                departement=p["dep"],
                commitment=_pick(rng, COMMITMENTS),
                published_on=published,
                places=places,
            )
            staff = [f"DEMO-STAFF-{rng.randint(1, 9999):04d}" for _ in range(rng.randint(1, places))]
            done = None
            if published + timedelta(days=30) <= as_of and rng.random() < 0.75:
                completed = _day(rng, published + timedelta(days=14), min(published + timedelta(days=60), as_of))
                done = CompletionCommand(completed_on=completed, hours=float(len(set(staff)) * rng.randint(2, 20)))
            missions.append((partner[0], cmd, staff, done))
    return Demo(rows, renewals, labelled, missions)


async def load(store: Store, demo: Demo) -> dict[str, Any]:
    report = await import_csv(store, demo.csv_text())
    renewed = 0
    for ref, cmd in demo.renewals:
        doc = await store.partnerships.collection.find_one({"_id": partnership_id_for(ref)})
        if doc and doc["status"] in ("signed", "active"):
            before = len(doc.get("renewals", []))
            after, _ = await handlers.transition(store, doc, cmd)
            renewed += len(after.get("renewals", [])) - before
    for pid, on in demo.labelled:
        await handlers.set_skills_label(store, pid, True, on)
    missions_created = completed = 0
    for pid, cmd, staff, done in demo.missions:
        partner = await store.partners.find_one({"_id": pid})
        created, mission, _ = await handlers.create_mission(store, partner, cmd)
        missions_created += created
        for s in staff:
            if mission["status"] == "published":
                mission = await handlers.add_volunteer(store, mission, s)
        if done and mission["status"] == "published":
            await handlers.complete_mission(store, mission, done)
            completed += 1
    return {
        "rows": report.rows,
        "imported": report.imported,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "problems": [p.model_dump() for p in report.problems[:5]],
        "partners_created": report.partners_created,
        "renewals_applied": renewed,
        "missions_created": missions_created,
        "missions_completed": completed,
    }


async def _run(as_of: date, demo: Demo) -> int:
    settings = PartnersSettings()
    await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap_servers)
    mongo = mongo_client(settings.mongodb_uri, app_name="partners-demo")
    publisher = Publisher(settings.kafka_bootstrap_servers, client_id="partners-demo")
    await publisher.start()
    try:
        store = Store.open(mongo[settings.mongodb_database], publisher)
        await store.ensure_indexes()
        summary = await load(store, demo)
    finally:
        await publisher.stop()
        await mongo.close()
    signed_this_year = sum(1 for r in demo.rows if r["signed_on"].startswith(str(as_of.year)))
    print(f"demo data as of {as_of}: {len(demo.rows)} partnerships, {signed_this_year} signed in {as_of.year}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0 if summary["rejected"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-of", type=date.fromisoformat, default=date.today(), help="the demo's today")
    parser.add_argument("--csv", help="also write the partnerships as an import CSV to this path")
    args = parser.parse_args(argv)
    demo = generate(args.as_of)
    if args.csv:
        with open(args.csv, "w", encoding="utf-8") as fh:
            fh.write(demo.csv_text())
    return asyncio.run(_run(args.as_of, demo))


if __name__ == "__main__":
    sys.exit(main())
