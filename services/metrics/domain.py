"""The counting rules, as pure functions: no Kafka, no I/O.

State is kept per Kafka key (a person reference, `anon:<event id>` for anonymous help or detection, or an entity
id): every fact seen for that key, by event id. Each key's contribution to the counters is a function of its
state alone, so duplicates, retractions and late events are handled by recomputing one key's
contribution, and the counters are the sum of all contributions (rebuildable from the state, or from
the log, and always identical).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared import events as ev
from shared import french, geo

__all__ = [
    "State",
    "Cell",
    "fact_of",
    "apply",
    "compact",
    "contributions",
    "Counters",
    "Ledger",
    "DIMENSIONS",
    "INDICATORS",
    "partner_scope",
]

# A key's state: [{event_id: fact}, (retracted event ids)] — small in memory, JSON-friendly for changelogs.
State = list[Any]
# A counter cell: (indicator, year, dimension, value); dimension "" is the national total.
Cell = tuple[str, int, str, str]

INDICATORS: dict[str, str] = french.INDICATORS
DIMENSIONS = ("departement", "region", "qpv", "rural", "channel", "theme", "commitment", "partnership_type", "partner")

# Fact layouts (lists, to keep the per-person state small in memory and in the changelog).
# help:        ["h", kind, epoch_s, year, dims]      kind: "w" attended, "a" accompaniment
# detection:   ["d", epoch_s, year, dims]          tag "da": anonymous (no person reference)
# dated facts: [tag, iso date, year, dims]          tag: "ps" signed, "pe" ended, "ma" mission completed,
#                                                   "ad" adviser deployed, "vo" venue opened


FUNNEL_DAYS = 90
FUNNEL_DIMENSIONS = ("departement", "office_type")


def civil_year(moment: datetime, tz: str) -> int:
    return moment.astimezone(ZoneInfo(tz)).year


def week_of_year(day: date) -> str:
    """Week number within the civil year ("01".."53"): day 1-7 is week 01, whatever weekday 1 January is."""
    return f"{(day.timetuple().tm_yday - 1) // 7 + 1:02d}"


def _local_week(moment: datetime, tz: str) -> str:
    return week_of_year(moment.astimezone(ZoneInfo(tz)).date())


def _month(day: date) -> str:
    return f"{day.month:02d}"


def _help_dims(d: ev.HelpFacts, theme: str | None, moment: datetime) -> dict[str, str]:
    local = moment.astimezone(ZoneInfo(d.timezone)).date()
    dims = {
        "week": week_of_year(local),
        "month": _month(local),
        "departement": d.departement,
        "region": d.region,
        "qpv": str(d.qpv).lower(),
        "rural": str(d.rural).lower(),
        "channel": d.channel.value,
        "commitment": d.commitment.value,
    }
    if d.partner_id:
        dims["partner"] = d.partner_id
    if theme:
        dims["theme"] = theme
    return dims


def fact_of(event: ev.Envelope) -> list[Any] | None:
    """The compact fact an event contributes to its key's state (None for events that count nothing)."""
    d = event.data
    ts = event.time.timestamp()
    if isinstance(d, ev.WorkshopAttended):
        return ["h", "w", ts, civil_year(event.time, d.timezone), _help_dims(d, d.theme.value, event.time)]
    if isinstance(d, ev.AccompanimentCompleted):
        return ["h", "a", ts, civil_year(event.time, d.timezone), _help_dims(d, d.need.value, event.time)]
    dims: dict[str, Any]
    if isinstance(d, ev.IllectronismDetected):
        dims = {
            "week": _local_week(event.time, d.timezone),
            "departement": d.departement,
            "region": d.region,
            "qpv": str(d.qpv).lower(),
            "rural": str(d.rural).lower(),
            "office_type": _office_type(d),
            "referred": str(d.referral is not None).lower(),
        }
        # An anonymous detection is a detection, not a person detected: nobody to follow down the funnel.
        return ["d" if d.person_ref else "da", ts, civil_year(event.time, d.timezone), dims]
    if isinstance(d, ev.PartnershipSigned):
        dims = {
            "partnership_type": d.partnership_type.value,
            "partner": d.partner_id,
            "commitments": [c.value for c in d.commitments],
            "departements": list(d.departements),
        }
        return _dated("ps", d.signed_on, dims)
    if isinstance(d, ev.PartnershipEnded):
        return _dated("pe", d.ended_on, {})
    if isinstance(d, ev.SkillsMissionCompleted):
        return _dated(
            "ma",
            d.completed_on,
            {"departement": d.departement, "commitment": d.commitment.value, "partner": d.partner_id},
        )
    if isinstance(d, ev.AdviserDeployed):
        return _dated("ad", d.deployed_on, {"departement": d.departement})
    if isinstance(d, ev.VenueOpened) and d.newly_equipped:
        return _dated("vo", d.opened_on, {"departement": d.departement, "region": d.region})
    return None


