"""The deliverer's own view of `webhooks.config`: current URL, state and decrypted secrets per webhook."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from webhooks_common.models import WebhookConfig
from webhooks_common.secrets import SecretBox, secret_bytes

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WebhookView:
    id: str
    entity_id: str
    version: int
    enabled: bool
    url: str
    # (key, expires_at unix seconds or None), decrypted once when the config arrives
    keys: list[tuple[bytes, float | None]] = field(default_factory=list)

    def valid_keys(self, now_s: float) -> list[bytes]:
        return [k for k, exp in self.keys if exp is None or exp > now_s]


def _ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


class ConfigView:
    """webhook id -> WebhookView: the deliverer's `ConfigSink` of the config topic (plus local 410 disables).

    Fed by `webhooks_common.config_view.ConfigTopicView`, which decides what is newer (one version rule
    for every service); this class only keeps what it is given.
    """

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._hooks: dict[str, WebhookView] = {}
        self._removed: set[str] = set()

    def get(self, webhook_id: str) -> WebhookView | None:
        return self._hooks.get(webhook_id)

    def removed(self, webhook_id: str) -> bool:
        return webhook_id in self._removed

    def __len__(self) -> int:
        return len(self._hooks)

    def put(self, cfg: WebhookConfig) -> None:
        keys: list[tuple[bytes, float | None]] = []
        for s in cfg.secrets:
            try:
                keys.append((secret_bytes(self._box.decrypt(s.encrypted)), _ts(s.expires_at)))
            except ValueError:
                log.error("signing secret of webhook %s cannot be decrypted with WEBHOOK_SECRETS_KEY", cfg.id)
        self._removed.discard(cfg.id)
        self._hooks[cfg.id] = WebhookView(
            cfg.id, cfg.entity_id, cfg.version, cfg.enabled, cfg.event_url, keys
        )

    def remove(self, webhook_id: str) -> None:
        self._hooks.pop(webhook_id, None)
        self._removed.add(webhook_id)

    def mark_disabled(self, webhook_id: str) -> None:
        """Stop delivering at once (after a 410) without waiting for the registry's change to come back.

        Lasts until a newer version arrives (the registry's disable, or a later change): the config view
        never re-applies the version held, so a re-read cannot undo it.
        """
        view = self._hooks.get(webhook_id)
        if view is not None:
            view.enabled = False
