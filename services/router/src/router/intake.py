"""Batches that form by themselves: route what has arrived at once; a batch grows while the last is written.

faust's batching read (`noack_take`) wakes on a fixed window (5 ms by default): at light load every event
waited out most of it, and the stream took nothing while a batch was written. Here the stream's events go
into an `Intake` as they come and one routing loop takes everything waiting whenever it is free: alone, an
event is routed at once; under load, the next batch is whatever arrived while the previous one was written
and acknowledged, up to `batch_max`. Nothing here knows faust; `app.py` wires it to the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Intake(Generic[T]):
    """Items waiting to be routed. `put` waits while `hold` are waiting; `take` returns up to `batch_max`.

    Busy means items arrive at `busy_rate` per second or more (a moving average over about `tau_s`): then
    `take` waits up to `linger_s` for a full batch, because under load every batch costs a Kafka request
    and small ones cost the broker and the router more than they save (measured: with no wait at all the
    router's batches stayed at 5-7 events in a backlog and the broker's CPU per delivery rose 3-5x).
    Below it, a batch goes at once: light and medium traffic never wait. `busy_rate=0` is a fixed window
    (faust's `take()`); `linger_s=0` never waits.
    """

    def __init__(
        self,
        batch_max: int,
        *,
        hold: int | None = None,
        linger_s: float = 0.0,
        busy_rate: float = 0.0,
        tau_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self._batch_max = batch_max
        self._hold = max(hold or batch_max, batch_max)
        self._linger_s = linger_s
        self._busy_rate = busy_rate
        self._tau_s = tau_s
        self._clock = clock
        self._rate = 0.0
        self._counted = 0  # items put since the rate was last updated
        self._rate_at = clock()
        self._items: list[T] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def rate(self) -> float:
        """Items per second put lately (a moving average over about `tau_s`)."""
        now = self._clock()
        dt = now - self._rate_at
        if dt > 0:
            weight = 1 - math.exp(-dt / self._tau_s)
            self._rate += weight * (self._counted / dt - self._rate)
            self._counted = 0
            self._rate_at = now
        return self._rate

    def busy(self) -> bool:
        return self._linger_s > 0 and self.rate >= self._busy_rate

    async def put(self, item: T) -> None:
        while len(self._items) >= self._hold:
            self._room.clear()
            await self._room.wait()
        self._items.append(item)
        self._counted += 1
        self._arrived.set()
        if len(self._items) >= self._batch_max:
            self._full.set()

    def close(self) -> None:
        """No more items: `take` returns what is left, then an empty batch."""
        self._closed = True
        self._arrived.set()
        self._full.set()

    async def take(self) -> list[T]:
        """Up to `batch_max` items, once there is one; an empty list only once closed and emptied."""
        while not self._items:
            if self._closed:
                return []
            self._arrived.clear()
            await self._arrived.wait()
        if len(self._items) < self._batch_max and not self._closed and self.busy():
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self._linger_s)
        batch = self._items[: self._batch_max]
        del self._items[: self._batch_max]
        if len(self._items) < self._batch_max:
            self._full.clear()
        self._room.set()
        return batch


async def run_intake(
    source: AsyncIterator[T],
    intake: Intake[T],
    write: Callable[[list[T]], Coroutine[Any, Any, None]],
    done: Callable[[list[T]], Awaitable[None]],
    *,
    in_flight: int = 1,
) -> None:
    """Feed `intake` from `source`, write its batches with up to `in_flight` at once, finish them in order.

    `write(batch)` runs as its own task so the next batch can be written while Kafka acknowledges this
    one (aiokafka sends one request per broker at a time and gathers what comes meanwhile into the next);
    `done(batch)` (the acks) runs for each batch once it and every earlier batch are written, so an event
    is never acknowledged before one that came before it. When the source ends, what it gave is written
    and finished before this returns. An error anywhere ends everything and is raised here (a writer that
    died must not leave the feed waiting for room forever); cancelling this stops the loops and waits for
    the writes already started (each is `write`'s to finish or abandon).
    """
    if in_flight < 1:
        raise ValueError("in_flight must be at least 1")
    written: asyncio.Queue[tuple[asyncio.Task[None], list[T]] | None] = asyncio.Queue()
    writes: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(in_flight)  # a batch holds one from its take until it is finished

    def _forget(task: asyncio.Task[None]) -> None:
        writes.discard(task)
        if not task.cancelled():
            task.exception()  # the first error is raised by `finishing`; later ones end with it

    async def feed() -> None:
        async for item in source:
            await intake.put(item)
        intake.close()

    async def routing() -> None:
        while True:
            await slots.acquire()  # waiting for a slot is what lets the next batch grow
            batch = await intake.take()
            if not batch:
                break
            task = asyncio.create_task(write(batch), name="intake-write")
            writes.add(task)
            task.add_done_callback(_forget)
            written.put_nowait((task, batch))
        written.put_nowait(None)

    async def finishing() -> None:
        while (item := await written.get()) is not None:
            task, batch = item
            await task
            await done(batch)
            slots.release()

    loops = [
        asyncio.create_task(feed(), name="intake-feed"),
        asyncio.create_task(routing(), name="intake-route"),
        asyncio.create_task(finishing(), name="intake-finish"),
    ]
    try:
        finished, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            task.result()
        # the source ended (or the routing loop with it): write and finish what is left
        await loops[1]
        await loops[2]
    finally:
        for task in loops:
            task.cancel()
        await asyncio.wait(loops)
        if writes:
            await asyncio.wait(writes)
