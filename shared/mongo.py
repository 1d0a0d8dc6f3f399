"""The MongoDB client factory (PyMongo's async API) and small helpers every store uses."""

from __future__ import annotations

from pymongo import AsyncMongoClient

__all__ = ["mongo_client", "ping"]


def mongo_client(uri: str, *, app_name: str) -> AsyncMongoClient:
    # Short timeouts: a service must answer "not ready" quickly rather than hang when the server is away.
    return AsyncMongoClient(uri, appname=app_name, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000, tz_aware=True)


async def ping(client: AsyncMongoClient) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        return False
    return True
