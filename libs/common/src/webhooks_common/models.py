"""Versioned, typed Kafka messages shared by the services.

Every message has a `v` (schema version) and an idempotency key (`key()` below): consumers that see
the same key twice treat it as the same message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


def now_ms() -> int:
    return int(utcnow().timestamp() * 1000)


class _Message(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Self:
        return cls.model_validate_json(raw)


class InputEvent(_Message):
    """What product services write to `wink.events` / `trippay.events` (key: entity id, UTF-8)."""

    id: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    occurred_at: datetime = Field(alias="occurredAt")
    entity_id: str = Field(alias="entityId", min_length=1, max_length=200)
    data: dict[str, object] = Field(default_factory=dict)

    def key(self) -> str:
        return self.id


class SigningSecret(BaseModel):
    """One signing secret, encrypted with WEBHOOK_SECRETS_KEY. `expires_at` is set on a rotated-out one."""

    encrypted: str
    created_at: datetime
    expires_at: datetime | None = None


class WebhookConfig(_Message):
    """Value on `webhooks.config` (compacted; key = webhook id; a tombstone (null value) on delete)."""

    v: Literal[1] = 1
    id: str
    entity_id: str
    entity_name: str
    name: str
    enabled: bool
    event_url: str
    event_list: list[str] = Field(default_factory=list)
    version: int = Field(description="The record's version; grows by one with every change.")
    secrets: list[SigningSecret] = Field(default_factory=list)
    updated_at: datetime
    # Milliseconds since epoch when the registry accepted the change (used to measure change -> effect).
    changed_at_ms: int = 0

    def key(self) -> str:
        return f"{self.id}:{self.version}"


class DeliveryTask(_Message):
    """Value on `webhooks.deliveries` and retry topics (key = target URL, UTF-8).

    `body` is the exact JSON text POSTed to the integrator, rendered once by the router so that every
    attempt signs and sends the same bytes.
    """

    v: Literal[1] = 1
    task_id: str = Field(description="Stable across retries and duplicates: `{event_id}:{webhook_id}`.")
    event_id: str
    event_type: str
    entity_id: str
    webhook_id: str
    webhook_version: int
    url: str
    body: str
    attempt: int = 1
    entered_at_ms: int = Field(description="When the router read the event (ms since epoch).")
    due_at_ms: int = 0
    source: str = "wink"
    history: list[AttemptSummary] = Field(default_factory=list)

    def key(self) -> str:
        return self.task_id


class AttemptSummary(BaseModel):
    attempt: int
    at_ms: int
    outcome: str
    status: int | None = None
    error: str | None = None


class DeadLetter(_Message):
    """Value on `webhooks.dlq` (key = webhook id): the task, why it died, and every attempt."""

    v: Literal[1] = 1
    task: DeliveryTask
    reason: str
    dead_at_ms: int

    def key(self) -> str:
        return self.task.task_id


class InvalidEvent(_Message):
    """Value on `webhooks.invalid`: an input event that cannot be routed, with the original bytes."""

    v: Literal[1] = 1
    reason: str
    detail: str = ""
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str | None = None
    at_ms: int

    def key(self) -> str:
        return f"{self.source_topic}:{self.partition}:{self.offset}"


DeliveryTask.model_rebuild()
