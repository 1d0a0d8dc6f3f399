"""Fuzz the HTTP services with schemathesis from their own OpenAPI: no server error, no answer outside the spec.

    .venv/bin/python -m scripts.fuzz [--max-examples 100] [--seed N]

Starts its own copies of partners, workshops and detection (own ports and databases, the stack's Kafka and
database server; Kafka must be up), fuzzes every operation with an admin token (and POST /v1/detections with a
terminal's token), prints the figures per service and exits 1 on any failure. The test suite runs the same with a
few examples per operation (tests/integration/test_fuzz.py); the figures of a larger run are in docs/hardening.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.identity import Principal, Role, issue_token
from shared.settings import DEV_PLATFORM_TOKEN_KEY

__all__ = ["Run", "fuzz", "admin_headers", "terminal_headers", "CHECKS"]

ROOT = Path(__file__).resolve().parents[1]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# A 5xx is a server error (a deliberate 503 only comes when a dependency is away: not during a fuzz run);
# a body or status the spec does not describe is a schema violation.
CHECKS = "not_a_server_error,response_schema_conformance"
PORTS = {"partners": 18285, "workshops": 18286, "detection": 18287}  # beside bench/ (18290-18293)


@dataclass
class Run:
    target: str
    returncode: int
    cases: int
    failures: int
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failures == 0

    def line(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return f"{self.target}: {self.cases} cases, {self.failures} failures, {self.seconds:.0f} s — {verdict}"


def admin_headers(key: str = DEV_PLATFORM_TOKEN_KEY) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(Principal("fuzz-admin", Role.ADMIN), key)}


def terminal_headers(detection_url: str, admin: dict[str, str], office_id: str = "fuzz-93") -> dict[str, str]:
    """Register an office and a terminal on a detection instance; the terminal's token as a header."""
    office = {"office_id": office_id, "name": "Bureau fuzz", "commune_insee": "93066", "qpv": True}
    with httpx.Client(base_url=detection_url, timeout=30) as http:
        http.put(f"/v1/offices/{office_id}", json=office, headers=admin).raise_for_status()
        r = http.post("/v1/terminals", json={"office_id": office_id}, headers=admin)
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['token']}"}


def _figures(output: str) -> tuple[int, int]:
    cases = re.search(r"(\d+) generated", output)
    failed = re.search(r"(\d+) found (\d+) unique failure", output)
    return int(cases.group(1)) if cases else 0, int(failed.group(2)) if failed else 0


def fuzz(
    target: str,
    base_url: str,
    headers: dict[str, str],
    *,
    max_examples: int,
    include_path: str | None = None,
    exclude_path: str | None = None,
    seed: int | None = None,
    timeout_s: float = 900,
) -> Run:
    """One schemathesis run over `base_url`'s OpenAPI (examples, coverage and fuzzing phases)."""
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
        "--workers",
        "1",  # hypothesis' source inspection is not thread-safe: two workers now and then fail inside the tool
    ]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    if include_path:
        args += ["--include-path", include_path]
    if exclude_path:
        args += ["--exclude-path", exclude_path]
    if seed is not None:
        args += ["--seed", str(seed)]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:  # schemathesis leaves its files in the working directory
        done = subprocess.run(args, cwd=scratch, capture_output=True, text=True, timeout=timeout_s, check=False)
    output = done.stdout + done.stderr
    cases, failures = _figures(output)
    return Run(target, done.returncode, cases, failures, time.monotonic() - started, output)


@contextmanager
def _services(env: dict[str, str]) -> Iterator[dict[str, str]]:
    log_dir = ROOT / ".run" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        for name, port in PORTS.items():
            log = (log_dir / f"fuzz-{name}.log").open("ab")
            cmd = [sys.executable, "-m", "uvicorn", f"services.{name}.main:app", "--port", str(port), "--no-access-log"]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=log))
        urls = {name: f"http://127.0.0.1:{port}" for name, port in PORTS.items()}
        deadline = time.monotonic() + 90
        for url in urls.values():
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} not ready within 90 s (logs in {log_dir})")
                time.sleep(0.3)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)


def fuzz_all(urls: dict[str, str], max_examples: int, seed: int | None = None) -> list[Run]:
    admin = admin_headers()
    runs = [
        fuzz("partners", urls["partners"], admin, max_examples=max_examples, seed=seed),
        fuzz("workshops", urls["workshops"], admin, max_examples=max_examples, seed=seed),
        fuzz(
            "detection (admin)",
            urls["detection"],
            admin,
            max_examples=max_examples,
            exclude_path="/v1/detections",
            seed=seed,
        ),
    ]
    terminal = terminal_headers(urls["detection"], admin)
    runs.append(
        fuzz(
            "detection (terminal)",
            urls["detection"],
            terminal,
            max_examples=max_examples,
            include_path="/v1/detections",
            seed=seed,
        )
    )
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--show", action="store_true", help="print schemathesis' own output too")
    args = parser.parse_args(argv)
    suffix = "_fuzz"
    env = {
        "PARTNERS_DB": f"partners{suffix}",
        "WORKSHOPS_DB": f"workshops{suffix}",
        "DETECTION_DB": f"detection{suffix}",
        "DETECTION_INGEST_ENABLED": "0",
        # The fuzzer is one client sending as fast as it can: lift the limits it is not testing.
        "DETECTION_TERMINAL_RATE_LIMIT": "100000/second",
        "PARTNERS_AUTH_RATE_LIMIT": "100000/second",
        "LOG_LEVEL": "WARNING",
    }
    from pymongo import MongoClient

    uri = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
    with MongoClient(uri) as client:  # a fresh start each run: the figures do not depend on earlier runs
        for db in ("PARTNERS_DB", "WORKSHOPS_DB", "DETECTION_DB"):
            client.drop_database(env[db])
    with _services(env) as urls:
        runs = fuzz_all(urls, args.max_examples, args.seed)
    for run in runs:
        if args.show or not run.ok:
            print(run.output)
    for run in runs:
        print(run.line())
    total = sum(r.cases for r in runs)
    print(json.dumps({"max_examples": args.max_examples, "cases": total, "failures": sum(r.failures for r in runs)}))
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
