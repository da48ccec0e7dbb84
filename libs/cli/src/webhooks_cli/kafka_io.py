"""The few Kafka operations whctl needs: produce, read a topic to its current end, follow a topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from webhooks_common.kafka import make_producer, started, topic_partitions


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Send and wait for every ack; returns (partition, offset) per record."""
    async with started(make_producer(bootstrap)) as producer:
        futs = [await producer.send(topic, value=v, key=k) for k, v in records]
        mds = await asyncio.gather(*futs)
        return [(md.partition, md.offset) for md in mds]


@contextlib.asynccontextmanager
async def _assigned(
    bootstrap: str, topic: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    async with started(consumer):
        try:
            partitions = await topic_partitions(consumer, topic)
        except LookupError as e:
            raise LookupError(f"{e} (run `whctl topics create`)") from None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        yield consumer, tps


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record from the beginning up to the end offsets taken when called."""
    async with _assigned(bootstrap, topic) as (consumer, tps):
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        out: list[ConsumerRecord] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind():
            batch = await consumer.getmany(*tps, timeout_ms=500)
            for tp, records in batch.items():
                out.extend(r for r in records if r.offset < end[tp])
        return out


async def follow(
    bootstrap: str, topic: str, *, from_beginning: bool = False, timeout: float | None = None
) -> AsyncIterator[ConsumerRecord]:
    """Records as they arrive (from now, or from the beginning), until `timeout` seconds pass."""
    async with _assigned(bootstrap, topic) as (consumer, tps):
        deadline = None if timeout is None else time.monotonic() + timeout
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        while deadline is None or time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    yield record
