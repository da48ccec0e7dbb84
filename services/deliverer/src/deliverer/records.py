"""Outgoing Kafka messages built from plain dicts (no pydantic on the hot path).

The shapes are those of webhooks_common.models (AttemptRecord, DeadLetter, WebhookCommand, DeliveryTask);
tests/unit/test_deliverer_records.py parses them back with those models to keep them in step.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

REQUIRED_TASK_FIELDS = ("task_id", "event_id", "webhook_id", "url", "body")


def parse_task(raw: bytes | None) -> dict[str, Any]:
    """A DeliveryTask as a dict (raises ValueError when it is not one)."""
    if raw is None:
        raise ValueError("empty delivery task")
    task = orjson.loads(raw)
    if not isinstance(task, dict) or any(not isinstance(task.get(f), str) for f in REQUIRED_TASK_FIELDS):
        raise ValueError("not a delivery task")
    task.setdefault("attempt", 1)
    task.setdefault("history", [])
    return task


def attempt_record(
    task: dict[str, Any],
    *,
    url: str,
    outcome: str,
    at_ms: int,
    duration_ms: float = 0.0,
    status: int | None = None,
    error: str | None = None,
    snippet: str | None = None,
    next_attempt_at_ms: int | None = None,
) -> bytes:
    rec: dict[str, Any] = {
        "v": 1,
        "task_id": task["task_id"],
        "event_id": task["event_id"],
        "event_type": task.get("event_type", ""),
        "webhook_id": task["webhook_id"],
        "entity_id": task.get("entity_id", ""),
        "url": url,
        "attempt": task["attempt"],
        "outcome": outcome,
        "duration_ms": round(duration_ms, 3),
        "at_ms": at_ms,
    }
    if status is not None:
        rec["status"] = status
    if error is not None:
        rec["error"] = error
    if snippet is not None:
        rec["response_snippet"] = snippet
    if next_attempt_at_ms is not None:
        rec["next_attempt_at_ms"] = next_attempt_at_ms
    return orjson.dumps(rec)


def summary(attempt: int, at_ms: int, outcome: str, status: int | None, error: str | None) -> dict[str, Any]:
    s: dict[str, Any] = {"attempt": attempt, "at_ms": at_ms, "outcome": outcome}
    if status is not None:
        s["status"] = status
    if error is not None:
        s["error"] = error
    return s


def with_history(task: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    return {**task, "history": [*task.get("history", []), entry]}


def dead_letter(task: dict[str, Any], reason: str, at_ms: int) -> bytes:
    return orjson.dumps({"v": 1, "task": task, "reason": reason, "dead_at_ms": at_ms})


def disable_command(task: dict[str, Any], reason: str, at_ms: int) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "command_id": uuid.uuid4().hex,
            "action": "disable",
            "webhook_id": task["webhook_id"],
            "entity_id": task.get("entity_id", ""),
            "reason": reason,
            "requested_by": "deliverer",
            "at_ms": at_ms,
        }
    )


def orjson_dumps(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)
