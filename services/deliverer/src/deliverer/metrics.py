"""Prometheus metrics of one deliverer (own registry, so several can live in one test process)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from webhooks_common.consumer import add_health_routes, serve_app
from webhooks_common.consumer.health import Check
from webhooks_common.metrics import OwnMetrics, metrics_response


class DelivererMetrics(OwnMetrics):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = self.counter("deliverer_attempts", "Delivery attempts by outcome.", ["outcome"])
        self.latency = self.seconds("deliverer_attempt_seconds", "Duration of one HTTP attempt.")
        self.in_flight = self.gauge("deliverer_in_flight", "HTTP attempts in flight.")
        self.pending = self.gauge("deliverer_pending", "Tasks read and not finished.")
        self.retry_backlog = self.gauge(
            "deliverer_retry_backlog", "Tasks waiting on the retry topics assigned to us (lag)."
        )
        self.dlq = self.counter("deliverer_dead_letters", "Tasks sent to the dead-letter topic.")
        self.dropped = self.counter(
            "deliverer_dropped", "Tasks dropped: webhook disabled, removed, unknown.", ["reason"]
        )
        self.deferred = self.counter(
            "deliverer_deferred", "Tasks parked on a retry topic without an attempt.", ["reason"]
        )
        self.invalid = self.counter("deliverer_invalid_tasks", "Tasks set aside on the invalid topic.")


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
