"""Router workers for the tests (webhooks_devtools.router_worker, given a test's `Topics`) and a topic
collector.

    async with RouterWorker(servers.kafka, topics) as w:
        await w.wait_ready()
        ...
    # or: w = RouterWorker(...).start(); await w.wait_ready(); ...; w.kill() / await w.astop()
"""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from tests.conftest import eventually
from webhooks_common.topics import Topics
from webhooks_devtools import router_worker
from webhooks_devtools.topic_tap import TopicTap


class RouterWorker(router_worker.RouterWorker):
    """All workers started with the same `topics` (prefix) and `app_id` share one consumer group."""

    def __init__(self, kafka: str, topics: Topics, **kwargs: Any) -> None:
        super().__init__(kafka, topics.prefix, **kwargs)


class TopicCollector(TopicTap):
    """Reads a topic from the beginning in the background, keeping every record (for assertions)."""

    def __init__(self, kafka: str, topic: str) -> None:
        super().__init__(kafka, topic, self._keep, fetch_max_wait_ms=50)
        self.records: list[ConsumerRecord] = []
        self._next: dict[int, int] = {}  # partition -> offset after the last record seen

    def _keep(self, records: list[ConsumerRecord]) -> None:
        self.records.extend(records)
        self._next[records[-1].partition] = records[-1].offset + 1

    async def catch_up(self, within: float = 20.0) -> None:
        """Wait until every record written to the topic so far has been collected."""
        assert self.consumer is not None
        parts = self.consumer.partitions_for_topic(self.topic) or set()
        end = await self.consumer.end_offsets([TopicPartition(self.topic, p) for p in parts])
        await eventually(
            lambda: all(self._next.get(tp.partition, 0) >= off for tp, off in end.items()),
            timeout=within,
            what=f"the collector of {self.topic} to catch up",
        )
