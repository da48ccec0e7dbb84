"""The bytes the router writes: the integrator's body (once per event) and DeliveryTask values (per webhook).

A task value is spliced from JSON fragments encoded once per event (the body, already a JSON string) and
once per subscription (id, url), so fanning an event out to 1,000 webhooks does not re-escape the body
1,000 times. The result is byte-for-byte `DeliveryTask(...).to_bytes()` (checked by the unit tests).
"""

from __future__ import annotations

import orjson

from router.matching import Subscription
from router.parsing import ParsedEvent


def render_body(event: ParsedEvent) -> str:
    """The exact JSON text POSTed to the integrator: {"id","type","timestamp","entityId","data"}."""
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "timestamp": event.timestamp,
            "entityId": event.entity_id,
            "data": event.data,
        }
    ).decode()


class TaskEncoder:
    """Encodes the DeliveryTasks of one event; build one per event, call `encode` per subscription."""

    __slots__ = ("_event_id", "_head", "_start", "_tail")

    def __init__(self, event: ParsedEvent, body: str, *, entered_at_ms: int, source: str) -> None:
        self._event_id = event.id
        dumps = orjson.dumps
        # `{"v":1,"task_id":"<event id>:` (the task id string is closed by the subscription's fragment)
        self._start = b'{"v":1,"task_id":' + dumps(event.id)[:-1] + b":"
        self._head = (
            b',"event_id":'
            + dumps(event.id)
            + b',"event_type":'
            + dumps(event.type)
            + b',"entity_id":'
            + dumps(event.entity_id)
            + b',"webhook_id":'
        )
        self._tail = (
            b',"body":'
            + dumps(body)
            + b',"attempt":1,"entered_at_ms":'
            + str(entered_at_ms).encode()
            + b',"due_at_ms":0,"source":'
            + dumps(source)
            + b',"history":[]}'
        )

    def task_id(self, sub: Subscription) -> str:
        return f"{self._event_id}:{sub.id}"

    def encode(self, sub: Subscription) -> bytes:
        return b"".join(
            (self._start, sub.task_id_tail, self._head, sub.id_json, sub.version_url_json, self._tail)
        )
