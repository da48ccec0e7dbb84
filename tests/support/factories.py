"""Message factories shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from webhooks_common.models import DeliveryTask, WebhookConfig, utcnow
from webhooks_common.wire import AttemptRecord


def webhook_config(wid: str, entity: str, events: list[str] | None = None, **kw: Any) -> WebhookConfig:
    """An enabled version-1 config for `wid` of `entity` (URL on a closed loopback port); `kw` overrides."""
    fields: dict[str, Any] = {
        "id": wid,
        "entity_id": entity,
        "entity_name": "Entity",
        "name": wid,
        "enabled": True,
        "event_url": f"http://127.0.0.1:9/{wid}",
        "event_list": events or [],
        "version": 1,
        "updated_at": utcnow(),
    }
    fields.update(kw)
    return WebhookConfig(**fields)


def delivery_task(event_id: str = "e1", webhook_id: str = "w1", **kw: Any) -> DeliveryTask:
    """A first-attempt task of `event_id` for `webhook_id` (task id `{event}:{webhook}`); `kw` overrides."""
    fields: dict[str, Any] = {
        "task_id": f"{event_id}:{webhook_id}",
        "event_id": event_id,
        "event_type": "booking.create",
        "entity_id": "e1",
        "webhook_id": webhook_id,
        "webhook_version": 1,
        "url": "https://example.com/hook",
        "body": orjson.dumps({"id": event_id}).decode(),
        "entered_at_ms": 1,
    }
    fields.update(kw)
    return DeliveryTask(**fields)


def input_event(
    event_id: str,
    entity: str,
    event_type: str = "booking.create",
    data: dict[str, Any] | None = None,
    occurred_at: str = "2026-11-27T10:00:00Z",
) -> bytes:
    """An input event, the value a product writes on its events topic (keyed by `entity`)."""
    return orjson.dumps(
        {
            "id": event_id,
            "type": event_type,
            "occurredAt": occurred_at,
            "entityId": entity,
            "data": data or {},
        }
    )


def attempt_record(
    event_id: str = "e1",
    webhook_id: str = "w1",
    attempt: int = 1,
    at_ms: int = 0,
    outcome: str = "success",
    **kw: Any,
) -> AttemptRecord:
    """Attempt `attempt` of delivery_task(event_id, webhook_id), as recorded; `kw` overrides."""
    task = delivery_task(event_id, webhook_id)
    fields: dict[str, Any] = task.model_dump(
        include={"task_id", "event_id", "event_type", "entity_id", "webhook_id", "url"}
    )
    fields.update(attempt=attempt, at_ms=at_ms, outcome=outcome, duration_ms=12.5)
    fields.update(kw)
    return AttemptRecord(**fields)


def stored_webhook_doc(**over: Any) -> dict[str, Any]:
    """A webhook document as the registry stores it (version 2, one encrypted secret); `over` replaces."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    doc: dict[str, Any] = {
        "_id": "w1",
        "entity_id": "e1",
        "entity_name": "E",
        "name": "hook",
        "enabled": True,
        "event_url": "https://example.com/h",
        "event_list": [],
        "user_identifier": "u",
        "created_at": t0,
        "updated_at": t0,
        "changed_at_ms": 5,
        "version": 2,
        "deleted": False,
        "secrets": [{"encrypted": "a", "created_at": t0, "expires_at": None}],
    }
    doc.update(over)
    return doc
