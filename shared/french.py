"""French words the services show people, in one place (the metrics API's labels, the portal's dates)."""

from __future__ import annotations

__all__ = ["MONTHS"]

MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
