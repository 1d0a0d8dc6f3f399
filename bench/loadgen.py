"""Synthetic event streams for benchmarks: valid envelopes, made fast from one template per type."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from shared import geo
from shared.events import WorkshopAttended, new_event
from shared.serde import encode

__all__ = ["help_records", "fake_ref"]


def fake_ref(n: int, salt: str) -> str:
    """A person reference for synthetic person n (a hash of a made-up number, not of anyone's id)."""
    return hashlib.sha256(f"{salt}:{n}".encode()).hexdigest()


def help_records(
    count: int, *, year: int, people: int | None = None, salt: str = "bench", seed: int = 7
) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of `count` workshop.attended events in `year` for `people` distinct persons."""
    rng = random.Random(seed)
    people = people or count
    deps = [d for d in geo.departements().values()]
    template = json.loads(
        encode(
            new_event(
                WorkshopAttended(
                    attendance_id="x",
                    workshop_id="w-bench",
                    theme="online_banking",
                    venue_id="v-bench",
                    departement="75",
                    region="11",
                    timezone="Europe/Paris",
                    person_ref=fake_ref(0, salt),
                ),
                source="/bench",
                time=datetime(year, 1, 1, tzinfo=UTC),
            )
        )
    )
    start = datetime(year, 1, 2, tzinfo=UTC)
    span = 360 * 86400
    for i in range(count):
        person = i if i < people else rng.randrange(people)
        ref = fake_ref(person, salt)
        dep = deps[person % len(deps)]
        doc = dict(template)
        doc["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        doc["time"] = (start + timedelta(seconds=rng.randrange(span))).isoformat()
        doc["data"] = {
            **template["data"],
            "person_ref": ref,
            "attendance_id": f"b{i}",
            "departement": dep.code,
            "region": dep.region,
            "timezone": dep.timezone,
        }
        yield ref.encode(), json.dumps(doc, separators=(",", ":")).encode()
