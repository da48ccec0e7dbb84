"""A page over hour buckets in waves (one query each) gives exactly the items and cursor of the hour-by-hour
walk."""

from __future__ import annotations

import random
from typing import Any

import pytest

from registry.history.model import Cursor
from registry.history.paging import WAVE_MAX, next_wave, page_over_hours

Doc = dict[str, Any]


def bucket(hour: str, n: int) -> list[Doc]:
    """n deliveries of one hour, newest first (as the store returns them)."""
    return [{"_id": f"{hour}-{i:03d}", "hour": hour, "created_ms": 10_000 - i} for i in range(n)]


def one_by_one(buckets: dict[str, list[Doc]], limit: int, max_hours: int) -> tuple[list[Doc], Cursor | None]:
    """The walk before waves: one hour after another (registry/history/api.py until 2026-12-01)."""
    hours = list(buckets)
    items: list[Doc] = []
    for n, hour in enumerate(hours):
        if n >= max_hours:
            return items, Cursor(hour)
        need = limit - len(items)
        docs = buckets[hour][: need + 1]
        items += docs[:need]
        if len(items) == limit:
            more = len(docs) > need or n + 1 < len(hours)
            last = items[-1]
            return items, Cursor(hour, last["created_ms"], last["_id"]) if more else None
    return items, None


@pytest.mark.parametrize("seed", range(40))
async def test_waves_give_the_same_page_as_one_hour_after_another(seed: int) -> None:
    rng = random.Random(seed)
    hours = [f"2026-11-{30 - h // 24:02d}T{23 - h % 24:02d}" for h in range(rng.randint(0, 60))]
    buckets = {h: bucket(h, rng.choice([0, 0, 1, 3, 7, 60])) for h in hours}
    limit, max_hours = rng.choice([1, 5, 50, 100]), rng.choice([3, 48])
    wave_max = rng.choice([WAVE_MAX, 48])  # 48: a status page's (api.py)
    asked: list[str] = []

    async def fetch(batch: list[str], n: int) -> list[Doc]:
        asked.extend(batch)
        return [d for hour in batch for d in buckets[hour]][:n]

    got = await page_over_hours(hours, fetch, limit, max_hours, wave_max)
    assert got == one_by_one(buckets, limit, max_hours)
    assert len(asked) == len(set(asked)) and len(asked) <= max_hours  # each hour once, never past the cap


async def test_the_first_hour_goes_alone_then_waves_double_while_nothing_is_found() -> None:
    hours = [f"2026-11-{d:02d}T{h:02d}" for d in (29, 28) for h in range(23, -1, -1)]
    waves: list[list[str]] = []

    async def fetch(batch: list[str], n: int) -> list[Doc]:
        waves.append(batch)
        return []  # empty hours: the walk goes on to the cap

    assert await page_over_hours(hours, fetch, 50, 40) == ([], Cursor(hours[40]))
    assert [len(w) for w in waves] == [1, 2, 4, 8, WAVE_MAX, 40 - 31] and WAVE_MAX == 16
    assert [h for w in waves for h in w] == hours[:40]  # newest first, each hour once


async def test_a_wave_asks_for_the_hours_the_density_so_far_says_the_page_needs() -> None:
    hours = [f"2026-11-29T{h:02d}" for h in range(23, -1, -1)]
    buckets = {h: bucket(h, 6) for h in hours}  # 6 deliveries an hour
    waves: list[int] = []

    async def fetch(batch: list[str], n: int) -> list[Doc]:
        waves.append(len(batch))
        return [d for hour in batch for d in buckets[hour]][:n]

    items, _ = await page_over_hours(hours, fetch, 50, 48)
    assert len(items) == 50 and waves == [1, 10]  # 44 more at 6 an hour, a quarter more: 10 hours


@pytest.mark.parametrize(
    ("last", "hours_read", "found", "need", "wave"),
    [
        (1, 1, 0, 50, 2),  # nothing yet: twice the last
        (16, 31, 0, 50, WAVE_MAX),  # never past the cap
        (1, 1, 40, 10, 1),  # a dense hour: one more
        (2, 3, 1, 49, WAVE_MAX),  # sparse: as many as allowed
        (1, 1, 6, 44, 10),
    ],
)
def test_next_wave(last: int, hours_read: int, found: int, need: int, wave: int) -> None:
    assert next_wave(last, hours_read, found, need) == wave


async def test_a_sparse_status_page_reads_its_hours_in_a_few_queries_when_waves_may_span_the_page() -> None:
    """A tenth of ~6 deliveries an hour (`status=failed` in the bench): 48 hours in 3 queries, not 4."""
    rng = random.Random(3)
    hours = [f"2026-11-{30 - h // 24:02d}T{23 - h % 24:02d}" for h in range(96)]
    buckets = {h: bucket(h, 1 if rng.random() < 0.6 else 0) for h in hours}
    waves: dict[int, list[int]] = {}
    for wave_max in (WAVE_MAX, 48):
        waves[wave_max] = []

        async def fetch(batch: list[str], n: int, wm: int = wave_max) -> list[Doc]:
            waves[wm].append(len(batch))
            return [d for hour in batch for d in buckets[hour]][:n]

        assert await page_over_hours(hours, fetch, 50, 48, wave_max) == one_by_one(buckets, 50, 48)
    assert waves == {WAVE_MAX: [1, 16, 16, 15], 48: [1, 16, 31]}


def test_the_wave_after_the_first_hour_alone_stays_within_wave_max() -> None:
    """The first hour may be the current one, a few minutes old: one item there says little of the density."""
    assert next_wave(1, 1, 1, 49, wave_max=48) == WAVE_MAX
    assert next_wave(1, 1, 0, 50, wave_max=48) == 2
    assert next_wave(16, 17, 10, 40, wave_max=48) == 48  # 10 items in 17 hours: a density to go by
