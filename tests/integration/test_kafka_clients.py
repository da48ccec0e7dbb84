"""Starting and stopping aiokafka clients never leaks a socket, even when the start is cancelled.

aiokafka 0.14 leaks the connection it bootstraps through when start() is cancelled at the wrong
moment; the garbage collector then reports it as a ResourceWarning in whatever runs next (that failed
a CI run). A service is cancelled half-way through a start whenever it is stopped soon after starting.
"""

from __future__ import annotations

import asyncio
import gc
import random
import warnings

from aiokafka import AIOKafkaConsumer

from tests.servers import Servers
from webhooks_common.kafka import make_producer, start_client, started, stop_client
from webhooks_common.topics import Topics

ROUNDS = 120


async def test_cancelled_starts_leave_no_open_connection(servers: Servers, topics: Topics, uid: str) -> None:
    rng = random.Random(uid)

    async def start_then_cancel(i: int) -> None:
        client = (
            make_producer(servers.kafka)
            if i % 2
            else AIOKafkaConsumer(topics.config, bootstrap_servers=servers.kafka, group_id=f"g{uid}")
        )
        starting = asyncio.create_task(start_client(client))
        # connecting and bootstrapping take about a millisecond on loopback: land inside them
        await asyncio.sleep(rng.uniform(0, 0.004))
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await stop_client(client)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for i in range(ROUNDS):
            await start_then_cancel(i)
            gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], f"{len(leaks)} leaked in {ROUNDS} cancelled starts: {leaks[:3]}"


async def test_started_stops_the_client_when_the_body_fails(servers: Servers) -> None:
    producer = make_producer(servers.kafka)
    try:
        async with started(producer):
            assert producer.client.cluster.brokers(), "started means bootstrapped"
            raise LookupError("the body failed")
    except LookupError:
        pass
    assert producer._closed
    assert not [conn for conn in producer.client._conns.values() if conn.connected()]
