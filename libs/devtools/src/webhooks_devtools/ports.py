"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import socket


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
    """A port the kernel just called free; with `pair`, one whose successor is free too (a Kafka
    listener and its controller)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if not pair or (port < 65535 and port_free(port + 1, host)):
            return port
    raise RuntimeError("no free port pair found")
