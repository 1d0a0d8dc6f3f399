"""The metrics service's running parts, built once in main.py and reached by the routes."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from pymongo import AsyncMongoClient

from services.metrics.domain import Counters
from services.metrics.goals import Goal, GoalBook
from services.metrics.partials import PartialsView
from services.metrics.settings import MetricsSettings
from shared.aggregates import Aggregates, Change
from shared.docstore import DuplicateKey, MongoDocuments
from shared.outbox import Outbox

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: MetricsSettings
    view: PartialsView  # the workers' partials, summed
    goals: GoalBook
    mongo: AsyncMongoClient
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def counters(self) -> Counters:
        return self.view.counters

    def notify(self) -> None:
        self._changed.set()

    async def wait_for_change(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)
        self._changed.clear()

    def __post_init__(self) -> None:
        docs = MongoDocuments(self.mongo[self.settings.mongodb_database])
        # Each change of a goal is a version (who may audit it later); goals produce no events.
        self._saved = Aggregates(docs, "goals", Outbox(docs, None))
        self.docs = docs

    async def load_saved_goals(self) -> None:
        """Goals changed through the API outlive restarts; they override the file's."""
        for head in await self._saved.find({}):
            self.goals.put(Goal(**{k: head[k] for k in Goal.model_fields if k in head}))

    async def save_goal(self, goal: Goal) -> None:
        key = f"{goal.indicator}|{goal.year}|{goal.territory or ''}"
        state = goal.model_dump()
        try:
            await self._saved.create(key, Change(state))
        except DuplicateKey:
            await self._saved.change(key, lambda v: None if v.state == state else Change(state), what="goal")
        self.goals.put(goal)
        self.notify()
