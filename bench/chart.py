"""The metrics benchmark as a picture: throughput against its ceilings and the target, freshness against its target."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["metrics_chart"]

THROUGHPUT_TARGET = 20_000
FRESHNESS_TARGET_MS = 1_000


def metrics_chart(throughput: dict, freshness: list[dict], path: Path) -> Path:
    """Write an SVG of one `bench.metrics` run; returns its path."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [3, 2]})

    bars = [
        ("raw aiokafka consumer\n(reads, counts nothing)", throughput["raw_per_s"], "#9aa5b1"),
        ("counting rules alone\n(no Kafka)", throughput["counting_per_s"], "#9aa5b1"),
        ("faust agent, no-op", throughput["faust_noop_per_s"], "#9aa5b1"),
        ("faust agent writing\na changelogged table", throughput["faust_table_per_s"], "#9aa5b1"),
        ("worker's steps on events\npacked 500 per record", throughput["faust_packed_per_s"], "#c8d3e0"),
        ("metrics worker", throughput["worker_per_s"], "#003da5"),
    ]
    labels = [b[0] for b in bars]
    values = [b[1] for b in bars]
    left.barh(labels, values, color=[b[2] for b in bars])
    left.set_xscale("log")
    left.axvline(THROUGHPUT_TARGET, color="#d0021b", linestyle="--", linewidth=1.2)
    left.text(THROUGHPUT_TARGET, len(bars) - 0.45, " target 20,000/s", color="#d0021b", va="bottom", fontsize=9)
    for y, value in enumerate(values):
        left.text(value, y, f" {value:,.0f}/s", va="center", fontsize=9)
    left.set_xlim(1_000, max(values) * 8)
    left.invert_yaxis()
    left.set_xlabel(f"events per second, log scale ({throughput['records']:,} records, same run)")
    left.set_title("Throughput of one metrics worker and its ceilings")

    rates = [f"{f['rate']:,}/s" for f in freshness]
    xs = range(len(freshness))
    width = 0.38
    right.bar([x - width / 2 for x in xs], [f["p50_ms"] for f in freshness], width, label="p50", color="#9aa5b1")
    right.bar([x + width / 2 for x in xs], [f["p99_ms"] for f in freshness], width, label="p99", color="#003da5")
    right.axhline(FRESHNESS_TARGET_MS, color="#d0021b", linestyle="--", linewidth=1.2)
    right.text(len(freshness) - 0.5, FRESHNESS_TARGET_MS, "target p99 < 1 s ", color="#d0021b", ha="right", va="bottom")
    right.set_yscale("log")
    right.set_ylim(top=FRESHNESS_TARGET_MS * 3)
    right.set_xticks(list(xs), rates)
    right.set_xlabel("events accepted per second")
    right.set_ylabel("ms, log scale")
    right.set_title("Freshness: accepted → visible in /v1/progress")
    right.legend(loc="upper left")

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg")
    plt.close(fig)
    return path
