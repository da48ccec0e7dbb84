"""Two router workers on real Kafka: every matching rule, readiness, invalid input, task shape."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2

from tests.conftest import eventually
from tests.servers import Servers
from tests.support.factories import webhook_config as config
from tests.support.kafka import produce
from tests.support.router_proc import RouterWorker, TopicCollector, router_workers
from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.models import DeliveryTask, InvalidEvent
from webhooks_common.topics import Topics

E1, E2 = "ent-1", "ent-2"


def event(eid: str, etype: str, entity: str, **data: Any) -> bytes:
    return orjson.dumps(
        {"id": eid, "type": etype, "occurredAt": "2026-11-27T10:00:00Z", "entityId": entity, "data": data}
    )


@pytest.fixture
async def two_routers(servers: Servers, topics: Topics) -> AsyncIterator[list[RouterWorker]]:
    async with router_workers(servers.kafka, topics) as workers:
        yield workers


async def test_routing_rules_two_workers(
    servers: Servers, topics: Topics, two_routers: list[RouterWorker]
) -> None:
    configs: list[tuple[bytes, bytes | None]] = [
        # Filler for other entities, so that catching up with the config topic takes a while: events
        # written before the workers start must still find the webhooks written before them (readiness).
        *((f"filler-{i}".encode(), config(f"filler-{i}", f"other-{i % 50}").to_bytes()) for i in range(3000)),
        (b"all", config("all", E1).to_bytes()),
        (b"exact", config("exact", E1, ["booking.create"]).to_bytes()),
        (b"wild", config("wild", E1, ["booking.*"]).to_bytes()),
        (b"alias", config("alias", E1, ["booking.created"]).to_bytes()),
        (b"payee", config("payee", E1, ["payee.*", "internal.payment.failed"]).to_bytes()),
        (b"off", config("off", E1, enabled=False).to_bytes()),
        (b"e2", config("e2", E2).to_bytes()),
        # removed: a config, then its tombstone
        (b"gone", config("gone", E1).to_bytes()),
        (b"gone", None),
        # moved from E1 to E2 (version 2): must stop matching E1
        (b"moved", config("moved", E1).to_bytes()),
        (b"moved", config("moved", E2, version=2, event_url="http://127.0.0.1:9/moved2").to_bytes()),
        # a stale version after a newer one is ignored (still enabled)
        (b"stale", config("stale", E1, ["booking.create"], version=3).to_bytes()),
        (b"stale", config("stale", E1, ["booking.create"], version=2, enabled=False).to_bytes()),
    ]
    await produce(servers.kafka, topics.config, configs)

    good = [
        (topics.wink_events, E1, event("b1", "booking.create", E1, bookingId="B-1", total=12.5)),
        (topics.wink_events, E1, event("b2", "booking.created", E1)),
        (topics.wink_events, E1, event("b3", "booking.cancelled", E1)),
        (topics.wink_events, E1, event("p1", "property.created", E1)),
        (topics.trippay_events, E1, event("t1", "payee.create", E1)),
        (topics.trippay_events, E1, event("t2", "internal.payment.failed", E1)),
        (topics.wink_events, E2, event("x1", "booking.create", E2)),
        (topics.wink_events, "ent-none", event("n1", "booking.create", "ent-none")),
    ]
    bad = [
        (b"not json", E1.encode(), "not_json"),
        (b"[1,2,3]", E1.encode(), "bad_shape"),
        (orjson.dumps({"id": "m1", "type": "booking.create", "entityId": E1}), E1.encode(), "bad_shape"),
        (event("u1", "booking.exploded", E1), E1.encode(), "unknown_type"),
        (event("k1", "booking.create", E1), E2.encode(), "key_mismatch"),
    ]
    producer = make_producer(servers.kafka)
    await start_client(producer)
    try:
        # Half written before the workers start, half after; each good event goes to every partition
        # explicitly (any producer's partitioner must work) under its own id suffix.
        sent: list[tuple[str, str, bytes]] = []
        for i, (topic, entity, value) in enumerate(good):
            for p in range(3):
                doc = orjson.loads(value)
                doc["id"] = f"{doc['id']}-p{p}"
                sent.append((topic, doc["id"], orjson.dumps(doc)))
                await producer.send_and_wait(topic, orjson.dumps(doc), key=entity.encode(), partition=p)
            if i == len(good) // 2:
                for w in two_routers:
                    w.start()
                for w in two_routers:
                    await w.wait_ready()
                # The second half goes to a group that has settled: both workers hold input partitions.
                await eventually(
                    lambda: (
                        all(w.partitions() for w in two_routers)
                        and sum(len(w.partitions()) for w in two_routers) == 6
                    ),
                    timeout=60,
                    what="both workers assigned",
                )
        for value, key, _reason in bad:
            await producer.send_and_wait(topics.wink_events, value, key=key, partition=0)
    finally:
        await stop_client(producer)

    expected_hooks = {
        "b1": {"all", "exact", "wild", "alias", "stale"},
        "b2": {"all", "exact", "wild", "alias", "stale"},  # booking.created == booking.create both ways
        "b3": {"all", "wild"},
        "p1": {"all"},
        "t1": {"all", "payee"},
        "t2": {"all", "payee"},
        "x1": {"e2", "moved"},
        "n1": set(),
    }
    expected = {
        f"{eid}-p{p}:{hook}" for eid, hooks in expected_hooks.items() for p in range(3) for hook in hooks
    }

    async with (
        TopicCollector(servers.kafka, topics.deliveries) as deliveries,
        TopicCollector(servers.kafka, topics.invalid) as invalid,
    ):

        def task_ids() -> set[str]:
            return {DeliveryTask.from_bytes(r.value).task_id for r in deliveries.records}

        await eventually(lambda: task_ids() >= expected, timeout=60, what="every expected task")
        await eventually(lambda: len(invalid.records) >= len(bad), timeout=20, what="invalid records")
        # Both workers routed (the second half reached every partition), and nothing unexpected arrived.
        await eventually(lambda: all(_tasks_out(w) > 0 for w in two_routers), timeout=10, what="both active")
        assert task_ids() == expected

        tasks = [DeliveryTask.from_bytes(r.value) for r in deliveries.records]
        by_id = {t.task_id: t for t in tasks}
        t = by_id["b1-p0:exact"]
        assert (t.event_id, t.event_type, t.entity_id, t.webhook_id) == (
            "b1-p0",
            "booking.create",
            E1,
            "exact",
        )
        assert (t.webhook_version, t.url, t.attempt, t.source) == (1, "http://127.0.0.1:9/exact", 1, "wink")
        assert orjson.loads(t.body) == {
            "id": "b1-p0",
            "type": "booking.create",
            "timestamp": "2026-11-27T10:00:00Z",
            "entityId": E1,
            "data": {"bookingId": "B-1", "total": 12.5},
        }
        assert by_id["b2-p1:exact"].event_type == "booking.created"  # type as the event says it
        assert by_id["t1-p2:payee"].source == "trippay"
        assert by_id["x1-p0:moved"].url == "http://127.0.0.1:9/moved2"
        assert by_id["x1-p0:moved"].webhook_version == 2
        # key = URL, on the partition the standard (Java/aiokafka murmur2) partitioner picks for it
        for r in deliveries.records:
            assert r.key == DeliveryTask.from_bytes(r.value).url.encode()
            assert r.partition == (murmur2(r.key) & 0x7FFFFFFF) % 4

        got = sorted((InvalidEvent.from_bytes(r.value) for r in invalid.records), key=lambda i: i.offset)
        assert [i.reason for i in got] == [reason for _v, _k, reason in bad]
        for inv, (value, key, _reason) in zip(got, bad, strict=True):
            assert inv.source_topic == topics.wink_events
            assert inv.value_b64 is not None and base64.b64decode(inv.value_b64) == value
            assert inv.key_b64 is not None and base64.b64decode(inv.key_b64) == key
            assert inv.detail

    # the workers kept running through the bad input, and report it
    text = two_routers[0].metrics() + two_routers[1].metrics()
    assert 'router_invalid_events_total{reason="not_json"}' in text
    assert 'router_subscriptions{state="held"} 3009.0' in text


def _tasks_out(worker: RouterWorker) -> float:
    total = 0.0
    for line in worker.metrics().splitlines():
        if line.startswith("router_tasks_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total
