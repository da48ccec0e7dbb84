"""Prometheus helpers: a `/metrics` handler for aiohttp apps and a stand-alone server for the rest."""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Latency buckets (seconds) tuned for loopback-to-internet webhook work: 1 ms .. 30 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)


class OwnMetrics:
    """A service's metrics in a registry of their own, so that several instances can live in one process
    (tests): subclasses declare them with the helpers below."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def seconds(self, name: str, doc: str, labels: Sequence[str] = ()) -> Histogram:
        """A histogram of seconds, in LATENCY_BUCKETS."""
        return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=self.registry)


def metrics_response(registry: CollectorRegistry = REGISTRY) -> web.Response:
    """`registry` in Prometheus's text format: the answer of every `/metrics`."""
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def metrics_handler(request: web.Request) -> web.Response:
    return metrics_response(request.app.get("metrics_registry", REGISTRY))


async def start_metrics_server(host: str, port: int) -> web.AppRunner:
    """Serve `/metrics` (and `/healthz`) on host:port; returns the runner to clean up on exit."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", lambda _r: _ok())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def _ok() -> web.Response:
    return web.json_response({"status": "ok"})
