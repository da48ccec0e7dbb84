"""Wiring: settings -> config view, Kafka consumer/producer, HTTP session, metrics. Start and stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaProducer

from deliverer.configs import ConfigView
from deliverer.consumer import delivery_runtimes
from deliverer.handler import Pipeline
from deliverer.http_client import make_session
from deliverer.metrics import DelivererMetrics, serve_metrics
from deliverer.settings import DelivererSettings
from webhooks_common.config_view import ConfigTopicView, ConfigViewMetrics
from webhooks_common.consumer import ConsumerRuntime
from webhooks_common.consumer.health import Check, evaluate
from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.secrets import SecretBox
from webhooks_common.topics import RETRY_TIERS, Topics
from webhooks_common.wire import DeliveryTask

log = logging.getLogger(__name__)


class Deliverer:
    """`async with Deliverer(settings) as d:` runs one deliverer in this process until the block ends."""

    def __init__(
        self, settings: DelivererSettings, *, tiers: Sequence[tuple[str, float]] = RETRY_TIERS
    ) -> None:
        self.settings = settings
        self.topics = Topics(prefix=settings.topic_prefix)
        self.metrics = DelivererMetrics()
        self.view = ConfigView(SecretBox(settings.require_secrets_key()))
        self.config = ConfigTopicView(
            settings.kafka_bootstrap_servers,
            self.topics.config,
            self.view,
            metrics=ConfigViewMetrics("deliverer", self.metrics.registry),
        )
        self.metrics_port: int | None = None
        self._tiers = tuple(tiers)
        self._stopped = asyncio.Event()
        self._fatal: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._consumers: list[ConsumerRuntime[DeliveryTask]] = []
        # what /readyz checks (read at each request, so a part started later can add its own)
        self.checks: dict[str, Check] = {"consumer": self._consumer_ready, "config": self._config_ready}
        self._producer: AIOKafkaProducer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stop_lock = asyncio.Lock()
        self._started = False

    async def start(self) -> None:
        s = self.settings
        self._runner, self.metrics_port = await serve_metrics(
            self.metrics, s.metrics_host, s.metrics_port, self.checks
        )
        # secrets and states first: no task may be handled against an empty view
        await self.config.start(within_s=60.0)
        self._producer = producer = make_producer(s.kafka_bootstrap_servers, linger_ms=s.records_linger_ms)
        await start_client(producer)
        self._session = session = make_session(
            timeout_s=s.timeout_s,
            max_connections=s.max_in_flight,
            allow_private=s.allow_private_targets,
            user_agent=s.user_agent,
        )
        if s.allow_private_targets:
            log.warning("DELIVERY_ALLOW_PRIVATE_TARGETS=true: private and loopback targets are allowed")
        self.pipeline = Pipeline(
            settings=s,
            topics=self.topics,
            view=self.view,
            session=session,
            producer=producer,
            metrics=self.metrics,
            tiers=self._tiers,
            on_fatal=self._on_fatal,
        )
        self._consumers = delivery_runtimes(
            s, self.topics, self.pipeline, self.metrics, self._tiers, producer, self._on_fatal
        )
        for consumer in self._consumers:
            await consumer.start()
        self._started = True
        log.info(
            "deliverer started (group %s, metrics on :%s)", s.consumer_group(s.group_id), self.metrics_port
        )

    def _consumer_ready(self) -> bool:
        return bool(self._consumers) and all(c.ready for c in self._consumers)

    def _config_ready(self) -> tuple[bool, str]:
        return self.config.status()

    def ready(self) -> tuple[bool, str]:
        """(ready, reason), as /readyz answers: the consumer runs and the config view is caught up and fed."""
        ok, _, reason = evaluate(self.checks)
        return ok, reason

    def _on_fatal(self, exc: BaseException) -> None:
        if self._fatal is None:
            log.error("deliverer stopping after a fatal error: %r", exc)
            self._fatal = exc
        self.request_stop()

    def request_stop(self) -> None:
        for consumer in self._consumers:
            consumer.request_stop()
        self._stopped.set()

    async def wait(self) -> None:
        """Until a stop is requested (signal, fatal error)."""
        await self._stopped.wait()

    @property
    def failed(self) -> BaseException | None:
        return self._fatal

    async def stop(self) -> None:
        """Stop taking tasks, finish attempts in flight within the grace period, commit, leave the group."""
        async with self._stop_lock:
            if not self._started:
                return
            self._started = False
            self.request_stop()
            s = self.settings
            for consumer in self._consumers:
                await consumer.wait_stopped(5)
            self.pipeline.forget_all_queued()  # never started: left uncommitted for the next owner
            if not await self.pipeline.lanes.wait_idle(s.shutdown_grace_s):
                log.warning(
                    "attempts in flight after %.1fs abandoned (redelivered later)", s.shutdown_grace_s
                )
                await self.pipeline.lanes.cancel_all()
            await self.pipeline.wait_acked(10)
            for consumer in self._consumers:
                try:
                    await consumer.commit()
                except Exception:
                    log.exception("final commit failed")
                await consumer.stop()
            assert self._producer is not None and self._session is not None
            await stop_client(self._producer)
            await self._session.close()
            await self.config.stop()
            if self._runner is not None:
                await self._runner.cleanup()
            log.info("deliverer stopped")

    async def __aenter__(self) -> Deliverer:
        try:
            await self.start()
        except BaseException:
            await self._cleanup_partial()
            raise
        return self

    async def _cleanup_partial(self) -> None:
        if self._started:
            await self.stop()
            return
        # whatever start() got to before it failed: a started Kafka client left behind leaks its sockets
        for consumer in self._consumers:
            await consumer.stop()
        if self._producer is not None:
            await stop_client(self._producer)
        if self._session is not None:
            await self._session.close()
        await self.config.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
