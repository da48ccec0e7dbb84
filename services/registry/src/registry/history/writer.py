"""The history writer: consumes `webhooks.attempts` and `webhooks.dlq` in its own consumer group, on the
shared runtime, and stores one delivery per (event, webhook) with its attempts, in batches.

It never slows delivery: it is its own process and group, the deliverer never waits for it, and on shared
cores it holds its batches while the host is busy and deliveries flow (`governor.py`); when it falls behind
its lag is the `history_writer_lag_records` gauge and it catches up by itself. Every write is
idempotent (attempts have deterministic `_id`s, a delivery's summary is a union of attempt ids), so a
batch written again after a crash or a retry changes nothing. It also keeps each webhook's failure streak
and asks the registry to disable a webhook whose every attempt failed for `history_auto_disable_after_s`,
with an ordinary `disable` command on `webhooks.commands`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections import defaultdict
from typing import Any

import pymongo.errors
from aiohttp import web
from aiokafka import AIOKafkaProducer

from registry.history import model
from registry.history.governor import Governor, YieldPolicy
from registry.history.jobs import JobRunner
from registry.history.send import TaskSender
from registry.history.store import HistoryStore
from registry.settings import RegistrySettings
from registry.store import MongoStore
from webhooks_common.consumer import (
    BaseHandler,
    ConsumerRuntime,
    Inbound,
    Outcome,
    RuntimeSettings,
    add_health_routes,
    default_outcome,
    run_replacing,
    serve_app,
)
from webhooks_common.decoders import decode_attempt, decode_dead
from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.metrics import OwnMetrics, metrics_response
from webhooks_common.topics import Topics
from webhooks_common.wire import AttemptRecord, DeadLetter, disable_command, encode

log = logging.getLogger(__name__)

REQUESTED_BY = "history"


def outcome_for(exc: BaseException) -> Outcome:
    """The store down or refusing is retried (the records wait, nothing is lost); the rest as usual."""
    if isinstance(exc, pymongo.errors.PyMongoError):
        return Outcome.RETRY
    return default_outcome(exc)


class WriterMetrics(OwnMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.records = self.counter("history_writer_records", "Records stored", ["kind"])
        self.batch = self.seconds("history_writer_batch_seconds", "Time to store one batch")
        self.lag = self.gauge(
            "history_writer_lag_records",
            "Records on webhooks.attempts and webhooks.dlq not stored yet (assigned partitions)",
        )
        self.held = self.counter(
            "history_writer_held_seconds",
            "Time batches were held back for delivery (host CPU busy while deliveries flow)",
        )
        self.auto_disabled = self.counter(
            "history_auto_disable_requests", "Disable commands sent after sustained failure"
        )


class HistoryWriter(BaseHandler[Any]):
    def __init__(
        self,
        settings: RegistrySettings,
        store: HistoryStore,
        producer: AIOKafkaProducer,
        metrics: WriterMetrics | None = None,
    ) -> None:
        self.s = settings
        self.topics = Topics(settings.topic_prefix)
        self.store = store
        self.producer = producer
        self.metrics = metrics or WriterMetrics()
        self._buffer: list[Inbound[Any]] = []
        self._wake = asyncio.Event()
        self._runtime: ConsumerRuntime[Any] | None = None
        s = settings
        policy = YieldPolicy(s.history_yield_cpu, s.history_yield_rate, s.history_yield_max_s)
        self.governor = Governor(policy, self._attempts_written)

    async def _attempts_written(self) -> int | None:
        runtime = self._runtime
        return None if runtime is None else await runtime.end_offsets({self.topics.attempts})

    @property
    def ready(self) -> bool:
        return self._runtime is not None and self._runtime.ready

    # --- intake: records wait in a buffer and are finished when their batch is stored ------------------

    async def handle(self, rec: Inbound[Any]) -> None:
        self._buffer.append(rec)
        if len(self._buffer) >= self.s.history_batch_size:
            self._wake.set()

    def forget_revoked(self) -> None:
        self._buffer = [r for r in self._buffer if not r.revoked]

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.s.history_flush_s)
            self._wake.clear()
            while self._buffer:
                held = await self.governor.wait_turn()  # the buffer fills meanwhile: a fuller batch after
                if held:
                    self.metrics.held.inc(held)
                items, self._buffer = (
                    self._buffer[: self.s.history_batch_size],
                    self._buffer[self.s.history_batch_size :],
                )
                items = [i for i in items if not i.revoked]
                if not items:
                    continue
                started = time.perf_counter()
                try:
                    await self.store_batch(
                        [i.value for i in items if isinstance(i.value, AttemptRecord)],
                        [i.value for i in items if isinstance(i.value, DeadLetter)],
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    for item in items:
                        item.fail(exc)  # retried by the runtime after a backoff: handle() buffers it again
                    continue
                self.metrics.batch.observe(time.perf_counter() - started)
                for item in items:
                    item.done()

    # --- one batch ------------------------------------------------------------------------------------

    async def store_batch(self, attempts: list[AttemptRecord], dead: list[DeadLetter]) -> None:
        """Store one batch; writing the same batch again changes nothing."""
        await self.store.insert_attempts([model.attempt_doc(a) for a in attempts])
        by_delivery: dict[str, list[AttemptRecord]] = defaultdict(list)
        for a in attempts:
            by_delivery[model.delivery_id(a.webhook_id, a.event_id)].append(a)
        dead_by: dict[str, DeadLetter] = {}
        for d in dead:
            dead_by[model.delivery_id(d.task.webhook_id, d.task.event_id)] = d
        ids = sorted(set(by_delivery) | set(dead_by))
        existing = await self.store.deliveries_by_id(ids)
        changes: dict[str, model.Doc] = {}
        new_hours: set[tuple[str, str]] = set()
        for i in ids:
            fields = model.merge_delivery(existing.get(i), by_delivery.get(i, []), dead_by.get(i))
            changes[i] = fields
            if i not in existing:
                new_hours.add((fields["webhook_id"], fields["hour"]))
        raced = await self.store.write_deliveries(changes, set(existing), new_hours)
        if raced:  # created meanwhile (a test event, another writer): merge into what is there now
            again = await self.store.deliveries_by_id(sorted(raced))
            fixes = {
                i: model.merge_delivery(again.get(i), by_delivery.get(i, []), dead_by.get(i)) for i in raced
            }
            await self.store.write_deliveries(fixes, set(again), set())
        self.metrics.records.labels("attempt").inc(len(attempts))
        self.metrics.records.labels("dead_letter").inc(len(dead))
        await self._streaks(attempts)

    async def _streaks(self, attempts: list[AttemptRecord]) -> None:
        """Fold each webhook's attempts into its failure streak; ask for a disable when it is long enough."""
        by_webhook: dict[str, list[AttemptRecord]] = defaultdict(list)
        for a in attempts:
            if a.outcome in model.SENT:
                by_webhook[a.webhook_id].append(a)
        period_ms = int(self.s.history_auto_disable_after_s * 1000)
        settle_ms = min(period_ms, 300_000)
        for wid, recs in by_webhook.items():
            before = model.streak_from_doc(await self.store.streak(wid))
            after = model.fold_streak(before, recs, settle_ms)
            if period_ms > 0 and model.should_disable(after, int(time.time() * 1000), period_ms):
                await self._request_disable(recs[-1], after, period_ms)
                after = model.Streak(None, None, int(time.time() * 1000))
            if after != before:
                await self.store.save_streak(wid, after)

    async def _request_disable(self, rec: AttemptRecord, streak: model.Streak, period_ms: int) -> None:
        assert streak.failing_since_ms is not None
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(streak.failing_since_ms / 1000))
        reason = f"every delivery attempt failed since {since} ({period_ms / 1000:g} s or more)"
        cmd = disable_command(rec.webhook_id, rec.entity_id, reason, REQUESTED_BY)
        await self.producer.send_and_wait(self.topics.commands, encode(cmd), key=rec.webhook_id.encode())
        self.metrics.auto_disabled.inc()
        log.warning("asked to disable webhook %s: %s", rec.webhook_id, reason)

    # --- running --------------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._runtime is not None:
            self.metrics.lag.set(self._runtime.lag({self.topics.attempts, self.topics.dlq}))

    async def run(self) -> None:
        """Until cancelled; a consumer whose loop dies is replaced after a backoff."""
        flusher = asyncio.create_task(self._flush_loop(), name="history-flush")
        sampler = asyncio.create_task(self.governor.sample_forever(), name="history-governor")
        try:
            await run_replacing(self._make_runtime, "history consumer")
        finally:
            flusher.cancel()
            sampler.cancel()
            await asyncio.wait({flusher, sampler})

    def _make_runtime(self) -> ConsumerRuntime[Any]:
        self._runtime = ConsumerRuntime(
            RuntimeSettings(
                bootstrap=self.s.kafka_bootstrap_servers,
                group_id=self.s.consumer_group(self.s.history_group),
                invalid_topic=self.topics.invalid,
                max_poll_records=self.s.history_batch_size,
                max_pending=self.s.history_batch_size * 4,
            ),
            {self.topics.attempts: decode_attempt, self.topics.dlq: decode_dead},
            self,
            policy=outcome_for,
            producer=self.producer,
            on_tick=self._tick,
        )
        return self._runtime


