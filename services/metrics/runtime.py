"""The metrics service's running parts, built once in main.py and reached by the routes."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from pymongo import AsyncMongoClient

from services.metrics.agents import MetricsWorker
from services.metrics.goals import Goal, GoalBook
from services.metrics.settings import MetricsSettings

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: MetricsSettings
    worker: MetricsWorker
    goals: GoalBook
    mongo: AsyncMongoClient
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self._changed.set()

    async def wait_for_change(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)
        self._changed.clear()

    @property
    def _goal_collection(self):  # type: ignore[no-untyped-def]
        return self.mongo[self.settings.mongodb_database]["goals"]

    async def load_saved_goals(self) -> None:
        """Goals changed through the API outlive restarts; they override the file's."""
        async for doc in self._goal_collection.find({}):
            doc.pop("_id", None)
            self.goals.put(Goal(**doc))

    async def save_goal(self, goal: Goal) -> None:
        key = f"{goal.indicator}|{goal.year}|{goal.territory or ''}"
        await self._goal_collection.replace_one({"_id": key}, {"_id": key, **goal.model_dump()}, upsert=True)
        self.goals.put(goal)
        self.notify()
