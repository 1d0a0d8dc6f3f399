"""The direct Kafka door: raw terminal records on the ingest topic, checked and enriched exactly like HTTP ones.

A record is `{"v": 1, "terminal_id", "office_id", "detection": {...}}` signed in the `terminal-signature`
header (shared/terminal_sdk.py). Refused records go to the dead-letter topic with the reason, the client
reference blanked out first (see `redact`; the dead-letter topic keeps records for weeks). Offsets are committed
only once the batch is published or stored for the relay (at-least-once; the detection keys make it exactly-once in
effect).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from services.detection import handlers
from services.detection.auth import Terminal, TerminalRefused, terminal_for_record
from services.detection.handlers import Rules
from services.detection.journal import Journal
from services.detection.store import Store
from shared.kafka import Publisher, dead_letter_value
from shared.limits import json_problem
from shared.terminal_sdk import INGEST_VERSION, SIGNATURE_HEADER
from shared.topics import DEAD_LETTER

__all__ = ["IngestConsumer", "redact"]

log = logging.getLogger(__name__)
REDACTED = "[redacted]"
WITHHELD = b'{"unreadable": "not JSON, withheld: it may hold a client reference"}'


class TooComplex(ValueError):
    pass


def _loads(value: bytes) -> Any:
    """The record's JSON, or ValueError: past the request limits' nesting or number length (a parser would
    recurse or crawl on those), or not JSON at all."""
    problem = json_problem(value)
    if problem:
        raise TooComplex(problem)
    return json.loads(value)  # UnicodeDecodeError and JSONDecodeError are ValueErrors


def _is_client_reference(key: str) -> bool:
    return key.casefold().replace("-", "_") == "client_reference"


def redact(value: bytes | None) -> bytes | None:
    """The record as kept in the dead letter (kept for weeks): parsed first, every `client_reference` member at
    any depth blanked out — however its key was escaped in the text —, the same bytes when it has none, and
    withheld whole when it cannot be parsed (it may hold a client reference in any shape)."""
    if value is None:
        return None
    try:
        doc = _loads(value)
    except (ValueError, RecursionError):
        return WITHHELD
    found = False

    def scrub(node: Any) -> Any:
        nonlocal found
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if _is_client_reference(k):
                    found = True
                    out[k] = REDACTED
                else:
                    out[k] = scrub(v)
            return out
        if isinstance(node, list):
            return [scrub(v) for v in node]
        return node

    scrubbed = scrub(doc)
    return json.dumps(scrubbed).encode() if found else value


class Refused(Exception):
    pass


def _parse(record: ConsumerRecord) -> tuple[dict[str, Any], str]:
    try:
        doc = _loads(record.value) if record.value is not None else None
    except TooComplex as exc:
        raise Refused(f"not acceptable JSON: {exc}") from None
    except ValueError as exc:  # the reason's class only: a parser's message may quote the record
        raise Refused(f"not JSON: {exc.__class__.__name__}") from None
    if not isinstance(doc, dict):
        raise Refused("a record must be a JSON object")
    if doc.get("v") != INGEST_VERSION:
        raise Refused(f"unsupported record version {doc.get('v')!r} (expected {INGEST_VERSION})")
    extra = set(doc) - {"v", "terminal_id", "office_id", "detection"}
    if extra:
        raise Refused(f"unknown fields {sorted(extra)}")
    if not all(isinstance(doc.get(k), str) for k in ("terminal_id", "office_id")):
        raise Refused("terminal_id and office_id are required strings")
    if not isinstance(doc.get("detection"), dict):
        raise Refused("detection must be an object")
    signature = dict(record.headers or ()).get(SIGNATURE_HEADER)
    if not signature:
        raise Refused(f"missing {SIGNATURE_HEADER} header")
    return doc, signature.decode("ascii", "replace")


class IngestConsumer:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        *,
        store: Store,
        journal: Journal,
        publisher: Publisher,
        rules: Rules,
    ) -> None:
        self.bootstrap, self.topic, self.group_id = bootstrap, topic, group_id
        self.store, self.journal, self.publisher, self.rules = store, journal, publisher, rules
        self.dead_lettered = 0

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        log.warning("dead-lettering ingest record", extra={"offset": record.offset, "reason": reason})
        value = dead_letter_value(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=redact(record.value),
            reason=reason,
            consumer=self.group_id,
        )
        await self.publisher.send_raw(DEAD_LETTER.name, value, record.key)
        self.dead_lettered += 1

    async def process(self, records: list[ConsumerRecord]) -> None:
        groups: dict[str, tuple[Terminal, list[tuple[ConsumerRecord, dict]]]] = {}
        by_terminal: dict[str, list] = defaultdict(list)
        for record in records:
            try:
                doc, signature = _parse(record)
                terminal = await terminal_for_record(
                    self.store, doc["terminal_id"], doc["office_id"], record.value, signature
                )
            except (Refused, TerminalRefused) as exc:
                await self._dead_letter(record, str(exc))
                continue
            by_terminal[terminal.terminal_id].append((record, doc["detection"]))
            groups[terminal.terminal_id] = (terminal, by_terminal[terminal.terminal_id])
        for terminal, items in groups.values():
            report = await handlers.submit(
                [d for _, d in items],
                terminal.office,
                terminal.terminal_id,
                journal=self.journal,
                publisher=self.publisher,
                rules=self.rules,
                path="kafka",
            )
            for (record, _), result in zip(items, report.results, strict=True):
                if result.status == "rejected":
                    await self._dead_letter(record, result.reason or "rejected")

    async def run(self) -> None:
        """Consume until cancelled; a failure (database away…) restarts from the last committed offsets."""
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=500,
            )
            try:
                await consumer.start()
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                    for records in batches.values():
                        await self.process(records)
                    if batches:
                        await consumer.commit()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the door open; uncommitted records are read again
                log.exception("ingest consumer failed; restarting from the committed offsets")
                await asyncio.sleep(2)
            finally:
                await consumer.stop()
