"""Read the whole compacted config topic into the index, then follow it (one per worker, no consumer group).

Every worker holds every subscription (the broadcast join, see README): the feed assigns itself all
partitions of the config topic, seeks to the beginning, and is `ready` once it has read up to the end
offsets taken at start. The router does not route anything before that.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from router import metrics
from router.index import SubscriptionIndex
from webhooks_common.kafka import started
from webhooks_common.models import WebhookConfig

log = logging.getLogger(__name__)


class ConfigFeed:
    def __init__(self, bootstrap: str, topic: str, index: SubscriptionIndex) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self.index = index
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Runs until cancelled; on a Kafka error it logs and starts over (the router never stops)."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config feed failed; reconnecting in 1s")
                await asyncio.sleep(1.0)

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,  # a change must reach routing within a second: keep polls short
        )
        async with started(consumer):
            tps = await self._assign(consumer)
            # Where "caught up" is: the end of the topic when this worker started. Re-reading from the start
            # after a reconnect is safe because configs are applied by version.
            end = await consumer.end_offsets(tps)
            await self._check_ready(consumer, end)
            while True:
                batch = await consumer.getmany(timeout_ms=200, max_records=5000)
                for records in batch.values():
                    for record in records:
                        self._apply(record)
                await self._update_gauges(consumer, tps)
                if not self.ready.is_set():
                    await self._check_ready(consumer, end)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # aiokafka has no public "partitions of a topic I do not subscribe to": ask the cluster directly.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self._topic)
        if not partitions:
            raise RuntimeError(f"config topic {self._topic!r} does not exist")
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return tps

    async def _check_ready(self, consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> None:
        for tp, offset in end.items():
            if await consumer.position(tp) < offset:
                return
        self.ready.set()
        metrics.CONFIG_READY.set(1)
        log.info("config feed caught up: %d webhooks held", len(self.index))

    def _apply(self, record: ConsumerRecord) -> None:
        if record.key is None:
            log.warning("config record without key at offset %s: skipped", record.offset)
            return
        webhook_id = record.key.decode("utf-8", "replace")
        cfg: WebhookConfig | None = None
        if record.value is not None:
            try:
                cfg = WebhookConfig.from_bytes(record.value)
            except ValidationError as exc:
                log.error("unreadable config for %s at offset %s: %s", webhook_id, record.offset, exc)
                return
        changed = self.index.apply(webhook_id, cfg)
        if changed and self.ready.is_set():
            changed_at_ms = cfg.changed_at_ms if cfg is not None and cfg.changed_at_ms else record.timestamp
            metrics.CONFIG_APPLY.observe(max(0.0, time.time() - changed_at_ms / 1000))

    async def _update_gauges(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        lag = 0
        for tp in tps:
            high = consumer.highwater(tp)
            if high is not None:
                lag += max(0, high - await consumer.position(tp))
        metrics.CONFIG_LAG.set(lag)
        metrics.SUBSCRIPTIONS.labels("enabled").set(self.index.enabled_count())
        metrics.SUBSCRIPTIONS.labels("held").set(len(self.index))
