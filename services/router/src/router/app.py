"""Wiring: the faust app, its agent, the config view, the task sink and the HTTP pages.

One agent reads both input topics (raw bytes; we parse them ourselves so bad input never crashes it) into
an `Intake`; one loop routes whatever has arrived as a batch (intake.py) and acknowledges a batch's events
only after Kafka acknowledged every task and invalid record the batch produced; faust commits acknowledged
offsets only. See README.md for why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from faust.types import EventT, StreamT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from router import metrics
from router.faust_adapter import manual_ack_events
from router.index import SubscriptionIndex
from router.intake import Intake, run_intake
from router.routing import BatchPlan, InputRecord, plan_batch
from router.settings import RouterSettings
from router.sink import KafkaSink, RecordSink
from webhooks_common.config_view import ConfigTopicView
from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.topics import Topics

log = logging.getLogger(__name__)


class Router:
    """The routing step of one batch, with its collaborators (the faust-free part of the worker)."""

    def __init__(self, settings: RouterSettings, topics: Topics, index: SubscriptionIndex, sink: RecordSink):
        self.settings = settings
        self.topics = topics
        self.index = index
        self.sink = sink

    async def route(self, records: list[InputRecord]) -> BatchPlan:
        plan = plan_batch(
            records,
            self.index,
            self.topics,
            now_ms=int(time.time() * 1000),
            max_event_bytes=self.settings.max_event_bytes,
        )
        await self.sink.write_all(plan.out)
        _record_metrics(plan, len(records))
        return plan


def _record_metrics(plan: BatchPlan, n: int) -> None:
    metrics.BATCH_SIZE.observe(n)
    for (source, type_), count in plan.events.items():
        metrics.EVENTS_IN.labels(source, type_).inc(count)
    for source, count in plan.tasks.items():
        metrics.TASKS_OUT.labels(source).inc(count)
    for reason, count in plan.invalid.items():
        metrics.INVALID.labels(reason).inc(count)
    now = time.time()
    observe = metrics.EVENT_TO_TASK.observe
    for ts in plan.event_timestamps_ms:
        observe(max(0.0, now - ts / 1000))


def _input_record(event: EventT) -> InputRecord:
    m = event.message
    return InputRecord(m.topic, m.partition, m.offset, m.key, m.value, int(m.timestamp * 1000))


def build_app(settings: RouterSettings) -> faust.App:
    topics = Topics(prefix=settings.topic_prefix)
    index = SubscriptionIndex()
    view = ConfigTopicView(settings.kafka_bootstrap_servers, topics.config, index, metrics=metrics.CONFIG)
    metrics.SUBSCRIPTIONS.labels("held").set_function(index.__len__)
    metrics.SUBSCRIPTIONS.labels("enabled").set_function(index.enabled_count)
    app = faust.App(
        settings.group_id(),
        broker=[f"kafka://{h.strip()}" for h in settings.kafka_bootstrap_servers.split(",")],
        datadir=str(settings.data_dir()),
        web_port=settings.web_port,
        web_bind=settings.web_bind,
        web_host="127.0.0.1",
        store="memory://",
        topic_disable_leader=True,  # no leader-only timers: no leader topic to create
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
    )
    inputs = app.topic(
        *topics.inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.input_partitions,
    )

    @app.task
    async def follow_config() -> None:
        await view.run()

    @app.agent(inputs)
    async def route(stream: StreamT[bytes]) -> None:
        producer = make_producer(
            settings.kafka_bootstrap_servers,
            client_id=f"{settings.group_id()}-tasks",
            linger_ms=settings.tasks_linger_ms,
        )
        await start_client(producer)
        router = Router(settings, topics, index, KafkaSink(producer, frozenset({topics.deliveries})))
        try:
            # Readiness: routing with a partial index would silently drop tasks for webhooks not read yet.
            # Only at start: when the feed fails later, routing goes on with the configs held (the last known
            # state) while /readyz says the feed is down.
            await view.wait_ready()
            # faust never acks these events by itself: each is acked below, once its tasks are on Kafka.
            events, ack = manual_ack_events(stream)
            intake: Intake[EventT] = Intake(
                settings.batch_max,
                linger_s=settings.batch_within_ms / 1000,
                busy_rate=settings.batch_busy_rate,
            )

            async def write(batch: list[EventT]) -> None:
                await _shielded(router.route([_input_record(e) for e in batch]))

            async def acknowledge(batch: list[EventT]) -> None:
                for event in batch:
                    await ack(event)

            await run_intake(events, intake, write, acknowledge, in_flight=settings.batches_in_flight)
        finally:
            await stop_client(producer)

    @app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=; the header itself may carry it
        return self.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: Any, request: Any) -> Any:
        ready, reason = view.status()
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
        body = {"ready": ready, "reason": reason, "webhooks": len(index), "partitions": assigned}
        return self.json(body, status=200 if ready else 503)

    return app


async def _shielded(work: Any) -> Any:
    """Finish writing a batch even when the agent is cancelled (shutdown), then let the cancel through.

    Cancelling half-way would be safe (the batch is not acknowledged) but makes needless duplicates.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait_for(asyncio.shield(task), timeout=30)
        raise