async def prune_loop(store: HistoryStore, settings: RegistrySettings) -> None:
    while True:
        try:
            removed = await store.prune(int(time.time() * 1000), settings.history_retention_days)
            if removed:
                log.info("history retention removed %d deliveries", removed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("history retention failed; will retry", extra={"error": repr(exc)})
        await asyncio.sleep(settings.history_prune_every_s)


async def ensure_indexes(store: HistoryStore) -> None:
    delay = 0.5
    while True:
        try:
            await store.ensure_indexes()
            return
        except Exception as exc:
            log.warning("cannot create history indexes yet", extra={"error": repr(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


class WriterProcess:
    """Everything `python -m registry history` runs: the writer, retention, the recover/replay jobs and
    /healthz /readyz /metrics."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.s = settings
        self.store = HistoryStore(settings.mongo_url, settings.database, settings.mongo_timeout_ms)
        self.producer = make_producer(settings.kafka_bootstrap_servers)
        self.writer = HistoryWriter(settings, self.store, self.producer)
        topics = Topics(settings.topic_prefix)
        self.webhooks = MongoStore(settings.mongo_url, settings.database, settings.mongo_timeout_ms)
        self.sender = TaskSender(settings.kafka_bootstrap_servers, topics.deliveries)
        self.jobs = JobRunner(
            self.store,
            self.sender,
            self.webhooks.get,
            topics,
            settings.kafka_bootstrap_servers,
            rate=settings.history_job_rate,
            poll_s=settings.history_job_poll_s,
            history_group=settings.consumer_group(settings.history_group),
            history_wait_s=settings.history_job_wait_s,
        )
        self.port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> WriterProcess:
        await ensure_indexes(self.store)
        await start_client(self.producer)
        app = web.Application()
        registry = self.writer.metrics.registry

        async def metrics(_r: web.Request) -> web.Response:
            return metrics_response(registry)

        app.router.add_get("/metrics", metrics)
        add_health_routes(app, {"consumer": lambda: self.writer.ready})
        self._runner, self.port = await serve_app(app, self.s.history_host, self.s.history_port)
        self._tasks = [
            asyncio.create_task(self.writer.run(), name="history-writer"),
            asyncio.create_task(prune_loop(self.store, self.s), name="history-retention"),
            asyncio.create_task(self.jobs.run(), name="history-jobs"),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=15)
        if self._runner is not None:
            await self._runner.cleanup()
        await stop_client(self.producer)
        await self.sender.close()
        await self.store.close()
        await self.webhooks.close()


async def serve_forever(settings: RegistrySettings) -> None:
    import signal

    if settings.history_nice:
        # the history must never slow delivery: where they share cores, the scheduler favours delivery
        os.nice(settings.history_nice)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with WriterProcess(settings) as proc:
        # tools/run.py reads this line to know the writer is up and where its /metrics is
        print(f"history writer ready metrics_port={proc.port}", file=sys.stderr, flush=True)
        await stop.wait()
