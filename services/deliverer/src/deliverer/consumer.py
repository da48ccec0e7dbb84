"""The Kafka side: one consumer group over the deliveries topic AND the delay topics.

Delay-topic partitions are paused while their head is not due (seek back to it, resume on a timer), so
a waiting retry never blocks fresh deliveries. Offsets are committed per partition only up to the last
contiguous finished task (see offsets.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from deliverer.handler import Job, Pipeline
from deliverer.metrics import DelivererMetrics
from deliverer.offsets import OffsetTracker
from deliverer.records import parse_task
from deliverer.retry import release_at_ms
from deliverer.settings import DelivererSettings
from webhooks_common.kafka import start_client, stop_client
from webhooks_common.topics import Topics

log = logging.getLogger(__name__)

REBALANCE_WAIT_S = 3.0  # how long a revoke waits for attempts in flight, to commit them (fewer duplicates)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, owner: DeliveryConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._owner.on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self._owner.on_assigned(list(assigned))


class DeliveryConsumer:
    def __init__(
        self,
        settings: DelivererSettings,
        topics: Topics,
        pipeline: Pipeline,
        metrics: DelivererMetrics,
        tiers: Sequence[tuple[str, float]],
    ) -> None:
        self._s = settings
        self._pipeline = pipeline
        self._m = metrics
        self._deliveries = topics.deliveries
        self._tier_of = {topics.retry(name): secs for name, secs in tiers}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.consumer_group(settings.group_id),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.max_poll_records,
            # attempts may take up to the HTTP timeout; the loop polls continuously, so this is generous
            max_poll_interval_ms=300_000,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(1_000, settings.session_timeout_ms // 4),
        )
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._timers: dict[TopicPartition, asyncio.TimerHandle] = {}
        self._stopping = False
        self._commit_lock = asyncio.Lock()

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._trackers)

    async def start(self) -> None:
        self._consumer.subscribe([self._deliveries, *self._tier_of], listener=_Listener(self))
        await start_client(self._consumer)

    def request_stop(self) -> None:
        self._stopping = True

    # --- rebalances ---------------------------------------------------------------------------------

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self._trackers[tp] = OffsetTracker()
            self._committed.pop(tp, None)
        log.info("assigned %d partitions", len(assigned))

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        gone = set(revoked)
        for tp in gone:
            timer = self._timers.pop(tp, None)
            if timer is not None:
                timer.cancel()
        if not self._stopping:
            # finish what is in flight (bounded) so its offsets are committed and not redelivered
            await self._pipeline.lanes.wait_idle(REBALANCE_WAIT_S)
            await self._pipeline.wait_acked(REBALANCE_WAIT_S)
        await self.commit(only=gone)
        for tp in gone:
            tracker = self._trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoked = True
            self._committed.pop(tp, None)
        self._pipeline.forget(lambda j: j.tracker.revoked)

    # --- the loop -----------------------------------------------------------------------------------

    async def run(self) -> None:
        committer = asyncio.create_task(self._commit_loop(), name="committer")
        try:
            while not self._stopping:
                if not await self._pipeline.wait_capacity(0.5):
                    continue
                batch = await self._consumer.getmany(timeout_ms=200, max_records=self._s.max_poll_records)
                if batch:
                    await self._handle(batch)
        finally:
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer

    async def _handle(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        now_ms = int(time.time() * 1000)
        for tp, recs in batch.items():
            tier_s = self._tier_of.get(tp.topic)
            for rec in recs:
                tracker = self._trackers.get(tp)
                if tracker is None or tracker.revoked or self._stopping:
                    break
                try:
                    task = parse_task(rec.value)
                except ValueError:
                    log.error("unreadable delivery task at %s offset %d; skipped", tp, rec.offset)
                    tracker.add(rec.offset)
                    self._pipeline.skip(Job(tp, rec.offset, tracker, rec.key, {}))
                    continue
                if tier_s is not None:
                    release = release_at_ms(int(task.get("due_at_ms") or 0), rec.timestamp, tier_s)
                    if release > now_ms:
                        self._hold(tp, rec.offset, release - now_ms)
                        break
                tracker.add(rec.offset)
                await self._pipeline.submit(Job(tp, rec.offset, tracker, rec.key, task))

    def _hold(self, tp: TopicPartition, offset: int, wait_ms: int) -> None:
        """The head of a delay partition is not due: stop fetching it and come back when it is."""
        self._consumer.pause(tp)
        self._consumer.seek(tp, offset)
        old = self._timers.pop(tp, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[tp] = loop.call_later(wait_ms / 1000, self._resume, tp)

    def _resume(self, tp: TopicPartition) -> None:
        self._timers.pop(tp, None)
        if tp in self._trackers:
            self._consumer.resume(tp)

    # --- commits ------------------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self._s.commit_interval_s)
            try:
                await self.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("commit failed; will retry")
            self._update_backlog()

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        async with self._commit_lock:
            offsets = {}
            for tp, tracker in self._trackers.items():
                if only is not None and tp not in only:
                    continue
                off = tracker.committable()
                if off is not None and off != self._committed.get(tp):
                    offsets[tp] = off
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("commit of %d partitions failed: %r", len(offsets), exc)
                return
            self._committed.update(offsets)

    def _update_backlog(self) -> None:
        backlog = 0
        for tp in self._trackers:
            if tp.topic not in self._tier_of:
                continue
            high = self._consumer.highwater(tp)
            done = self._committed.get(tp)
            if high is not None and done is not None:
                backlog += max(0, high - done)
        self._m.retry_backlog.set(backlog)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await stop_client(self._consumer)
