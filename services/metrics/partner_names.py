"""Partner names for the read models: the partners service owns them, the metrics API keeps a copy to show.

Events and counters know partners by id only; a person reading the dashboard needs names. The copy is read from
the partners API (`GET /v1/partners`, page by page) with a short-lived read-only platform token, again when it is
ten minutes old or when an id it has never seen turns up, in the background. A reader waits for it only on the
first load (at most a moment). When the partners service does not answer, the last copy stays; an id the
registry does not know has no name, and the pages say so rather than print the id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta

import httpx
from pydantic import Field

from shared.identity import Principal, Role, issue_token
from shared.settings import CommonSettings

__all__ = ["PartnerDirectory", "PartnerDirectorySettings"]

log = logging.getLogger(__name__)


class PartnerDirectorySettings(CommonSettings):
    partners_url: str = Field("http://127.0.0.1:8001", alias="METRICS_PARTNERS_URL")


class PartnerDirectory:
    def __init__(
        self,
        url: str,
        token_key: str,
        *,
        max_age: float = 600.0,
        retry_after: float = 30.0,
        first_wait: float = 2.0,
        page_size: int = 500,
        timeout: float = 30.0,  # a page of the registry takes seconds on FerretDB (a scan): slow is not away
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, self._key = url.rstrip("/"), token_key
        self.max_age, self.retry_after, self.first_wait, self.page_size = max_age, retry_after, first_wait, page_size
        self.timeout, self._transport = timeout, transport
        self._names: dict[str, str] = {}
        self._absent: set[str] = set()  # asked for, and not in the registry at the last reading
        self._loaded_at: float | None = None
        self._tried_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: PartnerDirectorySettings | None = None) -> PartnerDirectory:
        settings = settings or PartnerDirectorySettings()
        return cls(settings.partners_url, settings.platform_token_key)

    def names(self) -> Mapping[str, str]:
        return self._names

    async def lookup(self, ids: Iterable[str]) -> Mapping[str, str]:
        """Every name known (a read-only view); reads the registry again when the copy is old or misses one of
        `ids`, at most once every `retry_after` seconds, and waits for that reading only on the first load."""
        unknown = {i for i in ids if i not in self._names and i not in self._absent}
        now = time.monotonic()
        due = self._loaded_at is None or now - self._loaded_at >= self.max_age or bool(unknown)
        idle = self._task is None or self._task.done()
        if due and idle and now - self._tried_at >= self.retry_after:
            self._tried_at = now
            self._task = asyncio.create_task(self._read(unknown))
        if self._loaded_at is None and self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), self.first_wait)
        return self._names

    async def _read(self, asked: set[str]) -> None:
        try:
            names = await self._fetch()
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the last copy stays and we say why
            log.warning("partner names not refreshed", extra={"url": self.url, "error": repr(exc)})
            return
        self._names = names
        self._absent = (self._absent | asked) - names.keys()
        self._loaded_at = time.monotonic()

    async def _fetch(self) -> dict[str, str]:
        token = issue_token(Principal("metrics-read-models", Role.MONITORING), self._key, ttl=timedelta(minutes=5))
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        names: dict[str, str] = {}
        async with httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=self.timeout, transport=self._transport
        ) as client:
            page = 1
            while True:
                r = await client.get("/v1/partners", params={"page": page, "page_size": self.page_size})
                r.raise_for_status()
                body = r.json()
                names.update({str(p["id"]): str(p["name"]) for p in body["items"]})
                if not body["items"] or page * self.page_size >= int(body["total"]):
                    return names
                page += 1
