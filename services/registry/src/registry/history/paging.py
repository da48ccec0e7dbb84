"""One page of a webhook's deliveries, walked over its hour buckets newest first.

Most pages end in the webhook's newest hour, so it is asked for alone; when it does not hold the page, the
next hours are asked for in waves, each one query (the store's `bucket` or `status_bucket` `$in`), as many
hours as the items found so far per hour read say the page still needs (a quarter more), or twice the last
wave while nothing was found; at most WAVE_MAX, or what the caller allows (a status page's query reads only
what it lists, so its waves may span the page's 48 hours). A page of a sparse filter that walks 48 hours
takes 4-6 queries instead of 48, or about 3 with a status. The items and the cursor are exactly those of the
hour-by-hour walk; a wave may read a few hours past the page's end.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from registry.history.model import Cursor

Doc = dict[str, Any]
WAVE_MAX = 16  # hours of one query at most
# (hours, at most this many items of them) -> the items in the walk's order: newest hour first, and newest
# first within an hour
FetchHours = Callable[[list[str], int], Awaitable[list[Doc]]]


async def page_over_hours(
    hours: list[str], fetch: FetchHours, limit: int, max_hours: int, wave_max: int = WAVE_MAX
) -> tuple[list[Doc], Cursor | None]:
    """Up to `limit` items from `hours` (newest first), reading at most `max_hours` of them in queries of
    at most `wave_max` hours, and where the next page starts (None: nothing after these)."""
    items: list[Doc] = []
    start, wave = 0, 1
    while start < len(hours):
        if start >= max_hours:
            return items, Cursor(hours[start])
        batch = hours[start : min(start + wave, max_hours)]
        need = limit - len(items)
        found = await fetch(batch, need + 1)  # one more than the page needs: tells whether more follow
        items += found[:need]
        if len(items) == limit:
            last = items[-1]
            n = start + batch.index(last["hour"])
            more = len(found) > need or n + 1 < len(hours)
            return items, Cursor(last["hour"], last["created_ms"], last["_id"]) if more else None
        start += len(batch)
        wave = next_wave(len(batch), start, len(items), limit - len(items), wave_max)
    return items, None


def next_wave(last: int, hours_read: int, found: int, need: int, wave_max: int = WAVE_MAX) -> int:
    """Hours for the next query of a page that still needs `need` items after `found` in `hours_read`.

    The first hour is often a part of one (the current hour, or the one a cursor cuts), so the density it
    gives alone is a guess: the wave after it stays within WAVE_MAX. A wave past the page costs every row it
    reads (FerretDB sorts in Go, so the limit does not stop the read)."""
    cap = min(wave_max, WAVE_MAX) if hours_read <= 1 else wave_max
    if found == 0:
        return min(last * 2, cap)
    return max(1, min(math.ceil(need * hours_read / found * 1.25), cap))
