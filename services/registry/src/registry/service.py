"""Use cases of the registry: every change (API or command) goes through `_apply`, so it is versioned,
stored with its outbox flag in one atomic write, and handed to the publisher."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from registry import documents as d
from registry.errors import CapReached, ConcurrentChange, NotFound, StaleVersion
from registry.recent import RecentWebhooks
from registry.schemas import KeyValuePair, RemoveEntryResponse, WebhookRecord
from registry.store import Store
from webhooks_common.catalog import catalog
from webhooks_common.models import utcnow
from webhooks_common.secrets import SecretBox, generate_secret

log = logging.getLogger(__name__)

# Optimistic-concurrency retries for changes without If-Match (another writer won the race).
_CAS_ATTEMPTS = 5


@dataclass
class Limits:
    max_per_entity: int = 100
    secret_overlap: timedelta = timedelta(hours=24)


def store_clock() -> datetime:
    """Now, truncated to milliseconds: what MongoDB keeps, so a response equals a later read."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class WebhookService:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        limits: Limits,
        notify: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = store_clock,
        recent: RecentWebhooks | None = None,
        on_base: Callable[[str], None] = lambda _base: None,
    ) -> None:
        self.store, self.box, self.limits, self.notify, self.clock = store, box, limits, notify, clock
        # Bases for the next change (recent.py); off when not given.
        self.recent = recent if recent is not None else RecentWebhooks(0, 0.0)
        self.on_base = on_base  # "recent", "reread" or "read": what a change was computed on (a metric)

    async def create(self, entity_id: str, new: d.NewWebhook, user: str) -> WebhookRecord:
        # Count and insert under a per-entity lock (no transactions): exact within one registry process.
        async with self.store.entity_lock(entity_id):
            if await self.store.count_live(entity_id) >= self.limits.max_per_entity:
                raise CapReached(self.limits.max_per_entity)
            webhook = d.new_webhook(
                str(uuid.uuid4()),
                entity_id,
                new,
                user,
                self.box.encrypt(generate_secret(32)),
                self.clock(),
            )
            await self.store.insert(d.to_doc(webhook))
        self.notify()
        self.recent.remember(webhook)
        return d.to_record(webhook)

    async def list_webhooks(self, entity_id: str) -> list[WebhookRecord]:
        webhooks = [d.from_doc(doc) for doc in await self.store.list_entity(entity_id)]
        for webhook in webhooks:
            self.recent.remember(webhook)
        return [d.to_record(webhook) for webhook in webhooks]

    async def get(self, entity_id: str, webhook_id: str) -> WebhookRecord:
        return d.to_record(await self._load(entity_id, webhook_id))

    async def update(
        self, entity_id: str, webhook_id: str, changes: d.WebhookChanges, user: str, if_match: int | None
    ) -> WebhookRecord:
        # A patch that changes nothing (`{}`, or the values already stored) writes and publishes nothing.
        webhook = await self._apply(
            entity_id, webhook_id, user, if_match, lambda current: d.changed_fields(current, changes)
        )
        return d.to_record(webhook)

    async def delete(
        self, entity_id: str, webhook_id: str, user: str, if_match: int | None
    ) -> RemoveEntryResponse:
        await self._apply(entity_id, webhook_id, user, if_match, lambda _webhook: {"deleted": True})
        return RemoveEntryResponse(id=webhook_id, success=True, message="Webhook removed.")

    async def secret(self, entity_id: str, webhook_id: str) -> str:
        webhook = await self._load(entity_id, webhook_id)
        return self.box.decrypt(d.current_secret(webhook.secrets).encrypted)

    async def rotate_secret(self, entity_id: str, webhook_id: str, user: str) -> tuple[str, datetime | None]:
        new = generate_secret(32)
        encrypted = self.box.encrypt(new)
        previous_until: list[datetime | None] = [None]

        def rotate(webhook: d.Webhook) -> dict[str, Any]:
            secrets, previous_until[0] = d.rotate_secrets(
                webhook.secrets, encrypted, self.clock(), self.limits.secret_overlap
            )
            return {"secrets": secrets}

        await self._apply(entity_id, webhook_id, user, None, rotate)
        return new, previous_until[0]

    async def disable(self, webhook_id: str, entity_id: str, reason: str, requested_by: str) -> bool:
        """Apply a `disable` command; False when the webhook is gone or already disabled (nothing to do)."""
        try:
            await self._apply(
                entity_id,
                webhook_id,
                f"system:{requested_by}",
                None,
                lambda webhook: {"enabled": False, "disabled_reason": reason} if webhook.enabled else None,
            )
        except NotFound:
            return False
        log.info("webhook disabled by command", extra={"webhook_id": webhook_id, "reason": reason})
        return True

    def events(self) -> list[KeyValuePair]:
        return [KeyValuePair(value=e.key, label=f"{e.category}: {e.label}") for e in catalog()]

    async def _load(self, entity_id: str, webhook_id: str) -> d.Webhook:
        doc = await self.store.get(entity_id, webhook_id)
        if doc is None:
            self.recent.forget(webhook_id)
            raise NotFound(webhook_id)
        webhook = d.from_doc(doc)
        self.recent.remember(webhook)
        return webhook

    async def _apply(
        self,
        entity_id: str,
        webhook_id: str,
        user: str,
        if_match: int | None,
        mutate: Callable[[d.Webhook], dict[str, Any] | None],
    ) -> d.Webhook:
        """Read, compute the change (None: nothing to change), compare-and-set on the version read. With
        If-Match the version must be the caller's; without it a lost race is retried on a fresh read.

        A webhook this process saw moments ago is tried first without reading it (recent.py): if it is
        out of date its compare-and-set loses, and so does anything else it cannot decide alone (If-Match
        on another version, nothing to change), which is then decided as always, on a fresh read."""
        seen = self.recent.base(entity_id, webhook_id)
        if seen is not None and (if_match is None or seen.version == if_match):
            fields = mutate(seen)
            if fields is not None:
                written = await self._write(seen, user, fields)
                if written is not None:
                    self.on_base("recent")
                    return written
        self.on_base("read" if seen is None else "reread")
        for _ in range(_CAS_ATTEMPTS):
            webhook = await self._load(entity_id, webhook_id)
            if if_match is not None and webhook.version != if_match:
                raise StaleVersion(current=webhook.version, expected=if_match)
            fields = mutate(webhook)
            if fields is None:
                return webhook
            written = await self._write(webhook, user, fields)
            if written is not None:
                return written
            if if_match is not None:
                raise ConcurrentChange()
        raise ConcurrentChange(given_up=True)

    async def _write(self, webhook: d.Webhook, user: str, fields: dict[str, Any]) -> d.Webhook | None:
        """The change on top of `webhook` if that is still the stored version; None when another won."""
        updated = await self.store.update_if_version(
            d.to_doc(webhook), d.change(webhook, user, self.clock(), fields)
        )
        if updated is None:
            self.recent.forget(webhook.id)
            return None
        self.notify()
        written = d.from_doc(updated)
        self.recent.remember(written)
        return written
