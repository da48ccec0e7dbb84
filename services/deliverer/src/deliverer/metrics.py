"""Prometheus metrics of one deliverer (own registry, so several can live in one test process)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from webhooks_common.consumer import add_health_routes, serve_app
from webhooks_common.consumer.health import Check
from webhooks_common.metrics import LATENCY_BUCKETS, metrics_response


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
        self.invalid = Counter("deliverer_invalid_tasks", "Tasks set aside on the invalid topic.", registry=r)


async def serve_metrics(
    metrics: DelivererMetrics, host: str, port: int, checks: Mapping[str, Check]
) -> tuple[web.AppRunner, int]:
    """Serve /metrics, /healthz and /readyz (`checks`); returns the runner and the bound port."""
    app = web.Application()

    async def serve(_r: web.Request) -> web.Response:
        return metrics_response(metrics.registry)

    app.router.add_get("/metrics", serve)
    add_health_routes(app, checks)
    return await serve_app(app, host, port)
