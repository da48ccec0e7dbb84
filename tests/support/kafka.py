"""Kafka helpers for tests: produce raw records, read a topic from the beginning."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from webhooks_common.kafka import make_producer, started


async def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    async with started(make_producer(bootstrap)) as producer:
        futs = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futs)


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord]], bool] = lambda _r: False,
    timeout: float = 10.0,
    idle: float | None = None,
) -> list[ConsumerRecord]:
    """Every record of `topic` from the start, until `until(records)` holds or `timeout` passes.

    With `idle`, also stops once no record arrived for that many seconds (to collect "everything").
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    records: list[ConsumerRecord] = []
    async with started(consumer):
        deadline = time.monotonic() + timeout
        last_seen = time.monotonic()
        while time.monotonic() < deadline and not until(records):
            batch = await consumer.getmany(timeout_ms=100)
            got = [r for rs in batch.values() for r in rs]
            if got:
                records.extend(got)
                last_seen = time.monotonic()
            elif idle is not None and time.monotonic() - last_seen > idle:
                break
    return records
