"""How fast this host is at the moment, so that figures from different sittings can be read side by side.

Two short probes (about 2 s in all), stored with every e2e, history and registry bench result:
- `python_loop_ns`: nanoseconds per iteration of a plain Python loop on one core (the best of three).
- `wakeup_us`: CPU microseconds one asyncio process spends per echo round trip when each request wakes it
  from idle (requests 5 ms apart), and `busy_us` the same with requests back to back. On this 2-core VM
  (2026-12-01) an echo cost 84-143 us woken from idle against 32-40 us back to back: a service that sleeps
  between events pays the difference for every event, which is why the CPU per event at 100 events/s is
  several times that at saturation.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ECHO_SERVER = """
import asyncio

async def main():
    async def echo(reader, writer):
        while data := await reader.read(4096):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def python_loop_ns(iterations: int = 1_000_000) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - t0)
    return best / iterations * 1e9


def on_cpu_ns(pid: int) -> int:
    """Time the process's main thread has run, in ns (`/proc/PID/schedstat`: finer than stat's ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def echo_cost_us(round_trips: int, gap_s: float) -> dict[str, float]:
    """CPU per round trip of an asyncio echo server in a child process: woken from idle, then back to back."""
    with subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            return _echo_round_trips(server.pid, port, round_trips, gap_s)
        finally:
            server.kill()  # the with block closes its pipe and waits for it


def _echo_round_trips(pid: int, port: int, round_trips: int, gap_s: float) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = b"x" * 300

        def round_trip() -> None:
            sock.sendall(payload)
            got = 0
            while got < len(payload):
                got += len(sock.recv(4096))

        for _ in range(20):  # warm-up: connection and code paths
            round_trip()
        out: dict[str, float] = {}
        for name, gap in (("wakeup_us", gap_s), ("busy_us", 0.0)):
            c0 = on_cpu_ns(pid)
            for _ in range(round_trips):
                round_trip()
                if gap:
                    time.sleep(gap)
            out[name] = round((on_cpu_ns(pid) - c0) / round_trips / 1000, 1)
        return out


def host_probe() -> dict[str, Any]:
    """Both probes; blocking for about 2 s (run it before the bench's own load, off the event loop)."""
    return {"python_loop_ns": round(python_loop_ns(), 1), **echo_cost_us(200, 0.005)}


def describe(probe: dict[str, Any]) -> str:
    return (
        f"host probe: Python loop {probe['python_loop_ns']} ns/iteration; an echo costs "
        f"{probe['wakeup_us']} CPU-us woken from idle, {probe['busy_us']} back to back"
    )


if __name__ == "__main__":
    print(describe(host_probe()))
