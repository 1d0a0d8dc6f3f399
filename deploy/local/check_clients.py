"""Smoke test of the local stack against the project's real clients.

Run with the repo's venv while the stack is up (deploy/local/stack.sh up):

    .venv/bin/python deploy/local/check_clients.py [kafka-python|aiokafka|faust|mongo ...]

Checks, each on fresh uniquely named topics / databases (left in place, they are small):
  kafka-python  KafkaAdminClient.create_topics, KafkaProducer (acks=all, idempotent),
                KafkaConsumer in a group with commit
  aiokafka      AIOKafkaProducer(acks="all", enable_idempotence=True), AIOKafkaConsumer
                in a group with an explicit commit, committed offset read back
  faust         a worker process (faust-streaming) with a Table (store memory://) that counts
                messages; checks the counts and that <app>-<table>-changelog exists (compacted)
  faust-eos     the same with processing_guarantee="exactly_once" (transactions)
  mongo         PyMongo against FerretDB: insert/find, unique index, find_one_and_update
                upsert, aggregate $group $sum

Prints one "PASS"/"FAIL" line per check and exits non-zero when any fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGODB_URI = os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/?directConnection=true")
RUN_ID = uuid.uuid4().hex[:8]


def check_kafka_python() -> str:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

    topic = f"check-kp-{RUN_ID}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="check-kp")
    try:
        admin.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1, "configs": {"retention.ms": "-1"}}},
            wait_for_metadata=True,
        )
        assert topic in admin.list_topics()
        broker_version = admin._client.check_version()  # private API, informative only
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    for i in range(10):
        producer.send(topic, key=str(i % 3).encode(), value=f"m{i}".encode())
    producer.flush(timeout=30)
    producer.close()

    group = f"check-kp-group-{RUN_ID}"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )
    seen = []
    for msg in consumer:
        seen.append(msg.value)
        if len(seen) == 10:
            break
    consumer.commit()
    committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
    consumer.close()
    assert sorted(seen) == sorted(f"m{i}".encode() for i in range(10)), seen
    assert committed == 10, committed
    return f"created topic, produced/consumed 10, committed 10 (client sees broker as {broker_version})"


async def _aiokafka() -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    topic = f"check-aio-{RUN_ID}"
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        # The topic is auto-created (auto.create.topics.enable=true, num.partitions=3).
        for i in range(10):
            await producer.send_and_wait(topic, key=str(i).encode(), value=f"a{i}".encode())
    finally:
        await producer.stop()

    group = f"check-aio-group-{RUN_ID}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = []
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 10 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for msgs in batch.values():
                seen.extend(m.value for m in msgs)
        await consumer.commit()
        parts = consumer.partitions_for_topic(topic) or set()
        committed = 0
        for p in parts:
            committed += await consumer.committed(TopicPartition(topic, p)) or 0
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(f"a{i}".encode() for i in range(10)), seen
    assert committed == 10, committed
    return f"idempotent acks=all produce of 10, group consume + commit ({len(parts)} partitions)"


def check_aiokafka() -> str:
    return asyncio.run(_aiokafka())


FAUST_APP = textwrap.dedent(
    """
    import json, os, sys
    import faust

    app = faust.App(
        os.environ["CHECK_APP_ID"],
        broker="kafka://" + os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        store="memory://",
        web_enabled=False,
        topic_partitions=3,
        topic_replication_factor=1,
        processing_guarantee=os.environ.get("CHECK_GUARANTEE", "at_least_once"),
    )
    src = app.topic(os.environ["CHECK_TOPIC"], key_type=str, value_type=str)
    counts = app.Table("counts", default=int, partitions=3)

    @app.agent(src)
    async def count(stream):
        async for key, value in stream.items():
            counts[key] += 1
            with open(os.environ["CHECK_OUT"], "a") as out:  # faust reroutes print() to its log
                out.write(json.dumps({key: counts[key]}) + "\\n")
    """
)


def check_faust(guarantee: str = "at_least_once") -> str:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    tag = "faust" if guarantee == "at_least_once" else "faust-eos"
    app_id = f"check-{tag}-{RUN_ID}"
    topic = f"check-{tag}-src-{RUN_ID}"
    changelog = f"{app_id}-counts-changelog"
    env = dict(
        os.environ, CHECK_APP_ID=app_id, CHECK_TOPIC=topic, KAFKA_BOOTSTRAP_SERVERS=BOOTSTRAP, CHECK_GUARANTEE=guarantee
    )
    faust_bin = os.path.join(os.path.dirname(sys.executable), "faust")
    # Source topics are not created by Faust (only its internal ones, e.g. changelogs); a
    # worker started before its source topic exists is not assigned it until a later rebalance.
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        admin.close()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "check_faust_app.py"), "w") as f:
            f.write(FAUST_APP)
        log_path = os.path.join(tmp, "worker.log")
        out_path = env["CHECK_OUT"] = os.path.join(tmp, "counts.jsonl")
        open(out_path, "w").close()
        log = open(log_path, "w")
        worker = subprocess.Popen(
            [
                faust_bin,
                "-A",
                "check_faust_app",
                "--datadir",
                os.path.join(tmp, "data"),
                "worker",
                "-l",
                "info",
                "--without-web",
            ],
            cwd=tmp,
            env=dict(env, PYTHONPATH=tmp),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # Wait until the worker is assigned and running.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                with open(log_path) as r:
                    if "Ready" in r.read():
                        break
                if worker.poll() is not None:
                    raise AssertionError("faust worker exited early")
                time.sleep(0.5)
            else:
                raise AssertionError("faust worker not ready within 90 s")

            producer = KafkaProducer(bootstrap_servers=BOOTSTRAP)
            keys = ["a", "b", "a", "c", "a", "b"]
            for k in keys:
                # faust defaults: key_serializer raw, value_serializer json
                producer.send(topic, key=k.encode(), value=b'"x"')
            producer.flush(timeout=30)
            producer.close()

            want = {"a": 3, "b": 2, "c": 1}
            deadline = time.monotonic() + 60
            got: dict[str, int] = {}
            while time.monotonic() < deadline and got != want:
                with open(out_path) as r:
                    for line in r:
                        got.update(json.loads(line))
                time.sleep(0.5)
            assert got == want, f"table counts {got} != {want}"
        except Exception:
            with open(log_path) as r:
                sys.stderr.write("---- faust worker log (tail) ----\n" + "".join(r.readlines()[-40:]))
            raise
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            log.close()

    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        topics = set(admin.list_topics())
        assert changelog in topics, f"{changelog} missing; topics: {sorted(t for t in topics if RUN_ID in t)}"
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, changelog, configs=["cleanup.policy"])])
        policy = res["topic"][changelog]["cleanup.policy"]["value"]
    finally:
        admin.close()
    assert policy == "compact", policy
    # The changelog holds the table updates.
    consumer = KafkaConsumer(
        changelog, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    n = sum(1 for _ in consumer)
    consumer.close()
    assert n >= 6, f"only {n} changelog records"
    return f"{guarantee} worker counted {want} in a memory:// table; {changelog} (compact) has {n} records"


def check_mongo() -> str:
    from pymongo import MongoClient, ReturnDocument
    from pymongo.errors import DuplicateKeyError

    client = MongoClient(MONGODB_URI, serverSelectionTimeoutMS=5000)
    db = client[f"check_{RUN_ID}"]
    try:
        version = client.server_info()["version"]
        db.items.insert_many([{"k": "x", "n": 1}, {"k": "y", "n": 2}, {"k": "x", "n": 3}])
        assert [d["n"] for d in db.items.find({"k": "x"}).sort("n", 1)] == [1, 3]
        db.users.create_index("email", unique=True)
        db.users.insert_one({"email": "a@example.org"})
        try:
            db.users.insert_one({"email": "a@example.org"})
            raise AssertionError("unique index not enforced")
        except DuplicateKeyError:
            pass
        for expected in (1, 2):
            doc = db.counters.find_one_and_update(
                {"_id": "c1"},
                {"$inc": {"v": 1}, "$setOnInsert": {"created": "now"}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            assert doc == {"_id": "c1", "v": expected, "created": "now"}, doc
        # ONE accumulator per $group: FerretDB 1.24 computes only the first accumulator of a
        # $group and returns 0 for the others (FerretDB issue 4616).
        sums = list(db.items.aggregate([{"$group": {"_id": "$k", "total": {"$sum": "$n"}}}, {"$sort": {"_id": 1}}]))
        assert sums == [{"_id": "x", "total": 4}, {"_id": "y", "total": 2}], sums
        counts = list(db.items.aggregate([{"$group": {"_id": "$k", "count": {"$sum": 1}}}, {"$sort": {"_id": 1}}]))
        assert counts == [{"_id": "x", "count": 2}, {"_id": "y", "count": 1}], counts
        both = list(
            db.items.aggregate(
                [
                    {"$group": {"_id": "$k", "total": {"$sum": "$n"}, "count": {"$sum": 1}}},
                    {"$sort": {"_id": 1}},
                ]
            )
        )
        note = "" if both[0]["count"] == 2 else "; NOTE two accumulators in one $group: 2nd returns 0 (FerretDB #4616)"
        return f"FerretDB (reports MongoDB {version}): insert/find, unique index, upsert, $group $sum{note}"
    finally:
        client.drop_database(db.name)
        client.close()


CHECKS = {
    "kafka-python": check_kafka_python,
    "aiokafka": check_aiokafka,
    "faust": check_faust,
    "faust-eos": lambda: check_faust("exactly_once"),
    "mongo": check_mongo,
}


def main(argv: list[str]) -> int:
    names = argv or list(CHECKS)
    failed = 0
    for name in names:
        t0 = time.monotonic()
        try:
            detail = CHECKS[name]()
            print(f"PASS {name}: {detail} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception as exc:  # report every check
            failed += 1
            traceback.print_exc()
            print(f"FAIL {name}: {exc!r}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
