"""The Kafka side: the deliverer on the shared consumer runtime, over the deliveries AND the delay topics.

Every record is decoded once into a typed DeliveryTask at the edge; one that does not decode is set aside on
`webhooks.invalid` by the runtime and the deliverer goes on. Delay-topic partitions are held while their
head is not due (the runtime pauses them and resumes on a timer), so a waiting retry never blocks fresh
deliveries. Offsets are committed per partition only up to the last contiguous finished task.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer

from deliverer.handler import Job, Pipeline
from deliverer.metrics import DelivererMetrics
from deliverer.records import decode_task
from deliverer.retry import release_at_ms
from deliverer.settings import DelivererSettings
from webhooks_common.consumer import BaseHandler, ConsumerRuntime, RuntimeSettings
from webhooks_common.topics import Topics
from webhooks_common.wire import DeliveryTask

REBALANCE_WAIT_S = 3.0  # how long a revoke waits for attempts in flight, to commit them (fewer duplicates)


class DeliveryIntake(BaseHandler[DeliveryTask]):
    """What the runtime calls: tasks into the pipeline, delay-topic holds, draining on a revoke."""

    def __init__(self, pipeline: Pipeline, tier_of: dict[str, float]) -> None:
        self._pipeline = pipeline
        self._tier_of = tier_of

    async def handle(self, rec: Job) -> None:
        await self._pipeline.submit(rec)

    def hold_ms(self, topic: str, value: DeliveryTask, timestamp_ms: int, now_ms: int) -> int:
        tier_s = self._tier_of.get(topic)
        if tier_s is None:
            return 0
        return max(0, release_at_ms(value.due_at_ms, timestamp_ms, tier_s) - now_ms)

    async def drain(self, within_s: float) -> None:
        # finish what is in flight (bounded) so its offsets are committed and not redelivered
        await self._pipeline.lanes.wait_idle(within_s)
        await self._pipeline.wait_acked(within_s)

    def forget_revoked(self) -> None:
        self._pipeline.forget(lambda j: j.revoked)


def delivery_runtimes(
    settings: DelivererSettings,
    topics: Topics,
    pipeline: Pipeline,
    metrics: DelivererMetrics,
    tiers: Sequence[tuple[str, float]],
    producer: AIOKafkaProducer,
    on_fatal: Callable[[BaseException], None],
) -> list[ConsumerRuntime[DeliveryTask]]:
    """The consumers of one deliverer process, all in its group, all feeding `pipeline`: one for fresh
    deliveries and one for the retry topics (`separate_retry_consumer`), or one for everything."""
    tier_of = {topics.retry(name): secs for name, secs in tiers}
    if settings.separate_retry_consumer and tier_of:
        reads = [[topics.deliveries], list(tier_of)]
    else:
        reads = [[topics.deliveries, *tier_of]]
    runtimes: list[ConsumerRuntime[DeliveryTask]] = []

    def tick() -> None:
        metrics.pending.set(sum(r.pending for r in runtimes))
        metrics.retry_backlog.set(sum(r.lag(set(tier_of)) for r in runtimes))

    for topic_names in reads:
        runtimes.append(
            ConsumerRuntime(
                RuntimeSettings(
                    bootstrap=settings.kafka_bootstrap_servers,
                    group_id=settings.consumer_group(settings.group_id),
                    invalid_topic=topics.invalid,
                    max_poll_records=settings.max_poll_records,
                    max_pending=settings.max_pending,
                    session_timeout_ms=settings.session_timeout_ms,
                    commit_interval_s=settings.commit_interval_s,
                    revoke_wait_s=REBALANCE_WAIT_S,
                ),
                dict.fromkeys(topic_names, decode_task),
                DeliveryIntake(pipeline, tier_of),
                producer=producer,
                on_fatal=on_fatal,
                on_tick=tick if not runtimes else None,
                on_set_aside=lambda _rec, _exc: metrics.invalid.inc(),
            )
        )
    return runtimes
