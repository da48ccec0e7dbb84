"""Prometheus metrics of one deliverer (own registry, so several can live in one test process)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from webhooks_common.metrics import LATENCY_BUCKETS


class DelivererMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "deliverer_attempts", "Delivery attempts by outcome.", ["outcome"], registry=r
        )
        self.latency = Histogram(
            "deliverer_attempt_seconds", "Duration of one HTTP attempt.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.in_flight = Gauge("deliverer_in_flight", "HTTP attempts in flight.", registry=r)
        self.pending = Gauge("deliverer_pending", "Tasks read and not finished.", registry=r)
        self.retry_backlog = Gauge(
            "deliverer_retry_backlog", "Tasks waiting on the retry topics assigned to us (lag).", registry=r
        )
        self.dlq = Counter("deliverer_dead_letters", "Tasks sent to the dead-letter topic.", registry=r)
        self.dropped = Counter(
            "deliverer_dropped", "Tasks dropped: webhook disabled, removed, unknown.", ["reason"], registry=r
        )
        self.deferred = Counter(
            "deliverer_deferred", "Tasks parked on a retry topic without an attempt.", ["reason"], registry=r
        )
        self.invalid = Counter("deliverer_invalid_tasks", "Unreadable delivery tasks skipped.", registry=r)


async def serve_metrics(
    metrics: DelivererMetrics,
    host: str,
    port: int,
    *,
    ready: Callable[[], tuple[bool, str]] | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve /metrics, /healthz and (given `ready`) /readyz; returns the runner and the bound port."""
    app = web.Application()

    async def serve(_r: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/metrics", serve)

    async def healthz(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)

    async def readyz(_r: web.Request) -> web.Response:
        assert ready is not None
        ok, reason = ready()
        return web.json_response({"ready": ok, "reason": reason}, status=200 if ok else 503)

    if ready is not None:
        app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port or int(runner.addresses[0][1])
    return runner, bound
