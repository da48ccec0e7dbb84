"""The bytes the router writes: integrator body and DeliveryTask values."""

from __future__ import annotations

import orjson

from router.matching import compile_subscription
from router.parsing import ParsedEvent
from router.render import TaskEncoder, render_body
from tests.support.factories import webhook_config
from webhooks_common.models import DeliveryTask

EVENT = ParsedEvent(
    id='ev-"1"',
    type="booking.created",
    entity_id="ent-1",
    timestamp="2026-11-27T10:00:00Z",
    data={"name": "Zoë \u2603", "nested": {"a": [1, 2.5, None, True]}, "quote": 'say "hi"\n'},
)


def sub(wid: str = "w-1", url: str = "https://example.com/hook?a=1&b=\u00e9", version: int = 7):
    return compile_subscription(webhook_config(wid, "ent-1", event_url=url, version=version))


def test_body_is_the_integrator_envelope() -> None:
    body = render_body(EVENT)
    assert orjson.loads(body) == {
        "id": 'ev-"1"',
        "type": "booking.created",
        "timestamp": "2026-11-27T10:00:00Z",
        "entityId": "ent-1",
        "data": EVENT.data,
    }
    assert list(orjson.loads(body)) == ["id", "type", "timestamp", "entityId", "data"]


def test_task_bytes_equal_the_model_serialisation() -> None:
    body = render_body(EVENT)
    enc = TaskEncoder(EVENT, body, entered_at_ms=1_795_820_000_123, source="trippay")
    s = sub()
    got = enc.encode(s)
    expected = DeliveryTask(
        task_id=f"{EVENT.id}:w-1",
        event_id=EVENT.id,
        event_type=EVENT.type,
        entity_id=EVENT.entity_id,
        webhook_id="w-1",
        webhook_version=7,
        url=s.url,
        body=body,
        attempt=1,
        entered_at_ms=1_795_820_000_123,
        source="trippay",
    )
    assert got == expected.to_bytes()
    task = DeliveryTask.from_bytes(got)
    assert task.body == body
    assert task.task_id == f"{EVENT.id}:w-1"


def test_task_ids_are_stable_and_distinct_per_webhook() -> None:
    body = render_body(EVENT)
    a = TaskEncoder(EVENT, body, entered_at_ms=1, source="wink")
    b = TaskEncoder(EVENT, body, entered_at_ms=2, source="wink")
    assert a.task_id(sub("w-1")) == b.task_id(sub("w-1")) == 'ev-"1":w-1'
    assert a.task_id(sub("w-2")) != a.task_id(sub("w-1"))


def test_task_bytes_with_characters_json_must_escape() -> None:
    event = ParsedEvent('e"\\\n\u00e9/', "booking.create", 'ent"\t', "2026-11-27T10:00:00Z", {})
    s = sub(wid='w"\\\u2028x', url='https://example.com/"q"')
    body = render_body(event)
    got = TaskEncoder(event, body, entered_at_ms=3, source="wink").encode(s)
    task = DeliveryTask.from_bytes(got)
    assert task.task_id == f"{event.id}:{s.id}"
    assert (task.event_id, task.entity_id, task.webhook_id, task.url) == (
        event.id,
        event.entity_id,
        s.id,
        s.url,
    )
    assert got == task.to_bytes()
