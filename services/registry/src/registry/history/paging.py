"""One page of a webhook's deliveries, walked over its hour buckets newest first.

Each hour is one indexed query. Most pages end in the first hour, so it goes alone; when it does not hold the
page, the next hours are asked for in waves of 2, 4, then up to WAVE_MAX at once instead of one after the
other: a page of a sparse filter that walks 40 hours takes 7 round trips instead of 40. The items and the
cursor are exactly those of the hour-by-hour walk; a wave may read a few hours past the page's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from registry.history.model import Cursor

Doc = dict[str, Any]
WAVE_MAX = 8  # hours of one page queried at once at most
# (hour, at most this many items of it, newest first, after the page's cursor)
FetchHour = Callable[[str, int], Awaitable[list[Doc]]]


async def page_over_hours(
    hours: list[str], fetch: FetchHour, limit: int, max_hours: int
) -> tuple[list[Doc], Cursor | None]:
    """Up to `limit` items from `hours` (newest first), reading at most `max_hours` of them, and where the
    next page starts (None: nothing after these)."""
    items: list[Doc] = []
    start, wave = 0, 1
    while start < len(hours):
        if start >= max_hours:
            return items, Cursor(hours[start])
        batch = hours[start : min(start + wave, max_hours)]
        ask = limit - len(items) + 1  # one more than the page still needs: tells whether more follow
        found = await asyncio.gather(*(fetch(hour, ask) for hour in batch))
        for n, (hour, docs) in enumerate(zip(batch, found, strict=True), start):
            need = limit - len(items)
            items += docs[:need]
            if len(items) == limit:
                more = len(docs) > need or n + 1 < len(hours)
                last = items[-1]
                return items, Cursor(hour, last["created_ms"], last["_id"]) if more else None
        start += len(batch)
        wave = min(wave * 2, WAVE_MAX)
    return items, None
