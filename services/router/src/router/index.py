"""In-memory index of the config topic: webhook id -> subscription, entity -> subscriptions.

A `ConfigSink` fed by the config view (`webhooks_common.config_view`: every worker reads the whole
compacted topic; the view applies the version rule); read by the router on every event.
Both run on one event loop, so no locking. Lookups are memoised per (entity, type) and the memo of an
entity is dropped whenever one of its subscriptions changes.
"""

from __future__ import annotations

from router.matching import Subscription, compile_subscription, match
from webhooks_common.models import WebhookConfig

MEMO_LIMIT = 200_000  # (entity, type) pairs memoised before the memo is cleared wholesale


class SubscriptionIndex:
    def __init__(self) -> None:
        self._by_id: dict[str, Subscription] = {}
        self._by_entity: dict[str, dict[str, Subscription]] = {}
        self._memo: dict[str, dict[str, tuple[Subscription, ...]]] = {}  # entity -> type -> matches
        self._memo_size = 0
        self._enabled = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def enabled_count(self) -> int:
        return self._enabled

    def get(self, webhook_id: str) -> Subscription | None:
        return self._by_id.get(webhook_id)

    def put(self, cfg: WebhookConfig) -> None:
        """Hold this config for its webhook, replacing the one held (the config view decided it is newer)."""
        sub = compile_subscription(cfg)  # first: a config that does not compile leaves the index as it was
        held = self._by_id.get(cfg.id)
        if held is not None:
            self._remove(held)  # also takes it off its old entity when the webhook moved
        self._by_id[cfg.id] = sub
        self._enabled += sub.enabled
        self._by_entity.setdefault(sub.entity_id, {})[cfg.id] = sub
        self._forget(sub.entity_id)

    def remove(self, webhook_id: str) -> None:
        """The webhook was deleted (a tombstone)."""
        held = self._by_id.get(webhook_id)
        if held is not None:
            self._remove(held)

    def lookup(self, entity_id: str, event_type: str) -> tuple[Subscription, ...]:
        by_type = self._memo.get(entity_id)
        if by_type is not None:
            hit = by_type.get(event_type)
            if hit is not None:
                return hit
        subs = self._by_entity.get(entity_id)
        found = tuple(match(entity_id, event_type, subs.values())) if subs else ()
        if self._memo_size >= MEMO_LIMIT:
            self._memo.clear()
            self._memo_size = 0
            by_type = None
        if by_type is None:
            by_type = self._memo[entity_id] = {}
        by_type[event_type] = found
        self._memo_size += 1
        return found

    def _remove(self, sub: Subscription) -> None:
        del self._by_id[sub.id]
        self._enabled -= sub.enabled
        entity = self._by_entity.get(sub.entity_id)
        if entity is not None:
            entity.pop(sub.id, None)
            if not entity:
                del self._by_entity[sub.entity_id]
        self._forget(sub.entity_id)

    def _forget(self, entity_id: str) -> None:
        dropped = self._memo.pop(entity_id, None)
        if dropped:
            self._memo_size -= len(dropped)
