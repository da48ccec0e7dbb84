"""The HTTP API's event loop (REGISTRY_EVENT_LOOP).

uvloop by default: much of the API's time is the loop's own work (socket reads and writes, callbacks,
timers) around short handlers, which uvloop does in C. The gain is small (2-7% of the registry's CPU per
request under the 500/s mix, bench/RESULTS.md) but it was there in every pair measured. The Kafka services
stay on asyncio's loop, where uvloop measured no gain."""

from __future__ import annotations

import asyncio
from typing import Literal

EventLoopKind = Literal["uvloop", "asyncio"]


def new_event_loop(kind: EventLoopKind) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()
