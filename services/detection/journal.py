"""Group commit: concurrent submissions share one outbox document and one insert of their keys.

On the MongoDB-protocol server every write command costs a durable commit, whatever its size, so the number
of commands, not of detections, bounds throughput. One writer task takes everything queued while the previous
group was being written and writes it with two commands; each submission then publishes its own events and
says so; a cleaner deletes the outbox documents whose events are all acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Histogram

from services.detection.domain import Checked
from services.detection.store import Store

__all__ = ["Journal"]

log = logging.getLogger(__name__)
GROUP_SECONDS = Histogram("detection_group_write_seconds", "Time to write one group (outbox + keys)")
GROUP_ITEMS = Histogram(
    "detection_group_items", "Items per group", buckets=(1, 2, 5, 10, 50, 100, 200, 500, 1000, 5000)
)
ORPHANED = 1 << 40  # a group some submitter never finishes: never cleared here, the relay publishes it


@dataclass(slots=True)
class _Waiting:
    checked: list[Checked]
    terminal_id: str
    future: asyncio.Future[tuple[str, set[int]]]


class Journal:
    def __init__(self, store: Store, *, max_group: int = 5000, writers: int = 1, clean_interval_s: float = 0.2) -> None:
        self.store = store
        self.max_group = max_group
        self.writers = writers  # more than one: no gain measured (the server commits one write at a time)
        self.clean_interval_s = clean_interval_s
        self._queue: deque[_Waiting] = deque()
        self._wakeup = asyncio.Event()
        self._outstanding: dict[str, int] = {}
        self._finished: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.groups = 0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_forever()) for _ in range(self.writers)]
        self._tasks.append(asyncio.create_task(self._clean_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._clean()

    async def record(self, checked: list[Checked], terminal_id: str) -> tuple[str, set[int]]:
        """Write these items' outbox entries and keys (in some group); returns (group id, duplicate indexes)."""
        future: asyncio.Future[tuple[str, set[int]]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(checked, terminal_id, future))
        self._wakeup.set()
        return await future

    def done(self, group_id: str) -> None:
        """This submission's events are acknowledged; the group's outbox goes once all of them are."""
        left = self._outstanding.get(group_id, 1) - 1
        if left <= 0:
            self._outstanding.pop(group_id, None)
            self._finished.append(group_id)
        else:
            self._outstanding[group_id] = left

    def _take(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        size = 0
        while self._queue and (not group or size + len(self._queue[0].checked) <= self.max_group):
            waiting = self._queue.popleft()
            group.append(waiting)
            size += len(waiting.checked)
        return group

    async def _write_forever(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            while self._queue:
                group = self._take()
                checked = [c for w in group for c in w.checked]
                terminals = [w.terminal_id for w in group for _ in w.checked]
                GROUP_ITEMS.observe(len(checked))
                try:
                    with GROUP_SECONDS.time():
                        group_id, duplicates = await self.store.write_group(checked, terminals, datetime.now(UTC))
                except Exception as exc:  # noqa: BLE001 - every waiting submission gets the error (→ 503)
                    for w in group:
                        if not w.future.done():
                            w.future.set_exception(exc)
                    continue
                self.groups += 1
                self._outstanding[group_id] = len(group)
                offset = 0
                for w in group:
                    mine = {i - offset for i in duplicates if offset <= i < offset + len(w.checked)}
                    offset += len(w.checked)
                    if not w.future.done():
                        w.future.set_result((group_id, mine))
                    else:  # the submitter went away: the group's outbox stays for the relay to publish
                        self._outstanding[group_id] = ORPHANED

    async def _clean(self) -> None:
        if self._finished:
            finished, self._finished = self._finished, []
            try:
                await self.store.forget(finished)
            except Exception:  # noqa: BLE001 - left for the relay, which republishes with the same ids
                log.exception("could not clear published outbox groups")

    async def _clean_forever(self) -> None:
        while True:
            await asyncio.sleep(self.clean_interval_s)
            await self._clean()
