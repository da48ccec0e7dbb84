"""The stored webhook document and its pure transitions.

One MongoDB document per webhook carries its own outbox state, because FerretDB has no transactions and a
single-document write is the only atomic unit: `version` grows with every change, `pending` is true while
the change is not yet acknowledged by Kafka, and `published_version` is the last version Kafka acknowledged.
A delete keeps the document (`deleted: true`, pending) until its tombstone is acknowledged.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from registry.schemas import RotatedSecretResponse, WebhookRecord
from webhooks_common.models import SigningSecret, WebhookConfig

Doc = dict[str, Any]

# API field names (pydantic attribute names) -> document field names.
MUTABLE = {"name": "name", "enabled": "enabled", "event_url": "event_url", "event_list": "event_list"}


def new_doc(
    webhook_id: str, entity_id: str, fields: dict[str, Any], user: str, encrypted_secret: str, now: datetime
) -> Doc:
    return {
        "_id": webhook_id,
        "entity_id": entity_id,
        "entity_name": fields["entity"]["name"],
        "name": fields["name"],
        "enabled": fields["enabled"],
        "event_url": fields["event_url"],
        "event_list": fields["event_list"],
        "user_identifier": user,
        "created_at": now,
        "updated_at": now,
        "changed_at_ms": _ms(now),
        "version": 1,
        "published_version": 0,
        "pending": True,
        "deleted": False,
        "secrets": [{"encrypted": encrypted_secret, "created_at": now, "expires_at": None}],
    }


def change(doc: Doc, user: str, now: datetime, **fields: Any) -> Doc:
    """The `$set` of one change: the new field values plus the outbox bookkeeping (version+1, pending)."""
    update: Doc = {k: v for k, v in fields.items()}
    update.update(
        {
            "version": doc["version"] + 1,
            "pending": True,
            "updated_at": now,
            "changed_at_ms": _ms(now),
            "user_identifier": user,
        }
    )
    return update


def patch_fields(fields: dict[str, Any]) -> Doc:
    """Document fields for the present (already validated) API fields of an update."""
    out = {MUTABLE[k]: v for k, v in fields.items() if k in MUTABLE and v is not None}
    entity = fields.get("entity")
    if entity is not None:
        out["entity_name"] = entity["name"]
    return out


def rotate_secrets(
    secrets: list[Doc], new_encrypted: str, now: datetime, overlap: timedelta
) -> tuple[list[Doc], datetime | None]:
    """Secrets after a rotation: expired ones dropped, current ones expire after `overlap`, new one added.

    Returns the new list and when the previous secret stops signing (None when nothing overlaps).
    """
    expires = now + overlap
    kept: list[Doc] = []
    for s in secrets:
        until = s.get("expires_at")
        if until is None:
            until = expires
        if until > now:
            kept.append({**s, "expires_at": until})
    previous_until = max((s["expires_at"] for s in kept), default=None)
    return [*kept, {"encrypted": new_encrypted, "created_at": now, "expires_at": None}], previous_until


def current_secret(secrets: list[Doc]) -> Doc:
    """The newest secret that has no expiry (the one a rotation made last)."""
    live = [s for s in secrets if s.get("expires_at") is None] or secrets
    return max(live, key=lambda s: s["created_at"])


def to_record(doc: Doc) -> WebhookRecord:
    return WebhookRecord(
        id=doc["_id"],
        created_date=doc["created_at"],
        last_update=doc["updated_at"],
        version=doc["version"],
        user_identifier=doc["user_identifier"],
        owner_identifier=doc["entity_id"],
        owner_name=doc["entity_name"],
        name=doc["name"],
        enabled=doc["enabled"],
        event_url=doc["event_url"],
        event_list=list(doc["event_list"]),
    )


def to_config(doc: Doc) -> WebhookConfig:
    """The value published on the config topic (secrets stay encrypted)."""
    return WebhookConfig(
        id=doc["_id"],
        entity_id=doc["entity_id"],
        entity_name=doc["entity_name"],
        name=doc["name"],
        enabled=doc["enabled"],
        event_url=doc["event_url"],
        event_list=list(doc["event_list"]),
        version=doc["version"],
        secrets=[
            SigningSecret(
                encrypted=s["encrypted"], created_at=s["created_at"], expires_at=s.get("expires_at")
            )
            for s in doc["secrets"]
        ],
        updated_at=doc["updated_at"],
        changed_at_ms=doc.get("changed_at_ms", 0),
    )


def rotated_response(secret: str, previous_until: datetime | None) -> RotatedSecretResponse:
    return RotatedSecretResponse(secret=secret, previous_expires_at=previous_until)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)
