"""How each of our services is started and says it is ready (`python -m NAME`, as deployed).

The registry, the router and the history writer (`python -m registry history`) answer /readyz. The
deliverer serves /healthz and /metrics and prints a
"deliverer ready" line once it consumes; when it answers /readyz that is used, the line otherwise.
"""

from __future__ import annotations

import sys

from webhooks_devtools.procs import HttpReady, LineReady, Readiness

DELIVERER_READY_LINE = r"deliverer ready metrics_port=(\d+)"


def service_argv(name: str) -> list[str]:
    if name == "history":  # the registry's delivery-history writer, its own process
        return [sys.executable, "-m", "registry", "history"]
    return [sys.executable, "-m", name]


def readyz(port: int | str, host: str = "127.0.0.1") -> HttpReady:
    """The registry's and the router's readiness."""
    return HttpReady(f"http://{host}:{port}/readyz")


def deliverer_ready(metrics_port: int | str, host: str = "127.0.0.1") -> Readiness:
    """/readyz on the metrics port; while that answers 404, the deliverer's ready line (the line alone
    when the port is 0: any free one, unknown here)."""
    if str(metrics_port) == "0":
        return LineReady(DELIVERER_READY_LINE)
    return HttpReady(f"http://{host}:{metrics_port}/readyz", fallback=LineReady(DELIVERER_READY_LINE))


def service_ready(name: str, env: dict[str, str]) -> Readiness:
    """The readiness of service `name` run with `env` (its port settings must be set, not 0)."""
    if name == "registry":
        return readyz(env.get("REGISTRY_PORT", "8080"))
    if name == "router":
        return readyz(env.get("ROUTER_WEB_PORT", "6066"))
    if name == "deliverer":
        return deliverer_ready(env.get("DELIVERER_METRICS_PORT", "9100"))
    if name == "history":
        return readyz(env.get("REGISTRY_HISTORY_PORT", "9102"))
    raise ValueError(f"unknown service {name!r}")
