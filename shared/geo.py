"""French départements and regions (INSEE COG 2022) and the time zone each one lives in."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

__all__ = ["Departement", "Region", "departements", "regions", "departement", "timezone_of", "PARIS"]

PARIS = "Europe/Paris"

# Overseas départements keep their own civil time; every other one follows Paris.
_OVERSEAS_ZONES = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "976": "Indian/Mayotte",
}


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class Departement:
    code: str
    name: str
    region: str
    timezone: str


def _rows(name: str) -> list[dict[str, str]]:
    with resources.files("shared.data").joinpath(name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@cache
def regions() -> dict[str, Region]:
    return {r["REG"]: Region(r["REG"], r["LIBELLE"]) for r in _rows("insee-cog-2022-regions.csv")}


@cache
def departements() -> dict[str, Departement]:
    return {
        r["DEP"]: Departement(r["DEP"], r["LIBELLE"], r["REG"], _OVERSEAS_ZONES.get(r["DEP"], PARIS))
        for r in _rows("insee-cog-2022-departements.csv")
    }


def departement(code: str) -> Departement:
    """The département with this INSEE code; KeyError names the unknown code."""
    try:
        return departements()[code]
    except KeyError:
        raise KeyError(f"unknown département code {code!r}") from None


def timezone_of(code: str) -> ZoneInfo:
    return ZoneInfo(departement(code).timezone)
