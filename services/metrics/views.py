"""Read models over the counters: breakdowns, funnel, weekly trend, partners (the exports are in exports.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from services.metrics.domain import INDICATORS, Counters, partner_scope
from services.metrics.exports import SECRET_THRESHOLD, export_rows, secret_cells, to_csv
from services.metrics.goals import GoalBook, region_territory
from services.metrics.progress import PARIS, elapsed_share
from shared import geo
from shared.french import CHANNELS, COMMITMENTS, MONTHS, NEEDS, PARTNERSHIP_TYPES, THEMES

__all__ = [
    "BadQuery",
    "DIMENSIONS_OF",
    "DIMENSION_LABELS",
    "SECRET_THRESHOLD",
    "breakdown",
    "funnel",
    "trend",
    "partners",
    "partner_columns",
    "partner_label",
    "UNKNOWN_PARTNER",
    "partner_months",
    "median_from_histogram",
    # re-exported from exports.py, where callers of the read models used to find them
    "secret_cells",
    "export_rows",
    "to_csv",
    "label_of",
    "weeks_of",
]

_HELP = ("week", "departement", "region", "qpv", "rural", "channel", "commitment", "partner", "theme")
_DETECTION = ("week", "departement", "region", "qpv", "rural", "office_type", "referred")
# The dimensions each indicator's cells carry (see domain.contributions); active_partnerships is a stock
# computed per date, it has no cells and therefore no breakdown.
DIMENSIONS_OF: dict[str, tuple[str, ...]] = {
    "people_helped": _HELP,
    "anonymous_help": _HELP,
    "workshop_attendances": _HELP,
    "accompaniments": _HELP,
    "france_services_clients": _HELP,
    "detections": _DETECTION,
    "people_detected": _DETECTION,
    "new_partnerships": ("week", "partnership_type", "partner", "commitment", "departement"),
    "skills_missions": ("week", "departement", "commitment", "partner"),
    "advisers_deployed": ("week", "departement"),
    "venues_opened": ("week", "departement", "region"),
}
# Dimensions where one fact may fall in several rows (a partnership covers several départements/commitments).
_MULTI_VALUED = {("new_partnerships", "commitment"), ("new_partnerships", "departement")}

DIMENSION_LABELS = {
    "week": "Semaine",
    "departement": "Département",
    "region": "Région",
    "qpv": "Quartier prioritaire (QPV)",
    "rural": "Territoire rural",
    "channel": "Canal",
    "commitment": "Engagement sociétal",
    "partner": "Partenaire",
    "theme": "Thème ou besoin",
    "office_type": "Type de bureau",
    "referred": "Orientation",
    "partnership_type": "Type de partenariat",
}

_VALUE_LABELS: dict[str, dict[str, str]] = {
    "qpv": {"true": "En QPV", "false": "Hors QPV"},
    "rural": {"true": "Rural", "false": "Urbain"},
    "referred": {"true": "Orienté", "false": "Non orienté"},
    "channel": CHANNELS,
    "commitment": COMMITMENTS,
    "partnership_type": PARTNERSHIP_TYPES,
    "office_type": {
        "france_services": "France Services",
        "qpv": "Bureau en QPV",
        "rural": "Bureau rural",
        "standard": "Autre bureau",
    },
    # Workshops have themes, accompaniments needs: one dimension for both.
    "theme": {**THEMES, **NEEDS},
}


class BadQuery(ValueError):
    """A query naming an unknown indicator, dimension or option; the message says what is accepted."""


def _check(indicator: str, dimension: str | None = None) -> None:
    if indicator not in INDICATORS:
        raise BadQuery(f"unknown indicator {indicator!r}; expected one of: {', '.join(INDICATORS)}")
    if dimension is None:
        return
    allowed = DIMENSIONS_OF.get(indicator, ())
    if not allowed:
        raise BadQuery(f"{indicator} is a stock computed per date: it has no breakdown")
    if dimension not in allowed:
        raise BadQuery(f"unknown dimension {dimension!r} for {indicator}; expected one of: {', '.join(allowed)}")


def label_of(dimension: str, key: str) -> str:
    """A French label for one value of a dimension (the key itself when there is nothing better)."""
    if dimension == "departement":
        dep = geo.departements().get(key)
        return dep.name if dep else key
    if dimension == "region":
        reg = geo.regions().get(key)
        return reg.name if reg else key
    if dimension == "week":
        return f"Semaine {key}"
    return _VALUE_LABELS.get(dimension, {}).get(key, key)


UNKNOWN_PARTNER = "Partenaire non référencé"


def partner_label(partner_id: str, names: Mapping[str, str] | None) -> str:
    """A partner's name for a person to read; never its id (an id the registry does not know says so)."""
    return (names or {}).get(partner_id) or UNKNOWN_PARTNER


