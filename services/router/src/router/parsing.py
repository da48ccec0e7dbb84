"""Parse and validate one input record (pure). Invalid records get a reason instead of raising.

The checks are those of `webhooks_common.models.InputEvent` done by hand on one orjson parse: the hot path
avoids a pydantic validation per event (unit tests keep the two equivalent on the inputs that matter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import orjson

from webhooks_common.catalog import is_known_type

MAX_FIELD = 200  # InputEvent's max_length for id, type and entityId


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    id: str
    type: str
    entity_id: str
    timestamp: str  # occurredAt, normalised to ISO-8601 UTC with a trailing Z
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # not_json | bad_shape | unknown_type | key_mismatch | too_large
    detail: str


def parse_event(
    key: bytes | None, value: bytes | None, *, max_bytes: int = 512 * 1024
) -> ParsedEvent | Rejection:
    if value is None:
        return Rejection("not_json", "empty value (tombstone)")
    if len(value) > max_bytes:
        return Rejection("too_large", f"{len(value)} bytes > {max_bytes}")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", str(exc)[:200])
    if not isinstance(doc, dict):
        return Rejection("bad_shape", f"expected a JSON object, got {type(doc).__name__}")
    event_id, event_type, entity_id = doc.get("id"), doc.get("type"), doc.get("entityId")
    if not _short_str(event_id):
        return _bad_field("id")
    if not _short_str(event_type):
        return _bad_field("type")
    if not _short_str(entity_id):
        return _bad_field("entityId")
    data = doc.get("data", {})
    if not isinstance(data, dict):
        return Rejection("bad_shape", "`data` must be a JSON object")
    timestamp = _timestamp(doc.get("occurredAt"))
    if timestamp is None:
        return Rejection("bad_shape", "`occurredAt` must be an ISO-8601 date-time string")
    if not is_known_type(event_type):
        return Rejection("unknown_type", f"`{event_type[:100]}` is not in the event catalogue")
    if key is None:
        return Rejection("key_mismatch", "record has no key; the key must be the entityId")
    if key != entity_id.encode():
        return Rejection("key_mismatch", f"key {key[:100]!r} != entityId {entity_id[:100]!r}")
    return ParsedEvent(event_id, event_type, entity_id, timestamp, data)


def _short_str(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= MAX_FIELD


def _bad_field(name: str) -> Rejection:
    return Rejection("bad_shape", f"`{name}` must be a string of 1-{MAX_FIELD} characters")


def _timestamp(value: object) -> str | None:
    """ISO-8601 UTC (`...Z`) for an `occurredAt` string with a time part; naive times are taken as UTC."""
    if not isinstance(value, str) or "T" not in value.upper() or len(value) > 64:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return dt.isoformat().replace("+00:00", "Z")
