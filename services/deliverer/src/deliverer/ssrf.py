"""SSRF guard: refuse targets whose RESOLVED address is private, loopback, link-local, metadata, etc.

The address rule (`forbidden_reason`, webhooks_common.urls) is the one the registry applies to a literal host.
The check runs inside the connector, on the addresses the connection will actually use, so a name that
resolves (or re-resolves, DNS rebinding) to an internal address is refused at connect time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import TCPConnector

from deliverer.classify import TargetRefused
from webhooks_common.urls import forbidden_reason

log = logging.getLogger(__name__)


class GuardedConnector(TCPConnector):
    """A TCPConnector whose host resolution drops forbidden addresses and refuses when none is left.

    aiohttp resolves IP literals in the same method (without DNS), so literals are checked here too.
    """

    async def _resolve_host(self, host: str, port: int, traces: Sequence[Any] | None = None) -> list[Any]:
        hosts = await super()._resolve_host(host, port, traces=traces)
        allowed = [h for h in hosts if forbidden_reason(h["host"]) is None]
        if not allowed:
            reasons = sorted({f"{h['host']} ({forbidden_reason(h['host'])})" for h in hosts})
            log.warning("refused target %s: resolves to %s", host, ", ".join(reasons))
            raise TargetRefused(f"{host} resolves to a forbidden address: {', '.join(reasons)}")
        return allowed
