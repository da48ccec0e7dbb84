"""A router worker SIGKILLed mid-stream loses nothing: every expected task is on the deliveries topic."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.conftest import eventually
from tests.servers import Servers
from tests.support.factories import input_event
from tests.support.factories import webhook_config as config
from tests.support.kafka import produce
from tests.support.router_proc import RouterWorker, TopicCollector
from webhooks_common.kafka import make_producer, started
from webhooks_common.models import DeliveryTask
from webhooks_common.topics import Topics

ENTITIES = [f"ent-{i}" for i in range(6)]
HOOKS_PER_ENTITY = 3
EVENTS = 6000


async def test_sigkill_mid_stream_loses_nothing(servers: Servers, topics: Topics) -> None:
    hooks = {e: [f"{e}-h{j}" for j in range(HOOKS_PER_ENTITY)] for e in ENTITIES}
    await produce(
        servers.kafka,
        topics.config,
        [(w.encode(), config(w, e).to_bytes()) for e, ws in hooks.items() for w in ws],
    )
    a, b = RouterWorker(servers.kafka, topics).start(), RouterWorker(servers.kafka, topics).start()
    replacement: RouterWorker | None = None
    try:
        for w in (a, b):
            await w.wait_ready()
        await eventually(lambda: a.partitions() and b.partitions(), timeout=60, what="both workers assigned")

        expected: set[str] = set()
        async with TopicCollector(servers.kafka, topics.deliveries) as deliveries:
            async with started(make_producer(servers.kafka)) as producer:
                for i in range(EVENTS):
                    entity = ENTITIES[i % len(ENTITIES)]
                    eid = f"ev-{i}"
                    value = input_event(eid, entity, data={"n": i})
                    # any partition: the router must not assume where an entity's events land
                    await producer.send(
                        topics.trippay_events if i % 2 else topics.wink_events,
                        value,
                        key=entity.encode(),
                        partition=i % 3,
                    )
                    expected.update(f"{eid}:{h}" for h in hooks[entity])
                    if i % 200 == 0:
                        await producer.flush()
                        await asyncio.sleep(0.05)  # ~4,000 events/s: the kill lands mid-stream
                    if i == EVENTS // 3:
                        # a has been routing (both hold partitions of both topics' 3 partitions)
                        await eventually(lambda: _tasks_out(a) > 0, timeout=20, what="worker a routing")
                        a.kill()
                        replacement = RouterWorker(servers.kafka, topics).start()
                await producer.flush()

            def missing() -> set[str]:
                return expected - {DeliveryTask.from_bytes(r.value).task_id for r in deliveries.records}

            await eventually(
                lambda: not missing(), timeout=90, interval=0.5, what="every task after the kill"
            )
            counts = Counter(DeliveryTask.from_bytes(r.value).task_id for r in deliveries.records)
            dupes = sum(c - 1 for c in counts.values())
            print(f"\nrouter SIGKILL test: {len(expected)} tasks expected, all present; {dupes} duplicates")

        assert a.proc is not None and a.proc.returncode == -9
        # the survivors stop gracefully on SIGTERM
        assert await b.astop() == 0
        assert replacement is not None and await replacement.astop() == 0
    finally:
        for worker in (a, b, replacement):
            if worker is not None:
                await worker.astop()


def _tasks_out(worker: RouterWorker) -> float:
    try:
        text = worker.metrics()
    except OSError:
        return 0.0
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith("router_tasks_total{"))
