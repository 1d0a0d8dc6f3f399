"""Metrics benchmarks: throughput of one, two and three workers against a raw consumer and faust's own ceilings,
end-to-end freshness, memory, restarts, rebuild time.

    python -m bench.metrics [--people 1000000] [--throughput-events 100000] [--rates 100,1000] [--seconds 10]
                            [--port 19400] [--chart .run/bench/metrics.svg]

Every figure is measured in this run, on this machine, against the broker and database named by
KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI; throughput is reported as a ratio to a raw aiokafka consumer and to a
no-op faust agent reading the same records in the same run. Each figure runs a metrics deployment of its own
(the API and its workers, bench/common.py) on ports from --port up (--port to --port + 59).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import httpx
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from bench.chart import metrics_chart
from bench.common import KAFKA, ROOT, Deployment, code_version, machine, machine_cpu, publish, stop_all
from bench.loadgen import help_records
from services.metrics import domain, replay
from shared.serde import InvalidEvent, decode_record

PORT = 19400  # outside the test suite's ports (18000-18999, its workers' 28000-31000) and the services' 8001-8005
WORKER_COUNTS = (1, 2, 3)
# Each deployment of a run has ports of its own: the API on base + offset, worker n on base + offset + n.
SLOTS = {"1 worker": 0, "2 workers": 10, "3 workers": 20, "freshness": 30, "detection": 40, "memory": 50}


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


async def _raw_consume(until: dict, keep: list[tuple[bytes | None, bytes]] | None = None) -> tuple[int, float]:
    started, count = time.perf_counter(), 0
    async for records in replay.read_log(KAFKA, until):
        count += len(records)
        if keep is not None:
            keep.extend((r.key, r.value) for r in records if r.value is not None)
    return count, time.perf_counter() - started


def _applied(status: dict | None) -> dict[tuple[str, int], int]:
    return {(r["topic"], r["partition"]): r["applied"] for r in (status or {}).get("partitions") or ()}


def _owners(status: dict | None) -> dict[int, str]:
    """Which worker published each source partition's latest partial, as the API read them."""
    workers = (status or {}).get("workers") or {}
    return {p: name for name, w in workers.items() for p in w.get("partitions") or ()}


def follow(deployment: Deployment, until: dict, desc: str, timeout: float = 3600) -> dict:
    """Wait until the API's positions reach `until` (every record before it applied, as the workers' partials
    say: what `replay.wait_applied` waits for), with a progress bar. Returns the seconds from the first applied
    record and from this call, and how often a partition changed owner after the first applied record (a
    worker joining the group late takes partitions over: its catch-up includes that rebalance), and the cores
    each process and the whole machine (everyone's processes) used meanwhile."""
    total = sum(until.values())
    bar = tqdm(total=total, unit="ev", desc=desc, file=sys.stderr)
    called = time.perf_counter()
    first_seen = None
    owners: dict[int, str] = {}
    moves = 0
    while True:
        deployment.check_alive()
        status = deployment.status()
        applied = _applied(status)
        done = sum(min(applied.get((tp.topic, tp.partition), 0), end) for tp, end in until.items())
        now = time.perf_counter()
        if done and first_seen is None:
            first_seen = now
            cpu_at_first, machine_at_first = deployment.cpu_seconds(), machine_cpu()
        seen = _owners(status)
        if first_seen is not None:
            moves += sum(1 for p, name in seen.items() if p in owners and owners[p] != name)
        owners.update(seen)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            by_worker: dict[str, list[int]] = {}
            for p, name in sorted(owners.items()):
                by_worker.setdefault(name, []).append(p)
            elapsed = now - (first_seen or now)
            if first_seen is None or elapsed <= 0:
                return {"elapsed": elapsed, "wall": now - called, "moves": moves, "owners": by_worker, "cores": {}}
            cores = {k: (v - cpu_at_first[k]) / elapsed for k, v in deployment.cpu_seconds().items()}
            busy, whole = (b - a for a, b in zip(machine_at_first, machine_cpu(), strict=True))
            return {
                "elapsed": elapsed,
                "wall": now - called,
                "moves": moves,
                "owners": by_worker,
                "cores": cores,
                "machine_busy": busy / whole * (os.cpu_count() or 1),
            }
        if now - called > timeout:
            bar.close()
            raise TimeoutError(f"{desc}: the API's positions did not reach the log's end within {timeout:.0f} s")
        time.sleep(0.2)


