"""Reading and writing the real broker from tests (kafka-python, synchronous)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.conftest import KAFKA, ROOT, wait_until


def produce(topic: str, value: bytes | None, key: bytes | None) -> None:
    producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all")
    try:
        producer.send(topic, value=value, key=key).get(timeout=10)
    finally:
        producer.close()


@contextmanager
def tail(topic: str) -> Iterator[Callable]:
    """Read what is appended to `topic` from now on: yields `records(timeout)`, a list of new records."""
    consumer = KafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False, consumer_timeout_ms=200)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    for p in parts:
        consumer.position(p)  # resolve "end" now, before anything new is produced
    seen: list[Any] = []

    def records(timeout: float = 0.5) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                seen.extend(batch)
        return seen

    try:
        yield records
    finally:
        consumer.close()


def dead_letters_with_key(records: list[Any], key: bytes, consumer: str | None = None) -> list[dict[str, Any]]:
    """Dead letters for `key`, optionally only those of one consumer (several may refuse the same record)."""
    letters = [json.loads(r.value) for r in records if r.key == key]
    return [d for d in letters if consumer is None or d["consumer"] == consumer]


def read_all(topic: str, timeout_s: float = 5.0) -> list[Any]:
    """Every record currently in `topic`, from the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=KAFKA, enable_auto_commit=False, consumer_timeout_ms=1000)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while any(consumer.position(p) < ends[p] for p in parts) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=300).values():
            out.extend(batch)
    consumer.close()
    return out


class PrivateStack:
    """A Kafka broker of a test's own (and an idle FerretDB, which the stack script starts with it), on the ports
    `port`, `port + 1` (controller) and `port + 2`, data under `base`."""

    def __init__(self, base: Path, port: int) -> None:
        self.env = {
            **os.environ,
            "DATA_DIR": str(base / "data"),
            "RUN_DIR": str(base / "run"),
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(port + 1),
            "FERRETDB_PORT": str(port + 2),
            "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        }
        self.bootstrap = f"127.0.0.1:{port}"
        self.pid_file = base / "run" / "pids" / "kafka.pid"

    def script(self, command: str) -> None:
        subprocess.run([str(ROOT / "deploy/local/stack.sh"), command], env=self.env, check=True, timeout=240)

    @contextmanager
    def running(self) -> Iterator[PrivateStack]:
        """Up for the block, down after it (what a module's fixture yields)."""
        self.script("up")
        try:
            yield self
        finally:
            self.script("down")

    def kill_broker(self) -> None:
        pid = int(self.pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, "the broker process to be gone")
