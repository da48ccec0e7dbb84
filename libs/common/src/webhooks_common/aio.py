"""asyncio helpers the services share."""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True when it was set.

    Not `asyncio.wait_for(event.wait(), timeout)`: on Python 3.11 that returns normally when the task is
    cancelled in the same instant the event is set, swallowing the cancellation (the caller's loop then runs
    on after shutdown). `asyncio.timeout` tells its own cancellation from the caller's.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop: for the top of a long-running loop.

    PyMongo 4.20's async cursors can swallow a cancellation that arrives while they read (seen in the
    registry's outbox publisher, which then ran on after shutdown). A loop that goes round again while its
    task is still `cancelling()` has lost that cancellation, so it raises it here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def cancelled_by_us() -> bool:
    """Whether the current task was asked to stop (as opposed to a CancelledError that escaped a library).

    aiokafka can raise CancelledError out of its calls when its own internal futures are cancelled (a
    group-less consumer whose broker restarts, seen in the chaos run): a loop that treated that as its own
    stop ended for good while its task was never asked to stop.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
