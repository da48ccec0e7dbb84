"""Per-URL lanes: one queue per target URL, a per-URL concurrency limit and a global in-flight cap.

A slow URL fills only its own lane; other URLs keep their slots, so nothing waits behind it. Two more rules
keep many dead URLs from starving the healthy ones (both seen in the isolation benchmark):
- a URL whose last attempt got no response (timeout, connection error) is *degraded*: one attempt in flight
  and a short queue (the rest is parked on a retry topic by the caller) until it answers again, so dead URLs
  cannot take every global slot or push the process over its pending cap;
- a URL that has just gone dead is not known as such until its first attempt times out (15 s by default);
  meanwhile its full queue, times a few such URLs, was the whole pending cap, and intake stopped for every
  URL. So a lane whose attempts in flight have *all been silent* (none started on an idle lane or finished)
  for `silent_after_s` gets the short queue too, before any timeout;
- a lane that turns degraded or silent with more than the short queue already queued (a burst that came
  before anyone knew) hands the excess back (`shed`) to be parked: kept, it would drain at one attempt per
  timeout and hold its partition's commit for as long (500 tasks x 15 s: two hours);
- a freed global slot goes first to the lanes that have been waiting for one, then back to its own lane.

A job that raises frees its slots like any other and its exception goes to `on_error` (never left in a
task that nobody awaits, where it would only show at garbage collection).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

J = TypeVar("J")

log = logging.getLogger(__name__)

MAX_DEGRADED_REMEMBERED = 10_000


class _Lane(Generic[J]):
    __slots__ = ("active", "heard_at", "queue", "waiting")

    def __init__(self) -> None:
        self.queue: deque[J] = deque()
        self.active = 0
        self.waiting = False  # queued in Lanes._starved for a global slot
        self.heard_at = 0.0  # when an attempt last started on the idle lane or finished (monotonic)


class Lanes(Generic[J]):
    def __init__(
        self,
        run: Callable[[J], Awaitable[None]],
        *,
        on_error: Callable[[J, Exception], None],
        per_url: int,
        max_in_flight: int,
        queue_limit: int,
        degraded_queue_limit: int = 20,
        silent_after_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._on_error = on_error
        self._per_url = per_url
        self._max = max_in_flight
        self._queue_limit = queue_limit
        self._degraded_queue_limit = min(degraded_queue_limit, queue_limit)
        self._silent_after_s = silent_after_s
        self._clock = clock
        self._degraded: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
        self._lanes: dict[str, _Lane[J]] = {}
        self._starved: deque[str] = deque()  # lanes with work that found no global slot
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0

    def offer(self, url: str, job: J) -> bool:
        """Queue `job` for `url`; False when that URL's queue is full (the caller parks the job)."""
        lane = self._lanes.get(url)
        if lane is None:
            lane = self._lanes[url] = _Lane()
        queued = len(lane.queue)
        # The short queue's test first: the clock is read only for a lane that already holds that many.
        if queued >= self._degraded_queue_limit and (
            queued >= self._queue_limit or url in self._degraded or self._silent(lane)
        ):
            return False
        lane.queue.append(job)
        self._pump(url, lane)
        return True

    def mark(self, url: str, *, answered: bool) -> None:
        """Record whether `url` answered its last attempt (any HTTP status) or not (timeout, refused)."""
        if answered:
            self._degraded.pop(url, None)
            return
        self._degraded.pop(url, None)
        self._degraded[url] = None
        if len(self._degraded) > MAX_DEGRADED_REMEMBERED:
            del self._degraded[next(iter(self._degraded))]

    def is_degraded(self, url: str) -> bool:
        return url in self._degraded

    def is_silent(self, url: str) -> bool:
        """Attempts to `url` are in flight and none has finished for `silent_after_s`."""
        lane = self._lanes.get(url)
        return lane is not None and self._silent(lane)

    def _silent(self, lane: _Lane[J]) -> bool:
        return lane.active > 0 and self._clock() - lane.heard_at >= self._silent_after_s

    def shed(self, url: str) -> list[J]:
        """The newest queued jobs of a degraded or silent `url` beyond the short queue, taken out of it (the
        caller parks them); none for a URL that answers."""
        lane = self._lanes.get(url)
        keep = self._degraded_queue_limit
        if lane is None or len(lane.queue) <= keep:
            return []
        if url not in self._degraded and not self._silent(lane):
            return []
        excess = [lane.queue.pop() for _ in range(len(lane.queue) - keep)]
        excess.reverse()
        return excess

    def queued(self) -> int:
        return sum(len(lane.queue) for lane in self._lanes.values())

    def _pump(self, url: str, lane: _Lane[J]) -> None:
        per_url = 1 if url in self._degraded else self._per_url
        while lane.queue and lane.active < per_url:
            if self.in_flight >= self._max:
                if not lane.waiting:
                    lane.waiting = True
                    self._starved.append(url)
                return
            job = lane.queue.popleft()
            if not lane.active:
                lane.heard_at = self._clock()
            lane.active += 1
            self.in_flight += 1
            task = asyncio.create_task(self._go(url, lane, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _go(self, url: str, lane: _Lane[J], job: J) -> None:
        try:
            await self._run(job)
        except Exception as exc:
            try:
                self._on_error(job, exc)
            except Exception:
                log.exception("error handler failed for %r", job)
        finally:
            lane.heard_at = self._clock()
            lane.active -= 1
            self.in_flight -= 1
            # Lanes that found no slot go first; this lane queues behind them if the slots run out again.
            while self._starved and self.in_flight < self._max:
                s_url = self._starved.popleft()
                s_lane = self._lanes.get(s_url)
                if s_lane is not None:
                    s_lane.waiting = False
                    self._pump(s_url, s_lane)
            self._pump(url, lane)
            if lane.active == 0 and not lane.queue and not lane.waiting:
                self._lanes.pop(url, None)  # keep memory proportional to busy URLs only

    def drop_queued(self) -> int:
        """Forget queued (not started) jobs, e.g. on shutdown: their offsets stay uncommitted."""
        n = 0
        for lane in self._lanes.values():
            n += len(lane.queue)
            lane.queue.clear()
        return n

    def drop_where(self, pred: Callable[[J], bool]) -> int:
        n = 0
        for lane in self._lanes.values():
            keep = deque(j for j in lane.queue if not pred(j))
            n += len(lane.queue) - len(keep)
            lane.queue = keep
        return n

    async def wait_idle(self, within_s: float) -> bool:
        """Wait for the attempts in flight (not the queued ones) to finish; False on timeout."""
        tasks = set(self._tasks)
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=within_s)
        return not pending

    async def cancel_all(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
