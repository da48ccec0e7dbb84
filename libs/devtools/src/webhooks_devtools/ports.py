"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 20000  # above the well-known and most registered services' ports
_given: set[int] = set()  # handed out by this process: not again, even before its server binds it


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` can be bound now (SO_REUSEADDR, as servers bind: a port in TIME_WAIT is free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(*, pair: bool = False, host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range; with `pair`, one whose successor is free too (a Kafka
    listener and its controller).

    Not a port the kernel picks (bind to 0): those come from the ephemeral range, which the kernel also hands
    to outgoing connections, and a Kafka or HTTP client could take the port between this check and the
    server's bind (seen: a router failing three starts in a row on "address already in use")."""
    top = _ephemeral_start() - 2  # leaves room for a pair's successor
    for _ in range(500):
        port = random.randint(LOWEST_PORT, top)
        if port in _given or (pair and port + 1 in _given):
            continue
        if port_free(port, host) and (not pair or port_free(port + 1, host)):
            _given.update({port, port + 1} if pair else {port})
            return port
    raise RuntimeError(f"no free port (pair: {pair}) between {LOWEST_PORT} and {top}")


def _ephemeral_start() -> int:
    try:
        start = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        start = 32768  # Linux's default
    return max(start, LOWEST_PORT + 1000)
