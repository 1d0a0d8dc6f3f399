"""Where the partners context keeps its state: one database, four collections, two outboxes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.kafka import Publisher, PublishError
from shared.outbox import Outbox

__all__ = ["Store", "FAULT_EXIT_CODE"]

FAULT_EXIT_CODE = 86


@dataclass
class Store:
    """The database and the outboxes of the documents that carry events (partnerships, missions)."""

    db: AsyncDatabase
    partnerships: Outbox
    missions: Outbox
    fault_exit_before_publish: bool = False

    @classmethod
    def open(cls, db: AsyncDatabase, publisher: Publisher, *, fault_exit_before_publish: bool = False) -> Store:
        return cls(
            db, Outbox(db["partnerships"], publisher), Outbox(db["missions"], publisher), fault_exit_before_publish
        )

    @property
    def partners(self) -> Any:
        return self.db["partners"]

    @property
    def users(self) -> Any:
        return self.db["users"]

    async def ensure_indexes(self) -> None:
        await self.partnerships.ensure_indexes()
        await self.missions.ensure_indexes()
        await self.partners.create_index("legal_id", unique=True)
        await self.partners.create_index("departements")
        await self.users.create_index("username", unique=True)
        for name in ("partner_id", "status", "signed_year", "partnership_type", "departements"):
            await self.partnerships.collection.create_index(name)
        await self.missions.collection.create_index("partner_id")

    async def publish(self, outbox: Outbox, doc_id: str) -> bool:
        """Publish what the write just queued; False if Kafka did not answer (the relay sends it later)."""
        if self.fault_exit_before_publish:
            # Test-only fault: the write is done, the publish never happens. os._exit skips every cleanup,
            # like a killed process.
            os._exit(FAULT_EXIT_CODE)
        try:
            await outbox.flush(doc_id)
        except PublishError:
            return False
        return True
