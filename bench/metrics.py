"""Metrics benchmarks: worker throughput against a raw consumer, end-to-end freshness, memory, rebuild time.

    python -m bench.metrics [--people 1000000] [--throughput-events 100000] [--rates 100,1000] [--seconds 10]

Every figure is measured in this run, on this machine, against the running local stack; throughput is
reported as a ratio to a raw aiokafka consumer reading the same records in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
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
from bench.common import KAFKA, ROOT, Worker, machine, peak_rss_mib, publish, stop_all
from bench.loadgen import help_records
from services.metrics import domain, replay
from shared.serde import InvalidEvent, decode_record

PORT = 18990


async def _raw_consume(until: dict, keep: list[tuple[bytes | None, bytes]] | None = None) -> tuple[int, float]:
    started, count = time.perf_counter(), 0
    async for records in replay.read_log(KAFKA, until):
        count += len(records)
        if keep is not None:
            keep.extend((r.key, r.value) for r in records if r.value is not None)
    return count, time.perf_counter() - started


def follow(worker: Worker, total: int, desc: str) -> float:
    """Wait until the worker has processed `total` records from its start; returns the processing time."""
    bar = tqdm(total=total, unit="ev", desc=desc, file=sys.stderr)
    first_seen = None
    while True:
        status = worker.status() or {"processed": 0}
        done = status["processed"] + status.get("dead_lettered", 0)
        if done and first_seen is None:
            first_seen = time.perf_counter()
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            return time.perf_counter() - (first_seen or time.perf_counter())
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


def throughput(worker: Worker, events: int) -> dict:
    """A fresh worker (empty state) reads the whole log; a raw consumer reads the same records, and so do
    faust agents that do nothing or only write a table, and the counting rules alone without Kafka."""
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
    worker.start()
    worker.wait_ready()
    elapsed = follow(worker, total, "metrics worker catching up")
    rate, raw_rate = total / elapsed, raw_count / raw_elapsed
    return {
        "records": total,
        "worker_per_s": rate,
        "raw_per_s": raw_rate,
        "ratio": rate / raw_rate,
        "faust_noop_per_s": faust_noop,
        "faust_table_per_s": faust_table,
        "faust_packed_per_s": faust_packed,
        "counting_per_s": counting,
        "rss": peak_rss_mib(worker.proc.pid),
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


def freshness(worker: Worker, rate: int, seconds: float, year: int) -> dict:
    """p50/p99 from the broker's acknowledgement of an event (what a service waits for before it answers
    "accepted") to the moment /v1/progress shows it, polled every 10 ms."""
    acks: list[float] = []
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def helped() -> int:
        body = worker.http.get("/v1/progress", params={"year": year}).json()
        return int(next(i["value"] for i in body["indicators"] if i["id"] == "people_helped"))

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


def service_freshness(worker: Worker, rates: list[int], seconds: float) -> list[dict]:
    """p50/p99 from the detection service's 2xx (its outbox, its publish, the worker, the API) to the moment
    /v1/progress shows the detection, at each rate, with a detection service of this bench's own."""
    from pymongo import MongoClient

    from bench.detection import register_terminal, start_service, wait_answering

    db = "bench_fresh_detection"
    with MongoClient(os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")) as client:
        client.drop_database(db)
    env = {"DETECTION_DB": db, "DETECTION_INGEST_ENABLED": "0", "DETECTION_TERMINAL_RATE_LIMIT": "1000000/second"}
    proc = start_service("services.detection.main:app", PORT + 5, {**env, "LOG_LEVEL": "WARNING"})
    url = f"http://127.0.0.1:{PORT + 5}"
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
                body = worker.http.get("/v1/progress", params={"year": year}).json()
                return int(next(i["value"] for i in body["indicators"] if i["id"] == "detections"))

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


def memory(people: int) -> dict:
    year = 2042
    publish(help_records(people, year=year, salt=uuid.uuid4().hex))
    until = replay.end_offsets(KAFKA)
    total = sum(until.values())
    worker = Worker(PORT + 1)
    worker.start()
    try:
        worker.wait_ready()
        elapsed = follow(worker, total, f"worker over {people:,} people")
        body = worker.http.get("/v1/progress", params={"year": year}).json()
        helped = next(i["value"] for i in body["indicators"] if i["id"] == "people_helped")
        rss = peak_rss_mib(worker.proc.pid)
        app_id = worker.app_id
    finally:
        worker.stop()
    # Restarts on the same consumer group and data dir, from each copy of the state (docs/metrics-recovery.md).
    restarts = {}
    for case in ("clean stop", "kill -9", "local store deleted"):
        if case == "local store deleted":
            shutil.rmtree(worker.data_dir / app_id)
        again = Worker(PORT + 2, app_id)
        again.start()
        try:
            restarts[case] = again.wait_ready()
            status = again.status() or {}
            restarts[case + " from"] = status.get("counters_from")
        finally:
            # The stop decides the next case: after "clean stop" a kill -9, then a kill -9 before the deletion.
            again.stop(signal.SIGTERM if case == "local store deleted" else signal.SIGKILL)
    started = time.perf_counter()
    _, records = replay.rebuild(KAFKA, until)
    rebuild = time.perf_counter() - started
    return {
        "people": people,
        "helped": helped,
        "records": total,
        "elapsed": elapsed,
        "rss": rss,
        "restarts": restarts,
        "rebuild_s": rebuild,
        "rebuild_records": records,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throughput-events", type=int, default=100_000)
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--chart", type=Path, default=ROOT / ".run" / "bench" / "metrics.svg", help="SVG to write")
    args = parser.parse_args()
    print(f"# metrics benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Kafka {KAFKA}")

    worker = Worker(PORT)
    try:
        t = throughput(worker, args.throughput_events)
        print(
            f"throughput: metrics worker {t['worker_per_s']:,.0f} events/s vs raw aiokafka consumer "
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
        # The same worker, now caught up with the log, answers the freshness runs.
        fresh = []
        for n, rate in enumerate(int(r) for r in args.rates.split(",")):
            f = freshness(worker, rate, args.seconds, 2043 + n)
            fresh.append(f)
            print(
                f"freshness at {f['rate']:,} events/s ({f['measured']:,}/{f['events']:,} measured): "
                f"p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms (target p99 < 1000 ms at 1,000/s)",
                flush=True,
            )
        for f in service_freshness(worker, [int(r) for r in args.rates.split(",")], args.seconds):
            print(
                f"freshness end to end at {f['rate']:,} detections/s, from the detection service's 2xx "
                f"({f['measured']:,}/{f['events']:,} measured): p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms",
                flush=True,
            )
    finally:
        worker.stop()
    print(f"chart: {metrics_chart(t, fresh, args.chart)}", flush=True)

    m = memory(args.people)
    print(
        f"memory: {m['people']:,} distinct people in one year ({m['helped']:,} counted) -> worker peak RSS "
        f"{m['rss']:.0f} MiB (target < 1024 MiB); processed in {m['elapsed']:.0f} s"
    )
    print(
        f"rebuild: replay of {m['rebuild_records']:,} records from the log in {m['rebuild_s']:.1f} s "
        f"({m['rebuild_records'] / m['rebuild_s']:,.0f} records/s)"
    )
    r = m["restarts"]
    print(f"restart with {m['people']:,} people, until /readyz answers 200 (target < 15 s):")
    for case in ("clean stop", "kill -9", "local store deleted"):
        print(f"  after a {case:<20} {r[case]:6.1f} s  (counters {r[case + ' from']})")
    print(machine())
    return 0


if __name__ == "__main__":
    sys.exit(main())
