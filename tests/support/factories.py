"""Message factories shared by tests."""

from __future__ import annotations

from typing import Any

from webhooks_common.models import WebhookConfig, utcnow


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
