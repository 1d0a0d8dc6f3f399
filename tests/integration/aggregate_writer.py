"""A writer process for the crash test: concurrent changes of one aggregate, each queuing one event; prints
`ACK <event id>` once a change is stored (what a service would answer 2xx for)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pymongo import AsyncMongoClient

from shared.aggregates import Aggregates, Change
from shared.docstore import MongoDocuments
from shared.kafka import Publisher
from shared.outbox import Outbox
from tests.integration.test_aggregates_store import counter_event


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--aggregate", required=True)
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    client = AsyncMongoClient(args.uri, tz_aware=True)
    publisher = Publisher(args.kafka, client_id="aggregate-writer")
    await publisher.start()
    docs = MongoDocuments(client[args.db])
    counters = Aggregates(docs, "counters", Outbox(docs, publisher, topic=args.topic))

    async def writer(i: int) -> None:
        j = 0
        while True:
            tag = f"{i}-{j}"

            def decide(version, tag=tag):
                return Change({"n": version.state["n"] + 1}, [counter_event(args.aggregate, tag)])

            version, _ = await counters.change(args.aggregate, decide, what="counter")
            sys.stdout.write(f"ACK {version.events[0].id}\n")
            sys.stdout.flush()
            j += 1

    print("READY", flush=True)
    await asyncio.gather(*(writer(i) for i in range(args.writers)))


if __name__ == "__main__":
    asyncio.run(main())