# Many people share the same dimensions (département, week, channel, theme …): one dict object serves them
# all, and one int object per year, which keeps a million people's state well under a gigabyte. Facts are
# tuples, never mutated after creation; a key with no retraction shares one empty tuple.
_DIMS: dict[tuple[Any, ...], dict[str, Any]] = {}
_INTS: dict[int, int] = {}
_NO_RETRACTIONS: tuple[str, ...] = ()


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _shared(fact: Sequence[Any]) -> tuple[Any, ...]:
    *head, dims = fact
    signature = tuple((k, _freeze(v)) for k, v in dims.items())
    shared_dims = _DIMS.setdefault(signature, dims)
    return (*(_INTS.setdefault(x, x) if type(x) is int else x for x in head), shared_dims)


def compact(state: State) -> State:
    """The same state with shared parts (for states read back from a changelog, as JSON lists)."""
    facts = state[0]
    for eid, fact in facts.items():
        facts[eid] = _shared(fact)
    if isinstance(state, list) and not state[1]:
        state[1] = _NO_RETRACTIONS
    return state


def _dated(tag: str, day: date, dims: dict[str, Any]) -> list[Any]:
    return [tag, day.isoformat(), day.year, {"week": week_of_year(day), "month": _month(day), **dims}]


def _office_type(d: ev.IllectronismDetected) -> str:
    if d.france_services:
        return "france_services"
    if d.qpv:
        return "qpv"
    return "rural" if d.rural else "standard"


def apply(state: State | None, event: ev.Envelope) -> State | None:
    """The key's new state after this event, or None when the event changes nothing (e.g. a duplicate)."""
    eid = str(event.id)
    facts: dict[str, Any] = state[0] if state else {}
    retracted: Sequence[str] = state[1] if state else _NO_RETRACTIONS
    if event.type in ev.RETRACTION_TYPES:
        target = str(event.data.retracted_event_id)  # type: ignore[attr-defined]
        if target in retracted:
            return None
        return [facts, (*retracted, target)]
    if eid in facts:
        return None
    fact = fact_of(event)
    if fact is None:
        return None
    return [{**facts, eid: _shared(fact)}, retracted]


PARTNER_SCOPE = "partner="


def partner_scope(partner_id: str) -> str:
    """The dimension of one partner's cells by month ("partner=<id>", like the funnel's scoped delays)."""
    return PARTNER_SCOPE + partner_id


def _cells(indicator: str, year: int, dims: Mapping[str, Any]) -> Iterable[Cell]:
    yield (indicator, year, "", "")
    for name, value in dims.items():
        if name == "month":  # months are counted per partner only (a partner's own figures), not nationally
            if "partner" in dims:
                yield (indicator, year, PARTNER_SCOPE + dims["partner"], value)
        elif name in ("commitments", "departements"):
            single = name[:-1]
            for item in value:
                yield (indicator, year, single, item)
        else:
            yield (indicator, year, name, value)


