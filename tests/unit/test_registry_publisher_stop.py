"""The outbox publisher stops when cancelled, even when the cancellation is swallowed on its way.

Two ways it was lost, each leaving the publisher running after the registry had shut down (a 10 s shutdown
wait in the tests, and a Kafka producer nobody closed): on Python 3.11 `asyncio.wait_for` returns normally
when the task is cancelled just as the awaited event is set, and PyMongo's async cursor can swallow a
cancellation that arrives while it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from registry.publisher import Publisher
from registry.store import Store


class _EmptyOutbox:
    async def pending(self, limit: int) -> list[Any]:
        return []


class _SwallowingOutbox:
    """Like PyMongo's cursor at the wrong moment: a cancellation during the read is lost."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()

    async def pending(self, limit: int) -> list[Any]:
        self.reading.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)
        return []


class _Sink:
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(self, key: bytes, value: bytes | None) -> None: ...


async def test_cancel_stops_the_publisher_even_when_a_wake_up_lands_with_it() -> None:
    stuck = 0
    for _ in range(50):
        publisher = Publisher(cast(Store, _EmptyOutbox()), _Sink, poll_seconds=0.05)
        task = asyncio.create_task(publisher.run())
        await asyncio.sleep(0.001)  # now waiting for a wake-up or the poll period
        publisher.wake()  # a change was written ...
        task.cancel()  # ... as the registry shuts down
        done, _ = await asyncio.wait([task], timeout=1.0)
        if not done:
            stuck += 1
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
    assert stuck == 0, f"the publisher ignored {stuck} of 50 cancellations"


async def test_cancel_stops_the_publisher_even_when_the_store_swallows_it() -> None:
    store = _SwallowingOutbox()
    publisher = Publisher(cast(Store, store), _Sink, poll_seconds=0.01)
    task = asyncio.create_task(publisher.run())
    await asyncio.wait_for(store.reading.wait(), 1.0)
    task.cancel()  # lands inside the store's read
    done, _ = await asyncio.wait([task], timeout=2.0)
    if not done:
        task.cancel()
        await asyncio.wait([task], timeout=2.0)
    assert done, "the publisher ran on after its cancellation was swallowed by the store"
