"""Counter traffic simulator: drives realistic detections through both doors of the detection service.

Opening hours shape the rate, QPV offices detect more, some terminals are offline and upload their backlog
late (days-old events), some integrations retry blindly (duplicates), a few items are invalid on purpose.
At the end it prints its totals and checks them against what the service accepted and published.

    .venv/bin/python -m scripts.simulate --credentials .run/demo-credentials.json --duration 60 --rate 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from tqdm import tqdm

from shared.events import Need, WorkshopTheme
from shared.terminal_sdk import TerminalProducer, detection_event_id

NEEDS = [n.value for n in Need]
THEMES = [t.value for t in WorkshopTheme]
# Share of a day's counter traffic by local hour (post offices open ~9:00-18:00, busier late morning).
HOURLY = {8: 0.03, 9: 0.1, 10: 0.13, 11: 0.14, 12: 0.09, 13: 0.06, 14: 0.1, 15: 0.11, 16: 0.11, 17: 0.09, 18: 0.04}


@dataclass
class Terminal:
    terminal_id: str
    office_id: str
    token: str
    qpv: bool
    timezone: str
    kafka: bool
    offline: bool
    backlog: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Totals:
    generated: int = 0  # distinct valid detections made up
    invalid: int = 0  # distinct invalid items sent on purpose
    sent: Counter = field(default_factory=Counter)  # items sent per path, retries included
    retries: int = 0
    late: int = 0
    http: Counter = field(default_factory=Counter)  # accepted / duplicate / rejected as the service answered
    http_errors: int = 0
    expected: dict[str, str] = field(default_factory=dict)  # event id -> path of every valid detection
    refused_ids: set[str] = field(default_factory=set)


def opening_weight(tz: str, at: datetime, floor: float) -> float:
    """Relative counter traffic at this moment in the office's time zone (never below `floor`: demos at night)."""
    local = at.astimezone(ZoneInfo(tz))
    if local.weekday() == 6:
        return floor
    share = HOURLY.get(local.hour, 0.0) * (0.5 if local.weekday() == 5 else 1.0)
    return max(floor, share / max(HOURLY.values()))


def past_opening_time(rng: random.Random, tz: str, now: datetime, max_days: int) -> datetime:
    """A moment during opening hours 1..max_days ago, local to the office (an offline terminal's backlog)."""
    zone = ZoneInfo(tz)
    day = (now - timedelta(days=rng.randint(1, max_days))).astimezone(zone)
    hour = rng.choices(list(HOURLY), weights=list(HOURLY.values()))[0]
    return day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60), microsecond=0)