def _with_month(dims: dict[str, Any], year: int, ts: float | None = None, day: str | None = None) -> dict[str, Any]:
    """A fact stored before facts carried their month: its month from the date, or from the event time in the
    département's time zone (the zone the registry gives its venues), kept within the fact's year."""
    if "partner" not in dims:
        return dims
    if day is not None:
        return {**dims, "month": day[5:7]}
    if ts is None or "departement" not in dims:
        return dims
    local = datetime.fromtimestamp(ts, geo.timezone_of(dims["departement"]))
    month = local.month if local.year == year else (1 if local.year > year else 12)
    return {**dims, "month": f"{month:02d}"}


def contributions(state: State | None) -> Counter[Cell]:
    """What one key adds to the counters, given everything known about it."""
    out: Counter[Cell] = Counter()
    if not state:
        return out
    retracted = set(state[1])
    live = [(eid, f) for eid, f in state[0].items() if eid not in retracted]
    # First help of the year by event time (ties broken by id, so the result never depends on arrival).
    first_help: dict[int, tuple[float, str, dict[str, Any]]] = {}
    first_fs: dict[int, tuple[float, str, dict[str, Any]]] = {}
    first_detection: dict[int, tuple[float, str, dict[str, Any]]] = {}
    referred_years: set[int] = set()
    help_times: list[float] = []
    for eid, fact in live:
        tag = fact[0]
        if tag == "h":
            _, kind, ts, year, dims = fact
            if "month" not in dims:
                dims = _with_month(dims, year, ts=ts)
            out.update(_cells("workshop_attendances" if kind == "w" else "accompaniments", year, dims))
            _keep_first(first_help, year, (ts, eid, dims))
            help_times.append(ts)
            if kind == "a" and dims["channel"] == ev.Channel.FRANCE_SERVICES.value:
                _keep_first(first_fs, year, (ts, eid, dims))
        elif tag == "d":
            _, ts, year, dims = fact
            out.update(_cells("detections", year, dims))
            _keep_first(first_detection, year, (ts, eid, dims))
            if dims["referred"] == "true":
                referred_years.add(year)
        elif tag == "da":
            _, _, year, dims = fact
            out.update(_cells("detections", year, dims))
        elif tag in _DATED:
            _, day, year, dims = fact
            if "month" not in dims:
                dims = _with_month(dims, year, day=day)
            indicator = _DATED[tag]
            if indicator:
                out.update(_cells(indicator, year, dims))
    for indicator, firsts in (
        ("people_helped", first_help),
        ("france_services_clients", first_fs),
        ("people_detected", first_detection),
    ):
        for year, (_, _, dims) in firsts.items():
            out.update(_cells(indicator, year, dims))
    _funnel(out, first_detection, referred_years, help_times)
    return out


