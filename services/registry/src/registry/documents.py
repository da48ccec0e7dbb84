"""The stored webhook: its typed record, its pure transitions, and the conversions at the store's boundary.

One MongoDB document per webhook; `version` grows by one with every change. Each change is also a revision
in the store's change log (store.py), which is the compare-and-set and the outbox: the publisher reads and
marks revisions, never this document. A delete keeps the document (`deleted: true`) until its tombstone is
acknowledged by Kafka.

The store reads and writes raw documents (`Doc`); `from_doc` and `to_doc` are the only crossings, so the
service layer works on `Webhook` only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from registry.errors import UnreadableDocument
from registry.schemas import WebhookRecord
from webhooks_common.models import WebhookConfig

Doc = dict[str, Any]  # a raw MongoDB document, as store.py reads and writes it


class _Stored(BaseModel):
    # Strict: MongoDB keeps types, so "yes" for a bool or "3" for a version is a damaged document.
    model_config = ConfigDict(strict=True, frozen=True, populate_by_name=True, extra="ignore")


class StoredSecret(_Stored):
    encrypted: str
    created_at: datetime
    expires_at: datetime | None = None


class Webhook(_Stored):
    id: str = Field(alias="_id")
    entity_id: str
    entity_name: str
    name: str
    enabled: bool
    event_url: str
    event_list: list[str]
    user_identifier: str
    created_at: datetime
    updated_at: datetime
    changed_at_ms: int = 0
    version: int
    deleted: bool = False
    secrets: list[StoredSecret] = Field(min_length=1)
    disabled_reason: str | None = None  # why the system disabled it; cleared when it is enabled again


def from_doc(doc: Doc) -> Webhook:
    """The typed record of a stored document; UnreadableDocument when it does not have that shape."""
    try:
        return Webhook.model_validate(doc)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors()
        )
        raise UnreadableDocument(str(doc.get("_id")), reasons) from None


def to_doc(webhook: Webhook) -> Doc:
    doc = webhook.model_dump(by_alias=True)
    if doc["disabled_reason"] is None:
        del doc["disabled_reason"]  # only a disabled webhook has one: stored documents stay as they were
    return doc


@dataclass(frozen=True)
class NewWebhook:
    """A validated create request."""

    entity_name: str
    name: str
    event_url: str
    enabled: bool = True
    event_list: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class WebhookChanges:
    """A validated update: the fields to set; None keeps the stored value."""

    entity_name: str | None = None
    name: str | None = None
    event_url: str | None = None
    enabled: bool | None = None
    event_list: list[str] | None = None

    def present(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def new_webhook(
    webhook_id: str, entity_id: str, new: NewWebhook, user: str, encrypted_secret: str, now: datetime
) -> Webhook:
    return Webhook(
        id=webhook_id,
        entity_id=entity_id,
        **asdict(new),  # every field of the request, as given
        user_identifier=user,
        created_at=now,
        updated_at=now,
        changed_at_ms=_ms(now),
        version=1,
        deleted=False,
        secrets=[StoredSecret(encrypted=encrypted_secret, created_at=now)],
    )


def change(webhook: Webhook, user: str, now: datetime, fields: dict[str, Any]) -> Doc:
    """The `$set` of one change: the new field values plus the bookkeeping (version+1, when, by whom)."""
    changed = webhook.model_copy(
        update={
            **fields,
            "version": webhook.version + 1,
            "updated_at": now,
            "changed_at_ms": _ms(now),
            "user_identifier": user,
        }
    )
    doc = changed.model_dump(by_alias=True)
    keys = [*fields, "version", "updated_at", "changed_at_ms", "user_identifier"]
    return {k: doc[k] for k in keys}


def changed_fields(webhook: Webhook, changes: WebhookChanges) -> dict[str, Any] | None:
    """Only the fields whose value differs; None when nothing does (then nothing is written or published)."""
    changed = {k: v for k, v in changes.present().items() if getattr(webhook, k) != v}
    if changed.get("enabled") is True and webhook.disabled_reason is not None:
        changed["disabled_reason"] = None  # enabled again: the reason it was disabled no longer holds
    return changed or None


def rotate_secrets(
    secrets: list[StoredSecret], new_encrypted: str, now: datetime, overlap: timedelta
) -> tuple[list[StoredSecret], datetime | None]:
    """Secrets after a rotation: expired ones dropped, current ones expire after `overlap`, new one added.

    Returns the new list and when the previous secret stops signing (None when nothing overlaps).
    """
    expires = now + overlap
    kept: list[StoredSecret] = []
    for s in secrets:
        until = s.expires_at if s.expires_at is not None else expires
        if until > now:
            kept.append(s.model_copy(update={"expires_at": until}))
    previous_until = max((s.expires_at for s in kept if s.expires_at is not None), default=None)
    return [*kept, StoredSecret(encrypted=new_encrypted, created_at=now)], previous_until


def current_secret(secrets: list[StoredSecret]) -> StoredSecret:
    """The newest secret that has no expiry (the one a rotation made last)."""
    live = [s for s in secrets if s.expires_at is None] or secrets
    return max(live, key=lambda s: s.created_at)


def to_record(webhook: Webhook) -> WebhookRecord:
    return WebhookRecord(
        id=webhook.id,
        created_date=webhook.created_at,
        last_update=webhook.updated_at,
        version=webhook.version,
        user_identifier=webhook.user_identifier,
        owner_identifier=webhook.entity_id,
        owner_name=webhook.entity_name,
        name=webhook.name,
        enabled=webhook.enabled,
        event_url=webhook.event_url,
        event_list=list(webhook.event_list),
        disabled_reason=webhook.disabled_reason,
    )


_CONFIG_FIELDS = set(WebhookConfig.model_fields)


def to_config(webhook: Webhook) -> WebhookConfig:
    """The value published on the config topic (secrets stay encrypted)."""
    return WebhookConfig.model_validate(webhook.model_dump(include=_CONFIG_FIELDS))


@dataclass(frozen=True)
class ConfigRecord:
    """One record for the config topic: key = webhook id, value = the config or None (a tombstone)."""

    webhook_id: str
    version: int
    deleted: bool
    changed_at_ms: int
    key: bytes
    value: bytes | None


def config_record(doc: Doc) -> ConfigRecord:
    """The config-topic record of a stored document; UnreadableDocument when none can be made.

    A deleted document needs only its id and version for its tombstone: it goes out even if the rest is
    damaged, so a delete is never held back.
    """
    webhook_id, version = doc.get("_id"), doc.get("version")
    if doc.get("deleted") is True and isinstance(webhook_id, str) and is_int(version):
        changed = doc.get("changed_at_ms")
        return ConfigRecord(
            webhook_id, version, True, changed if is_int(changed) else 0, webhook_id.encode(), None
        )
    webhook = from_doc(doc)
    try:
        value = to_config(webhook).to_bytes()
    except (ValidationError, ValueError, TypeError) as exc:
        raise UnreadableDocument(webhook.id, f"cannot make its config: {exc}") from None
    return ConfigRecord(
        webhook.id, webhook.version, webhook.deleted, webhook.changed_at_ms, webhook.id.encode(), value
    )


def is_int(value: object) -> TypeGuard[int]:
    """An integer as MongoDB returns one (int, or bson's Int64 subclass), not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)