class Simulator:
    def __init__(self, args: argparse.Namespace, creds: dict[str, Any]) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.url = args.url or creds["detection_url"]
        self.admin = {"Authorization": f"Bearer {creds['admin_token']}"}
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.totals = Totals()
        self.run = uuid.uuid4().hex[:8]
        self.terminals: list[Terminal] = []
        self.producers: dict[str, TerminalProducer] = {}

    # --- set-up ------------------------------------------------------------------------------------

    def _offices(self) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        queries = [{"qpv": "true", "limit": 300}, {"france_services": "true", "limit": 100}]
        queries += [{"departement": d, "limit": 40} for d in ("75", "13", "59", "69", "23", "48", "2A", "971", "974")]
        for params in queries:
            r = self.http.get("/v1/offices", params=params, headers=self.admin)
            r.raise_for_status()
            found.update({o["office_id"]: o for o in r.json()})
        if not found:
            sys.exit("the office registry is empty: run `python -m services.detection.demo` first")
        return list(found.values())

    def setup(self) -> None:
        from kafka import KafkaProducer

        # One connection for every Kafka-door terminal of the simulation (as a site gateway would).
        self.gateway = KafkaProducer(bootstrap_servers=self.args.bootstrap, acks="all", linger_ms=5)
        offices = self._offices()
        # QPV offices have mediators at the counter: more terminals there, and each detects more.
        weights = [4.0 if o["qpv"] else 1.0 for o in offices]
        for n in range(self.args.terminals):
            office = self.rng.choices(offices, weights=weights)[0]
            body = {"office_id": office["office_id"], "terminal_id": f"sim-{self.run}-{n}", "label": f"sim {n}"}
            r = self.http.post("/v1/terminals", json=body, headers=self.admin)
            r.raise_for_status()
            t = Terminal(
                terminal_id=r.json()["terminal_id"],
                office_id=office["office_id"],
                token=r.json()["token"],
                qpv=office["qpv"],
                timezone=office["timezone"],
                kafka=self.rng.random() < self.args.kafka_share,
                offline=self.rng.random() < self.args.offline_share,
            )
            self.terminals.append(t)
            if t.kafka:
                self.producers[t.terminal_id] = TerminalProducer(
                    self.args.bootstrap,
                    t.token,
                    t.office_id,
                    topic=self.args.ingest_topic,
                    shared_producer=self.gateway,
                )

    # --- traffic -----------------------------------------------------------------------------------

    def _detection(self, t: Terminal, at: datetime) -> dict[str, Any]:
        consent = self.rng.random() < 0.8
        item: dict[str, Any] = {
            "detection_id": f"{self.run}-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:20]}",
            "occurred_at": at.isoformat(),
            "needs": self.rng.sample(NEEDS, self.rng.choice((1, 1, 2, 3))),
            # Made-up, obviously fake client references; some people come back (same reference).
            "client_reference": f"SIM-FAKE-{self.rng.randrange(self.args.people)}",
            "consent": consent,
        }
        if consent and self.rng.random() < 0.6:
            item["referral"] = {"theme": self.rng.choice(THEMES)}
        if self.rng.random() < self.args.invalid_rate:
            item["needs"] = ["not_a_need"]  # refused by the service, on purpose
            self.totals.invalid += 1
            self.totals.refused_ids.add(str(detection_event_id(t.office_id, item["detection_id"])))
        else:
            self.totals.generated += 1
            path = "kafka" if t.kafka else "http"
            self.totals.expected[str(detection_event_id(t.office_id, item["detection_id"]))] = path
        return item

    def _post(self, t: Terminal, items: list[dict[str, Any]]) -> None:
        body: Any = items[0] if len(items) == 1 else {"detections": items}
        headers = {"Authorization": f"Bearer {t.token}"}
        for attempt in range(5):
            try:
                r = self.http.post("/v1/detections", json=body, headers=headers)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code in (200, 201, 202, 422) and "results" in r.text:
                for res in r.json()["results"]:
                    self.totals.http[res["status"]] += 1
                return
            self.totals.http_errors += 1
            time.sleep(0.5 * (attempt + 1))  # 503 or network: the terminal keeps its items and retries

    def _send(self, t: Terminal, items: list[dict[str, Any]]) -> None:
        path = "kafka" if t.kafka else "http"
        repeats = 1
        if self.rng.random() < self.args.retry_rate:  # a blind retry: the whole upload again
            repeats, self.totals.retries = 2, self.totals.retries + 1
        for _ in range(repeats):
            self.totals.sent[path] += len(items)
            if t.kafka:
                self.producers[t.terminal_id].send_many(items)
            else:
                for start in range(0, len(items), 200):
                    self._post(t, items[start : start + 200])

    def tick(self, dt: float) -> int:
        now = datetime.now(UTC)
        made = 0
        for t in self.terminals:
            rate = self.args.rate / len(self.terminals) * (2.5 if t.qpv else 1.0)
            rate *= opening_weight(t.timezone, now, self.args.night_floor)
            count = self._poisson(rate * dt)
            if not count and not (t.offline and t.backlog):
                continue
            if t.offline:
                for _ in range(count):
                    t.backlog.append(self._detection(t, past_opening_time(self.rng, t.timezone, now, 5)))
                self.totals.late += count
                if len(t.backlog) >= self.args.backlog or self.rng.random() < 0.02:  # back online: upload all
                    backlog, t.backlog = t.backlog, []
                    self._send(t, backlog)
            elif count:
                self._send(t, [self._detection(t, now) for _ in range(count)])
            made += count
        return made

    def _poisson(self, lam: float) -> int:
        if lam <= 0:
            return 0
        threshold, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= threshold:
                return k
            k += 1

    def flush_backlogs(self) -> None:
        for t in self.terminals:
            if t.backlog:
                backlog, t.backlog = t.backlog, []
                self._send(t, backlog)
        self.gateway.flush()
        self.gateway.close()

    # --- checking ----------------------------------------------------------------------------------

    def verify(self, consumer: Any, timeout: float) -> dict[str, Any]:
        """Read detection.events from where it stood at the start: every valid detection exactly once."""
        seen: Counter = Counter()
        wanted = set(self.totals.expected)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not wanted <= set(seen):
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    header = dict(record.headers or ()).get("ce_id")
                    if header and header.decode() in wanted | self.totals.refused_ids:
                        seen[header.decode()] += 1
        published = wanted & set(seen)
        # A blind retry lands on the same key: at most one record per event id, except in a crash recovery.
        return {
            "published_distinct": len(published),
            "missing": len(wanted - published),
            "published_twice": sum(1 for i in published if seen[i] > 1),
            "invalid_published": len(self.totals.refused_ids & set(seen)),
        }


