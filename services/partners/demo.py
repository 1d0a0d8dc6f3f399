"""Deterministic demo data: ~1,300 partnerships of ~1,050 made-up partners, ~150 signed this year, 120 labelled
associations with their skills-sponsorship missions, and the national networks the workshops demo works with
(`NETWORK`), all loaded through the service's own handlers (so every event is published through the outbox).
Running it again changes nothing.

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
from services.partners.domain import (
    EndReason,
    PartnerKind,
    partner_id_for,
    partnership_id_for,
    siret_is_valid,
)
from services.partners.imports import import_csv
from services.partners.schemas import ActivateCommand, CompletionCommand, EndCommand, MissionCreate, RenewCommand
from services.partners.settings import PartnersSettings
from services.partners.store import Store
from shared import geo
from shared.docstore import MongoDocuments
from shared.errors import Conflict, Invalid
from shared.events import Commitment, PartnershipType
from shared.kafka import Publisher, ensure_topics
from shared.layout import ensure_layout
from shared.mongo import mongo_client

__all__ = ["generate", "load", "main", "NETWORK", "network_partner_ids"]

SEED = 2022
PAST_YEARS = {2019: 90, 2020: 110, 2021: 140, 2022: 170, 2023: 190, 2024: 210, 2025: 240}
THIS_YEAR_SIGNED = 165  # over the whole year: about 150 by late November
PARTNERS = 1050
LABELLED = 120
MISSIONS_FROM = 2026  # skills-sponsorship missions are generated from this year on (or the demo's year, if earlier)
# National networks of the kind the source names, made up (a "(démo)" name, a legal id no real body holds): the
# workshops demo runs sessions and accompaniments with them. tag → (name, kind, RNA number).
NETWORK: dict[str, tuple[str, PartnerKind, str]] = {
    "pimms": ("Réseau PIMMS Médiation (démo)", PartnerKind.FEDERATION, "W990000001"),
    "face": ("Fondation FACE (démo)", PartnerKind.FEDERATION, "W990000002"),
    "admr": ("Réseau ADMR (démo)", PartnerKind.FEDERATION, "W990000003"),
    "emmaus-connect": ("Emmaüs Connect (démo)", PartnerKind.ASSOCIATION, "W990000004"),
    "wetechcare": ("WeTechCare (démo)", PartnerKind.ASSOCIATION, "W990000005"),
    "croix-rouge": ("Croix-Rouge française (démo)", PartnerKind.ASSOCIATION, "W990000006"),
    "secours-populaire": ("Secours populaire (démo)", PartnerKind.ASSOCIATION, "W990000007"),
    "ufcc": ("Union des foyers et cafés connectés (démo)", PartnerKind.FEDERATION, "W990000008"),
}
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
    # Lifecycle steps that fall in the current year go through the handlers on the day they are due, so that
    # the import rows of a year never change from one day to the next (re-running stays a no-op).
    steps: list[tuple[str, ActivateCommand | RenewCommand | EndCommand]]
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


def network_partner_ids() -> dict[str, str]:
    """The platform id of each network of `NETWORK`, by tag (the id follows from the legal identifier)."""
    return {tag: partner_id_for(legal) for tag, (_, _, legal) in NETWORK.items()}


def _network_rows(as_of: date) -> list[dict[str, str]]:
    """One national partnership per network, signed before the demo's year and running: active all year."""
    signed = date(min(2021, as_of.year - 1), 3, 1)
    rows = []
    for n, (tag, (name, kind, legal)) in enumerate(NETWORK.items(), 1):
        day = (signed + timedelta(days=7 * n)).isoformat()
        rows.append(
            {
                "partner_legal_id": legal,
                "partner_name": name,
                "partner_kind": kind.value,
                "partner_street": f"{n} avenue des Réseaux",
                "partner_postcode": "75011",
                "partner_city": "Paris",
                "partner_commune_insee": "75111",
                "external_ref": f"DEMO-RESEAU-{tag.upper()}",
                "partnership_type": PartnershipType.SOCIAL_INNOVATION.value,
                "commitments": ";".join([Commitment.DIGITAL_INCLUSION.value, Commitment.SOCIAL_INCLUSION.value]),
                "departements": ";".join(sorted(BIG)),
                "title": "Partenariat national d'inclusion numérique",
                "status": "active",
                "starts_on": day,
                "ends_on": "",
                "signed_on": day,
                "activated_on": day,
                "ended_on": "",
                "end_reason": "",
            }
        )
    return rows


