"""When to try again: the retry schedule, jitter and `Retry-After` (pure functions)."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

from deliverer.classify import Outcome


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT by definition
        return None
    return max(0.0, when.timestamp() - now_s)


def next_delay(
    attempt: int,
    outcome: Outcome,
    retry_after: float | None,
    schedule: tuple[float, ...],
    *,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds before attempt `attempt + 1`, or None when `attempt` was the last (or the outcome is final).

    `schedule[i]` is the delay before attempt i+1. A server's Retry-After (429/503) is honoured but kept
    within [scheduled, 2 x scheduled] so one server can neither hammer us nor park a task for days.
    """
    if not outcome.retryable or attempt >= len(schedule):
        return None
    scheduled = schedule[attempt]
    if retry_after is not None and outcome is Outcome.THROTTLED:
        return min(max(retry_after, scheduled), 2 * scheduled)
    if jitter and scheduled:
        r = (rng or random).uniform(-jitter, jitter)
        return scheduled * (1 + r)
    return scheduled
