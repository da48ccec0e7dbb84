"""Turn a batch of input records into the records to write (pure: no I/O, the clock is passed in)."""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field

from router.index import SubscriptionIndex
from router.parsing import Rejection, parse_event
from router.render import TaskEncoder, render_body
from webhooks_common.models import InvalidEvent
from webhooks_common.topics import Topics


@dataclass(frozen=True, slots=True)
class InputRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int  # the Kafka record's timestamp (when the product service wrote it)


@dataclass(slots=True)  # not frozen: a frozen dataclass costs more to build, and one is built per task
class Outgoing:
    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class BatchPlan:
    out: list[Outgoing] = field(default_factory=list)
    events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, type) of valid events
    tasks: Counter[str] = field(default_factory=Counter)  # by source
    invalid: Counter[str] = field(default_factory=Counter)  # by reason
    event_timestamps_ms: list[int] = field(default_factory=list)  # of valid events, for the latency metric


def plan_batch(
    records: list[InputRecord],
    index: SubscriptionIndex,
    topics: Topics,
    *,
    now_ms: int,
    max_event_bytes: int = 512 * 1024,
) -> BatchPlan:
    plan = BatchPlan()
    out = plan.out.append
    deliveries = topics.deliveries
    for rec in records:
        source = topics.source_of(rec.topic)
        parsed = parse_event(rec.key, rec.value, max_bytes=max_event_bytes)
        if isinstance(parsed, Rejection):
            out(invalid_record(rec, parsed, topics, now_ms))
            plan.invalid[parsed.reason] += 1
            continue
        plan.events[(source, parsed.type)] += 1
        plan.event_timestamps_ms.append(rec.timestamp_ms)
        subs = index.lookup(parsed.entity_id, parsed.type)
        if not subs:
            continue
        encoder = TaskEncoder(parsed, render_body(parsed), entered_at_ms=now_ms, source=source)
        for sub in subs:
            out(Outgoing(deliveries, sub.url_key, encoder.encode(sub)))
        plan.tasks[source] += len(subs)
    return plan


def invalid_record(rec: InputRecord, why: Rejection, topics: Topics, now_ms: int) -> Outgoing:
    msg = InvalidEvent(
        reason=why.reason,
        detail=why.detail,
        source_topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        key_b64=None if rec.key is None else base64.b64encode(rec.key).decode(),
        # a too-large value would not fit the invalid topic either: its size is in `detail`
        value_b64=None
        if rec.value is None or why.reason == "too_large"
        else base64.b64encode(rec.value).decode(),
        at_ms=now_ms,
    )
    return Outgoing(topics.invalid, msg.key().encode(), msg.to_bytes())
