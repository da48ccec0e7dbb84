"""Wiring: settings -> store, secret box, auth, service, publisher, commands consumer, aiohttp app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from registry.auth import Authenticator, JwksKeys, KeySource, SharedSecret
from registry.commands import CommandConsumer
from registry.documents import ConfigRecord
from registry.handlers import Handlers
from registry.history.api import HistoryApi
from registry.lease import StoreLease, send_budget_s
from registry.openapi import build_openapi
from registry.page.routes import add_page_routes
from registry.problems import problem_for, problem_response
from registry.publisher import ConfigSink, KafkaSink, Publisher
from registry.recent import RecentWebhooks
from registry.routes import HISTORY_ROUTES, ROUTES
from registry.service import Limits, WebhookService
from registry.settings import RegistrySettings
from registry.store import MongoStore
from webhooks_common.metrics import OwnMetrics
from webhooks_common.models import now_ms
from webhooks_common.secrets import SecretBox
from webhooks_common.topics import Topics
from webhooks_common.urls import UrlPolicy

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 10.0


class Metrics(OwnMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.requests = self.counter("registry_http_requests", "HTTP requests", ["route", "method", "status"])
        self.latency = self.seconds(
            "registry_http_request_seconds", "HTTP request latency", ["route", "method"]
        )
        self.published = self.counter(
            "registry_configs_published", "Config records acknowledged by Kafka", ["kind"]
        )
        self.publish_delay = self.seconds(
            "registry_publish_delay_seconds", "From API acceptance to Kafka acknowledgement"
        )
        self.set_aside = self.counter(
            "registry_configs_set_aside",
            "Webhook changes that cannot be published (not a webhook's shape); reason in webhook_changes",
        )
        self.kafka_up = self.gauge("registry_kafka_up", "Publisher connected to Kafka (1) or not (0)")
        self.change_bases = self.counter(
            "registry_change_bases",
            "What each change was computed on: a webhook this process saw moments ago that was current "
            "(recent), one that could not decide it alone and was read again (reread: stale, nothing to "
            "change on it, or another If-Match), or a read (read)",
            ["base"],
        )
        self.lease_held = self.gauge(
            "registry_outbox_lease_held", "This process holds the outbox lease and publishes (1) or not (0)"
        )

    def on_published(self, record: ConfigRecord) -> None:
        self.published.labels("tombstone" if record.deleted else "config").inc()
        if record.changed_at_ms:
            self.publish_delay.observe(max(0.0, (now_ms() - record.changed_at_ms) / 1000))


class Runtime:
    """Everything a running registry holds; built at start-up inside the event loop."""

    def __init__(
        self, settings: RegistrySettings, sink_factory: Callable[[], ConfigSink] | None = None
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.box = SecretBox(settings.require_secrets_key())
        self.url_policy = UrlPolicy(settings.allow_http, settings.allow_private_targets)
        sources: list[KeySource] = []
        if settings.jwt_secret:
            sources.append(SharedSecret(settings.jwt_secret))
        if settings.jwks_url:
            sources.append(JwksKeys(settings.jwks_url, settings.jwks_cache_seconds))
        self.authenticator = Authenticator(sources, settings.jwt_audience)
        self.metrics = Metrics()
        self.openapi_bytes = orjson.dumps(build_openapi())
        sink_timeout_ms = int(send_budget_s(settings.publish_lease_s)[0] * 1000)
        self._sink_factory = sink_factory or (
            lambda: KafkaSink(settings.kafka_bootstrap_servers, self.topics.config, sink_timeout_ms)
        )
        self.store = MongoStore(settings.mongo_url, settings.database, settings.mongo_timeout_ms)
        lease = StoreLease(self.store.leases, settings.publish_lease_s, settings.publish_poll_seconds)
        self.metrics.lease_held.set_function(lambda: 1.0 if lease.held else 0.0)
        self.publisher = Publisher(
            self.store,
            self._sink_factory,
            settings.publish_poll_seconds,
            gather_s=settings.publish_gather_ms / 1000,
            on_published=self.metrics.on_published,
            on_set_aside=self.metrics.set_aside.inc,
            lease=lease,
        )
        limits = Limits(settings.max_webhooks_per_entity, timedelta(hours=settings.secret_overlap_hours))
        notify = self.publisher.wake if settings.publisher_enabled else (lambda: None)
        recent = RecentWebhooks(settings.recent_webhooks, settings.recent_ttl_s)
        self.service = WebhookService(
            self.store,
            self.box,
            limits,
            notify,
            recent=recent,
            on_base=lambda base: self.metrics.change_bases.labels(base).inc(),
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def mongo_ok(self) -> bool:
        try:
            await asyncio.wait_for(self.store.ping(), self.settings.mongo_timeout_ms / 1000)
            return True
        except Exception:
            return False

    async def kafka_ok(self) -> bool:
        if self.settings.publisher_enabled:
            ok = self.publisher.kafka_ok
        else:
            ok = await _tcp_reachable(self.settings.kafka_bootstrap_servers)
        self.metrics.kafka_up.set(1 if ok else 0)
        return ok

    async def _ensure_indexes(self) -> None:
        # In the background: the API must come up (and answer 503) even while MongoDB is down.
        delay = 0.5
        while True:
            try:
                await self.store.ensure_indexes()
                return
            except Exception as exc:
                log.warning("cannot create indexes yet", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        self._tasks.append(asyncio.create_task(self._ensure_indexes(), name="registry-indexes"))
        if self.settings.publisher_enabled:
            self._tasks.append(asyncio.create_task(self.publisher.run(), name="registry-publisher"))
        if self.settings.commands_enabled:
            consumer = CommandConsumer(
                self.service,
                self.settings.kafka_bootstrap_servers,
                self.topics.commands,
                self.settings.consumer_group(self.settings.commands_group),
                invalid_topic=self.topics.invalid,
            )
            self._tasks.append(asyncio.create_task(consumer.run(), name="registry-commands"))
        yield
        for task in self._tasks:
            task.cancel()
        # Bounded: a Kafka client cancelled half-way through joining its group can take long to stop, and
        # shutdown must not hang on it (what it had not committed is consumed again by the next registry).
        done, pending = await asyncio.wait(self._tasks, timeout=SHUTDOWN_TIMEOUT_S)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("background task failed at shutdown", extra={"task": task.get_name()})
        if pending:
            log.warning("background tasks still stopping at shutdown", extra={"tasks": len(pending)})
        await self.publisher.close()
        await self.store.close()


async def _tcp_reachable(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


RUNTIME = web.AppKey("runtime", Runtime)


def _metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        started = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        finally:
            metrics.requests.labels(route, request.method, str(status)).inc()
            metrics.latency.labels(route, request.method).observe(time.perf_counter() - started)

    return middleware


@web.middleware
async def _problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status_code < 400:
            raise
        return problem_response(problem_for(exc))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        problem = problem_for(exc)
        if problem.status == 500:
            log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        return problem_response(problem)


def build_app(
    settings: RegistrySettings, *, sink_factory: Callable[[], ConfigSink] | None = None
) -> web.Application:
    rt = Runtime(settings, sink_factory)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[_metrics_middleware(rt.metrics), _problem_middleware],
    )
    app[RUNTIME] = rt
    handlers = Handlers(rt)
    history = HistoryApi(rt)
    for route in ROUTES:
        guarded = history.guarded(route) if route in HISTORY_ROUTES else handlers.guarded(route)
        app.router.add_route(route.method, route.path, guarded)
    add_page_routes(app, settings)
    app.cleanup_ctx.append(rt.lifespan)
    app.cleanup_ctx.append(history.lifespan)
    return app
