"""The consumer runtime's one error -> outcome mapping (pure): retryability lives on the error type."""

from __future__ import annotations

import msgspec
from aiokafka.errors import KafkaConnectionError

from webhooks_common.consumer import Outcome, Transient, Undecodable, Unusable, default_outcome
from webhooks_common.consumer.outcomes import reason_of


def test_errors_that_know_their_outcome_keep_it() -> None:
    assert default_outcome(Transient("store down")) is Outcome.RETRY
    assert default_outcome(Unusable("no such action")) is Outcome.DEAD_LETTER
    assert default_outcome(Undecodable("bad json")) is Outcome.DEAD_LETTER
    assert reason_of(Undecodable("x")) == "undecodable" and reason_of(Unusable("x")) == "unprocessable"


def test_io_retries_and_anything_else_is_set_aside() -> None:
    assert default_outcome(KafkaConnectionError()) is Outcome.RETRY
    assert default_outcome(ConnectionResetError()) is Outcome.RETRY
    assert default_outcome(TimeoutError()) is Outcome.RETRY
    # a bug, or a record that passed decoding but cannot be handled: never stops the partition
    assert default_outcome(RuntimeError("bug")) is Outcome.DEAD_LETTER
    assert default_outcome(msgspec.ValidationError("bad field")) is Outcome.DEAD_LETTER
    assert reason_of(RuntimeError("bug")) == "unprocessable"
