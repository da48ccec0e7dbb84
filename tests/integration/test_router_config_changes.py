"""Config changes reach routing: create, change events, disable, move entity, delete (two workers).

Each change is written with `changed_at_ms`; probes (one tick every 10 ms, rotating over the input partitions
so both workers are measured) show when each worker routes by the new state. The change -> effect time is
printed (run with -s); the test asserts only that the new state is eventually in force on every partition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import eventually
from tests.servers import Servers
from tests.support.factories import input_event
from tests.support.factories import webhook_config as config
from tests.support.kafka import produce
from tests.support.router_proc import RouterWorker, TopicCollector, router_workers
from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.models import DeliveryTask, WebhookConfig, now_ms
from webhooks_common.topics import Topics

E1, E2 = "ent-1", "ent-2"
CONTROL = {E1: "ctl-1", E2: "ctl-2"}  # every-event webhooks: each probe yields a task for its entity's
PARTITIONS = 3


@dataclass
class Tick:
    partition: int
    probes: list[tuple[str, str, bool]]  # (event id, entity, subject webhook expected)


@dataclass
class Change:
    name: str
    record: WebhookConfig | None  # None: tombstone
    checks: list[tuple[str, str, bool]]  # (entity, event type, subject webhook expected)
    ticks: list[Tick] = field(default_factory=list)


@pytest.fixture
async def routers(servers: Servers, topics: Topics) -> AsyncIterator[list[RouterWorker]]:
    await produce(
        servers.kafka,
        topics.config,
        [(wid.encode(), config(wid, e).to_bytes()) for e, wid in CONTROL.items()],
    )
    async with router_workers(servers.kafka, topics, start=True) as workers:
        for w in workers:
            await w.wait_ready()
        await eventually(
            lambda: (
                sum(len(w.partitions()) for w in workers) == 2 * PARTITIONS
                and all(w.partitions() for w in workers)
            ),
            timeout=60,
            what="both workers assigned",
        )
        yield workers


async def test_config_changes_take_effect(
    servers: Servers, topics: Topics, routers: list[RouterWorker]
) -> None:
    subject = "subj"
    changes = [
        Change(
            "create",
            config(subject, E1, ["booking.create"], version=1),
            [(E1, "booking.create", True), (E1, "payee.create", False)],
        ),
        Change(
            "change events",
            config(subject, E1, ["payee.*"], version=2),
            [(E1, "booking.create", False), (E1, "payee.create", True)],
        ),
        Change(
            "disable",
            config(subject, E1, ["payee.*"], version=3, enabled=False),
            [(E1, "payee.create", False)],
        ),
        Change(
            "enable + move entity",
            config(subject, E2, [], version=4),
            [(E1, "payee.create", False), (E2, "payee.create", True)],
        ),
        Change("delete", None, [(E2, "payee.create", False)]),
    ]
    producer = make_producer(servers.kafka, linger_ms=0)
    await start_client(producer)
    report: list[str] = []
    try:
        async with TopicCollector(servers.kafka, topics.deliveries) as deliveries:
            for ci, change in enumerate(changes):
                changed_at = now_ms()
                if change.record is not None:
                    change.record.changed_at_ms = changed_at
                await producer.send_and_wait(
                    topics.config,
                    None if change.record is None else change.record.to_bytes(),
                    key=subject.encode(),
                )
                await _probe_until_in_force(producer, topics, deliveries, ci, change)
                await deliveries.catch_up()
                report.append(_effect_report(change, changed_at, _tasks(deliveries)))
    finally:
        await stop_client(producer)
    print("\nrouter config change -> effect (ms, from changed_at_ms; per partition, 10 ms probe ticks):")
    print("\n".join(report))


async def _probe_until_in_force(
    producer: Any, topics: Topics, deliveries: TopicCollector, ci: int, change: Change
) -> None:
    stop = asyncio.Event()

    async def probe() -> None:
        k = 0
        while not stop.is_set():
            tick = Tick(k % PARTITIONS, [])
            for j, (entity, etype, expected) in enumerate(change.checks):
                eid = f"c{ci}-t{k}-{j}"
                value = input_event(eid, entity, etype)
                await producer.send(topics.wink_events, value, key=entity.encode(), partition=tick.partition)
                tick.probes.append((eid, entity, expected))
            change.ticks.append(tick)
            k += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(probe())
    try:

        def in_force() -> bool:
            tasks = _tasks(deliveries)
            for p in range(PARTITIONS):
                done = [t for t in change.ticks if t.partition == p and _processed(t, tasks)]
                if len(done) < 3 or not all(_new_state(t, tasks) for t in done[-3:]):
                    return False
            return True

        await eventually(in_force, timeout=30, what=f"`{change.name}` in force on every partition")
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await producer.flush()


def _tasks(deliveries: TopicCollector) -> dict[str, DeliveryTask]:
    return {t.task_id: t for t in (DeliveryTask.from_bytes(r.value) for r in deliveries.records)}


def _processed(tick: Tick, tasks: dict[str, DeliveryTask]) -> bool:
    return all(f"{eid}:{CONTROL[entity]}" in tasks for eid, entity, _ in tick.probes)


def _new_state(tick: Tick, tasks: dict[str, DeliveryTask]) -> bool:
    return all((f"{eid}:subj" in tasks) == expected for eid, _, expected in tick.probes)


def _effect_report(change: Change, changed_at: int, tasks: dict[str, DeliveryTask]) -> str:
    parts = []
    for p in range(PARTITIONS):
        done = [t for t in change.ticks if t.partition == p and _processed(t, tasks)]
        first_new = len(done)
        while first_new > 0 and _new_state(done[first_new - 1], tasks):
            first_new -= 1
        entered = [tasks[f"{t.probes[0][0]}:{CONTROL[t.probes[0][1]]}"].entered_at_ms for t in done]
        last_old = entered[first_new - 1] - changed_at if first_new > 0 else None
        parts.append(
            f"p{p}: {last_old if last_old is not None else '-'} < effect <= {entered[first_new] - changed_at}"
        )
    return f"  {change.name:<22} " + "; ".join(parts)
