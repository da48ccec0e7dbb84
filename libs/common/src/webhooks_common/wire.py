"""The hot-path messages as msgspec Structs: one typed decode at a consumer's edge, no dict checks after it.

Same wire format as the pydantic models of `webhooks_common.models` (which the router and the registry
write with): same field names, `v` pinned to 1, unknown fields ignored. msgspec decodes straight from
bytes into a Struct and validates the types on the way (several times faster than pydantic or a
`orjson.loads` followed by field checks; see bench/decode_bench.py), so the deliverer's hot path can be
typed. tests/unit/test_deliverer_logic.py keeps these and the pydantic models in step. The attempt
record, which only the deliverer writes, is defined here alone.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

import msgspec

NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class AttemptSummary(msgspec.Struct, omit_defaults=True, frozen=True, kw_only=True):
    """One past attempt, carried in a task's history (None fields are left out, as the models do)."""

    attempt: int
    at_ms: int
    outcome: str
    status: int | None = None
    error: str | None = None


class DeliveryTask(msgspec.Struct, frozen=True, kw_only=True):
    """Value on `webhooks.deliveries` and the retry topics (see models.DeliveryTask)."""

    v: Literal[1] = 1
    task_id: str
    event_id: str
    event_type: str
    entity_id: str
    webhook_id: str
    webhook_version: NonNegative
    url: str
    body: str
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1
    entered_at_ms: NonNegative
    due_at_ms: NonNegative = 0
    source: str = "wink"
    history: tuple[AttemptSummary, ...] = ()


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """Value on `webhooks.dlq` (see models.DeadLetter)."""

    v: Literal[1] = 1
    task: DeliveryTask
    reason: str
    dead_at_ms: int


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One record per delivery attempt (or drop) on `webhooks.attempts`, the delivery log (key = webhook
    id). Only here: the deliverer writes it (records.attempt_record), the history writer and whctl read it."""

    v: Literal[1] = 1
    task_id: str
    event_id: str
    event_type: str
    webhook_id: str
    entity_id: str
    url: str
    attempt: int
    outcome: str  # success | retry | dead | disabled | dropped | refused
    status: int | None = None
    error: str | None = None
    duration_ms: float
    response_snippet: str | None = None
    at_ms: int
    next_attempt_at_ms: int | None = None
    body: str | None = None  # the payload sent, on the first attempt of a chain only


class WebhookCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Value on `webhooks.commands` (key = webhook id): a change another service asks the registry for."""

    v: Literal[1] = 1
    command_id: str
    action: Literal["disable"]
    webhook_id: str
    entity_id: str
    reason: str
    requested_by: str  # the service that asked, e.g. `deliverer`
    at_ms: int


def disable_command(
    webhook_id: str, entity_id: str, reason: str, requested_by: str, at_ms: int | None = None
) -> WebhookCommand:
    """Ask the registry to disable a webhook (a fresh command id; `at_ms` defaults to now)."""
    return WebhookCommand(
        command_id=uuid.uuid4().hex,
        action="disable",
        webhook_id=webhook_id,
        entity_id=entity_id,
        reason=reason,
        requested_by=requested_by,
        at_ms=int(time.time() * 1000) if at_ms is None else at_ms,
    )


_encoder = msgspec.json.Encoder()


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)
