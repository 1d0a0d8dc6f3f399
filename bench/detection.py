"""Detections accepted per second through HTTP (batches of 100, and one by one) against a bare FastAPI endpoint
of the same shape that does no work, measured in the same run. Prints figures and ratios; asserts nothing.

    .venv/bin/python -m bench.detection [--seconds 10] [--concurrency 8]

Starts its own uvicorn processes (detection on 18290, bare on 18291) against the running Kafka and database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.common import machine, stop_all
from shared.identity import Principal, Role, issue_token
from shared.settings import DEV_PLATFORM_TOKEN_KEY

ROOT = Path(__file__).resolve().parents[1]
DETECTION_PORT, BARE_PORT = 18290, 18291
DB = "bench_detection"


def start_service(module: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = ROOT / ".run" / "logs" / f"bench-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            module,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],  # fmt: skip
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def wait_answering(session: aiohttp.ClientSession, url: str, path: str, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with session.get(url + path) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise SystemExit(f"{url} not ready within {within}s")


async def register_terminal(session: aiohttp.ClientSession, url: str) -> str:
    admin = {"Authorization": "Bearer " + issue_token(Principal("bench", Role.ADMIN), DEV_PLATFORM_TOKEN_KEY)}
    office = {"office_id": "bench-93", "name": "Bureau de bench", "commune_insee": "93066", "qpv": True}
    async with session.put(f"{url}/v1/offices/bench-93", json=office, headers=admin) as r:
        assert r.status in (200, 201), await r.text()
    async with session.post(f"{url}/v1/terminals", json={"office_id": "bench-93"}, headers=admin) as r:
        return (await r.json())["token"]


def _items(prefix: str, n: int) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "detection_id": f"{prefix}-{i}",
            "occurred_at": now,
            "needs": ["online_banking"],
            "client_reference": f"BENCH-FAKE-{prefix}-{i}",
            "consent": True,
        }  # fmt: skip
        for i in range(n)
    ]


async def _phase(session, url: str, token: str, batch: int, seconds: float, concurrency: int) -> tuple[float, int]:
    """Detections/s: `concurrency` workers post for `seconds`; only answers where every item is accepted count."""
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    run = uuid.uuid4().hex[:10]
    done = errors = 0
    deadline = time.monotonic() + seconds

    async def worker(w: int) -> None:
        nonlocal done, errors
        n = 0
        while time.monotonic() < deadline:
            items = _items(f"{run}-{w}-{n}", batch)
            body = json.dumps({"detections": items} if batch > 1 else items[0])
            n += 1
            async with session.post(url + "/v1/detections", data=body, headers=headers) as r:
                answer = await r.json()
                if r.status in (200, 201) and answer.get("accepted", batch) == batch:
                    done += batch
                else:
                    errors += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.monotonic() - started), errors


async def _run(seconds: float, concurrency: int) -> None:
    from pymongo import MongoClient

    # A fresh database each run: the figures do not depend on what earlier runs left.
    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    with MongoClient(uri) as client:
        client.drop_database(DB)
    # One terminal posting as fast as it can: the per-terminal rate limit would measure itself, not the service.
    env = {
        "DETECTION_DB": DB,
        "DETECTION_INGEST_ENABLED": "0",
        "DETECTION_TERMINAL_RATE_LIMIT": "1000000/second",
        "LOG_LEVEL": "WARNING",
    }
    procs = [
        start_service("services.detection.main:app", DETECTION_PORT, env),
        start_service("bench.detection_bare:app", BARE_PORT, env),
    ]
    detection, bare = f"http://127.0.0.1:{DETECTION_PORT}", f"http://127.0.0.1:{BARE_PORT}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency * 2)) as session:
            await wait_answering(session, detection, "/readyz")
            await wait_answering(session, bare, "/healthz")
            token = await register_terminal(session, detection)
            await _phase(session, detection, token, 100, 2, concurrency)  # warm-up
            rows = []
            for label, batch in (("batches of 100", 100), ("one by one", 1)):
                base, _ = await _phase(session, bare, token, batch, seconds, concurrency)
                real, errors = await _phase(session, detection, token, batch, seconds, concurrency)
                rows.append((label, real, base, errors))
        print(f"detection HTTP throughput ({seconds:.0f}s per phase, {concurrency} concurrent clients, same run)")
        print(f"{'mode':<16}{'detections/s':>14}{'bare endpoint/s':>17}{'ratio':>8}{'errors':>8}")
        for label, real, base, errors in rows:
            print(f"{label:<16}{real:>14.0f}{base:>17.0f}{real / base:>8.3f}{errors:>8}")
        print(f"target: >= 2000 detections/s in batches -> {'met' if rows[0][1] >= 2000 else 'NOT met'}")
        print(machine())
    finally:
        stop_all(procs)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m bench.detection` and bench/run.py (`make bench`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    asyncio.run(_run(args.seconds, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
