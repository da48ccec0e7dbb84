"""Kafka messages in and out of the deliverer, typed (msgspec Structs of webhooks_common.wire).

A delivery task is decoded once at the consumer's edge into a `DeliveryTask` Struct, which checks every
field's type (a non-numeric `due_at_ms` is refused there, not by an `int()` deep in an attempt). Outgoing
tasks are the same Struct with fields replaced, so they keep the router's wire format exactly.
tests/unit/test_deliverer_logic.py parses these back with the pydantic models to keep them in step.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from webhooks_common import wire
from webhooks_common.decoders import decode_task as decode_task  # the consumer's decoder (re-exported)
from webhooks_common.wire import AttemptSummary, DeadLetter, DeliveryTask, encode


def attempt_record(
    task: DeliveryTask,
    *,
    url: str,
    outcome: str,
    at_ms: int,
    duration_ms: float = 0.0,
    status: int | None = None,
    error: str | None = None,
    snippet: str | None = None,
    next_attempt_at_ms: int | None = None,
    body_max_bytes: int = 0,
) -> bytes:
    rec: dict[str, Any] = {
        "v": 1,
        "task_id": task.task_id,
        "event_id": task.event_id,
        "event_type": task.event_type,
        "webhook_id": task.webhook_id,
        "entity_id": task.entity_id,
        "url": url,
        "attempt": task.attempt,
        "outcome": outcome,
        "duration_ms": round(duration_ms, 3),
        "at_ms": at_ms,
    }
    if status is not None:
        rec["status"] = status
    if error is not None:
        rec["error"] = error
    if snippet is not None:
        rec["response_snippet"] = snippet
    if next_attempt_at_ms is not None:
        rec["next_attempt_at_ms"] = next_attempt_at_ms
    # The payload once per chain (its first attempt), so the delivery history can show and resend it
    # without repeating it on every retry; a body over the bound is left out rather than cut.
    if task.attempt == 1 and 0 < len(task.body) <= body_max_bytes:
        rec["body"] = task.body
    return orjson.dumps(rec)


def summary(attempt: int, at_ms: int, outcome: str, status: int | None, error: str | None) -> AttemptSummary:
    return AttemptSummary(attempt=attempt, at_ms=at_ms, outcome=outcome, status=status, error=error)


def with_history(task: DeliveryTask, entry: AttemptSummary, **changes: Any) -> DeliveryTask:
    return msgspec.structs.replace(task, history=(*task.history, entry), **changes)


def task_bytes(task: DeliveryTask, **changes: Any) -> bytes:
    return encode(msgspec.structs.replace(task, **changes) if changes else task)


def dead_letter(task: DeliveryTask, reason: str, at_ms: int) -> bytes:
    return encode(DeadLetter(task=task, reason=reason, dead_at_ms=at_ms))


def disable_command(task: DeliveryTask, reason: str, at_ms: int) -> bytes:
    return encode(wire.disable_command(task.webhook_id, task.entity_id, reason, "deliverer", at_ms))