def _counting_alone(records: list[tuple[bytes | None, bytes]]) -> float:
    """The counting rules alone, in this process, over the same records: decode, apply, count."""
    ledger = domain.Ledger()
    started = time.perf_counter()
    for key, value in records:
        try:
            ledger.add(decode_record(key, value))
        except InvalidEvent:
            pass
    return len(records) / (time.perf_counter() - started)


def _faust_ceiling(mode: str, total: int) -> float:
    run = subprocess.run(
        [sys.executable, "-m", "bench.faust_ceiling", mode, str(total)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
    )
    return float(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else float("nan")


def _deployment_run(workers: int, until: dict, port: int) -> dict:
    """A fresh deployment of `workers` workers reads the whole log up to `until`; its figures and merged cells."""
    total = sum(until.values())
    deployment = Deployment(port, workers=workers)
    deployment.start()
    launched = time.perf_counter()
    try:
        deployment.wait_ready()
        f = follow(deployment, until, f"{_workers(workers)} catching up")
        wall = time.perf_counter() - launched
        snap = deployment.snapshot()
        rss = deployment.peak_rss()
    finally:
        deployment.stop()
    return {
        "workers": workers,
        "app_id": deployment.app_id,
        "deployment": deployment,
        "per_s": total / f["elapsed"],
        "elapsed": f["elapsed"],
        "wall": wall,
        "moves": f["moves"],
        "owners": f["owners"],
        "cores": f["cores"],
        "machine_busy": f.get("machine_busy", float("nan")),
        "rss": rss,
        "load": os.getloadavg()[0],
        "cells": snap["cells"],
        "positions": {(q["topic"], q["partition"]): q["applied"] for q in snap["positions"]},
    }


def _verdict(cells: dict, positions: dict, reference: dict, until: dict) -> str:
    """IDENTICAL when the cells are those of the reference and the positions are the log's end."""
    ends = {(tp.topic, tp.partition): end for tp, end in until.items()}
    if positions != ends:
        off = sum(1 for k, end in ends.items() if positions.get(k) != end)
        return f"NOT COMPARABLE ({off} partitions not at the log's end)"
    diffs = replay.compare(cells, reference)
    if diffs:
        return f"DIFFERENT ({len(diffs)} cells differ, first: {diffs[0]})"
    return f"IDENTICAL ({len(cells):,} cells)"


def throughput(events: int, base_port: int, worker_counts: tuple[int, ...] = WORKER_COUNTS) -> dict:
    """Fresh deployments of one, two and three workers (empty state) read the whole log one after the other;
    a raw consumer reads the same records, and so do faust agents that do nothing or only write a table, and
    the counting rules alone without Kafka. The merged cells of each deployment are compared with one
    worker's and with a replay of the log."""
    year = 2040
    publish(help_records(events, year=year, salt=uuid.uuid4().hex))
    until = replay.end_offsets(KAFKA)
    total = sum(until.values())
    records: list[tuple[bytes | None, bytes]] = []
    raw_count, raw_elapsed = asyncio.run(_raw_consume(until, records))
    counting = _counting_alone(records)
    del records
    faust_noop = _faust_ceiling("noop", total)
    faust_table = _faust_ceiling("table", total)
    faust_packed = _faust_ceiling("packed", total)
    runs = []
    for n in worker_counts:
        runs.append(_deployment_run(n, until, base_port + SLOTS[_workers(n)]))
        # The 1-worker deployment is started again for the freshness runs; the others' stores can go.
        if n != 1:
            runs[-1]["deployment"].remove_data()
    one = runs[0]
    rebuilt, _ = replay.rebuild(KAFKA, until, progress=False)
    one["verdict"] = _verdict(one["cells"], one["positions"], rebuilt.snapshot(), until) + " to a replay of the log"
    for run in runs[1:]:
        run["verdict"] = _verdict(run["cells"], run["positions"], one["cells"], until) + " to 1 worker's"
    raw_rate = raw_count / raw_elapsed
    for run in runs:
        run["vs_one"] = run["per_s"] / one["per_s"]
        run["vs_noop"] = run["per_s"] / faust_noop
        del run["cells"], run["deployment"]
    return {
        "records": total,
        "until": until,
        "worker_per_s": one["per_s"],
        "raw_per_s": raw_rate,
        "ratio": one["per_s"] / raw_rate,
        "faust_noop_per_s": faust_noop,
        "faust_table_per_s": faust_table,
        "faust_packed_per_s": faust_packed,
        "counting_per_s": counting,
        "rss": one["rss"]["1"],
        "one_worker_app_id": one["app_id"],
        "scaling": runs,
        "cores": os.cpu_count(),
    }


async def _paced(rate: int, seconds: float, year: int, acks: list[float]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, linger_ms=0)
    await producer.start()
    records = help_records(int(rate * seconds), year=year, salt=uuid.uuid4().hex)
    started = time.perf_counter()
    pending = []

    async def one(key: bytes, value: bytes) -> None:
        fut = await producer.send("workshops.events", value=value, key=key)
        await fut
        acks.append(time.perf_counter())

    for i, (key, value) in enumerate(records):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(key, value)))
    await asyncio.gather(*pending)
    await producer.stop()