def _funnel(
    out: Counter[Cell],
    first_detection: dict[int, tuple[float, str, dict[str, Any]]],
    referred_years: set[int],
    help_times: list[float],
) -> None:
    """Detected in Y → referred → helped within FUNNEL_DAYS of the first detection of Y (by event time).

    Delays are kept as a histogram of whole days, so the median is exact and still additive.
    """
    window = FUNNEL_DAYS * 86400
    for year, (ts, _, dims) in first_detection.items():
        scoped = {name: dims[name] for name in FUNNEL_DIMENSIONS}
        out.update(_cells("funnel_detected", year, scoped))
        if year in referred_years:
            out.update(_cells("funnel_referred", year, scoped))
        delays = [h - ts for h in help_times if 0 <= h - ts <= window]
        if delays:
            out.update(_cells("funnel_helped", year, scoped))
            days = str(int(min(delays) // 86400))
            out[("funnel_delay_days", year, "", days)] += 1
            for name, value in scoped.items():
                out[("funnel_delay_days", year, f"{name}={value}", days)] += 1


_DATED = {
    "ps": "new_partnerships",
    "pe": None,
    "ma": "skills_missions",
    "ad": "advisers_deployed",
    "vo": "venues_opened",
}


def _keep_first(
    firsts: dict[int, tuple[float, str, dict[str, Any]]], year: int, candidate: tuple[float, str, dict[str, Any]]
) -> None:
    current = firsts.get(year)
    if current is None or candidate[:2] < current[:2]:
        firsts[year] = candidate


def partnership_span(state: State | None) -> tuple[str, str | None] | None:
    """(signed on, ended on) for a partnership key, None if it was never signed."""
    if not state:
        return None
    signed = ended = None
    for fact in state[0].values():
        if fact[0] == "ps":
            signed = fact[1] if signed is None else min(signed, fact[1])
        elif fact[0] == "pe":
            ended = fact[1] if ended is None else min(ended, fact[1])
    return (signed, ended) if signed else None


ANONYMOUS_PREFIX = "anon:"  # shared.events.Envelope.key of an event with no person reference


def _as_anonymous(cells: Counter[Cell]) -> Counter[Cell]:
    return Counter({("anonymous_help", *cell[1:]): n for cell, n in cells.items() if cell[0] == "people_helped"})


class Counters:
    """The sum of every key's contribution, kept up to date one key at a time."""

    def __init__(self) -> None:
        self.cells: Counter[Cell] = Counter()
        self.partnerships: dict[str, tuple[str, str | None]] = {}
        self.version = 0

    def replace(self, key: str, old: State | None, new: State | None) -> None:
        gained, lost = contributions(new), contributions(old)
        if key.startswith(ANONYMOUS_PREFIX):
            # Each anonymous help event is one person helped (its own key): the same cells, under their own name.
            gained.update(_as_anonymous(gained))
            lost.update(_as_anonymous(lost))
        self.cells.update(gained)
        self.cells.subtract(lost)
        self.touched(gained, lost)
        span = partnership_span(new)
        if span and self.partnerships.get(key) != span:
            self.partnerships[key] = span
            self.spans_changed()
        self.version += 1

    def touched(self, *changes: Iterable[Cell]) -> None:
        """Called with the cells a change touched, gained and lost (the per-partition counters remember them)."""

    def spans_changed(self) -> None:
        """Called when a partnership's span changed."""

    def rebuild(self, states: Iterable[tuple[str, State]]) -> None:
        self.cells = Counter()
        self.partnerships = {}
        for key, state in states:
            self.replace(key, None, state)

    def value(self, indicator: str, year: int, dimension: str = "", dim_value: str = "") -> int:
        return self.cells.get((indicator, year, dimension, dim_value), 0)

    def active_partnerships(self, on: date) -> int:
        day = on.isoformat()
        return sum(
            1 for signed, ended in self.partnerships.values() if signed <= day and (ended is None or ended > day)
        )

    def breakdown(self, indicator: str, year: int, dimension: str) -> dict[str, int]:
        return {v: n for (i, y, d, v), n in self.cells.items() if i == indicator and y == year and d == dimension and n}

    def snapshot(self) -> dict[str, Any]:
        """Every non-zero cell, in a stable form (used to compare live state with a replay)."""
        cells: dict[str, Any] = {"|".join(map(str, c)): n for c, n in sorted(self.cells.items()) if n}
        spans = {f"partnership|{k}": f"{s}/{e or ''}" for k, (s, e) in sorted(self.partnerships.items())}
        return cells | spans


class Ledger:
    """Every key's state, with the counters derived from it, kept in step one event at a time.

    `states` is a plain dict for the replay and the tests, the worker's changelogged Faust table in the worker.
    """

    def __init__(self, states: MutableMapping[str, State] | None = None) -> None:
        self.states: MutableMapping[str, State] = {} if states is None else states
        self.counters = Counters()

    def add(self, event: ev.Envelope) -> bool:
        """Apply one event; False when it changed nothing (a duplicate, an event that counts nothing)."""
        old = self.states.get(event.key)
        new = apply(old, event)
        if new is None:
            return False
        self.states[event.key] = new
        self.counters.replace(event.key, old, new)
        return True
