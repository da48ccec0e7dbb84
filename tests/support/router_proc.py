"""Router workers for the tests (webhooks_devtools.router_worker, given a test's `Topics`) and a topic
collector.

    async with RouterWorker(servers.kafka, topics) as w:
        await w.wait_ready()
        ...
    # or: w = RouterWorker(...).start(); await w.wait_ready(); ...; w.kill() / await w.astop()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from webhooks_common.kafka import start_client, stop_client
from webhooks_common.topics import Topics
from webhooks_devtools import router_worker


class RouterWorker(router_worker.RouterWorker):
    """All workers started with the same `topics` (prefix) and `app_id` share one consumer group."""

    def __init__(self, kafka: str, topics: Topics, **kwargs: Any) -> None:
        super().__init__(kafka, topics.prefix, **kwargs)


class TopicCollector:
    """Reads a topic from the beginning in the background, keeping every record (for assertions)."""

    def __init__(self, kafka: str, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.records: list[ConsumerRecord] = []
        self._next: dict[int, int] = {}  # partition -> offset after the last record seen
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicCollector:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.kafka,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await start_client(consumer)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer))
        return self

    async def catch_up(self, within: float = 20.0) -> None:
        """Wait until every record written to the topic so far has been collected."""
        assert self._consumer is not None
        parts = self._consumer.partitions_for_topic(self.topic) or set()
        end = await self._consumer.end_offsets([TopicPartition(self.topic, p) for p in parts])
        deadline = time.monotonic() + within
        while any(self._next.get(tp.partition, 0) < off for tp, off in end.items()):
            if time.monotonic() > deadline:
                raise AssertionError(f"collector of {self.topic} did not catch up in {within}s")
            await asyncio.sleep(0.05)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                for tp, recs in batch.items():
                    self.records.extend(recs)
                    self._next[tp.partition] = recs[-1].offset + 1
        finally:
            await stop_client(consumer)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
