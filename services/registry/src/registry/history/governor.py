"""When the history writer steps aside for delivery.

On cores shared with the router, the deliverer and the store, niceness alone does not keep the history
off delivery's back: most of a stored record's cost is in the store's processes (FerretDB, PostgreSQL,
MongoDB), which delivery needs too and which cannot be niced for one client. So the writer waits before a
batch while the host's CPU is nearly all busy *and* deliveries are flowing (attempt records arriving fast):
it lags instead, which its lag metric shows, and it catches up once delivery leaves CPU over. With delivery
idle it writes at full speed, even if that fills the cores (catching up). It never waits longer than
`max_wait_s` for one batch, so a host that stays busy still sees the history advance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SAMPLE_S = 0.5  # how often the host's CPU and the attempts' end offsets are read
CHECK_S = 0.1  # how often a waiting batch looks again


@dataclass(frozen=True)
class YieldPolicy:
    cpu_above: float  # host busy fraction (0-1) from which the writer steps aside; >= 1: never
    rate_above: float  # attempt records per second from which delivery counts as flowing
    max_wait_s: float  # longest one batch waits


@dataclass(frozen=True)
class CpuTimes:
    busy: int  # jiffies not idle (user, nice, system, irq, softirq, steal)
    total: int


def parse_proc_stat(text: str) -> CpuTimes | None:
    """The host's CPU times from /proc/stat's `cpu` line (None when it has none)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            return CpuTimes(busy=sum(values) - idle, total=sum(values))
    return None


def busy_fraction(before: CpuTimes, after: CpuTimes) -> float | None:
    """Share of the host's CPU time that was busy between two readings (None without elapsed time)."""
    total = after.total - before.total
    if total <= 0:
        return None
    return min(1.0, max(0.0, (after.busy - before.busy) / total))


def should_wait(policy: YieldPolicy, busy: float | None, rate: float | None, waited_s: float) -> bool:
    """Whether a batch waits (longer): the cores are full and deliveries are flowing, and it has not
    waited its longest yet. Unknown readings never hold the history back."""
    if policy.cpu_above >= 1 or busy is None or rate is None or waited_s >= policy.max_wait_s:
        return False
    return busy >= policy.cpu_above and rate >= policy.rate_above


PROC_STAT = Path("/proc/stat")


def read_host_cpu(path: Path = PROC_STAT) -> CpuTimes | None:
    try:
        return parse_proc_stat(path.read_text())
    except (OSError, ValueError):
        return None


class Governor:
    """Samples the host's CPU and the rate of attempt records; `wait_turn` holds a batch while
    `should_wait` says so and returns how long it waited."""

    def __init__(
        self,
        policy: YieldPolicy,
        produced: Callable[[], Awaitable[int | None]],
        read_cpu: Callable[[], CpuTimes | None] = read_host_cpu,
    ) -> None:
        self.policy = policy
        self._produced = produced
        self._read_cpu = read_cpu
        self.busy: float | None = None
        self.rate: float | None = None

    @property
    def enabled(self) -> bool:
        return self.policy.cpu_above < 1

    async def sample_forever(self) -> None:
        if not self.enabled:
            return
        cpu, count, at = self._read_cpu(), None, time.monotonic()
        while True:
            await asyncio.sleep(SAMPLE_S)
            now_cpu = self._read_cpu()
            self.busy = busy_fraction(cpu, now_cpu) if cpu and now_cpu else None
            now_count: int | None = None
            # The rate only matters on a busy host: an idle one asks the broker nothing.
            if self.busy is not None and self.busy >= self.policy.cpu_above:
                with contextlib.suppress(Exception):  # no reading (the broker away): the history is not held
                    now_count = await self._produced()
            now = time.monotonic()
            self.rate = None
            if now_count is not None and count is not None:
                self.rate = (now_count - count) / (now - at)
            cpu, count, at = now_cpu, now_count, now

    async def wait_turn(self) -> float:
        waited = 0.0
        started = time.monotonic()
        while should_wait(self.policy, self.busy, self.rate, waited):
            await asyncio.sleep(CHECK_S)
            waited = time.monotonic() - started
        return waited
