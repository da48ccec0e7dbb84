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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Intake(Generic[T]):
    """Items waiting to be routed. `put` waits while `hold` are waiting; `take` returns up to `batch_max`.

    `linger_s` > 0 restores a fixed wait: a batch that is not full waits up to that long for more.
    """

    def __init__(self, batch_max: int, *, hold: int | None = None, linger_s: float = 0.0) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self._batch_max = batch_max
        self._hold = max(hold or batch_max, batch_max)
        self._linger_s = linger_s
        self._items: list[T] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        while len(self._items) >= self._hold:
            self._room.clear()
            await self._room.wait()
        self._items.append(item)
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
        if self._linger_s > 0 and len(self._items) < self._batch_max:
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
    source: AsyncIterator[T], intake: Intake[T], route: Callable[[list[T]], Awaitable[None]]
) -> None:
    """Feed `intake` from `source` while one loop routes its batches, until either ends or fails.

    When the source ends, what it gave is routed before this returns. An error in either ends both and is
    raised here (a routing loop that died must not leave the feed waiting for room forever); cancelling
    this cancels both (a batch being written is `route`'s to finish).
    """

    async def feed() -> None:
        async for item in source:
            await intake.put(item)
        intake.close()

    async def routing() -> None:
        while batch := await intake.take():
            await route(batch)

    tasks = [
        asyncio.create_task(feed(), name="intake-feed"),
        asyncio.create_task(routing(), name="intake-route"),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        await tasks[1]  # the source ended: route what is left
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
