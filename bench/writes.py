"""Writes per second of the versioned store through the real HTTP APIs (registrations, a lifecycle transition)
against the raw `insert_one` rate of the same database, measured in the same run. Prints figures and ratios.

    .venv/bin/python -m bench.writes [--seconds 8] [--concurrency 8]

Starts its own workshops (18292) and partners (18293) processes against the running Kafka and database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from pymongo import AsyncMongoClient, MongoClient

from bench.common import machine, stop_all
from bench.detection import _start, _wait
from services.partners.domain import siret_is_valid
from shared.identity import Principal, Role, issue_token
from shared.settings import DEV_PLATFORM_TOKEN_KEY

WORKSHOPS_PORT, PARTNERS_PORT = 18292, 18293
DBS = {"workshops": "bench_workshops", "partners": "bench_partners", "raw": "bench_raw"}
URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
ADMIN = {"Authorization": "Bearer " + issue_token(Principal("bench-admin", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}


async def _raw_inserts(seconds: float, concurrency: int) -> float:
    """The database's own rate: `insert_one` of a registration-sized document, same concurrency."""
    client = AsyncMongoClient(URI, tz_aware=True)
    coll = client[DBS["raw"]]["raw"]
    done = 0
    deadline = time.monotonic() + seconds
    run = uuid.uuid4().hex[:8]

    async def worker(w: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < deadline:
            await coll.insert_one({"_id": f"{run}-{w}-{n}", "origin": "referral", "status": "registered", "seq": n})
            n += 1
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    rate = done / (time.monotonic() - started)
    await client.close()
    return rate


async def _post(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[int, dict]:
    async with session.post(url, json=body, headers=ADMIN) as r:
        return r.status, await r.json()


async def _workshops(session: aiohttp.ClientSession, base: str, n: int, capacity: int) -> list[str]:
    venue = f"bench-v-{uuid.uuid4().hex[:8]}"
    body = {"venue_id": venue, "name": "Salle de bench", "kind": "post_office_room", "commune_insee": "93066",
            "qpv": True, "opened_on": "2022-04-01"}  # fmt: skip
    status, answer = await _post(session, f"{base}/v1/venues", body)
    assert status == 201, answer
    starts = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=7)).replace(tzinfo=None, second=0, microsecond=0)
    ids = []
    for i in range(n):
        wid = f"bench-w-{uuid.uuid4().hex[:8]}-{i}"
        body = {"workshop_id": wid, "theme": "online_banking", "venue_id": venue,
                "starts_local": starts.isoformat(), "capacity": capacity}  # fmt: skip
        status, answer = await _post(session, f"{base}/v1/workshops", body)
        assert status == 201, answer
        ids.append(wid)
    return ids


async def _registrations(session, base: str, workshops: list[str], seconds: float, concurrency: int):
    """Registrations/s (distinct people, spread over `workshops`); returns (rate, errors, accepted)."""
    done = errors = 0
    deadline = time.monotonic() + seconds
    run = uuid.uuid4().hex[:8]

    async def worker(w: int) -> None:
        nonlocal done, errors
        n = 0
        while time.monotonic() < deadline:
            wid = workshops[(w + n * concurrency) % len(workshops)]
            body = {"origin": "referral", "client_reference": f"BENCH-FAKE-{run}-{w}-{n}"}
            status, _ = await _post(session, f"{base}/v1/workshops/{wid}/registrations", body)
            n += 1
            if status in (200, 201):
                done += 1
            else:
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.monotonic() - started), errors, done


async def _drafts(session, base: str, n: int) -> list[str]:
    head = "9" + str(uuid.uuid4().int)[:12]
    legal = next(head + d for d in "0123456789" if siret_is_valid(head + d))
    body = {"name": "Association de bench", "kind": "association", "legal_id": legal,
            "address": {"street": "1 rue du Banc", "postcode": "69001", "city": "Lyon", "commune_insee": "69123"},
            "departements": ["69"], "contacts": []}  # fmt: skip
    status, partner = await _post(session, f"{base}/v1/partners", body)
    assert status == 201, partner
    terms = {"partner_id": partner["id"], "partnership_type": "skills_sponsorship",
             "commitments": ["digital_inclusion"], "departements": ["69"], "starts_on": "2031-04-01"}  # fmt: skip
    ids = []
    for start in range(0, n, 20):
        made = await asyncio.gather(*(_post(session, f"{base}/v1/partnerships", terms) for _ in range(start, n)[:20]))
        for status, answer in made:
            assert status == 201, answer
            ids.append(answer["id"])
    return ids


async def _signs(session, base: str, drafts: list[str], concurrency: int) -> tuple[float, int]:
    """Lifecycle transitions/s: each draft signed once, `concurrency` at a time (each emits one event)."""
    queue = list(drafts)
    errors = 0

    async def worker() -> None:
        nonlocal errors
        while queue:
            pid = queue.pop()
            status, _ = await _post(session, f"{base}/v1/partnerships/{pid}/sign", {"signed_on": "2031-03-15"})
            errors += status != 200

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(drafts) / (time.monotonic() - started), errors


async def _run(seconds: float, concurrency: int) -> None:
    with MongoClient(URI) as client:
        for db in DBS.values():
            client.drop_database(db)
    env = {"WORKSHOPS_DB": DBS["workshops"], "PARTNERS_DB": DBS["partners"], "LOG_LEVEL": "WARNING"}
    procs = [
        _start("services.workshops.main:app", WORKSHOPS_PORT, env),
        _start("services.partners.main:app", PARTNERS_PORT, env),
    ]
    workshops, partners = f"http://127.0.0.1:{WORKSHOPS_PORT}", f"http://127.0.0.1:{PARTNERS_PORT}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency * 2)) as session:
            await _wait(session, workshops, "/readyz")
            await _wait(session, partners, "/readyz")
            spread = await _workshops(session, workshops, 40, capacity=25)
            hot = await _workshops(session, workshops, 1, capacity=10)
            drafts = await _drafts(session, partners, 300)
            raw = await _raw_inserts(seconds, concurrency)
            spread_rate, spread_errors, _ = await _registrations(session, workshops, spread, seconds, concurrency)
            hot_rate, hot_errors, _ = await _registrations(session, workshops, hot, min(seconds, 4), concurrency)
            sign_rate, sign_errors = await _signs(session, partners, drafts, concurrency)
            raw_after = await _raw_inserts(seconds, concurrency)
        base = (raw + raw_after) / 2
        print(f"versioned writes through HTTP, {concurrency} concurrent clients (raw: mean of a run before and after)")
        print(f"{'write':<44}{'writes/s':>10}{'raw insert_one/s':>18}{'ratio':>8}{'errors':>8}")
        rows = [
            ("registration, 40 workshops of 25 seats", spread_rate, spread_errors),
            ("registration, all on one workshop", hot_rate, hot_errors),
            ("partnership sign (one event each)", sign_rate, sign_errors),
        ]
        for label, rate, errors in rows:
            print(f"{label:<44}{rate:>10.0f}{base:>18.0f}{rate / base:>8.3f}{errors:>8}")
        print(f"raw insert_one/s before {raw:.0f}, after {raw_after:.0f}")
        print(machine())
    finally:
        stop_all(procs)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench.writes` and bench/run.py (`make bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    asyncio.run(_run(args.seconds, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
