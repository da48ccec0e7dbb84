"""Keep a process running: restart it after any exit, with backoff (what systemd or Kubernetes do).

Exits we caused (`kill()`) are told apart from those that happened by themselves (`unplanned`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from webhooks_devtools.procs import Proc


@dataclass(frozen=True)
class Backoff:
    """1, 2, 4 ... `ceiling_s` seconds for crashes in a row; a process that ran `stable_after_s` before it
    exited (or that we killed ourselves) starts over at the first delay."""

    first_s: float = 1.0
    ceiling_s: float = 30.0
    stable_after_s: float = 60.0

    def delay(self, crashes: int) -> float:
        return float(min(self.ceiling_s, self.first_s * 2 ** max(0, crashes - 1)))

    def crashes_after_exit(self, previous: int, uptime_s: float, *, planned: bool = False) -> int:
        return 1 if planned or uptime_s >= self.stable_after_s else previous + 1


@dataclass(frozen=True)
class Exit:
    at: float  # time.time()
    code: int
    uptime_s: float
    planned: bool  # we killed it


@dataclass
class Supervised:
    """`proc`, restarted after every exit until `stop()`; `say` hears about exits and restarts."""

    proc: Proc
    backoff: Backoff = field(default_factory=Backoff)
    say: Callable[[str], None] = field(default=lambda _m: None, repr=False)
    exits: list[Exit] = field(default_factory=list)
    crashes: int = 0  # in a row
    _killing: bool = False
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _started: asyncio.Event = field(default_factory=asyncio.Event)
    _keeper: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.proc.name

    @property
    def starts(self) -> int:
        return self.proc.starts

    @property
    def unplanned(self) -> list[Exit]:
        return [e for e in self.exits if not e.planned]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc.alive() else None

    async def start(self) -> None:
        self.proc.start()
        self._started.set()
        self.say(f"started {self.name} (pid {self.proc.pid})")
        self._keeper = asyncio.create_task(self._keep(), name=f"keep-{self.name}")

    async def _keep(self) -> None:
        while not self._stopping.is_set():
            code = await self.proc.wait()
            if self._stopping.is_set() or code is None:
                return
            uptime = time.monotonic() - self.proc.started_at
            planned, self._killing = self._killing, False
            self.exits.append(Exit(time.time(), code, uptime, planned))
            self.crashes = self.backoff.crashes_after_exit(self.crashes, uptime, planned=planned)
            delay = self.backoff.delay(self.crashes)
            self.say(
                f"{self.name} exited with code {code} after {uptime:.1f}s"
                + (" (killed on purpose)" if planned else f" (crash {self.crashes} in a row)")
                + f"; restarting in {delay:.0f}s"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if not self._stopping.is_set():
                self.proc.start()
                self._started.set()
                self.say(f"started {self.name} (pid {self.proc.pid})")

    def kill(self) -> None:
        """SIGKILL the current process on purpose (a fault to survive); it is restarted."""
        if self.proc.alive():
            self._killing = True
            self.proc.kill()

    async def is_ready(self) -> bool:
        return await self.proc.is_ready()

    async def wait_ready(self, within: float) -> bool:
        return await self.proc.ready_within(within)

    async def restarted(self, starts: int, within: float) -> bool:
        """Whether the process was started again after its `starts`-th start and answers ready, both
        within `within` seconds."""
        deadline = time.monotonic() + within
        try:
            async with asyncio.timeout(within):
                while self.starts <= starts:
                    self._started.clear()
                    await self._started.wait()
        except TimeoutError:
            return False
        return await self.wait_ready(max(0.0, deadline - time.monotonic()))

    async def stop(self, grace: float = 15.0) -> int | None:
        """No more restarts; SIGTERM, then SIGKILL after `grace` seconds."""
        self._stopping.set()
        was_running = self.proc.alive()
        code = await self.proc.stop(grace)
        if was_running:
            self.say(
                f"{self.name} did not stop within {grace:.0f}s: killed (pid {self.proc.pid})"
                if self.proc.killed_after_grace
                else f"{self.name} stopped (exit {code})"
            )
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        return code
