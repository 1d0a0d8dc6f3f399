"""The metrics benchmark as a picture: throughput against its ceilings and the target, one worker against two and
three, freshness against its target."""

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
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [3, 2, 2]})

    bars = [
        ("raw aiokafka consumer\n(reads, counts nothing)", throughput["raw_per_s"], "#9aa5b1"),
        ("counting rules alone\n(no Kafka)", throughput["counting_per_s"], "#9aa5b1"),
        ("faust agent, no-op", throughput["faust_noop_per_s"], "#9aa5b1"),
        ("faust agent writing\na changelogged table", throughput["faust_table_per_s"], "#9aa5b1"),
        ("worker's steps on events\npacked 500 per record", throughput["faust_packed_per_s"], "#c8d3e0"),
        ("one metrics worker", throughput["worker_per_s"], "#003da5"),
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

    _scaling(middle, throughput)

    rates = [f"{f['rate']:,}/s" for f in freshness]
    xs = range(len(freshness))
    width = 0.38
    for offset, key, color in ((-width / 2, "p50_ms", "#9aa5b1"), (width / 2, "p99_ms", "#003da5")):
        label = key.removesuffix("_ms")
        values = [f[key] for f in freshness]
        right.bar([x + offset for x in xs], values, width, label=label, color=color)
        for x, value in zip(xs, values, strict=True):
            right.text(x + offset, value, f"{value:,.0f}", ha="center", va="bottom", fontsize=8)
    right.axhline(FRESHNESS_TARGET_MS, color="#d0021b", linestyle="--", linewidth=1.2)
    right.text(-0.5, FRESHNESS_TARGET_MS, " target p99 < 1 s", color="#d0021b", ha="left", va="bottom")
    right.set_yscale("log")
    # The whole bars, however far past the target (a lagging worker reads seconds).
    highest = max((f["p99_ms"] for f in freshness), default=FRESHNESS_TARGET_MS)
    right.set_ylim(top=max(FRESHNESS_TARGET_MS * 3, highest * 2))
    right.set_xticks(list(xs), rates)
    right.set_xlabel("events accepted per second")
    right.set_ylabel("ms, log scale")
    right.set_title("Freshness: broker ack → API's /v1/progress")
    right.legend(loc="upper left")

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg")
    plt.close(fig)
    return path


def _scaling(ax: plt.Axes, throughput: dict) -> None:
    """Workers of one deployment, each run over the same records, against the no-op faust agent."""
    runs = throughput["scaling"]
    labels = [f"{r['workers']} worker{'s' if r['workers'] > 1 else ''}" for r in runs]
    values = [r["per_s"] for r in runs]
    ax.bar(labels, values, color=["#003da5" if r["workers"] == 1 else "#4f7cc4" for r in runs])
    for x, r in enumerate(runs):
        ax.text(x, r["per_s"], f"{r['per_s']:,.0f}/s\n×{r['vs_one']:.2f}", ha="center", va="bottom", fontsize=9)
    noop = throughput["faust_noop_per_s"]
    ax.axhline(noop, color="#9aa5b1", linestyle="--", linewidth=1.2)
    ax.text(len(runs) - 0.5, noop, "no-op faust agent ", color="#5f6b78", ha="right", va="bottom", fontsize=9)
    ax.set_ylim(0, max(*values, noop) * 1.3)
    ax.set_ylabel("events per second (target 20,000/s: off the scale)")
    cores = throughput.get("cores")
    ax.set_title(f"1, 2, 3 workers, same records{f' ({cores} cores)' if cores else ''}")
