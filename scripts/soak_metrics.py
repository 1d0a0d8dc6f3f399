"""Soak the metrics workers: publish help and detection events while killing them with kill -9, then check.

    python -m scripts.soak_metrics [--people 50000] [--kills 20] [--rate 400] [--workers 2] [--kill-broker]

A metrics API and its workers, with a consumer group, changelog and data directories of their own (so they start
from an empty state): one worker at a time is killed at random moments (in mid-stream, right after a restart
while it catches up, during its start-up) and restarted. At the end the API's counters (the sum of the
workers' partials) must equal the counting rules applied to what was published, and a rebuild from the log
(services.metrics.replay): 0 lost, 0 doubled. Needs the local stack (`make run` or deploy/local/stack.sh up);
prints the kill count and the figures, exit status 0 when exact.

`--kill-broker` also kills the broker with kill -9 once, halfway through, and starts it again with
deploy/local/stack.sh. Use it with a stack of the soak's own, never one that others use:

    export DATA_DIR=/tmp/soak/data RUN_DIR=/tmp/soak/run KAFKA_PORT=19470 KAFKA_CONTROLLER_PORT=19471 \
        FERRETDB_PORT=19472 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19470 \
        MONGODB_URI='mongodb://127.0.0.1:19472/?directConnection=true'
    deploy/local/stack.sh up && python -m scripts.soak_metrics --people 50000 --kills 20 --kill-broker
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from services.metrics import domain, replay
from shared import events as ev
from shared.serde import encode
from shared.topics import topic_for
from tests import samples
from tests.conftest import KAFKA, ROOT, Service, start_metrics_worker, start_service, stop_service, wait_ready

__all__ = ["soak_events", "expected_totals", "Publisher", "Soak", "SoakResult", "main"]

MARSEILLE = {"departement": "13", "region": "93", "timezone": "Europe/Paris"}


def soak_events(people: int, year: int, seed: int) -> list[ev.Envelope]:
    """Help and detections for `people` persons with the counting hazards: duplicate deliveries, retractions,
    anonymous help, late events predating earlier ones, and help on the last evening of the year (next year
    in Paris)."""
    rng = random.Random(seed)
    salt = uuid.uuid4().hex
    start = datetime(year, 1, 1, tzinfo=UTC)
    out: list[ev.Envelope] = []
    for n in range(people):
        person = samples.ref(f"soak-{salt}-{n}")
        at = start + timedelta(days=rng.randrange(6, 355), minutes=rng.randrange(1440))
        first = samples.attended(person, at=at)
        out.append(first)
        if n % 3 == 0:
            out.append(first)  # delivered twice
        if n % 5 == 0:
            out.append(samples.accompanied(person, at=at - timedelta(days=3), territory=MARSEILLE))  # late, earlier
        if n % 7 == 0:
            out.append(samples.retraction(first))
        if n % 4 == 0:
            out.append(samples.detected(person, at=at - timedelta(days=5), referred=n % 8 == 0))
        if n % 11 == 0:
            out.append(samples.attended(None, at=at))
        if n % 13 == 0:
            out.append(samples.attended(person, at=datetime(year, 12, 31, 23, 30, tzinfo=UTC)))
    return out


def expected_totals(events: Iterable[ev.Envelope], year: int) -> dict[str, int]:
    """The headline figures of `year`, counted by hand from the events (not through the worker's code)."""
    seen: dict[str, ev.Envelope] = {}
    retracted: set[str] = set()
    for e in events:
        if e.type in ev.RETRACTION_TYPES:
            retracted.add(str(e.data.retracted_event_id))  # type: ignore[attr-defined]
        else:
            seen[str(e.id)] = e
    live = [e for eid, e in seen.items() if eid not in retracted]

    def in_year(e: ev.Envelope) -> bool:
        return domain.civil_year(e.time, e.data.timezone) == year  # type: ignore[attr-defined]

    helps = [e for e in live if isinstance(e.data, ev.WorkshopAttended | ev.AccompanimentCompleted) and in_year(e)]
    anonymous = [e for e in helps if e.data.person_ref is None]  # type: ignore[attr-defined]
    detections = [e for e in live if isinstance(e.data, ev.IllectronismDetected) and in_year(e)]
    return {
        "workshop_attendances": sum(isinstance(e.data, ev.WorkshopAttended) for e in helps),
        "accompaniments": sum(isinstance(e.data, ev.AccompanimentCompleted) for e in helps),
        "people_helped": len({e.data.person_ref for e in helps if e.data.person_ref}) + len(anonymous),  # type: ignore[attr-defined]
        "anonymous_help": len(anonymous),
        "detections": len(detections),
        "people_detected": len({e.data.person_ref for e in detections}),  # type: ignore[attr-defined]
    }


def year_cells(snapshot: dict[str, Any], years: Iterable[int]) -> dict[str, int]:
    wanted = {str(y) for y in years}
    return {c: n for c, n in snapshot.items() if not c.startswith("partnership|") and c.split("|")[1] in wanted}


class Publisher(threading.Thread):
    """Publishes the events at about `rate` per second as the producing services would (topic by type, key by
    the event's key rule, acks from every replica), and keeps every send's result."""

    def __init__(self, events: list[ev.Envelope], rate: float) -> None:
        super().__init__(daemon=True)
        self.events, self.rate = events, rate
        self.sent = 0
        self.failures: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        """Publish no more (what was sent is still flushed and checked)."""
        self._halt.set()

    def run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=KAFKA, acks="all", linger_ms=5)
        futures = []
        started = time.monotonic()
        try:
            for n, e in enumerate(self.events, start=1):
                if self._halt.is_set():
                    break
                futures.append(producer.send(topic_for(e.type).name, value=encode(e), key=e.key.encode()))
                self.sent = n
                ahead = n / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            producer.flush()
            for f in futures:
                try:
                    f.get(timeout=30)
                except Exception as exc:  # noqa: BLE001 - reported, and the soak fails with it
                    self.failures.append(str(exc))
        finally:
            producer.close()


