"""The stack our services are built on, proven against the real servers `make infra-up` starts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pymongo.errors
import pytest
from aiokafka import AIOKafkaConsumer
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import eventually
from tests.servers import ROOT, Servers
from tests.support.kafka import produce, read_topic
from webhooks_common.kafka import ensure_topics, make_producer, started
from webhooks_common.topics import TopicSpec
from webhooks_devtools.ports import free_port
from webhooks_devtools.procs import Proc


async def test_idempotent_producer_and_group_consumer_with_manual_commits(
    servers: Servers, uid: str, group_id: str
) -> None:
    topic = f"t{uid}.stack"
    await ensure_topics(servers.kafka, [TopicSpec(topic, 3)])
    async with started(make_producer(servers.kafka)) as producer:
        futs = [
            await producer.send(topic, key=f"k{i % 7}".encode(), value=f"v{i}".encode()) for i in range(300)
        ]
        await asyncio.gather(*futs)

    async def consume(n: int, commit: bool) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=servers.kafka,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        got: list[bytes] = []
        async with started(consumer):
            while len(got) < n:
                batch = await consumer.getmany(timeout_ms=500, max_records=n - len(got))
                for records in batch.values():
                    got.extend(r.value for r in records if r.value is not None)
            if commit:
                await consumer.commit()
        return got

    first = await consume(100, commit=True)
    uncommitted = await consume(50, commit=False)
    rest = await consume(200, commit=True)
    # What was committed is not read again; what was read but not committed is (at-least-once).
    assert not set(first) & set(rest)
    assert set(uncommitted) <= set(rest)
    assert set(first) | set(rest) == {f"v{i}".encode() for i in range(300)}


def _counter(env: dict[str, str], log: Path) -> Proc:
    argv = [sys.executable, "-m", "tests.integration.apps.counter_app", "worker", "-l", "warn"]
    return Proc("counter", argv, env, cwd=ROOT, log_path=log)


async def test_faust_table_survives_worker_restart(servers: Servers, uid: str, tmp_path: Path) -> None:
    app_id = f"counter{uid}"
    in_topic, out_topic = f"t{uid}.words", f"t{uid}.counts"
    await ensure_topics(servers.kafka, [TopicSpec(in_topic, 1), TopicSpec(out_topic, 1)])
    env = dict(
        os.environ,
        COUNTER_APP_ID=app_id,
        COUNTER_IN_TOPIC=in_topic,
        COUNTER_OUT_TOPIC=out_topic,
        KAFKA_BOOTSTRAP_SERVERS=servers.kafka,
        COUNTER_WEB_PORT=str(free_port()),
        COUNTER_DATA_DIR=str(tmp_path / "data"),
    )
    log = tmp_path / "worker.log"

    def counts_seen(records: list[Any]) -> list[str]:
        return [json.loads(r.value) for r in records]

    worker = _counter(env, log).start()
    try:
        await produce(servers.kafka, in_topic, [(b"apple", b'"apple"')] * 3)
        records = await read_topic(servers.kafka, out_topic, until=lambda r: len(r) >= 3, timeout=90)
        assert counts_seen(records) == ["apple=1", "apple=2", "apple=3"], log.read_text()[-3000:]
    finally:
        await worker.stop(
            20, signal.SIGKILL
        )  # no clean shutdown: state must come back from the changelog alone

    worker = _counter(env, log).start()
    try:
        await produce(servers.kafka, in_topic, [(b"apple", b'"apple"')])
        records = await read_topic(servers.kafka, out_topic, until=lambda r: len(r) >= 4, timeout=90)
        # The 4th count continues from 3: the Table was recovered from its changelog topic.
        assert counts_seen(records)[3] == "apple=4", log.read_text()[-3000:]
    finally:
        await worker.stop(20)  # a faust worker can hang on SIGTERM: SIGKILL after 20 s


async def test_async_mongo_crud_and_unique_index(mongo_db: AsyncDatabase[Any]) -> None:
    hooks = mongo_db["webhooks"]
    await hooks.create_index([("entity", 1), ("name", 1)], unique=True)
    inserted = await hooks.insert_one({"entity": "e1", "name": "Wink Stalker", "version": 1})
    found = await hooks.find_one({"_id": inserted.inserted_id})
    assert found is not None and found["name"] == "Wink Stalker"

    res = await hooks.update_one({"_id": inserted.inserted_id, "version": 1}, {"$set": {"version": 2}})
    assert res.modified_count == 1
    stale = await hooks.update_one({"_id": inserted.inserted_id, "version": 1}, {"$set": {"version": 3}})
    assert stale.modified_count == 0  # conditional update: the optimistic-concurrency primitive we rely on

    with pytest.raises(pymongo.errors.DuplicateKeyError):
        await hooks.insert_one({"entity": "e1", "name": "Wink Stalker"})
    await hooks.insert_one({"entity": "e2", "name": "Wink Stalker"})  # another entity: allowed

    assert await hooks.count_documents({}) == 2
    await hooks.delete_one({"_id": inserted.inserted_id})
    assert [d["entity"] async for d in hooks.find({}, {"entity": 1})] == ["e2"]


async def test_eventually_reports_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="the impossible"):
        await eventually(lambda: False, timeout=0.2, what="the impossible")