def _tail_detection_events(bootstrap: str) -> Any:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = [TopicPartition("detection.events", p) for p in consumer.partitions_for_topic("detection.events") or ()]
    consumer.assign(parts)
    consumer.seek_to_end(*parts)
    for p in parts:
        consumer.position(p)
    return consumer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", type=Path, default=Path(".run/demo-credentials.json"))
    parser.add_argument("--url", default=None, help="detection service (default: the credentials file's)")
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka (default: $KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)",
    )
    parser.add_argument("--ingest-topic", default=os.environ.get("DETECTION_INGEST_TOPIC", "detection.ingest"))
    parser.add_argument("--duration", type=float, default=60, help="seconds; 0 = until interrupted")
    parser.add_argument("--rate", type=float, default=20, help="detections per second at peak hour, all terminals")
    parser.add_argument("--terminals", type=int, default=40)
    parser.add_argument("--kafka-share", type=float, default=0.3, help="terminals using the Kafka door")
    parser.add_argument("--offline-share", type=float, default=0.2, help="terminals offline, uploading late")
    parser.add_argument("--backlog", type=int, default=40, help="an offline terminal uploads at this backlog size")
    parser.add_argument("--retry-rate", type=float, default=0.1, help="uploads blindly sent twice")
    parser.add_argument("--invalid-rate", type=float, default=0.01, help="items made invalid on purpose")
    parser.add_argument("--people", type=int, default=100_000, help="distinct (fake) clients")
    parser.add_argument("--night-floor", type=float, default=0.3, help="minimum traffic share when closed")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-verify", action="store_true", help="skip reading detection.events back")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (e.g. in the background)")
    args = parser.parse_args(argv)

    creds = json.loads(args.credentials.read_text())
    sim = Simulator(args, creds)
    sim.setup()
    consumer = None if args.no_verify else _tail_detection_events(args.bootstrap)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    total = args.duration or None
    with tqdm(
        total=total, unit="s", disable=args.quiet, bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt}s {postfix}"
    ) as bar:
        last = started
        while not stop and (not args.duration or time.monotonic() - started < args.duration):
            time.sleep(0.2)
            now = time.monotonic()
            sim.tick(now - last)
            bar.update(now - last)
            last = now
            bar.set_postfix(made=sim.totals.generated + sim.totals.invalid, accepted=sim.totals.http["accepted"])
    sim.flush_backlogs()
    t = sim.totals
    report: dict[str, Any] = {
        "seconds": round(time.monotonic() - started, 1),
        "terminals": {
            "total": len(sim.terminals),
            "kafka": sum(x.kafka for x in sim.terminals),
            "offline": sum(x.offline for x in sim.terminals),
            "qpv": sum(x.qpv for x in sim.terminals),
        },
        "distinct_valid_detections": t.generated,
        "by_path": dict(Counter(t.expected.values())),
        "invalid_items_sent": t.invalid,
        "late_items": t.late,
        "blind_retries": t.retries,
        "items_sent_with_retries": dict(t.sent),
        "http_answers": dict(t.http),
        "http_errors_retried": t.http_errors,
    }
    ok = True
    if consumer is not None:
        check = sim.verify(consumer, timeout=60)
        consumer.close()
        report["detection_events"] = check
        http_valid = sum(1 for p in t.expected.values() if p == "http")
        ok = (
            check["missing"] == 0
            and check["invalid_published"] == 0
            and check["published_distinct"] == t.generated
            and t.http["accepted"] == http_valid
        )
        report["check"] = "OK: every valid detection published once, nothing invalid" if ok else "MISMATCH"
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