def _partnership(n: int, year: int, partner: dict[str, str], as_of: date) -> tuple[dict[str, str], list] | None:
    """Row `n` (its own random stream: skipping one never shifts the others); None if not signed yet."""
    rng = random.Random(f"{SEED}-partnership-{n}")
    jan1 = date(as_of.year, 1, 1)
    deps = [partner["dep"]]
    if rng.random() < 0.25:
        other = rng.choice(list(geo.departements()))
        deps += [other] if other not in deps else []
    k = rng.choice([1, 1, 2, 2, 3])
    commitments: list[str] = []
    while len(commitments) < k:
        c = _pick(rng, COMMITMENTS).value
        commitments += [c] if c not in commitments else []
    signed = _day(rng, date(year, 1, 2), date(year, 12, 20))
    if signed > as_of:
        return None
    starts = signed + timedelta(days=rng.randint(0, 30))
    ends = starts + timedelta(days=3 * 365) if rng.random() < 0.3 else None
    ref = f"DEMO-{n:04d}"
    row = {
        **{k: v for k, v in partner.items() if k != "dep"},
        "external_ref": ref,
        "partnership_type": _pick(rng, TYPES).value,
        "commitments": ";".join(commitments),
        "departements": ";".join(deps),
        "title": "",
        "status": "signed",
        "starts_on": starts.isoformat(),
        "ends_on": ends.isoformat() if ends else "",
        "signed_on": signed.isoformat(),
        "activated_on": "",
        "ended_on": "",
        "end_reason": "",
    }
    steps: list = []
    if starts < jan1:
        row.update(status="active", activated_on=starts.isoformat())
    elif starts <= as_of:
        steps.append((ref, ActivateCommand(activated_on=starts)))
    expire_end = rng.random() < 0.4
    early_end = rng.random() < 0.05
    early_on = _day(rng, starts, date(year + 2, 12, 31))
    early_reason = rng.choice([EndReason.PARTNER_WITHDREW, EndReason.PARTNER_DISSOLVED, EndReason.OBJECTIVES_MET])
    if ends:
        due = ends - timedelta(days=30)
        if expire_end:
            if ends < jan1 and row["status"] == "active":
                row.update(status="ended", ended_on=ends.isoformat(), end_reason=EndReason.EXPIRED.value)
            elif ends <= as_of:
                steps.append((ref, EndCommand(ended_on=ends, reason=EndReason.EXPIRED)))
        else:
            while due <= as_of:  # renewed every three years, a month before the term
                ends += timedelta(days=3 * 365)
                steps.append((ref, RenewCommand(renewed_on=due, ends_on=ends)))
                due = ends - timedelta(days=30)
    elif early_end:
        if early_on < jan1 and row["status"] == "active":
            row.update(status="ended", ended_on=early_on.isoformat(), end_reason=early_reason.value)
        elif early_on <= as_of and starts <= as_of:
            steps.append((ref, EndCommand(ended_on=early_on, reason=early_reason)))
    return row, steps


def generate(as_of: date) -> Demo:
    """Deterministic: a later `as_of` in the same year only adds to what an earlier one gave."""
    partners = _partners(random.Random(SEED))
    plan = [(y, PAST_YEARS.get(y, THIS_YEAR_SIGNED)) for y in range(min(PAST_YEARS), as_of.year + 1)]
    rows: list[dict[str, str]] = []
    steps: list = []
    n = 0
    for year, count in plan:
        for _ in range(count):
            n += 1
            partner = partners[(n - 1) % len(partners) if n <= len(partners) else (n * 7919) % len(partners)]
            made = _partnership(n, year, partner, as_of)
            if made:
                rows.append(made[0])
                steps.extend(made[1])
    rows.extend(_network_rows(as_of))

    rng = random.Random(f"{SEED}-skills")
    associations = [p for p in partners if p["partner_kind"] == PartnerKind.ASSOCIATION.value][:LABELLED]
    labelled = [
        (partner_id_for(p["partner_legal_id"]), _day(rng, date(2019, 1, 1), date(2025, 12, 31))) for p in associations
    ]
    missions = []
    m = 0  # numbered across the years since the first demo year
    for year in range(min(MISSIONS_FROM, as_of.year), as_of.year + 1):
        for (partner_id, _), p in zip(labelled, associations, strict=True):
            for _ in range(random.Random(f"{SEED}-missions-{partner_id}-{year}").choice([1, 1, 2])):
                m += 1
                mrng = random.Random(f"{SEED}-mission-{m}")
                published = _day(mrng, date(year, 1, 2), date(year, 12, 20))
                places = mrng.randint(1, 4)
                # A demo of an earlier year (tests) names its missions apart from those of the years since.
                ref = f"DEMO-M-{m:04d}" if year >= MISSIONS_FROM else f"DEMO-M-{year}-{m:04d}"
                cmd = MissionCreate(
                    external_ref=ref,
                    title=f"Mission de mécénat de compétences démo {m:04d}",
                    skills=mrng.sample(["pédagogie", "numérique", "gestion", "communication", "logistique"], 2),
                    departement=p["dep"],
                    commitment=_pick(mrng, COMMITMENTS),
                    published_on=published,
                    places=places,
                )
                staff = sorted({f"DEMO-STAFF-{mrng.randint(1, 9999):04d}" for _ in range(mrng.randint(1, places))})
                completed = published + timedelta(days=mrng.randint(14, 60))
                done = CompletionCommand(completed_on=completed, hours=float(len(staff) * mrng.randint(2, 20)))
                if published <= as_of:
                    finished = completed <= as_of and mrng.random() < 0.8
                    missions.append((partner_id, cmd, staff, done if finished else None))
    return Demo(rows, steps, labelled, missions)


