"""SSRF guard: refuse targets whose RESOLVED address is private, loopback, link-local, metadata, etc.

The check runs inside the connector, on the addresses the connection will actually use, so a name that
resolves (or re-resolves, DNS rebinding) to an internal address is refused at connect time.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from aiohttp import TCPConnector

from deliverer.classify import TargetRefused

log = logging.getLogger(__name__)

METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def forbidden_reason(addr: str) -> str | None:
    """Why `addr` may not be called (e.g. "loopback"), or None when it is a public unicast address."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in METADATA:
        return "cloud metadata"
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    ):
        if flag:
            return label
    if not ip.is_global:
        return "not globally routable"
    return None


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
