"""What a failed record means for its offset: the one mapping from an error to an outcome (pure).

Retryability lives on the error type: an exception class may say what it means with an `outcome` class
attribute (see `Transient`, `Unusable`); a service passes one policy function for its domain errors and
falls back to `default_outcome` for the rest.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from aiokafka.errors import KafkaError


class Outcome(enum.Enum):
    COMMIT = "commit"  # done, or nothing more to do with it: its offset may be committed
    RETRY = "retry"  # a dependency failed: handle the same record again later (its offset is held)
    DEAD_LETTER = "dead_letter"  # can never be handled: set aside on `webhooks.invalid` with the reason


class ConsumerError(Exception):
    """Base of errors that know their outcome."""

    outcome: Outcome = Outcome.DEAD_LETTER
    reason: str = "unprocessable"


class Transient(ConsumerError):
    """Trying again later can help (a dependency is down)."""

    outcome = Outcome.RETRY
    reason = "transient"


class Unusable(ConsumerError, ValueError):
    """The record itself is wrong: retrying cannot help."""

    outcome = Outcome.DEAD_LETTER
    reason = "unprocessable"


class Undecodable(Unusable):
    """The record does not decode into its topic's message type."""

    reason = "undecodable"


Policy = Callable[[BaseException], Outcome]


def default_outcome(exc: BaseException) -> Outcome:
    """Errors that say their outcome keep it; I/O and Kafka errors are retried; anything else (a bug or a
    record we cannot handle) is set aside so that one record never stops a partition."""
    if isinstance(exc, ConsumerError):
        return exc.outcome
    if isinstance(exc, KafkaError | OSError | TimeoutError):
        return Outcome.RETRY
    return Outcome.DEAD_LETTER


def reason_of(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, ConsumerError) else "unprocessable"