def progress_value(metrics: Deployment, year: int, indicator: str) -> int:
    """One indicator's value for `year`, as the API's /v1/progress serves it."""
    body = metrics.http.get("/v1/progress", params={"year": year}).json()
    return int(next(i["value"] for i in body["indicators"] if i["id"] == indicator))


def freshness(metrics: Deployment, rate: int, seconds: float, year: int) -> dict:
    """p50/p99 from the broker's acknowledgement of an event (what a service waits for before it answers
    "accepted") to the moment the API's /v1/progress shows it (the worker, its partials, the API), polled every
    10 ms."""
    acks: list[float] = []
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def helped() -> int:
        return progress_value(metrics, year, "people_helped")

    before = helped()  # an earlier run on the same log may have counted people in this year already

    def poll() -> None:
        while not stop.is_set():
            seen.append((time.perf_counter(), helped() - before))
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    asyncio.run(_paced(rate, seconds, year, acks))
    deadline = time.perf_counter() + 30
    while (not seen or seen[-1][1] < len(acks)) and time.perf_counter() < deadline:
        time.sleep(0.05)
    stop.set()
    poller.join()
    latencies = _latencies(acks, seen)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
    return {
        "rate": rate,
        "events": len(acks),
        "measured": len(latencies),
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


def _latencies(acks: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """For the i-th acknowledged event, the time until the counter first showed i of them."""
    acks.sort()
    latencies, j = [], 0
    for i, acked in enumerate(acks, start=1):
        while j < len(seen) and seen[j][1] < i:
            j += 1
        if j == len(seen):
            break
        latencies.append(max(0.0, seen[j][0] - acked))
    return sorted(latencies)


async def _post_paced(url: str, token: str, rate: int, seconds: float, acks: list[float]) -> None:
    """Detections through the detection service at `rate` per second, 20 requests a second; each item's time is
    its request's 2xx (stored and published: what the terminal is told)."""
    batch = max(1, rate // 20)
    headers = {"Authorization": f"Bearer {token}"}
    run = uuid.uuid4().hex[:10]
    now = datetime.now(UTC).isoformat()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def one(n: int) -> None:
            items = [
                {
                    "detection_id": f"fresh-{run}-{n}-{i}",
                    "occurred_at": now,
                    "needs": ["online_banking"],
                    "client_reference": f"BENCH-FAKE-{run}-{n}-{i}",
                    "consent": True,
                }  # fmt: skip
                for i in range(batch)
            ]
            r = await http.post("/v1/detections", json={"detections": items}, headers=headers)
            if r.status_code in (200, 201):
                acks.extend([time.perf_counter()] * int(r.json()["accepted"]))

        started, pending = time.perf_counter(), []
        for n in range(int(seconds * 20)):
            delay = started + n / 20 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(n)))
        await asyncio.gather(*pending)


def service_freshness(metrics: Deployment, rates: list[int], seconds: float, port: int) -> list[dict]:
    """p50/p99 from the detection service's 2xx (its outbox, its publish, the worker, its partials, the API) to
    the moment the API's /v1/progress shows the detection, at each rate, with a detection service of this
    bench's own on `port`."""
    from pymongo import MongoClient

    from bench.detection import register_terminal, start_service, wait_answering

    db = "bench_fresh_detection"
    with MongoClient(os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")) as client:
        client.drop_database(db)
    env = {"DETECTION_DB": db, "DETECTION_INGEST_ENABLED": "0", "DETECTION_TERMINAL_RATE_LIMIT": "1000000/second"}
    proc = start_service("services.detection.main:app", port, {**env, "LOG_LEVEL": "WARNING"})
    url = f"http://127.0.0.1:{port}"
    year = datetime.now(ZoneInfo("Europe/Paris")).year
    out = []
    try:

        async def setup() -> str:
            async with aiohttp.ClientSession() as session:
                await wait_answering(session, url, "/readyz")
                return await register_terminal(session, url)

        token = asyncio.run(setup())
        for rate in rates:
            acks: list[float] = []
            seen: list[tuple[float, int]] = []
            stop = threading.Event()

            def detections() -> int:
                return progress_value(metrics, year, "detections")

            before = detections()

            def poll(before: int = before, seen: list = seen, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    seen.append((time.perf_counter(), detections() - before))
                    time.sleep(0.01)

            poller = threading.Thread(target=poll, daemon=True)
            poller.start()
            asyncio.run(_post_paced(url, token, rate, seconds, acks))
            deadline = time.perf_counter() + 30
            while (not seen or seen[-1][1] < len(acks)) and time.perf_counter() < deadline:
                time.sleep(0.05)
            stop.set()
            poller.join()
            latencies = _latencies(acks, seen)
            q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [float("nan")] * 99
            out.append({"rate": rate, "events": len(acks), "measured": len(latencies), "p50_ms": q[49] * 1000,
                        "p99_ms": q[98] * 1000})  # fmt: skip
    finally:
        stop_all([proc])
    return out


def _shown_again(metrics: Deployment, worker: str, since: float, until: dict, timeout: float = 900) -> dict:
    """Seconds from `since` (time.time()) until the API names `worker` with a partial published after `since`
    (its new counters are what the API serves), and until the API's positions are at `until` again."""
    deadline = time.monotonic() + timeout
    named = None
    while time.monotonic() < deadline:
        metrics.check_alive()
        status = metrics.status() or {}
        published = ((status.get("workers") or {}).get(worker) or {}).get("published_at") or 0
        if named is None and published >= since:
            named = time.time() - since
        applied = _applied(status)
        if named is not None and all(applied.get((tp.topic, tp.partition), 0) >= end for tp, end in until.items()):
            return {"named": named, "at_end": time.time() - since}
        time.sleep(0.1)
    raise TimeoutError(f"the API did not show worker {worker} at the log's end again within {timeout:.0f} s")


RESTARTS = ("clean stop", "kill -9", "local store deleted")


def memory(people: int, port: int) -> dict:
    """One worker over `people` distinct people in one year: its peak RSS; then the same worker restarted three
    times beside the running API, from each copy of its state (docs/metrics-recovery.md); then a replay."""
    year = 2042
    publish(help_records(people, year=year, salt=uuid.uuid4().hex))
    until = replay.end_offsets(KAFKA)
    total = sum(until.values())
    metrics = Deployment(port, workers=1)
    metrics.start()
    restarts: dict[str, dict] = {}
    try:
        metrics.wait_ready()
        f = follow(metrics, until, f"1 worker over {people:,} people")
        helped = progress_value(metrics, year, "people_helped")
        rss = metrics.peak_rss()
        metrics.worker(1).stop(signal.SIGTERM)
        for case in RESTARTS:
            if case == "local store deleted":
                shutil.rmtree(metrics.store(1))
            since, started = time.time(), time.monotonic()
            again = metrics.restart_worker(1)
            again.wait_ready()
            ready = time.monotonic() - started
            shown = _shown_again(metrics, "1", since, until)
            status = again.get("/v1/worker") or {}
            restarts[case] = {"ready": ready, **shown, "from": status.get("counters_from")}
            if case == RESTARTS[-1]:
                snap = metrics.snapshot()
            # The stop decides the next case: after "clean stop" a kill -9, then a kill -9 before the deletion.
            again.stop(signal.SIGTERM if case == RESTARTS[-1] else signal.SIGKILL)
    finally:
        metrics.stop()
    started = time.perf_counter()
    rebuilt, records = replay.rebuild(KAFKA, until)
    rebuild = time.perf_counter() - started
    positions = {(q["topic"], q["partition"]): q["applied"] for q in snap["positions"]}
    verdict = _verdict(snap["cells"], positions, rebuilt.snapshot(), until)
    metrics.remove_data()
    return {
        "people": people,
        "helped": helped,
        "records": total,
        "elapsed": f["elapsed"],
        "rss": rss["1"],
        "api_rss": rss["api"],
        "restarts": restarts,
        "after_restarts": verdict,
        "rebuild_s": rebuild,
        "rebuild_records": records,
    }


def _print_throughput(t: dict) -> None:
    print(
        f"throughput: one metrics worker {t['worker_per_s']:,.0f} events/s vs raw aiokafka consumer "
        f"{t['raw_per_s']:,.0f} records/s over the same {t['records']:,} records -> ratio {t['ratio']:.3f} "
        f"(target: 20,000 events/s); worker peak RSS {t['rss']:.0f} MiB",
        flush=True,
    )
    print(
        "  the same records, for context (each a ceiling for the worker, which does all of these at once):\n"
        f"    faust agent that does nothing       {t['faust_noop_per_s']:>9,.0f}/s  "
        f"(worker / this = {t['worker_per_s'] / t['faust_noop_per_s']:.2f})\n"
        f"    faust agent writing a table key      {t['faust_table_per_s']:>9,.0f}/s  "
        f"(worker / this = {t['worker_per_s'] / t['faust_table_per_s']:.2f})\n"
        f"    counting rules alone, no Kafka       {t['counting_per_s']:>9,.0f}/s  "
        f"(worker / this = {t['worker_per_s'] / t['counting_per_s']:.2f})\n"
        "  and what batching would give: the worker's own steps (decode, apply, count, table write) on the\n"
        f"  same events packed 500 per record, faust's per-message cost shared: {t['faust_packed_per_s']:,.0f}/s "
        f"({t['faust_packed_per_s'] / t['worker_per_s']:.1f}x the worker)",
        flush=True,
    )
    cores = os.cpu_count() or 1
    print(
        f"scaling: the API + 1, 2, 3 workers on one consumer group (a fresh one each, one after the other), over "
        f"the same {t['records']:,} records; throughput = records / time from the first applied record until the "
        "API's positions reach the log's end:",
        flush=True,
    )
    for run in t["scaling"]:
        n = run["workers"]
        rss = ", ".join(f"worker {w} {mib:.0f} MiB" for w, mib in run["rss"].items() if w != "api")
        cpu = ", ".join(f"worker {w} {c:.2f}" for w, c in run["cores"].items() if w != "api")
        owned = ", ".join(f"{w}: {len(ps)}" for w, ps in run["owners"].items())
        print(
            f"  {_workers(n):<9} {run['per_s']:>7,.0f} events/s = {run['vs_one']:.2f}x one worker, "
            f"{run['vs_noop']:.2f}x the no-op faust agent ({run['elapsed']:.1f} s; {run['wall']:.1f} s from "
            f"launch; load average {run['load']:.1f})\n"
            f"            cores used meanwhile: {cpu}, API {run['cores'].get('api', float('nan')):.2f}; the whole "
            f"machine {run['machine_busy']:.2f} of {cores} busy (everyone's processes)\n"
            f"            peak RSS {rss}, API {run['rss']['api']:.0f} MiB; partitions per worker at the end {owned}; "
            f"partitions that changed worker during the catch-up: {run['moves']}",
            flush=True,
        )
        if n > cores:
            print(
                f"            {cores} cores here: {n} workers cannot beat {cores} by working in parallel; "
                f"any gain over {cores} is a larger share of a shared machine or overlapped waits, not more cores",
                flush=True,
            )
    for run in t["scaling"]:
        print(f"  merged /v1/snapshot cells of {_workers(run['workers'])}: {run['verdict']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throughput-events", type=int, default=100_000)
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=PORT, help="first of the 60 ports the bench's services use")
    parser.add_argument("--chart", type=Path, default=ROOT / ".run" / "bench" / "metrics.svg", help="SVG to write")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    code = code_version()
    print(f"# metrics benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Kafka {KAFKA}, code {code}", flush=True)

    t = throughput(args.throughput_events, args.port)
    _print_throughput(t)
    # The 1-worker deployment again (a clean stop: it reads its saved counters), caught up, for the freshness runs.
    metrics = Deployment(args.port + SLOTS["freshness"], workers=1, app_id=t["one_worker_app_id"])
    metrics.start()
    try:
        metrics.wait_ready()
        follow(metrics, replay.end_offsets(KAFKA), "1 worker back")
        fresh = []
        for n, rate in enumerate(rates):
            f = freshness(metrics, rate, args.seconds, 2043 + n)
            fresh.append(f)
            print(
                f"freshness at {f['rate']:,} events/s, broker ack -> API ({f['measured']:,}/{f['events']:,} "
                f"measured): p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms (target p99 < 1000 ms at 1,000/s)",
                flush=True,
            )
        for f in service_freshness(metrics, rates, args.seconds, args.port + SLOTS["detection"]):
            print(
                f"freshness end to end at {f['rate']:,} detections/s, from the detection service's 2xx "
                f"({f['measured']:,}/{f['events']:,} measured): p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms",
                flush=True,
            )
    finally:
        metrics.stop()
    metrics.remove_data()
    print(f"chart: {metrics_chart(t, fresh, args.chart)}", flush=True)
    # The figures beside the chart, to draw it again (bench.chart) without running the bench again.
    scaling = [{k: v for k, v in run.items() if k != "positions"} for run in t["scaling"]]
    figures = {k: v for k, v in t.items() if k != "until"} | {"scaling": scaling, "freshness": fresh}
    args.chart.with_suffix(".json").write_text(json.dumps(figures, indent=1, default=str))

    m = memory(args.people, args.port + SLOTS["memory"])
    print(
        f"memory: {m['people']:,} distinct people in one year ({m['helped']:,} counted) -> worker peak RSS "
        f"{m['rss']:.0f} MiB (target < 1024 MiB), API {m['api_rss']:.0f} MiB; {m['records']:,} records "
        f"processed in {m['elapsed']:.0f} s",
        flush=True,
    )
    print(
        f"rebuild: replay of {m['rebuild_records']:,} records from the log in {m['rebuild_s']:.1f} s "
        f"({m['rebuild_records'] / m['rebuild_s']:,.0f} records/s)",
        flush=True,
    )
    print(
        f"restart of the worker with {m['people']:,} people, the API running, seconds from the worker's launch "
        "until its /readyz answers 200 (target < 15 s), until the API serves a partial it published, and until "
        "the API's positions are at the log's end again:"
    )
    for case, r in m["restarts"].items():
        print(
            f"  after a {case:<20} /readyz {r['ready']:6.1f} s, API names it {r['named']:6.1f} s, "
            f"API at the log's end {r['at_end']:6.1f} s  (counters {r['from']})"
        )
    print(f"  merged /v1/snapshot cells after the restarts: {m['after_restarts']} to a replay of the log")
    if code_version() != code:
        print(f"WARNING: the code changed during the run, now {code_version()}: later processes ran other code")
    print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
