"""Benchmark plumbing: a metrics deployment of its own (the API and its workers), bulk publishing, process memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.kafka import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
LOGS = ROOT / ".run" / "logs"

__all__ = [
    "Deployment",
    "Process",
    "publish",
    "peak_rss_mib",
    "cpu_seconds",
    "machine_cpu",
    "machine",
    "code_version",
    "stop_all",
    "KAFKA",
    "ROOT",
]


async def _publish(records: Iterable[tuple[bytes, bytes]], topic: str) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    sent, pending = 0, []
    try:
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def publish(records: Iterable[tuple[bytes, bytes]], topic: str = "workshops.events") -> int:
    # On a new broker the topic would otherwise be created on first use with the broker's default partition
    # count, and the event topics must share the project's (co-partitioned: shared/topics.py).
    ensure_topics(KAFKA)
    return asyncio.run(_publish(records, topic))


def machine() -> str:
    """The line every bench prints under its figures: how busy the shared machine was."""
    return f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared with the broker and db)"


def code_version() -> str:
    """The commit the services run from, and whether services/ or shared/ differ from it: a bench run lasts long
    enough for a working tree to move under it (every process it starts reads the files as they are then)."""

    def git(*args: str) -> str:
        run = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return run.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    diff = git("diff", "HEAD", "--", "services", "shared")
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "services", "shared")
    if not diff and not untracked:
        return head
    digest = hashlib.sha256((diff + untracked).encode()).hexdigest()[:8]
    return f"{head} + uncommitted changes in services/ or shared/ ({digest})"


def stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Stop the service processes a bench started (all signalled first, then each awaited)."""
    procs = list(procs)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=20)


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core and every user's processes."""
    jiffies = [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = jiffies[3] + jiffies[4]  # idle, iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(jiffies[:8]) - idle) / tick, sum(jiffies[:8]) / tick


class Process:
    """One uvicorn process of the bench's own, in a session of its own (so a signal reaches all of it)."""

    def __init__(self, name: str, app: str, port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.app, self.port, self.env, self.log = name, app, port, env, log
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = ["uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """CPU time used so far (user + system, every thread)."""
        return cpu_seconds(self.pid) if self.alive() else float("nan")

    def peak_rss(self) -> float:
        """Peak resident memory so far, MiB (read before the process stops)."""
        return peak_rss_mib(self.pid) if self.alive() else float("nan")

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            return self.http.get(path).json()
        except (httpx.HTTPError, ValueError):
            return None

    def ready(self) -> bool:
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 600) -> float:
        """Seconds until /readyz answers 200 (from this call)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready within {timeout:.0f} s; see {self.log}")

    def send(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.pid, sig)

    def wait_stopped(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.send(sig)
        self.wait_stopped()

    def close(self) -> None:
        self.http.close()


class Deployment:
    """A metrics deployment of the bench's own: the API (`services.metrics.main`) on `port` and `workers` worker
    processes (`services.metrics.worker`) on the next ports, on a consumer group and partials topic of their own
    (a fresh app id starts from an empty state and reads the whole log), each worker with its local store under
    a data directory of the deployment's own. Pass the app id of a stopped deployment to start it again."""

    def __init__(self, port: int, workers: int = 1, app_id: str | None = None) -> None:
        token = uuid.uuid4().hex[:8]
        self.app_id = app_id or f"alliance-metrics-bench-{token}"
        self.port = port
        self.data_dir = ROOT / ".data" / "faust-bench" / self.app_id
        self.env = {
            "METRICS_APP_ID": self.app_id,
            "METRICS_DB": "bench_metrics",
            "METRICS_DATA_DIR": str(self.data_dir),
            "LOG_LEVEL": "WARNING",
        }
        self.api = Process("metrics API", "services.metrics.main:app", port, self.env, self._log("api"))
        self.workers = [self._worker(n) for n in range(1, workers + 1)]
        self.url = self.api.url
        self.http = self.api.http

    def _log(self, part: str) -> Path:
        return LOGS / f"bench-metrics-{self.app_id.removeprefix('alliance-metrics-bench-')}-{part}.log"

    def _worker(self, n: int) -> Process:
        env = {**self.env, "METRICS_WORKER_ID": str(n)}
        log = self._log(f"worker-{n}")
        return Process(f"metrics worker {n}", "services.metrics.worker:app", self.port + n, env, log)

    def worker(self, n: int) -> Process:
        """Worker n (1, 2 …)."""
        return self.workers[n - 1]

    def start(self) -> Deployment:
        self.api.start()
        for w in self.workers:
            w.start()
        return self

    def restart_worker(self, n: int) -> Process:
        """Start worker n again, with its id, port and local store (the API keeps running); returns it."""
        old = self.worker(n)
        if old.alive():
            raise RuntimeError(f"{old.name} still runs")
        old.close()
        self.workers[n - 1] = self._worker(n).start()
        return self.workers[n - 1]

    def store(self, n: int) -> Path:
        """Worker n's local store (services/metrics/agents.py)."""
        return self.data_dir / self.app_id / f"worker-{n}"

    def check_alive(self) -> None:
        """Raise if a process of the deployment has exited (a bench waiting on it would wait for ever)."""
        for p in (self.api, *self.workers):
            if p.proc is not None and p.proc.poll() is not None:
                raise RuntimeError(f"{p.name} exited ({p.proc.returncode}); see {p.log}")

    def status(self) -> dict[str, Any] | None:
        """The API's `/v1/worker`: what every worker's partials say (positions, owners, figures)."""
        return self.api.get("/v1/worker")

    def snapshot(self) -> dict[str, Any]:
        """The API's `/v1/snapshot`: the merged cells and the positions they reflect."""
        return self.http.get("/v1/snapshot", timeout=60).json()

    def wait_ready(self, timeout: float = 600) -> float:
        """Seconds until every worker's /readyz and then the API's answer 200 (the API is ready once every source
        partition has a partial, so only after the workers)."""
        started = time.monotonic()
        for w in self.workers:
            w.wait_ready(max(1.0, timeout - (time.monotonic() - started)))
        self.api.wait_ready(max(1.0, timeout - (time.monotonic() - started)))
        return time.monotonic() - started

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by every process: {"api": …, "1": …, "2": …}."""
        return {"api": self.api.cpu_seconds(), **{w.env["METRICS_WORKER_ID"]: w.cpu_seconds() for w in self.workers}}

    def peak_rss(self) -> dict[str, float]:
        """Peak RSS of every process, MiB: {"api": …, "1": …, "2": …}."""
        return {"api": self.api.peak_rss(), **{w.env["METRICS_WORKER_ID"]: w.peak_rss() for w in self.workers}}

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop every process: all signalled first (so the workers leave the group together), then each awaited."""
        procs = [*self.workers, self.api]
        for p in procs:
            p.send(sig)
        for p in procs:
            p.wait_stopped()
            p.close()

    def remove_data(self) -> None:
        """Delete the deployment's local stores (its topics stay on the broker)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
