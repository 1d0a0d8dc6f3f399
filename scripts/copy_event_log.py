"""Copy the event log to another cluster whose event topics have another partition count (README, "Partitions").

    python -m scripts.copy_event_log --source 127.0.0.1:9092 --target 127.0.0.1:19092 [--partitions 12]

Adding partitions to an existing event topic would send a person's new events to another partition than their old
ones. Instead, every record of the event topics is copied, key, value, timestamp and headers, to topics created
on the target with `--partitions` partitions; Kafka's default partitioner then places each key where every
producer will send it from now on. One person's records come from one source partition, read in order, and go to
one target partition, so their order is kept. Start the producers on the target only once the copy is done,
then the metrics workers with a new METRICS_APP_ID: they count the copied log from its beginning. At the end the
script checks that each topic holds as many records on the target as it read on the source, and exits 1 if not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from services.metrics import replay
from shared.kafka import ensure_topics, event_partitions
from shared.topics import EVENT_TOPICS, PARTITIONS

__all__ = ["copy_log", "main"]


async def copy_log(source: str, target: str, partitions: int, *, progress: bool = True) -> dict[str, tuple[int, int]]:
    """Copy every record of the event topics; per topic (records read, records now on the target)."""
    await asyncio.to_thread(ensure_topics, target, [replace(t, partitions=partitions) for t in EVENT_TOPICS])
    found = await asyncio.to_thread(event_partitions, target)
    if found != partitions:
        raise SystemExit(f"the target's event topics already exist with {found} partitions, not {partitions}")
    until = await asyncio.to_thread(replay.end_offsets, source)
    before = await asyncio.to_thread(replay.end_offsets, target)
    producer = AIOKafkaProducer(
        bootstrap_servers=target, acks="all", enable_idempotence=True, linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    read: dict[str, int] = {t.name: 0 for t in EVENT_TOPICS}
    bar = tqdm(total=sum(until.values()), unit="rec", desc="copying the event log", disable=not progress)
    try:
        async for records in replay.read_log(source, until):
            sent = []
            for r in records:
                headers = list(r.headers or ())
                sent.append(
                    await producer.send(r.topic, value=r.value, key=r.key, timestamp_ms=r.timestamp, headers=headers)
                )
                read[r.topic] += 1
            await asyncio.gather(*sent)  # acknowledged before reading on: a failure stops the copy at once
            bar.update(len(records))
    finally:
        bar.close()
        await producer.stop()
    after = await asyncio.to_thread(replay.end_offsets, target)
    written: dict[str, int] = {t.name: 0 for t in EVENT_TOPICS}
    for tp, end in after.items():
        written[tp.topic] += end - before.get(tp, 0)
    return {name: (read[name], written[name]) for name in read}


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="bootstrap servers of the cluster to copy from")
    parser.add_argument("--target", required=True, help="bootstrap servers of the cluster to copy to")
    parser.add_argument("--partitions", type=int, default=PARTITIONS, help="partitions of the target's event topics")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.source == args.target:
        parser.error("the target must be another cluster (the topics keep their names)")
    counts = asyncio.run(copy_log(args.source, args.target, args.partitions))
    exact = True
    for name, (read, written) in counts.items():
        exact &= read == written
        print(f"{name}: {read:,} records read, {written:,} written ({'same' if read == written else 'DIFFERENT'})")
    print("COPIED" if exact else "NOT COPIED WHOLE")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
