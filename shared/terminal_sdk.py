"""Counter-terminal SDK: terminal tokens, the ingest record format, and a synchronous Kafka producer + CLI.

A terminal token is `<terminal_id>.<secret>`; the platform stores only sha256(secret). On the direct Kafka
path the secret never travels: each record carries `terminal-signature` = HMAC-SHA256 of the record value
under sha256(secret) (the stored hash), so the service verifies it without knowing the secret.

    python -m shared.terminal_sdk --token T --office O detect --need online_banking --client-reference REF
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import sys
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "TOKEN_SEPARATOR",
    "SIGNATURE_HEADER",
    "INGEST_VERSION",
    "DETECTION_NS",
    "detection_event_id",
    "new_token",
    "split_token",
    "token_hash",
    "sign",
    "verify_signature",
    "ingest_record",
    "TerminalProducer",
]

TOKEN_SEPARATOR = "."
SIGNATURE_HEADER = "terminal-signature"
INGEST_VERSION = 1
# Namespace of detection event ids: the same detection (office, client id) always gets the same event id,
# whichever path it came through and however often it is retried.
DETECTION_NS = uuid.UUID("3b0f7a52-5d0e-4c55-8f5a-2d9c6e1b7a10")


def detection_event_id(office_id: str, detection_id: str) -> uuid.UUID:
    return uuid.uuid5(DETECTION_NS, f"{office_id}/{detection_id}")


def token_hash(secret: str) -> str:
    """What the platform stores: the secret has 256 bits of entropy, so a plain sha256 is enough."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token(terminal_id: str) -> tuple[str, str]:
    """A fresh token for a terminal and the hash to store: (token shown once, stored hash)."""
    secret = secrets.token_urlsafe(32)
    return f"{terminal_id}{TOKEN_SEPARATOR}{secret}", token_hash(secret)


def split_token(token: str) -> tuple[str, str]:
    """(terminal_id, secret); ValueError if it does not look like a terminal token."""
    terminal_id, sep, secret = token.partition(TOKEN_SEPARATOR)
    if not sep or not terminal_id or len(secret) < 16:
        raise ValueError("not a terminal token")
    return terminal_id, secret


def sign(value: bytes, stored_hash: str) -> str:
    return hmac.new(stored_hash.encode("ascii"), value, hashlib.sha256).hexdigest()


def verify_signature(value: bytes, signature: str, stored_hash: str) -> bool:
    return hmac.compare_digest(sign(value, stored_hash), signature)


def ingest_record(terminal_id: str, office_id: str, detection: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) of one raw detection on the ingest topic."""
    doc = {"v": INGEST_VERSION, "terminal_id": terminal_id, "office_id": office_id, "detection": dict(detection)}
    key = f"{office_id}/{detection.get('detection_id', '')}".encode()
    return key, json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8")


class TerminalProducer:
    """Publishes a terminal's raw detections to the ingest topic (kafka-python, acks=all, idempotent)."""

    def __init__(
        self,
        bootstrap: str,
        token: str,
        office_id: str,
        *,
        topic: str = "detection.ingest",
        shared_producer: Any = None,
        **producer: Any,
    ) -> None:
        """`shared_producer`: a KafkaProducer several terminals share (a gateway); it is not closed here."""
        from kafka import KafkaProducer

        self.terminal_id, secret = split_token(token)
        self.office_id = office_id
        self.topic = topic
        self._key = token_hash(secret)
        self._owned = shared_producer is None
        self._producer = shared_producer or KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, **producer
        )

    def send(self, detection: Mapping[str, Any]) -> Any:
        """Queue one detection; returns the kafka-python future (`.get()` waits for the acknowledgement)."""
        key, value = ingest_record(self.terminal_id, self.office_id, detection)
        headers = [(SIGNATURE_HEADER, sign(value, self._key).encode("ascii"))]
        return self._producer.send(self.topic, key=key, value=value, headers=headers)

    def send_many(self, detections: Iterable[Mapping[str, Any]], timeout: float = 30.0) -> int:
        """Send all and wait until the broker has acknowledged every one; returns how many."""
        futures = [self.send(d) for d in detections]
        self._producer.flush(timeout)
        for f in futures:
            f.get(timeout=timeout)
        return len(futures)

    def close(self) -> None:
        if self._owned:
            self._producer.close()

    def __enter__(self) -> TerminalProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.terminal_sdk", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="detection.ingest")
    parser.add_argument("--token", required=True, help="the terminal token given at registration")
    parser.add_argument("--office", required=True, help="the terminal's office id")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("detect", help="publish one detection")
    one.add_argument("--detection-id", default=None, help="the terminal's id for it (default: a new UUID)")
    one.add_argument("--need", action="append", required=True)
    one.add_argument("--client-reference", required=True)
    one.add_argument("--no-consent", action="store_true")
    one.add_argument("--occurred-at", default=None, help="ISO 8601 with offset (default: now)")
    many = sub.add_parser("upload", help="publish a backlog: a JSON-lines file of detections ('-' for stdin)")
    many.add_argument("file")
    args = parser.parse_args(argv)
    with TerminalProducer(args.bootstrap, args.token, args.office, topic=args.topic) as producer:
        if args.command == "detect":
            detection = {
                "detection_id": args.detection_id or str(uuid.uuid4()),
                "occurred_at": args.occurred_at or datetime.now(UTC).isoformat(),
                "needs": args.need,
                "client_reference": args.client_reference,
                "consent": not args.no_consent,
            }
            producer.send_many([detection])
            print(json.dumps({"published": 1, "detection_id": detection["detection_id"]}))
        else:
            fh = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
            with fh:
                count = producer.send_many(json.loads(line) for line in fh if line.strip())
            print(json.dumps({"published": count}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
