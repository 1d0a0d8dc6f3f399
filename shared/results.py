"""What a command did, in one vocabulary for every service's handlers (routes turn it into HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Outcome", "Result"]

# created: the record's first version was written; changed: a later version was written; duplicate: it was
# already so (a retry, or the same command twice), nothing new was written or published.
Outcome = Literal["created", "changed", "duplicate"]


@dataclass(frozen=True)
class Result:
    """The outcome, the record now stored (as its head shows it) and the events of that change."""

    outcome: Outcome
    id: str  # the record the command is about
    record: dict[str, Any]
    event_ids: tuple[str, ...] = ()
    published: bool = True  # False: stored, its events wait in the outbox for the relay (Kafka away, bulk load)

    @property
    def created(self) -> bool:
        return self.outcome == "created"