async def load(store: Store, demo: Demo) -> dict[str, Any]:
    report = await import_csv(store, demo.csv_text())
    kept = 0  # records made in an earlier year that differ from this year's generation: left as they are
    steps_applied = 0
    # Where each partnership stands, read once (the heads) and then followed from the handlers' results.
    step_ids = sorted({partnership_id_for(ref) for ref, _ in demo.steps})
    states = {d["_id"]: d for d in await store.partnerships.find({"_id": {"$in": step_ids}})} if step_ids else {}
    for ref, cmd in demo.steps:
        pid = partnership_id_for(ref)
        if pid not in states:
            continue
        renewed_to = {r["ends_on"] for r in states[pid].get("renewals", [])}
        if isinstance(cmd, RenewCommand) and cmd.ends_on.isoformat() in renewed_to:
            continue
        try:
            # Planned on the known state first: a step already taken (a second run) costs no database call.
            if handlers.planner(cmd)(states[pid]).noop:
                continue
            result = await handlers.transition(store, pid, cmd)
        except (Conflict, Invalid):
            kept += 1
            continue
        states[pid] = result.record
        steps_applied += result.outcome == "changed"
    labelled = [pid for pid, _ in demo.labelled]
    partners = {d["_id"]: d for d in await store.partners.find({"_id": {"$in": labelled}})}
    for pid, on in demo.labelled:
        if not (partners[pid]["skills_label"] and partners[pid]["skills_labelled_on"] == on.isoformat()):
            partners[pid] = (await handlers.set_skills_label(store, pid, True, on)).record
    missions_created = completed = 0
    for pid, announcement, staff, completion in demo.missions:
        try:
            created = await handlers.create_mission(store, partners[pid], announcement)
        except Conflict:
            kept += 1
            continue
        missions_created += created.created
        mission = created.record
        for s in staff:
            if mission["status"] == "published" and s not in mission["volunteers"]:
                mission = (await handlers.add_volunteer(store, mission["_id"], s)).record
        if completion and mission["status"] == "published" and mission["volunteers"]:
            await handlers.complete_mission(store, mission["_id"], completion)
            completed += 1
    # Each change above published its events as it went (in batches for the import); whatever Kafka did not
    # acknowledge in time is still noted: send it now rather than leave it to a service's relay.
    published = await store.outbox.relay_once(grace=timedelta(0))
    stale = [p for p in report.problems if any("already exists" in r for r in p.reasons)]
    return {
        "kept_from_an_earlier_day": kept + len(stale),
        "invalid_rows": report.rejected - len(stale),
        "rows": report.rows,
        "imported": report.imported,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
        "problems": [p.model_dump() for p in report.problems[:5]],
        "partners_created": report.partners_created,
        "lifecycle_steps_applied": steps_applied,
        "missions_created": missions_created,
        "missions_completed": completed,
        "events_published_late": published,
    }


async def _run(as_of: date, demo: Demo) -> int:
    settings = PartnersSettings()
    await asyncio.to_thread(ensure_topics, settings.kafka_bootstrap_servers)
    mongo = mongo_client(settings.mongodb_uri, app_name="partners-demo")
    publisher = Publisher(settings.kafka_bootstrap_servers, client_id="partners-demo")
    await publisher.start()
    try:
        docs = MongoDocuments(mongo[settings.mongodb_database])
        await ensure_layout(docs, "partners")
        # Published as they are written: on FerretDB a relay pass costs two look-ups a version, far more than
        # a Kafka round trip.
        store = Store.over(docs, publisher)
        await store.ensure_indexes()
        summary = await load(store, demo)
    finally:
        await publisher.stop()
        await mongo.close()
    signed_this_year = sum(1 for r in demo.rows if r["signed_on"].startswith(str(as_of.year)))
    print(f"demo data as of {as_of}: {len(demo.rows)} partnerships, {signed_this_year} signed in {as_of.year}")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0 if summary["invalid_rows"] == 0 else 1


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
