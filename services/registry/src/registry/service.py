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
from registry.problems import Problem
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
    ) -> None:
        self.store, self.box, self.limits, self.notify, self.clock = store, box, limits, notify, clock

    async def create(self, entity_id: str, fields: dict[str, Any], user: str) -> WebhookRecord:
        # Count and insert under a per-entity lock (no transactions): exact within one registry process.
        async with self.store.entity_lock(entity_id):
            if await self.store.count_live(entity_id) >= self.limits.max_per_entity:
                raise Problem(
                    409,
                    f"this managing entity already has the maximum of {self.limits.max_per_entity} webhooks; "
                    "remove one before creating another",
                )
            doc = d.new_doc(
                str(uuid.uuid4()),
                entity_id,
                fields,
                user,
                self.box.encrypt(generate_secret(32)),
                self.clock(),
            )
            await self.store.insert(doc)
        self.notify()
        return d.to_record(doc)

    async def list_webhooks(self, entity_id: str) -> list[WebhookRecord]:
        return [d.to_record(doc) for doc in await self.store.list_entity(entity_id)]

    async def get(self, entity_id: str, webhook_id: str) -> WebhookRecord:
        return d.to_record(await self._load(entity_id, webhook_id))

    async def update(
        self, entity_id: str, webhook_id: str, fields: dict[str, Any], user: str, if_match: int | None
    ) -> WebhookRecord:
        doc = await self._apply(entity_id, webhook_id, user, if_match, lambda _doc: d.patch_fields(fields))
        return d.to_record(doc)

    async def delete(
        self, entity_id: str, webhook_id: str, user: str, if_match: int | None
    ) -> RemoveEntryResponse:
        await self._apply(entity_id, webhook_id, user, if_match, lambda _doc: {"deleted": True})
        return RemoveEntryResponse(id=webhook_id, success=True, message="Webhook removed.")

    async def secret(self, entity_id: str, webhook_id: str) -> str:
        doc = await self._load(entity_id, webhook_id)
        return self.box.decrypt(d.current_secret(doc["secrets"])["encrypted"])

    async def rotate_secret(self, entity_id: str, webhook_id: str, user: str) -> tuple[str, datetime | None]:
        new = generate_secret(32)
        encrypted = self.box.encrypt(new)
        previous_until: list[datetime | None] = [None]

        def rotate(doc: d.Doc) -> d.Doc:
            secrets, previous_until[0] = d.rotate_secrets(
                doc["secrets"], encrypted, self.clock(), self.limits.secret_overlap
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
                lambda doc: {"enabled": False} if doc["enabled"] else None,
            )
        except Problem as exc:
            if exc.status == 404:
                return False
            raise
        log.info("webhook disabled by command", extra={"webhook_id": webhook_id, "reason": reason})
        return True

    def events(self) -> list[KeyValuePair]:
        return [KeyValuePair(value=e.key, label=f"{e.category}: {e.label}") for e in catalog()]

    async def _load(self, entity_id: str, webhook_id: str) -> d.Doc:
        doc = await self.store.get(entity_id, webhook_id)
        if doc is None:
            raise Problem(404, f"no webhook {webhook_id} for this managing entity")
        return doc

    async def _apply(
        self,
        entity_id: str,
        webhook_id: str,
        user: str,
        if_match: int | None,
        mutate: Callable[[d.Doc], d.Doc | None],
    ) -> d.Doc:
        """Read, compute the change, compare-and-set on the version read. With If-Match the version must be
        the caller's (409 otherwise); without it a lost race is retried on a fresh read."""
        for _ in range(_CAS_ATTEMPTS):
            doc = await self._load(entity_id, webhook_id)
            if if_match is not None and doc["version"] != if_match:
                raise Problem(
                    409,
                    f"the webhook is at version {doc['version']}, not {if_match}: re-read it and retry",
                    headers={"ETag": f'"{doc["version"]}"'},
                )
            fields = mutate(doc)
            if fields is None:
                return doc
            updated = await self.store.update_if_version(
                webhook_id, doc["version"], d.change(doc, user, self.clock(), **fields)
            )
            if updated is not None:
                self.notify()
                return updated
            if if_match is not None:
                raise Problem(409, "the webhook changed while this update was applied: re-read it and retry")
        raise Problem(409, "the webhook is being changed concurrently; retry")
