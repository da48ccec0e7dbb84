"""What an attempt's result means (pure): Outcome from a status or an error, then the action to take.

Retryability lives on the outcome (and on our error types); `action_for` is the one place that maps an
outcome to commit / retry / dead-letter / disable.
"""

from __future__ import annotations

import asyncio
from enum import Enum, StrEnum


class Outcome(Enum):
    SUCCESS = ("success", False)
    FAILED = ("failed", True)  # non-2xx status, timeout, DNS or connection error: retry on the schedule
    THROTTLED = ("throttled", True)  # 429 / 503: retry, honouring Retry-After
    GONE = ("gone", False)  # 410: the integrator asks us to stop; disable the webhook
    REFUSED = ("refused", False)  # the target is not allowed (SSRF guard, bad URL): final

    def __init__(self, label: str, retryable: bool) -> None:
        self.label = label
        self.retryable = retryable


class Action(StrEnum):
    COMMIT = "success"
    RETRY = "retry"
    DEAD = "dead"
    DISABLE = "disabled"


class DeliveryError(Exception):
    """An attempt failed before a response. `retryable` says whether trying again can help."""

    retryable = True


class TargetRefused(DeliveryError, OSError):
    """The target resolves to an address we must not call (or is not a valid http(s) URL). Final.

    An OSError so that aiohttp's connector passes it through as the cause of its connection error.
    """

    retryable = False


def find_refusal(exc: BaseException | None) -> TargetRefused | None:
    """Our refusal, wherever aiohttp wrapped it (`__cause__`, `os_error`)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, TargetRefused):
            return exc
        nxt = getattr(exc, "os_error", None)
        if nxt is None or nxt is exc:
            nxt = exc.__cause__ or exc.__context__
        exc = nxt
        seen += 1
    return None


def classify(status: int | None, error: BaseException | None = None) -> Outcome:
    """Outcome of one attempt: the HTTP status when a response came back, else the error."""
    if status is None:
        if error is not None and find_refusal(error) is not None:
            return Outcome.REFUSED
        if isinstance(error, DeliveryError) and not error.retryable:
            return Outcome.REFUSED
        return Outcome.FAILED  # timeouts, DNS and connection errors are worth another try
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if status == 410:
        return Outcome.GONE
    if status in (429, 503):
        return Outcome.THROTTLED
    return Outcome.FAILED  # 3xx (redirects are not followed), 4xx, 5xx


def error_name(error: BaseException) -> str:
    """A short error class for the delivery log (`timeout`, `refused`, or the exception's class name)."""
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if find_refusal(error) is not None:
        return "refused"
    return type(error).__name__


def action_for(outcome: Outcome, delay: float | None) -> Action:
    """The one mapping from an attempt's outcome (and whether a next attempt exists) to what we do."""
    if outcome is Outcome.SUCCESS:
        return Action.COMMIT
    if outcome is Outcome.GONE:
        return Action.DISABLE
    if outcome.retryable and delay is not None:
        return Action.RETRY
    return Action.DEAD
