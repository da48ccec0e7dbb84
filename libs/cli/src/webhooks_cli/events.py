"""Sample input events of any catalogue type, and the input topic each one belongs on (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from webhooks_common.catalog import CatalogEntry, canonical_type, catalog
from webhooks_common.models import InputEvent
from webhooks_common.topics import Topics


def entry_for(event_type: str) -> CatalogEntry:
    wanted = canonical_type(event_type)
    for entry in catalog():
        if entry.key == wanted:
            return entry
    raise ValueError(f"{event_type!r} is not an event type of the catalogue (see `whctl events`)")


def topic_for(topics: Topics, event_type: str) -> str:
    """`wink.events` or `trippay.events`, by the catalogue's source column."""
    source = entry_for(event_type).source
    return topics.trippay_events if source == "trippay" else topics.wink_events


def sample_data(entry: CatalogEntry, event_id: str) -> dict[str, Any]:
    """A small, plausible payload; products send their own, the platform passes it through untouched."""
    ref = event_id[:8]
    data: dict[str, Any] = {"sample": True, "category": entry.category, "label": entry.label}
    if entry.key.startswith("booking."):
        data.update(bookingId=f"bk_{ref}", status="confirmed", total={"amount": 24900, "currency": "USD"})
    elif "payment" in entry.key:
        data.update(paymentId=f"pay_{ref}", amount=24900, currency="USD")
    return data


def sample_event(
    event_type: str,
    entity_id: str,
    *,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
    now: datetime | None = None,
) -> InputEvent:
    entry = entry_for(event_type)
    eid = event_id or f"evt_{uuid.uuid4().hex}"
    return InputEvent(
        id=eid,
        type=event_type,
        occurred_at=now or datetime.now(UTC),
        entity_id=entity_id,
        data=sample_data(entry, eid) if data is None else data,
    )