def _territory(dimension: str, key: str) -> str | None:
    if dimension == "departement":
        return key
    if dimension == "region":
        return region_territory(key)
    return None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def breakdown(
    counters: Counters,
    goals: GoalBook,
    indicator: str,
    dimension: str,
    year: int,
    *,
    sort: str | None = None,
    include_zero: bool = False,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One row per value of `dimension`, with its label, share of the national total and territorial goal
    (partners are labelled with their name from `names`, the partners registry's)."""
    _check(indicator, dimension)
    sort = sort or ("key" if dimension == "week" else "value")
    if sort not in ("key", "value"):
        raise BadQuery(f"unknown sort {sort!r}; expected 'key' or 'value'")
    values = counters.breakdown(indicator, year, dimension)
    if include_zero:
        if dimension not in ("departement", "region"):
            raise BadQuery("include_zero is only meaningful for departement and region")
        known = list(geo.departements() if dimension == "departement" else geo.regions())
        values = {code: values.get(code, 0) for code in known} | values
    total = counters.value(indicator, year)
    rows = []
    for key, value in values.items():
        label = partner_label(key, names) if dimension == "partner" else label_of(dimension, key)
        row: dict[str, Any] = {"key": key, "label": label, "value": value}
        row["share"] = _rate(value, total)
        territory = _territory(dimension, key)
        if territory is not None:
            found = goals.lookup(indicator, year, territory)
            row |= {
                "goal": found.goal,
                "goal_year": found.year,
                "goal_inherited": found.inherited(year),
                "ratio": round(value / found.goal, 6) if found.goal else None,
            }
        rows.append(row)
    if sort == "key":
        rows.sort(key=lambda r: r["key"])
    else:
        rows.sort(key=lambda r: (-r["value"], r["key"]))
    return {
        "indicator": indicator,
        "label": INDICATORS[indicator],
        "year": year,
        "dimension": dimension,
        "dimension_label": DIMENSION_LABELS.get(dimension, dimension),
        "total": total,
        # When a fact falls in several rows, or some facts in none (help without a partner), rows do not add up.
        "rows_add_up_to_total": (indicator, dimension) not in _MULTI_VALUED and dimension != "partner",
        "rows": rows,
    }


def median_from_histogram(histogram: Mapping[str, int]) -> float | None:
    """The exact median of whole-day delays kept as {days: number of people} (mean of the two middles if even)."""
    counts = sorted((int(days), n) for days, n in histogram.items() if n > 0)
    size = sum(n for _, n in counts)
    if not size:
        return None
    wanted = [(size - 1) // 2, size // 2]  # 0-based ranks of the middle element(s)
    found: list[int] = []
    seen = 0
    for days, n in counts:
        while wanted and wanted[0] < seen + n:
            found.append(days)
            wanted.pop(0)
        seen += n
    return (found[0] + found[1]) / 2


def _funnel_row(counters: Counters, year: int, dimension: str, key: str) -> dict[str, Any]:
    detected = counters.value("funnel_detected", year, dimension, key)
    referred = counters.value("funnel_referred", year, dimension, key)
    helped = counters.value("funnel_helped", year, dimension, key)
    scope = f"{dimension}={key}" if dimension else ""
    return {
        "detected": detected,
        "referred": referred,
        "helped": helped,
        "referral_rate": _rate(referred, detected),
        "conversion_rate": _rate(helped, detected),
        "median_delay_days": median_from_histogram(counters.breakdown("funnel_delay_days", year, scope)),
    }


FUNNEL_BY = ("departement", "office_type")


def funnel(counters: Counters, year: int, by: str | None = None, *, window_days: int = 90) -> dict[str, Any]:
    """People detected in `year` → referred → helped within the window of their first detection."""
    if by is not None and by not in FUNNEL_BY:
        raise BadQuery(f"unknown funnel dimension {by!r}; expected one of: {', '.join(FUNNEL_BY)}")
    body: dict[str, Any] = {"year": year, "window_days": window_days, "total": _funnel_row(counters, year, "", "")}
    if by:
        rows = [
            {"key": key, "label": label_of(by, key), **_funnel_row(counters, year, by, key)}
            for key in counters.breakdown("funnel_detected", year, by)
        ]
        rows.sort(key=lambda r: (-r["detected"], r["key"]))
        body |= {"by": by, "rows": rows}
    return body


def weeks_of(year: int) -> list[tuple[str, date, date]]:
    """(week, first day, last day) for each week of the civil year as domain.week_of_year numbers them."""
    first, last = date(year, 1, 1), date(year, 12, 31)
    out: list[tuple[str, date, date]] = []
    start = first
    while start <= last:
        end = min(start + timedelta(days=6), last)
        out.append((f"{len(out) + 1:02d}", start, end))
        start = end + timedelta(days=1)
    return out


def trend(counters: Counters, goals: GoalBook, indicator: str, year: int, now: datetime) -> dict[str, Any]:
    """The weekly series of the year, its running total and the goal's pace at the end of each week."""
    _check(indicator)
    today = now.astimezone(PARIS).date()
    stock = indicator == "active_partnerships"
    weekly = {} if stock else counters.breakdown(indicator, year, "week")
    goal = goals.lookup(indicator, year)
    series = []
    running = 0
    for week, start, end in weeks_of(year):
        elapsed = start <= today
        if stock:
            value = counters.active_partnerships(min(end, today)) if elapsed else None
            cumulative = value
        else:
            running += weekly.get(week, 0)
            value = weekly.get(week, 0)
            cumulative = running if elapsed else None
        share = elapsed_share(year, datetime.combine(end + timedelta(days=1), datetime.min.time(), PARIS))
        expected = None if goal.goal is None else round(goal.goal if stock else goal.goal * share, 3)
        series.append(
            {
                "week": week,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "elapsed": elapsed,
                "value": value,
                "cumulative": cumulative,
                "expected": expected,
            }
        )
    return {
        "indicator": indicator,
        "label": INDICATORS[indicator],
        "year": year,
        "stock": stock,
        "goal": goal.goal,
        "goal_inherited": goal.inherited(year),
        "total": counters.active_partnerships(min(today, date(year, 12, 31))) if stock else running,
        "weeks": series,
    }


PARTNER_INDICATORS = (
    "people_helped",
    "workshop_attendances",
    "accompaniments",
    "france_services_clients",
    "new_partnerships",
    "skills_missions",
)


def partner_columns(counters: Counters, year: int) -> dict[str, dict[str, int]]:
    """Each partner indicator's values by partner id (what `partners` ranks; read once, named, then ranked)."""
    return {i: counters.breakdown(i, year, "partner") for i in PARTNER_INDICATORS}


def partners(
    counters: Counters,
    year: int,
    *,
    query: str | None = None,
    limit: int = 20,
    names: Mapping[str, str] | None = None,
    columns: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """Partners ranked by people helped (then by id), with their other indicators and their name in the partners
    registry (`name`, None when the registry does not know the id); `query` keeps ids or names containing it."""
    names = names or {}
    columns = columns if columns is not None else partner_columns(counters, year)
    ids: set[str] = set().union(*columns.values())
    if query:
        wanted = query.casefold()
        ids = {p for p in ids if wanted in p.casefold() or wanted in names.get(p, "").casefold()}
    rows: list[dict[str, Any]] = [
        {"partner": p, "name": names.get(p), **{i: columns[i].get(p, 0) for i in PARTNER_INDICATORS}} for p in ids
    ]
    rows.sort(key=lambda r: (-int(r["people_helped"]), str(r["partner"])))
    return {
        "year": year,
        "query": query,
        "count": len(rows),
        "indicators": list(PARTNER_INDICATORS),
        "rows": rows[:limit],
    }


def partner_months(counters: Counters, partner_id: str, year: int) -> dict[str, Any]:
    """One partner's figures for the year month by month (in the local time of each fact's venue) and in total.

    The total is the partner's row of `partners`; the months add up to it, since each fact falls in one month
    (a person helped counts in the month of their first help of the year, with that help's partner)."""
    scope = partner_scope(partner_id)
    by_month = {i: counters.breakdown(i, year, scope) for i in PARTNER_INDICATORS}
    months = [
        {
            "month": f"{year}-{m:02d}",
            "label": f"{MONTHS[m - 1]} {year}",
            **{i: by_month[i].get(f"{m:02d}", 0) for i in PARTNER_INDICATORS},
        }
        for m in range(1, 13)
    ]
    return {
        "partner": partner_id,
        "year": year,
        "indicators": list(PARTNER_INDICATORS),
        "labels": {i: INDICATORS[i] for i in PARTNER_INDICATORS},
        "months": months,
        "total": {i: counters.value(i, year, "partner", partner_id) for i in PARTNER_INDICATORS},
    }
