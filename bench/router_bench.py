"""Router throughput on real Kafka: one `python -m router` worker draining a backlog.

Scenarios:
  spread  - 1,000 webhooks over 100 entities (10 each, eventLists mixed), events of three types
  fanout  - one entity with 1,000 webhooks, every event fans out to all of them
For `spread` it also runs with --batch-max 1 (one wait for Kafka's acks per event, what a plain
`await topic.send()` agent does) to show what batching buys.

    .tools/bin/uv run --frozen python bench/router_bench.py [--events 30000] [--write]

With --write, appends the figures to bench/RESULTS.md under "Router".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webhooks_common.kafka import ensure_topics, make_producer  # noqa: E402
from webhooks_common.models import WebhookConfig, utcnow  # noqa: E402
from webhooks_common.topics import Topics, topic_specs  # noqa: E402
from webhooks_devtools.router_worker import RouterWorker  # noqa: E402

KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
TYPES = ["booking.create", "property.created", "payee.create"]
EVENT_LISTS: list[list[str]] = [
    [],
    [],
    [],
    [],
    ["booking.*"],
    ["booking.*"],
    ["booking.created"],
    ["payee.*"],
]
EVENT_LISTS += [["payee.*", "property.*"], ["property.created"]]


def webhook(wid: str, entity: str, events: list[str]) -> WebhookConfig:
    return WebhookConfig(
        id=wid,
        entity_id=entity,
        entity_name="E",
        name=wid,
        enabled=True,
        event_url=f"https://hooks.example.com/{wid}",
        event_list=events,
        version=1,
        updated_at=utcnow(),
    )


def expected_fanout(configs: list[WebhookConfig], entity: str, etype: str) -> int:
    from webhooks_common.catalog import event_list_matches

    return sum(1 for c in configs if c.entity_id == entity and event_list_matches(c.event_list, etype))


async def deliveries_end(consumer: AIOKafkaConsumer, topic: str) -> int:
    parts = consumer.partitions_for_topic(topic) or set()
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    return sum(ends.values())


async def run(name: str, configs: list[WebhookConfig], events: list[tuple[str, str]], batch_max: int) -> dict:
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.")
    await ensure_topics(KAFKA, topic_specs(topics))
    producer = make_producer(KAFKA, linger_ms=10)
    await producer.start()
    try:
        for c in configs:
            await producer.send(topics.config, c.to_bytes(), key=c.id.encode())
        payload = {"bookingId": "B-123456", "amount": 1234.5, "currency": "EUR", "guest": {"name": "Zoë"}}
        for i, (entity, etype) in enumerate(events):
            doc = {"id": f"e{i}", "type": etype, "occurredAt": "2026-11-27T10:00:00Z", "entityId": entity}
            await producer.send(
                topics.wink_events, orjson.dumps({**doc, "data": payload}), key=entity.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()
    fanout = {(e, t): expected_fanout(configs, e, t) for e, t in set(events)}
    total_tasks = sum(fanout[ev] for ev in events)

    consumer = AIOKafkaConsumer(bootstrap_servers=KAFKA, group_id=None)
    await consumer.start()
    await consumer.topics()
    consumer.subscribe([topics.deliveries])
    await consumer.getmany(timeout_ms=100)  # loads metadata for the topic
    worker = RouterWorker(
        KAFKA,
        topics.prefix,
        input_partitions=6,
        env={"ROUTER_BATCH_MAX": str(batch_max), "LOG_LEVEL": "WARNING"},
    )
    worker.start()
    try:
        await worker.wait_ready(120)
        start = None
        done = 0
        deadline = time.monotonic() + 600
        while done < total_tasks and time.monotonic() < deadline:
            done = await deliveries_end(consumer, topics.deliveries)
            if start is None and done > 0:
                start = time.monotonic()
            await asyncio.sleep(0.05)
        assert start is not None and done >= total_tasks, f"{name}: {done}/{total_tasks} tasks"
        elapsed = time.monotonic() - start
    finally:
        await worker.astop()
        await consumer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            await admin.delete_topics([s.name for s in topic_specs(topics)])
        finally:
            await admin.close()
    return {
        "name": name,
        "batch_max": batch_max,
        "events": len(events),
        "tasks": total_tasks,
        "seconds": elapsed,
        "events_s": len(events) / elapsed,
        "tasks_s": total_tasks / elapsed,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=30000, help="events in the spread scenario")
    ap.add_argument("--fanout-events", type=int, default=150, help="events in the fan-out scenario")
    ap.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = ap.parse_args()

    spread = [webhook(f"w{i}", f"ent-{i // 10}", EVENT_LISTS[i % 10]) for i in range(1000)]
    spread_events = [(f"ent-{i % 100}", TYPES[i % 3]) for i in range(args.events)]
    one = [webhook(f"f{i}", "ent-big", []) for i in range(1000)]
    fan_events = [("ent-big", "booking.create")] * args.fanout_events

    results = [
        await run("spread: 1,000 webhooks / 100 entities", spread, spread_events, 500),
        await run("spread, --batch-max 1 (await per event)", spread, spread_events[: args.events // 3], 1),
        await run("fan-out: 1 event -> 1,000 webhooks", one, fan_events, 500),
    ]
    lines = [
        "| scenario | batch max | events | tasks | s | events/s in | tasks/s out |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['batch_max']} | {r['events']:,} | {r['tasks']:,} | {r['seconds']:.2f} "
            f"| {r['events_s']:,.0f} | {r['tasks_s']:,.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    print("load average:", os.getloadavg())
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        intro = (
            f"{time.strftime('%Y-%m-%d')}, {machine}, load average at the end {load} (the machine is shared: "
            "figures move a lot between runs). One `python -m router` worker draining a backlog on 6 input "
            "partitions, local Kafka (loopback), ~200-byte events; time from the first task to the last on "
            "`webhooks.deliveries` (acks=all, idempotent producer). `bench/router_bench.py`."
        )
        with (ROOT / "bench" / "RESULTS.md").open("a") as f:
            f.write(f"\n## Router\n\n{intro}\n\n{table}\n")


if __name__ == "__main__":
    asyncio.run(main())
