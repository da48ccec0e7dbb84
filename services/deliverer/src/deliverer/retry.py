"""Delay topics: which tier holds a task, and when a tier's head may be released (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def tier_for(delay_s: float, tiers: Sequence[tuple[str, float]]) -> tuple[str, float]:
    """The LARGEST tier not longer than the delay (the smallest tier for shorter delays).

    Every record in a tier then waits exactly the tier's length after it was written, so release times
    grow with offsets and pausing a partition on its head never holds back an earlier-due task. A task
    released with time still to wait is re-parked for the remainder (a 10 h wait is a few hops).
    """
    ordered = sorted(tiers, key=lambda t: t[1])
    chosen = ordered[0]
    for tier in ordered:
        if tier[1] <= delay_s:
            chosen = tier
    return chosen


def release_at_ms(due_at_ms: int, record_ts_ms: int, tier_s: float) -> int:
    """When a record read from a tier topic may leave it: its due time, or the tier's hold if sooner."""
    return min(due_at_ms, record_ts_ms + int(tier_s * 1000))
