"""plan_batch: one task per matching webhook keyed by URL, invalid records with reasons, nothing else."""

from __future__ import annotations

import base64

import orjson
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    ProducerClosed,
)

from router.errors import retry_delay, send_error_action
from router.index import SubscriptionIndex
from router.routing import InputRecord, plan_batch
from webhooks_common.models import DeliveryTask, InvalidEvent, WebhookConfig, utcnow
from webhooks_common.topics import Topics

TOPICS = Topics(prefix="p.")


def config(wid: str, entity: str, url: str, events: list[str] | None = None) -> WebhookConfig:
    return WebhookConfig(
        id=wid,
        entity_id=entity,
        entity_name="E",
        name="n",
        enabled=True,
        event_url=url,
        event_list=events or [],
        version=1,
        updated_at=utcnow(),
    )


def record(value: bytes | None, key: bytes | None = b"e1", topic: str = "p.wink.events", offset: int = 0):
    return InputRecord(topic, 2, offset, key, value, 1_000)


def ev(eid: str, etype: str = "booking.create", entity: str = "e1") -> bytes:
    return orjson.dumps(
        {"id": eid, "type": etype, "occurredAt": "2026-11-27T10:00:00Z", "entityId": entity, "data": {}}
    )


def make_index() -> SubscriptionIndex:
    index = SubscriptionIndex()
    index.put(config("a", "e1", "https://a.example.com/x", ["booking.*"]))
    index.put(config("b", "e1", "https://b.example.com/y"))
    index.put(config("c", "e2", "https://c.example.com/z"))
    return index


def test_tasks_per_matching_webhook_keyed_by_url() -> None:
    plan = plan_batch(
        [record(ev("1")), record(ev("2", "payee.create"), topic="p.trippay.events")],
        make_index(),
        TOPICS,
        now_ms=5_000,
    )
    tasks = [(o.topic, o.key, DeliveryTask.from_bytes(o.value)) for o in plan.out]
    assert [(t, k, d.task_id, d.source) for t, k, d in tasks] == [
        ("p.webhooks.deliveries", b"https://a.example.com/x", "1:a", "wink"),
        ("p.webhooks.deliveries", b"https://b.example.com/y", "1:b", "wink"),
        ("p.webhooks.deliveries", b"https://b.example.com/y", "2:b", "trippay"),
    ]
    assert all(d.entered_at_ms == 5_000 and d.attempt == 1 for _, _, d in tasks)
    assert plan.tasks == {"wink": 2, "trippay": 1}
    assert plan.events == {("wink", "booking.create"): 1, ("trippay", "payee.create"): 1}
    assert plan.event_timestamps_ms == [1_000, 1_000]


def test_event_without_subscribers_produces_nothing() -> None:
    plan = plan_batch([record(ev("1", entity="e9"), key=b"e9")], make_index(), TOPICS, now_ms=1)
    assert plan.out == []
    assert plan.events == {("wink", "booking.create"): 1}


def test_invalid_records_carry_reason_position_and_original_bytes() -> None:
    plan = plan_batch(
        [record(b"{oops", offset=41), record(ev("1"), key=b"e2", offset=42)], make_index(), TOPICS, now_ms=9
    )
    assert [o.topic for o in plan.out] == ["p.webhooks.invalid", "p.webhooks.invalid"]
    first, second = (InvalidEvent.from_bytes(o.value) for o in plan.out)
    assert (first.reason, first.source_topic, first.partition, first.offset) == (
        "not_json",
        "p.wink.events",
        2,
        41,
    )
    assert first.value_b64 is not None and base64.b64decode(first.value_b64) == b"{oops"
    assert first.key_b64 is not None and base64.b64decode(first.key_b64) == b"e1"
    assert second.reason == "key_mismatch"
    assert plan.out[0].key == b"p.wink.events:2:41"
    assert plan.invalid == {"not_json": 1, "key_mismatch": 1}


def test_too_large_invalid_record_leaves_the_bytes_out() -> None:
    big = orjson.dumps(
        {"id": "1", "type": "booking.create", "occurredAt": "2026-11-27T10:00:00Z", "entityId": "e1",
         "data": {"x": "y" * 3000}}
    )  # fmt: skip
    plan = plan_batch([record(big)], make_index(), TOPICS, now_ms=1, max_event_bytes=2048)
    inv = InvalidEvent.from_bytes(plan.out[0].value)
    assert inv.reason == "too_large" and inv.value_b64 is None


def test_send_errors_retry_when_kafka_may_come_back_else_crash() -> None:
    assert send_error_action(KafkaTimeoutError()) == "retry"
    assert send_error_action(KafkaConnectionError()) == "retry"
    assert send_error_action(NotLeaderForPartitionError()) == "retry"
    assert send_error_action(ProducerClosed()) == "crash"
    assert send_error_action(MessageSizeTooLargeError()) == "crash"
    assert send_error_action(ValueError("bug")) == "crash"
    assert [retry_delay(n) for n in (1, 2, 3, 10)] == [0.2, 0.4, 0.8, 5.0]
