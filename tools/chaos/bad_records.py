"""Malformed records for the bad-input soak: for the input topics and for every internal topic.

Each kind is a maker `(rnd, n) -> (key, value)` for one malformed record. The internal kinds are built
from a valid message of the topic (`TEMPLATES`) broken one way: random bytes, empty, a tombstone (not on
the compacted config topic, where a null value is a delete), truncated JSON, a field missing, one field of
the wrong type (each field in turn), a value of 600 kB, a key that is not UTF-8, a config whose id is not
its key. None of them may decode into its topic's message: tests/integration/test_chaos_verdict.py runs
each through the consumers' own decoders.

What happens to them, by topic (`SET_ASIDE`):
- inputs (router), deliveries and every retry tier (deliverer), commands (registry): the consumer sets
  the record aside on `webhooks.invalid` (reason, source topic, partition, offset) and goes on;
- config (the config view of every router and deliverer): skipped with
  `<service>_config_skipped_records_total{reason}` (the topic is state, not a queue: nothing to set aside);
- attempts: no service consumes it on main; the records must harm nothing (and should a consumer come,
  it must set aside all of them, not some).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

Maker = Callable[[random.Random, int], tuple[bytes | None, bytes | None]]
EVENT_TYPE = "booking.created"
HUGE = 600_000  # bytes: over the router's 512 kB limit, under Kafka's 1 MB


def _id() -> str:
    return uuid.uuid4().hex


def _ts() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- input topics (the router) ---------------------------------------------------------------------------


def input_event(entity: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": _id(),
        "type": EVENT_TYPE,
        "occurredAt": _ts(),
        "entityId": entity,
        "data": {"bookingId": "B1"},
    }
    doc.update(over)
    return doc


def _without(entity: str, name: str) -> dict[str, Any]:
    doc = input_event(entity)
    doc.pop(name)
    return doc


INPUT_WRONG_TYPES: list[dict[str, Any]] = [
    {"id": 7},
    {"data": [1, 2]},
    {"occurredAt": 1700000000},
    {"type": None},
]
InputMaker = Callable[[random.Random, str], tuple[bytes | None, bytes | None]]

# (weight, maker(rnd, entity)): how often each kind is picked among the malformed input records.
INPUT_KINDS: dict[str, tuple[float, InputMaker]] = {
    "random_bytes": (20, lambda r, e: (e.encode(), r.randbytes(r.randint(1, 2000)))),
    "truncated_json": (6, lambda r, e: (e.encode(), orjson.dumps(input_event(e))[: r.randint(1, 60)])),
    "invalid_utf8": (3, lambda r, e: (e.encode(), b'{"id":"\xff\xfe","type":"booking.created"}')),
    "deep_nesting": (1, lambda r, e: (e.encode(), b"[" * 5000 + b"]" * 5000)),
    "json_array": (4, lambda r, e: (e.encode(), orjson.dumps([input_event(e)]))),
    "json_scalar": (4, lambda r, e: (e.encode(), r.choice([b"42", b'"booking"', b"null", b"true", b"{}"]))),
    "missing_field": (
        8,
        lambda r, e: (
            e.encode(),
            orjson.dumps(_without(e, r.choice(["id", "type", "entityId", "occurredAt"]))),
        ),
    ),
    "wrong_types": (
        8,
        lambda r, e: (e.encode(), orjson.dumps(input_event(e, **r.choice(INPUT_WRONG_TYPES)))),
    ),
    "bad_timestamp": (3, lambda r, e: (e.encode(), orjson.dumps(input_event(e, occurredAt="yesterday")))),
    "long_field": (3, lambda r, e: (e.encode(), orjson.dumps(input_event(e, id="x" * 5000)))),
    "unknown_type": (
        15,
        lambda r, e: (
            e.encode(),
            orjson.dumps(input_event(e, type=r.choice(["booking.teleported", "x", "BOOKING"]))),
        ),
    ),
    "key_mismatch": (15, lambda r, e: (b"someone-else", orjson.dumps(input_event(e)))),
    "no_key": (4, lambda r, e: (None, orjson.dumps(input_event(e)))),
    "tombstone": (3, lambda r, e: (e.encode(), None)),
    # Large but under the router's limit (and Kafka's): a 200 kB value of the wrong shape.
    "big_wrong_shape": (0.3, lambda r, e: (e.encode(), orjson.dumps({"blob": "y" * 200_000}))),
    # Over the router's 512 kB limit (still under Kafka's 1 MB): the `too_large` reason.
    "huge_value": (0.1, lambda r, e: (e.encode(), orjson.dumps(input_event(e, data={"blob": "z" * HUGE})))),
}


# --- internal topics -------------------------------------------------------------------------------------


def delivery_task() -> dict[str, Any]:
    eid, wid = _id(), _id()
    return {
        "v": 1,
        "task_id": f"{eid}:{wid}",
        "event_id": eid,
        "event_type": EVENT_TYPE,
        "entity_id": "soak-nobody",
        "webhook_id": wid,
        "webhook_version": 1,
        "url": "http://127.0.0.1:9/never",
        "body": "{}",
        "attempt": 1,
        "entered_at_ms": int(time.time() * 1000),
        "due_at_ms": 0,
        "source": "wink",
        "history": [],
    }


def webhook_config() -> dict[str, Any]:
    return {
        "v": 1,
        "id": f"soak-bad-{_id()}",  # never a real webhook's id: nothing held is touched
        "entity_id": "soak-nobody",
        "entity_name": "Nobody",
        "name": "bad",
        "enabled": True,
        "event_url": "http://127.0.0.1:9/never",
        "event_list": [EVENT_TYPE],
        "version": 1,
        "secrets": [],
        "updated_at": _ts(),
        "changed_at_ms": 0,
    }


def webhook_command() -> dict[str, Any]:
    return {
        "v": 1,
        "command_id": _id(),
        "action": "disable",
        "webhook_id": f"soak-bad-{_id()}",
        "entity_id": "soak-nobody",
        "reason": "soak",
        "requested_by": "soak",
        "at_ms": int(time.time() * 1000),
    }


def attempt_record() -> dict[str, Any]:
    return {
        "v": 1,
        "task_id": f"{_id()}:{_id()}",
        "event_id": _id(),
        "event_type": EVENT_TYPE,
        "webhook_id": _id(),
        "entity_id": "soak-nobody",
        "url": "http://127.0.0.1:9/never",
        "attempt": 1,
        "outcome": "success",
        "status": 204,
        "duration_ms": 1.5,
        "at_ms": int(time.time() * 1000),
    }


# One wrong value per field (for pydantic, one that its lax mode does not coerce either: "3" would pass as
# an int). Every field of each message is listed; the makers go through them in turn.
WRONG: dict[str, dict[str, Any]] = {
    "deliveries": {
        "v": 2,
        "task_id": 7,
        "event_id": None,
        "event_type": [],
        "entity_id": {},
        "webhook_id": 1.5,
        "webhook_version": "3",
        "url": 42,
        "body": {"a": 1},
        "attempt": 0,
        "entered_at_ms": "now",
        "due_at_ms": -5,
        "source": 1,
        "history": "none",
    },
    "config": {
        "v": 2,
        "id": 7,
        "entity_id": [],
        "entity_name": {},
        "name": None,
        "enabled": "maybe",
        "event_url": 5,
        "event_list": EVENT_TYPE,
        "version": "seven",
        "secrets": "x",
        "updated_at": "yesterday",
        "changed_at_ms": "soon",
    },
    "commands": {
        "v": 2,
        "command_id": 7,
        "action": "enable",
        "webhook_id": None,
        "entity_id": [],
        "reason": {},
        "requested_by": 1.5,
        "at_ms": "now",
    },
    "attempts": {
        "v": 2,
        "task_id": 7,
        "event_id": None,
        "event_type": [],
        "webhook_id": {},
        "entity_id": 1.5,
        "url": 3,
        "attempt": "one",
        "outcome": None,
        "status": "ok",
        "duration_ms": "fast",
        "at_ms": "now",
    },
}
TEMPLATES: dict[str, Callable[[], dict[str, Any]]] = {
    "deliveries": delivery_task,
    "config": webhook_config,
    "commands": webhook_command,
    "attempts": attempt_record,
}
# Fields a message cannot do without (a record missing one must not decode).
REQUIRED: dict[str, tuple[str, ...]] = {
    "deliveries": ("task_id", "event_id", "webhook_id", "webhook_version", "url", "body", "entered_at_ms"),
    "config": ("id", "entity_id", "event_url", "version", "enabled", "updated_at"),
    "commands": ("command_id", "action", "webhook_id", "entity_id", "at_ms"),
    "attempts": ("task_id", "event_id", "attempt", "outcome", "at_ms", "duration_ms"),
}


def _key(family: str, doc: dict[str, Any]) -> bytes:
    """The key the real producer would use (config: the webhook id, which the view checks)."""
    if family == "config":
        return str(doc.get("id", "soak-bad")).encode()
    return _id().encode()


def _wrong_type(family: str) -> Maker:
    fields = list(WRONG[family].items())

    def make(r: random.Random, n: int) -> tuple[bytes | None, bytes | None]:
        doc = TEMPLATES[family]()
        key = _key(family, doc)
        name, bad = fields[n % len(fields)]
        doc[name] = bad
        return key, orjson.dumps(doc)

    return make


def _missing_field(family: str) -> Maker:
    def make(r: random.Random, n: int) -> tuple[bytes | None, bytes | None]:
        doc = TEMPLATES[family]()
        key = _key(family, doc)
        doc.pop(r.choice(REQUIRED[family]))
        return key, orjson.dumps(doc)

    return make


def _truncated(family: str) -> Maker:
    def make(r: random.Random, n: int) -> tuple[bytes | None, bytes | None]:
        doc = TEMPLATES[family]()
        raw = orjson.dumps(doc)
        return _key(family, doc), raw[: r.randint(1, len(raw) - 1)]

    return make


def _non_utf8_key(family: str) -> Maker:
    """A key that is not UTF-8. The config view refuses the key itself (its value is a valid config); the
    other consumers do not read keys, so there the value is broken too (a valid task under an odd key is
    a valid task)."""
    wrong = _wrong_type(family)

    def make(r: random.Random, n: int) -> tuple[bytes | None, bytes | None]:
        key = b"\xff\xfe" + r.randbytes(8)
        if family == "config":
            return key, orjson.dumps(webhook_config())
        return key, wrong(r, n)[1]

    return make


def _key_mismatch(r: random.Random, n: int) -> tuple[bytes | None, bytes | None]:
    return f"soak-bad-{_id()}".encode(), orjson.dumps(webhook_config())


def internal_kinds(family: str) -> dict[str, tuple[float, Maker]]:
    """(weight, maker) per kind of malformed record for one internal topic family (`retry`: the retry
    tiers, which carry delivery tasks)."""
    family = "deliveries" if family == "retry" else family
    kinds: dict[str, tuple[float, Maker]] = {
        "random_bytes": (15, lambda r, n: (_id().encode(), r.randbytes(r.randint(1, 2000)))),
        "empty": (5, lambda r, n: (_id().encode(), b"")),
        "truncated_json": (10, _truncated(family)),
        "missing_field": (10, _missing_field(family)),
        "wrong_types": (40, _wrong_type(family)),
        "non_utf8_key": (10, _non_utf8_key(family)),
        "huge_value": (0.2, lambda r, n: (_id().encode(), orjson.dumps({"blob": "z" * HUGE}))),
    }
    if family == "config":
        # compacted: a null value deletes and a record needs a key, so neither is sent; the view's own check
        kinds["key_mismatch"] = (10, _key_mismatch)
    else:
        kinds["tombstone"] = (5, lambda r, n: (_id().encode(), None))
    return kinds


# The config view's skip reason for each kind (config_view.Skip.reason).
CONFIG_REASON = {"non_utf8_key": "bad_key", "key_mismatch": "key_mismatch"}  # every other kind: undecodable

# How each topic family's consumer sets a malformed record aside (module docstring).
SET_ASIDE = {
    "inputs": "invalid",
    "deliveries": "invalid",
    "retry": "invalid",
    "commands": "invalid",
    "config": "skip_metric",
    "attempts": "none",  # no consumer on main
}

# Share of the internal malformed records per family; `retry` is split evenly over the tiers.
INTERNAL_WEIGHTS: dict[str, float] = {
    "deliveries": 30,
    "retry": 30,
    "commands": 15,
    "config": 10,
    "attempts": 15,
}
