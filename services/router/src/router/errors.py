"""What to do when writing a batch of tasks fails (pure): retry the batch, or crash the worker.

The batch's input offsets are not acknowledged until every task of the batch is on Kafka, so both choices
keep at-least-once: a retry re-sends the whole batch (duplicates keep their task id), a crash leaves the
offsets uncommitted for whichever worker takes the partitions over.
"""

from __future__ import annotations

from typing import Literal

from aiokafka.errors import KafkaError, KafkaTimeoutError, RequestTimedOutError

Action = Literal["retry", "crash"]


def send_error_action(exc: BaseException) -> Action:
    # A broker that is away shows up as an expired batch (KafkaTimeoutError): wait for it to come back.
    if isinstance(exc, KafkaTimeoutError | RequestTimedOutError):
        return "retry"
    if isinstance(exc, KafkaError) and exc.retriable:
        return "retry"
    # Closed producer, message too large, authorisation, bugs: retrying cannot help.
    return "crash"


def retry_delay(attempt: int) -> float:
    """Seconds before re-sending a batch the `attempt`-th time (1-based): 0.2 s doubling to 5 s."""
    return float(min(5.0, 0.2 * 2 ** (attempt - 1)))
