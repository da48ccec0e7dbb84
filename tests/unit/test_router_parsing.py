"""Parsing and validation of input records: what is routed, what goes to the invalid topic and why."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from router.parsing import ParsedEvent, Rejection, parse_event
from webhooks_common.models import InputEvent


def event(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "ev-1",
        "type": "booking.create",
        "occurredAt": "2026-11-27T10:00:00Z",
        "entityId": "ent-1",
        "data": {"bookingId": "b1", "amount": 12.5},
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not _DROP}


_DROP = object()


def parse(doc: Any, key: bytes | None = b"ent-1") -> ParsedEvent | Rejection:
    return parse_event(key, orjson.dumps(doc))


def test_valid_event() -> None:
    got = parse(event())
    assert got == ParsedEvent(
        "ev-1", "booking.create", "ent-1", "2026-11-27T10:00:00Z", {"bookingId": "b1", "amount": 12.5}
    )


def test_alias_type_is_kept_as_the_event_says() -> None:
    got = parse(event(type="booking.created"))
    assert isinstance(got, ParsedEvent) and got.type == "booking.created"


def test_missing_data_is_an_empty_object() -> None:
    got = parse(event(data=_DROP))
    assert isinstance(got, ParsedEvent) and got.data == {}


@pytest.mark.parametrize(
    ("occurred_at", "timestamp"),
    [
        ("2026-11-27T10:00:00Z", "2026-11-27T10:00:00Z"),
        ("2026-11-27T11:00:00+01:00", "2026-11-27T10:00:00Z"),
        ("2026-11-27T10:00:00.123456Z", "2026-11-27T10:00:00.123456Z"),
        ("2026-11-27T10:00:00", "2026-11-27T10:00:00Z"),  # naive: taken as UTC, as pydantic does
    ],
)
def test_timestamp_is_iso8601_utc(occurred_at: str, timestamp: str) -> None:
    got = parse(event(occurredAt=occurred_at))
    assert isinstance(got, ParsedEvent) and got.timestamp == timestamp


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"ent-1", b"not json at all", "not_json"),
        (b"ent-1", b"", "not_json"),
        (b"ent-1", None, "not_json"),
        (b"ent-1", b"\xff\xfe", "not_json"),
        (b"ent-1", b"[1, 2]", "bad_shape"),
        (b"ent-1", b'"a string"', "bad_shape"),
        (b"ent-1", orjson.dumps(event(id=_DROP)), "bad_shape"),
        (b"ent-1", orjson.dumps(event(id="")), "bad_shape"),
        (b"ent-1", orjson.dumps(event(id=42)), "bad_shape"),
        (b"ent-1", orjson.dumps(event(id="x" * 201)), "bad_shape"),
        (b"ent-1", orjson.dumps(event(type=None)), "bad_shape"),
        (b"ent-1", orjson.dumps(event(entityId=_DROP)), "bad_shape"),
        (b"ent-1", orjson.dumps(event(occurredAt=_DROP)), "bad_shape"),
        (b"ent-1", orjson.dumps(event(occurredAt="yesterday")), "bad_shape"),
        (b"ent-1", orjson.dumps(event(occurredAt="2026-11-27")), "bad_shape"),
        (b"ent-1", orjson.dumps(event(occurredAt=1795820000)), "bad_shape"),
        (b"ent-1", orjson.dumps(event(data=[1])), "bad_shape"),
        (b"ent-1", orjson.dumps(event(type="booking.exploded")), "unknown_type"),
        (b"ent-1", orjson.dumps(event(type="booking.*")), "unknown_type"),
        (b"other", orjson.dumps(event()), "key_mismatch"),
        (None, orjson.dumps(event()), "key_mismatch"),
    ],
)
def test_rejections(key: bytes | None, value: bytes | None, reason: str) -> None:
    got = parse_event(key, value)
    assert isinstance(got, Rejection), got
    assert got.reason == reason
    assert got.detail


def test_too_large() -> None:
    big = orjson.dumps(event(data={"blob": "x" * 5000}))
    got = parse_event(b"ent-1", big, max_bytes=4096)
    assert isinstance(got, Rejection) and got.reason == "too_large"


@pytest.mark.parametrize(
    "doc",
    [
        event(),
        event(data=_DROP),
        event(id=""),
        event(id=42),
        event(entityId="y" * 201),
        event(occurredAt="not a date"),
        event(occurredAt="2026-11-27T10:00:00+02:00"),
        event(data="text"),
    ],
)
def test_shape_checks_agree_with_the_input_event_model(doc: dict[str, Any]) -> None:
    """The hand-written checks accept what InputEvent accepts (on ISO strings), and reject what it rejects."""
    try:
        InputEvent.from_bytes(orjson.dumps(doc))
        model_ok = True
    except ValidationError:
        model_ok = False
    got = parse(doc, key=str(doc.get("entityId", "")).encode())
    assert isinstance(got, ParsedEvent) == model_ok
