"""A deterministic demo network of La Poste contact points across the real départements.

About 17,000 points, exactly 500 in priority neighbourhoods (QPV) and 350 Espaces France Services by default;
names and commune codes are synthetic (well-formed INSEE codes in the right département), never real people.
"""

from __future__ import annotations

import csv
import io
import random

from services.detection.schemas import OfficeIn
from shared import geo

__all__ = ["generate", "to_csv", "main"]

# Denser networks where people live: rough weights, enough for a realistic-looking demo.
_DENSE = {"75": 3.0, "13": 2.5, "59": 2.8, "69": 2.2, "92": 2.0, "93": 2.0, "94": 1.8, "33": 1.9, "31": 1.7,
          "06": 1.4, "44": 1.6, "67": 1.5, "62": 2.0, "76": 1.6, "78": 1.7, "91": 1.6, "95": 1.5, "34": 1.5,
          "38": 1.6, "35": 1.4, "77": 1.7, "57": 1.4, "83": 1.3, "974": 1.0}  # fmt: skip
_URBAN = {"75", "13", "59", "69", "92", "93", "94", "33", "31", "06", "44", "67", "62", "76", "78", "91", "95",
          "34", "38", "35", "77", "57", "83", "974", "971", "972", "973"}  # fmt: skip


def _commune(dep: str, n: int) -> str:
    width = 2 if dep.startswith("97") else 3
    return f"{dep}{(n % (10**width - 1)) + 1:0{width}d}"


def generate(total: int = 17_000, qpv: int = 500, france_services: int = 350, seed: int = 2022) -> list[OfficeIn]:
    rng = random.Random(seed)
    deps = sorted(geo.departements().values(), key=lambda d: d.code)
    weights = [_DENSE.get(d.code, 0.6 if d.code.startswith("97") else 1.0) for d in deps]
    scale = total / sum(weights)
    counts = [max(1, int(w * scale)) for w in weights]
    for i in rng.choices(range(len(deps)), weights=weights, k=total - sum(counts)):
        counts[i] += 1
    rows = []
    for dep, count in zip(deps, counts, strict=True):
        rural_share = 0.15 if dep.code in _URBAN else 0.55
        for n in range(count):
            rows.append((dep, n, rng.random() < rural_share))
    rows = rows[:total]
    urban = [i for i, r in enumerate(rows) if not r[2] and r[0].code in _URBAN]
    qpv_ids = set(rng.sample(urban, min(qpv, len(urban))))
    rural = [i for i, r in enumerate(rows) if r[2] and i not in qpv_ids]
    fs_ids = set(rng.sample(rural, min(france_services, len(rural))))
    offices = []
    for i, (dep, n, is_rural) in enumerate(rows):
        kind = "Espace France Services" if i in fs_ids else "Bureau de poste"
        offices.append(
            OfficeIn(
                office_id=f"lp-{dep.code}-{n + 1:04d}",
                name=f"{kind} {dep.name} {n + 1}",
                commune_insee=_commune(dep.code, n * 7 + 1),
                departement=dep.code,
                qpv=i in qpv_ids,
                rural=is_rural,
                france_services=i in fs_ids,
            )
        )
    return offices


def to_csv(offices: list[OfficeIn]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["office_id", "name", "commune_insee", "qpv", "rural", "france_services"])
    for o in offices:
        writer.writerow([o.office_id, o.name, o.commune_insee, int(o.qpv), int(o.rural), int(o.france_services)])
    return out.getvalue()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="write the demo office network as CSV on stdout")
    parser.add_argument("--total", type=int, default=17_000)
    parser.add_argument("--seed", type=int, default=2022)
    args = parser.parse_args()
    print(to_csv(generate(args.total, seed=args.seed)), end="")


if __name__ == "__main__":
    main()
