"""`make bench`: every benchmark of the project in one run, printing figures (never asserting them)."""

from __future__ import annotations

import importlib
import sys

SUITES = ("bench.detection", "bench.writes", "bench.metrics")


def main() -> int:
    status = 0
    for name in SUITES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            print(f"# {name}: not present", flush=True)
            continue
        print(f"\n## {name}", flush=True)
        saved, sys.argv = sys.argv, [name]
        try:
            status |= module.main() or 0
        finally:
            sys.argv = saved
    return status


if __name__ == "__main__":
    sys.exit(main())
