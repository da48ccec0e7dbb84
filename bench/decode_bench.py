"""Typed decoding on the deliverer's hot path: records/s of the old dict path against the msgspec Struct.

    .tools/bin/uv run --frozen python bench/decode_bench.py [--records 200000] [--repeat 5]

Per record, each path does what the deliverer does with a task read from Kafka:
  decode   bytes -> the task (old: orjson.loads + 5 field checks + setdefault; new: msgspec Decoder into
           webhooks_common.wire.DeliveryTask, which checks every field's type)
  use      decode, then read the fields an attempt reads (the old path needs its int() conversions)
  retry    decode, then write the retry task (old: dict copy + history + orjson.dumps; new:
           msgspec.structs.replace + encode)
  pydantic decode with models.DeliveryTask.model_validate_json (the slow typed path, for reference)
The task is a router-written task with a 400-byte body. Best of `--repeat` runs, single core.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from webhooks_common import models, wire

REQUIRED = ("task_id", "event_id", "webhook_id", "url", "body")


def sample() -> bytes:
    """A task as the router writes it (field order and all), with a 400-byte body."""
    body = orjson.dumps({"id": "ev1", "type": "booking.created", "data": {"x": "y" * 330}}).decode()
    ids = {"task_id": "ev-0123456789:w-0123456789", "event_id": "ev-0123456789"}
    event = {"event_type": "booking.created", "entity_id": "entity-42", "webhook_id": "w-0123456789"}
    target = {"webhook_version": 3, "url": "https://hooks.example.com/wink/booking", "body": body}
    rest = {"attempt": 1, "entered_at_ms": 1_764_000_000_000, "due_at_ms": 0, "source": "wink", "history": []}
    raw = orjson.dumps({"v": 1, **ids, **event, **target, **rest})
    assert models.DeliveryTask.from_bytes(raw).to_bytes() == raw
    return raw


# --- the old path (deliverer/records.py and handler.py before the runtime) --------------------------


def old_decode(raw: bytes) -> dict[str, Any]:
    task = orjson.loads(raw)
    if not isinstance(task, dict) or any(not isinstance(task.get(f), str) for f in REQUIRED):
        raise ValueError("not a delivery task")
    task.setdefault("attempt", 1)
    task.setdefault("history", [])
    return task


def old_use(raw: bytes) -> int:
    t = old_decode(raw)
    return (
        int(t.get("due_at_ms") or 0)
        + int(t.get("entered_at_ms") or 0)
        + int(t.get("webhook_version") or 0)
        + int(t["attempt"])
        + len(t["body"])
        + len(t["webhook_id"])
    )


def old_retry(raw: bytes) -> bytes:
    t = old_decode(raw)
    nxt = {**t, "history": [*t.get("history", []), {"attempt": 1, "at_ms": 5, "outcome": "retry"}]}
    nxt["attempt"] = int(t["attempt"]) + 1
    nxt["due_at_ms"] = 10
    return orjson.dumps(nxt)


# --- the new path (webhooks_common.wire) ------------------------------------------------------------

_decoder = msgspec.json.Decoder(wire.DeliveryTask)


def new_decode(raw: bytes) -> wire.DeliveryTask:
    return _decoder.decode(raw)


def new_use(raw: bytes) -> int:
    t = _decoder.decode(raw)
    return t.due_at_ms + t.entered_at_ms + t.webhook_version + t.attempt + len(t.body) + len(t.webhook_id)


def new_retry(raw: bytes) -> bytes:
    t = _decoder.decode(raw)
    entry = wire.AttemptSummary(attempt=1, at_ms=5, outcome="retry")
    return wire.encode(
        msgspec.structs.replace(t, history=(*t.history, entry), attempt=t.attempt + 1, due_at_ms=10)
    )


def pydantic_decode(raw: bytes) -> models.DeliveryTask:
    return models.DeliveryTask.model_validate_json(raw)


def rate(fn: Callable[[bytes], object], raw: bytes, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            fn(raw)
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    raw = sample()
    assert wire.encode(new_decode(raw)) == raw  # the same wire format, byte for byte
    n, r = args.records, args.repeat
    print(
        f"{len(raw)}-byte task, {n:,} records, best of {r}; Python {platform.python_version()}, "
        f"orjson {orjson.__version__}, msgspec {msgspec.__version__}"
    )
    print("| step | old dict path (records/s) | typed msgspec (records/s) | new / old |")
    print("|---|---|---|---|")
    for step, old, new in (
        ("decode", old_decode, new_decode),
        ("decode + read fields", old_use, new_use),
        ("decode + write the retry", old_retry, new_retry),
    ):
        a, b = rate(old, raw, n, r), rate(new, raw, n, r)
        print(f"| {step} | {a:,.0f} | {b:,.0f} | {b / a:.2f}x |")
    p = rate(pydantic_decode, raw, n // 4, r)
    print(f"| decode with pydantic (reference) | | {p:,.0f} | |")


if __name__ == "__main__":
    main()
