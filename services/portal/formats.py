"""French formats: `2 décembre 2026`, `14 h 30`, `1 234,5` (the templates' filters)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.french import MONTHS

__all__ = ["MONTHS", "as_date", "french_date", "french_time", "french_datetime", "french_number", "FILTERS"]

NNBSP = "\u202f"  # the narrow no-break space French puts between thousands


def as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def french_date(value: Any) -> str:
    day = as_date(value)
    if day is None:
        return "—"
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number} {MONTHS[day.month - 1]} {day.year}"


def _aware(value: Any, tz: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:  # the APIs store UTC; a time without its offset is UTC
        when = when.replace(tzinfo=UTC)
    return when.astimezone(ZoneInfo(tz)) if tz else when


def french_time(value: Any, tz: str | None = None) -> str:
    when = _aware(value, tz)
    return "—" if when is None else f"{when.hour} h {when.minute:02d}"


def french_datetime(value: Any, tz: str | None = None) -> str:
    when = _aware(value, tz)
    return "—" if when is None else f"{french_date(when)} à {french_time(when)}"


def french_number(value: Any, decimals: int = 0) -> str:
    if value is None or value == "":
        return "—"
    number = float(value)
    text = f"{number:,.{decimals}f}" if decimals else f"{round(number):,}"
    return text.replace(",", NNBSP).replace(".", ",")


FILTERS = {
    "date_fr": french_date,
    "time_fr": french_time,
    "datetime_fr": french_datetime,
    "number_fr": french_number,
}
