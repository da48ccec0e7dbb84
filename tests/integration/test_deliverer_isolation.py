"""One URL that never answers must not hold back other URLs on the same partition."""

from __future__ import annotations

import orjson

from deliverer.app import Deliverer
from deliverer.settings import DelivererSettings
from tests.conftest import eventually
from tests.integration.test_deliverer_helpers import (
    Hook,
    deliverer_settings,
    make_hook,
    make_task,
    publish,
    records,
    values,
)
from tests.servers import Servers
from tests.support.receiver import Receiver
from webhooks_common.topics import Topics


def one_dead_five_good(secrets_key: str, receiver: Receiver) -> tuple[Hook, list[Hook]]:
    """A webhook whose URL never answers (`/dead`) and five whose URLs answer at once."""
    receiver.hang("/dead")
    dead = make_hook(secrets_key, receiver.url("/dead"))
    return dead, [make_hook(secrets_key, receiver.url(f"/ok{i}")) for i in range(5)]


async def test_dead_url_does_not_block_five_others_on_its_partition(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    dead, good = one_dead_five_good(secrets_key, receiver)
    # the dead URL's tasks come FIRST on the partition, then 5 x 20 tasks for the good URLs
    tasks = [make_task(dead, n) for n in range(30)]
    tasks += [make_task(h, n) for n in range(20) for h in good]
    await publish(servers.kafka, topics, configs=[dead.config, *(h.config for h in good)])
    await publish(servers.kafka, topics, tasks=tasks, partition=0)

    settings = deliverer_settings(
        servers.kafka,
        topics,
        group_id,
        secrets_key,
        timeout_s=60,  # the dead URL's attempts stay in flight for the whole test
        per_url_concurrency=2,
        per_url_queue_limit=25,  # the dead URL: 2 in flight, 25 queued, 3 parked
        overflow_delay_s=30,
        silent_after_s=60,  # the queue limit itself is what this test shows, not the silence rule
        shutdown_grace_s=0.5,
    )
    async with Deliverer(settings) as d:
        await eventually(
            lambda: all(len(receiver.requests(f"/ok{i}")) >= 20 for i in range(5)),
            what="every task of the 5 good URLs delivered",
        )
        # the dead URL holds only its own 2 slots (still hanging) and parked what its queue could not hold
        assert len(receiver.requests("/dead")) == 2, receiver.requests("/dead")
        assert d.pipeline.lanes.in_flight == 2
        assert d.metrics.deferred.labels("overflow")._value.get() == 3
    for i, h in enumerate(good):
        got = {r.webhook_id for r in receiver.requests(f"/ok{i}")}
        assert got == {t.task_id for t in tasks if t.webhook_id == h.config.id}


async def test_a_url_gone_silent_cannot_fill_the_pending_cap_before_its_first_timeout(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    dead, good = one_dead_five_good(secrets_key, receiver)
    await publish(servers.kafka, topics, configs=[dead.config, *(h.config for h in good)])
    settings = deliverer_settings(
        servers.kafka,
        topics,
        group_id,
        secrets_key,
        timeout_s=60,  # no attempt times out during the test: the URL is never marked degraded
        per_url_concurrency=2,
        per_url_queue_limit=500,
        degraded_queue_limit=5,
        max_pending=50,  # without the silence rule the dead URL's queue alone would hold all of it
        silent_after_s=0.5,
        overflow_delay_s=1,
        unanswered_overflow_delay_s=30,  # parked for the 30 s tier: none comes back during the test
        shutdown_grace_s=0.5,
    )
    async with Deliverer(settings) as d:
        await publish(servers.kafka, topics, tasks=[make_task(dead, n) for n in range(3)], partition=0)
        await eventually(
            lambda: d.pipeline.lanes.is_silent(dead.config.event_url), what="the dead URL silent for 0.5 s"
        )
        # A burst for the dead URL, then the healthy URLs' tasks behind it on the same partition.
        burst = [make_task(dead, n) for n in range(3, 103)]
        healthy = [make_task(h, n) for n in range(10) for h in good]
        await publish(servers.kafka, topics, tasks=burst + healthy, partition=0)
        await eventually(
            lambda: all(len(receiver.requests(f"/ok{i}")) >= 10 for i in range(5)),
            what="every task of the 5 healthy URLs delivered",
        )
        assert not d.pipeline.lanes.is_degraded(dead.config.event_url)  # silence alone, no timeout
        assert len(receiver.requests("/dead")) == 2  # its two first attempts, still hanging
        # 2 in flight and a queue of 5 held; the other 96 of 103 parked, not held in memory.
        assert d.metrics.deferred.labels("overflow")._value.get() == 96
    parked = await records(servers.kafka, topics.retry("30s"))
    assert len(parked) == 96  # on the 30 s tier: a silent URL is parked for longer than a busy one
    assert not await records(servers.kafka, topics.retry("1s"), timeout=1.0)


BURST = 100  # tasks for the dead URL, all queued before anyone knows it is dead (2 in flight, 98 queued)


def burst_settings(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, **over: object
) -> DelivererSettings:
    """2 attempts per URL, a full queue of 500 and a short one of 5; what a URL that stopped answering holds
    beyond the short queue is parked on the 30 s tier (none comes back during a test)."""
    return deliverer_settings(
        servers.kafka,
        topics,
        group_id,
        secrets_key,
        per_url_concurrency=2,
        per_url_queue_limit=500,
        degraded_queue_limit=5,
        unanswered_overflow_delay_s=30,
        shutdown_grace_s=0.5,
        **over,
    )


async def queue_a_burst(servers: Servers, topics: Topics, dead: Hook, d: Deliverer) -> None:
    tasks = [make_task(dead, n) for n in range(BURST)]
    await publish(servers.kafka, topics, tasks=tasks, partition=0)
    await eventually(
        lambda: d.pipeline.lanes.queued() == BURST - 2, what="the burst queued behind its 2 attempts"
    )


def deferred(d: Deliverer, why: str) -> float:
    return float(d.metrics.deferred.labels(why)._value.get())


async def test_a_burst_queued_before_its_url_went_silent_is_parked_not_held_for_a_timeout_each(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    dead, _good = one_dead_five_good(secrets_key, receiver)
    url = dead.config.event_url
    await publish(servers.kafka, topics, configs=[dead.config])
    settings = burst_settings(
        servers,
        topics,
        group_id,
        secrets_key,
        timeout_s=60,  # no attempt times out during the test
        silent_after_s=5.0,  # far longer than the burst takes to be read: all of it is queued first
        overflow_delay_s=1,
    )
    async with Deliverer(settings) as d:
        lanes = d.pipeline.lanes
        await queue_a_burst(servers, topics, dead, d)
        assert not lanes.is_silent(url)
        await eventually(lambda: lanes.is_silent(url), what="the URL silent for 5 s")
        assert lanes.queued() == BURST - 2  # silence alone moves nothing: the next task for the URL finds it

        await publish(servers.kafka, topics, tasks=[make_task(dead, BURST)], partition=0)

        await eventually(lambda: deferred(d, "overflow") == 1, what="the new task parked")
        # ... and with it the burst beyond the short queue: 93 of 98, not one per 60 s timeout.
        await eventually(lambda: deferred(d, "shed") == 93, what="the excess handed back and parked")
        assert lanes.queued() == 5
        assert len(receiver.requests("/dead")) == 2  # its two first attempts, still hanging
    parked = await records(servers.kafka, topics.retry("30s"))
    assert len(parked) == 94
    # The newest went back; the oldest 7 (2 attempts and the short queue) stay, in order, in the lane.
    assert sorted(orjson.loads(v["body"])["data"]["n"] for v in values(parked)) == [*range(7, BURST + 1)]


async def test_a_burst_queued_before_the_first_timeout_is_parked_at_that_timeout(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    dead, _good = one_dead_five_good(secrets_key, receiver)
    await publish(servers.kafka, topics, configs=[dead.config])
    settings = burst_settings(
        servers,
        topics,
        group_id,
        secrets_key,
        timeout_s=4,  # the first two attempts time out (after the burst is queued): the URL is degraded
        silent_after_s=60,  # the timeout alone, not the silence rule
    )
    async with Deliverer(settings) as d:
        await queue_a_burst(servers, topics, dead, d)
        await eventually(
            lambda: d.pipeline.lanes.is_degraded(dead.config.event_url), what="the first timeout"
        )
        await eventually(
            lambda: deferred(d, "shed") == 93, what="all but the short queue parked at the timeout"
        )
        assert d.pipeline.lanes.queued() <= 5