@dataclass
class SoakResult:
    kills: int
    published: int
    distinct: int
    kills_catching_up: int  # kills of a restarted worker that still had a lag to catch up
    broker_kills: int
    expected: dict[str, int]
    live_totals: dict[str, int]
    lost: int  # counted units missing from the worker's cells, over every cell of the soak's years
    doubled: int  # counted units in excess
    replay_differences: list[str]
    rules_differences: list[str]
    seconds: float
    log: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return (
            self.lost == 0
            and self.doubled == 0
            and not self.replay_differences
            and not self.rules_differences
            and self.live_totals == self.expected
        )


class Soak:
    """One soak run: a metrics API of its own on `port` and `workers` workers, one of them killed at random at
    least `min_kills` times while events arrive; the final figures are read through the API (the partials)."""

    def __init__(
        self,
        *,
        people: int,
        min_kills: int,
        rate: float,
        port: int,
        year: int,
        seed: int,
        data_dir: Path,
        workers: int = 2,
        kill_broker: bool = False,
        say: Callable[[str], None] = print,
    ) -> None:
        self.workers, self.kill_broker = workers, kill_broker
        self.people, self.min_kills, self.rate, self.port, self.year = people, min_kills, rate, port, year
        self.rng = random.Random(seed)
        self.seed = seed
        self.say = say
        run = uuid.uuid4().hex[:8]
        self.env = {
            "METRICS_APP_ID": f"alliance-metrics-soak-{run}",
            "METRICS_DATA_DIR": str(data_dir),
            "METRICS_SESSION_TIMEOUT": "6",
        }

    def _start(self, n: int) -> Service:
        return start_metrics_worker(self.port, n, self.env)

    def _kill(self, svc: Service) -> None:
        os.killpg(svc.proc.pid, signal.SIGKILL)
        svc.proc.wait()
        svc.http.close()

    def _kill_broker(self) -> None:
        """kill -9 the broker of this stack (its pid file under RUN_DIR), then start it again with the stack script."""
        run_dir = Path(os.environ.get("RUN_DIR", ROOT / ".run"))
        pid = int((run_dir / "pids" / "kafka.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        while Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        time.sleep(self.rng.uniform(2.0, 8.0))
        subprocess.run([str(ROOT / "deploy/local/stack.sh"), "up"], check=True, timeout=240, stdout=subprocess.DEVNULL)

    def _lag(self, svc: Service) -> int:
        try:
            return int(svc.http.get("/v1/worker").json().get("lag") or 0)
        except Exception:  # noqa: BLE001 - a worker between two states answers later
            return 0

    def run(self) -> SoakResult:
        started = time.monotonic()
        years = (self.year, self.year + 1)
        # Earlier runs left their events in the log, in the same years: they are counted too. The persons and
        # event ids of this run are new, so the expected cells are those of the log before plus this run's.
        before, _ = replay.rebuild(KAFKA, replay.end_offsets(KAFKA), progress=False)
        baseline = Counter(year_cells(before.snapshot(), years))
        events = soak_events(self.people, self.year, self.seed)
        publisher = Publisher(events, self.rate)
        kills = catching_up = broker_kills = 0
        api = start_service("metrics", self.port, self.env)
        workers = {n: self._start(n) for n in range(1, self.workers + 1)}
        try:
            wait_ready(api, timeout=120)
            publisher.start()
            while kills < self.min_kills or publisher.is_alive():
                if self.kill_broker and not broker_kills and publisher.sent >= len(events) // 2:
                    self.say(f"killing the broker; {publisher.sent}/{len(events)} events published")
                    self._kill_broker()
                    broker_kills += 1
                    for m, svc in list(workers.items()):  # a worker that gave up on the broker is started again
                        if not svc.alive():
                            self.say(f"worker {m} exited while the broker was away: started again")
                            workers[m] = self._start(m)
                n = self.rng.choice(sorted(workers))
                svc = workers[n]
                mode = kills % 3
                if mode == 2:
                    # During start-up: recovering the changelog, joining the group or seeking.
                    time.sleep(self.rng.uniform(0.5, 3.0))
                    what = "during start-up"
                else:
                    wait_ready(svc, timeout=120)
                    if mode == 1:
                        # Right after the restart, while it applies what arrived when it was down.
                        time.sleep(self.rng.uniform(0.0, 0.3))
                        lag = self._lag(svc)
                        catching_up += lag > 0
                        what = f"right after a restart (lag {lag})"
                    else:
                        time.sleep(self.rng.uniform(0.5, 4.0))
                        what = f"mid-stream (lag {self._lag(svc)})"
                self._kill(svc)
                kills += 1
                self.say(f"kill {kills}: worker {n} {what}; {publisher.sent}/{len(events)} events published")
                workers[n] = self._start(n)
            publisher.join()
            for svc in workers.values():
                wait_ready(svc, timeout=120)
            until = replay.end_offsets(KAFKA)
            if not replay.wait_applied(api.url, until, timeout=600):
                raise AssertionError("the workers' partials did not reach the end of the log within 600 s")
            live = year_cells(api.http.get("/v1/snapshot").json()["cells"], years)
        finally:
            for svc in workers.values():
                stop_service(svc)
            stop_service(api)
        rules = domain.Ledger()
        for e in events:
            rules.add(e)
        by_rules = dict(baseline + Counter(year_cells(rules.counters.snapshot(), years)))
        expected = expected_totals(events, self.year)
        expected = {k: n + baseline.get(f"{k}|{self.year}||", 0) for k, n in expected.items()}
        rebuilt, _ = replay.rebuild(KAFKA, until, progress=False)
        from_log = year_cells(rebuilt.snapshot(), years)
        cells = set(live) | set(by_rules)
        return SoakResult(
            kills=kills,
            published=publisher.sent - len(publisher.failures),
            distinct=len({e.id for e in events}),
            kills_catching_up=catching_up,
            broker_kills=broker_kills,
            expected=expected,
            live_totals={k: live.get(f"{k}|{self.year}||", 0) for k in expected},
            lost=sum(max(0, by_rules.get(c, 0) - live.get(c, 0)) for c in cells),
            doubled=sum(max(0, live.get(c, 0) - by_rules.get(c, 0)) for c in cells),
            replay_differences=replay.compare(live, from_log),
            rules_differences=replay.compare(live, by_rules),
            seconds=time.monotonic() - started,
        )


def report(result: SoakResult) -> str:
    lines = [
        f"kills: {result.kills} (of which {result.kills_catching_up} while catching up after a restart); "
        f"broker killed {result.broker_kills} time(s)",
        f"events published: {result.published} ({result.distinct} distinct) in {result.seconds:.0f} s",
        f"lost: {result.lost}  doubled: {result.doubled}",
    ]
    for name, want in result.expected.items():
        lines.append(f"  {name}: expected {want}, worker {result.live_totals.get(name)}")
    lines.append(f"replay vs worker: {'IDENTICAL' if not result.replay_differences else result.replay_differences[:5]}")
    lines.append(f"rules vs worker: {'IDENTICAL' if not result.rules_differences else result.rules_differences[:5]}")
    return "\n".join(lines)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=50_000, help="persons (about 2 events each)")
    parser.add_argument("--kills", type=int, default=20, help="at least this many kill -9")
    parser.add_argument("--rate", type=float, default=400.0, help="events published per second")
    parser.add_argument("--workers", type=int, default=2, help="metrics workers (one killed at a time)")
    parser.add_argument("--kill-broker", action="store_true", help="kill -9 the broker once (a private stack only)")
    parser.add_argument("--port", type=int, default=18_990)
    parser.add_argument("--year", type=int, default=2043)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(list(argv) if argv is not None else None)
    data_dir = ROOT / ".data" / f"faust-soak-{uuid.uuid4().hex[:8]}"
    result = Soak(
        people=args.people,
        min_kills=args.kills,
        rate=args.rate,
        port=args.port,
        year=args.year,
        seed=args.seed,
        data_dir=data_dir,
        workers=args.workers,
        kill_broker=args.kill_broker,
        say=lambda line: print(line, file=sys.stderr, flush=True),
    ).run()
    print(report(result))
    print("EXACT" if result.exact else "NOT EXACT")
    return 0 if result.exact else 1


if __name__ == "__main__":
    sys.exit(main())
