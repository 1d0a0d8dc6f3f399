"""Benchmark plumbing: a metrics worker of its own, bulk publishing, process memory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

__all__ = ["Worker", "publish", "peak_rss_mib", "machine", "stop_all", "KAFKA"]


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
    return asyncio.run(_publish(records, topic))


def machine() -> str:
    """The line every bench prints under its figures: how busy the shared machine was."""
    return f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared with the broker and db)"


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


class Worker:
    """A metrics service process with a consumer group of its own (so it starts from an empty state)."""

    def __init__(self, port: int, app_id: str | None = None) -> None:
        self.app_id = app_id or f"alliance-metrics-bench-{uuid.uuid4().hex[:8]}"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.proc: subprocess.Popen[bytes] | None = None
        self.data_dir = ROOT / ".data" / "faust-bench"

    def start(self) -> None:
        env = {
            **os.environ,
            "METRICS_APP_ID": self.app_id,
            "METRICS_DB": "bench_metrics",
            "METRICS_DATA_DIR": str(self.data_dir),
            "LOG_LEVEL": "WARNING",
        }
        log = ROOT / ".run" / "logs"
        log.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "services.metrics.main:app", "--port", str(self.port), "--no-access-log"],
            cwd=ROOT,
            env=env,
            stdout=(log / "bench-metrics.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def status(self) -> dict | None:
        try:
            return self.http.get("/v1/worker").json()
        except httpx.HTTPError:
            return None

    def wait_ready(self, timeout: float = 600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"metrics worker exited ({self.proc.returncode}); see .run/logs/bench-metrics.log")
            try:
                if self.http.get("/readyz").status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("metrics worker not ready")

    def stop(self, sig: int = 15) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.http.close()
