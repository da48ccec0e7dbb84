"""Pure rules of the delivery history: ids, time buckets, a delivery's summary folded from its attempts,
the failure streak behind auto-disable, stats and list cursors. No I/O here.

Every hot query is an equality (or `$in`) on indexed fields (the local FerretDB pushes only those down): a
delivery is found by `_id`, by its `bucket`, the webhook's hour it was created in ([, event type]), or by
its `status_bucket`, that hour and its status; its attempts by `delivery_id`; the hours in which a webhook
has deliveries by `webhook_id` in `delivery_hours`. Newest-first pages walk those hours newest first, and
retention deletes whole hours.
"""

from __future__ import annotations

import base64
import calendar
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from webhooks_common.wire import AttemptRecord, DeadLetter

Doc = dict[str, Any]

SUCCEEDED, FAILED, PENDING, DEAD = "succeeded", "failed", "pending", "dead"
STATUSES = (SUCCEEDED, FAILED, PENDING, DEAD)

# What the deliverer's attempt outcome means for the delivery: a success; a failure with a retry scheduled;
# or the end without success (dead-lettered, refused, 410 Gone, dropped because the webhook is disabled/gone).
_STATUS_OF_OUTCOME = {
    "success": SUCCEEDED,
    "retry": FAILED,
    "dead": DEAD,
    "refused": DEAD,
    "disabled": DEAD,
    "dropped": DEAD,
}
# Outcomes that are an HTTP attempt that failed (for the failure streak and the stats); `dropped` is not an
# attempt at all (nothing was sent) and `refused` never reached the receiver.
FAILURES = frozenset({"retry", "dead", "disabled"})
SENT = frozenset({"success", "retry", "dead", "disabled"})


def hour_of(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H", time.gmtime(ms / 1000))


def hour_start_ms(hour: str) -> int:
    return calendar.timegm(time.strptime(hour, "%Y-%m-%dT%H")) * 1000


def bucket_of(webhook_id: str, hour: str) -> str:
    """A webhook's hour: the `_id` of its `delivery_hours` document and the `bucket` of its deliveries.

    One key for both halves, so a page's query is on a key that holds a few deliveries (~6 per webhook-hour
    at 1,000,000 records) instead of intersecting the webhook's with the hour's (~6,000): in PostgreSQL under
    the local FerretDB, 2-3 ms against 15-34 ms for 10-16 hours (bench/RESULTS.md)."""
    return f"{webhook_id}:{hour}"


def status_bucket_of(bucket: str, status: str) -> str:
    """A webhook's hour and a status: the key of a page with a status filter, so the store reads only the
    deliveries it lists. `failed` is a tenth of the deliveries at most; a page of them walks dozens of hours,
    and through `bucket` it read every delivery of each (bench/RESULTS.md). Every write that sets a
    delivery's `status` sets this with it (`status_fields`), so a delivery moves with its status."""
    return f"{bucket}:{status}"


def status_fields(bucket: str | None, status: str) -> Doc:
    """`status`, and `status_bucket` with it where the delivery has a `bucket` (older ones have not)."""
    if bucket is None:
        return {"status": status}
    return {"status": status, "status_bucket": status_bucket_of(bucket, status)}


# How an hour's deliveries can be asked for, from what the version that first stored the hour wrote: by
# webhook and hour (before `bucket`), by `bucket`, or also by `status_bucket`.
UNKEYED, KEYED, BY_STATUS = 0, 1, 2


def hour_doc(webhook_id: str, hour: str) -> Doc:
    """The `delivery_hours` document of a webhook's hour. `keyed`: its deliveries carry `bucket`;
    `by_status`: and `status_bucket` (an hour first stored by an older version is read as that one wrote)."""
    return {
        "_id": bucket_of(webhook_id, hour),
        "webhook_id": webhook_id,
        "hour": hour,
        "keyed": True,
        "by_status": True,
    }


def layout_of(hour: Doc) -> int:
    """UNKEYED, KEYED or BY_STATUS: what the deliveries of this `delivery_hours` document carry."""
    return BY_STATUS if hour.get("by_status") else KEYED if hour.get("keyed") else UNKEYED


def delivery_id(webhook_id: str, event_id: str) -> str:
    return f"{webhook_id}:{event_id}"


def requested_delivery(
    webhook_id: str, entity_id: str, event_id: str, event_type: str, payload: str, now_ms: int
) -> Doc:
    """A delivery the API or a job records before its first attempt: pending, with its payload."""
    hour = hour_of(now_ms)
    bucket = bucket_of(webhook_id, hour)
    return {
        "_id": delivery_id(webhook_id, event_id),
        "webhook_id": webhook_id,
        "entity_id": entity_id,
        "event_id": event_id,
        "event_type": event_type,
        "created_ms": now_ms,
        "hour": hour,
        "bucket": bucket,
        "attempt_ids": [],
        "attempts": 0,
        "requested_ms": now_ms,
        **status_fields(bucket, PENDING),
        "payload": payload,
    }


def attempt_id(rec: AttemptRecord) -> str:
    # at_ms too: a resend starts a new chain at attempt 1, and a task redelivered after a deliverer crash is
    # a real second attempt; a re-consumed record has the same id and is skipped.
    return f"{rec.webhook_id}:{rec.event_id}:{rec.attempt}:{rec.at_ms}"


def status_of(outcome: str) -> str:
    return _STATUS_OF_OUTCOME.get(outcome, FAILED)


def attempt_doc(rec: AttemptRecord) -> Doc:
    doc: Doc = {
        "_id": attempt_id(rec),
        "delivery_id": delivery_id(rec.webhook_id, rec.event_id),
        "webhook_id": rec.webhook_id,
        "entity_id": rec.entity_id,
        "event_id": rec.event_id,
        "hour": hour_of(rec.at_ms),
        "attempt": rec.attempt,
        "outcome": rec.outcome,
        "at_ms": rec.at_ms,
        "duration_ms": rec.duration_ms,
        "url": rec.url,
    }
    for name in ("status", "error", "response_snippet", "next_attempt_at_ms"):
        value = getattr(rec, name)
        if value is not None:
            doc[name] = value
    return doc


def _last(doc: Doc) -> Doc:
    return {k: doc[k] for k in ("at_ms", "outcome", "status", "error", "attempt") if k in doc}


def merge_delivery(
    existing: Doc | None,
    attempts: Sequence[AttemptRecord],
    dead: DeadLetter | None = None,
) -> Doc:
    """The delivery document after these attempts (and dead letter): idempotent, order-free.

    Returns only the fields the writer sets; `requested_ms` (a resend or test asked for) is the API's and
    only read here: a delivery asked for again is pending until an attempt newer than the request arrives.
    """
    first = attempts[0] if attempts else None
    out: Doc = {}
    if existing is None:
        if first is not None:
            created = min(a.at_ms for a in attempts)
            out.update(
                webhook_id=first.webhook_id,
                entity_id=first.entity_id,
                event_id=first.event_id,
                event_type=first.event_type,
            )
        else:
            assert dead is not None
            created = dead.dead_at_ms
            t = dead.task
            out.update(
                webhook_id=t.webhook_id, entity_id=t.entity_id, event_id=t.event_id, event_type=t.event_type
            )
        hour = hour_of(created)
        out.update(created_ms=created, hour=hour, bucket=bucket_of(out["webhook_id"], hour))
        out.update(attempt_ids=[], requested_ms=0)
        base: Doc = {}
    else:
        base = existing
        if not attempts:
            # a dead letter for a known delivery adds only what it knows: its attempts' summary belongs to
            # the writer of `webhooks.attempts` (a dead letter may be read by another writer process)
            only: Doc = {}
            if dead is not None:
                only["dead_reason"] = dead.reason
                if base.get("payload") is None:
                    only["payload"] = dead.task.body
            return only
    ids = list(base.get("attempt_ids", []))
    seen = set(ids)
    last = base.get("last")
    for a in attempts:
        aid = attempt_id(a)
        if aid not in seen:
            seen.add(aid)
            ids.append(aid)
        cand = _last(attempt_doc(a))
        if last is None or (cand["at_ms"], cand["attempt"]) >= (last["at_ms"], last.get("attempt", 0)):
            last = cand
    out["attempt_ids"] = ids
    out["attempts"] = len(ids)
    payload = base.get("payload")
    if payload is None:
        payload = next((a.body for a in attempts if a.body is not None), None)
        if payload is None and dead is not None:
            payload = dead.task.body
        if payload is not None:
            out["payload"] = payload
    if dead is not None:
        out["dead_reason"] = dead.reason
    requested = int(base.get("requested_ms") or out.get("requested_ms") or 0)
    if last is not None:
        out["last"] = last
        out["last_at_ms"] = last["at_ms"]
    if last is not None and last["at_ms"] >= requested:
        status = status_of(last["outcome"])
    elif requested:
        status = PENDING
    else:
        status = DEAD  # a dead letter whose attempt record has not arrived yet
    out.update(status_fields(out.get("bucket", base.get("bucket")), status))
    return out


# --- the failure streak behind auto-disable ---------------------------------------------------------------


@dataclass(frozen=True)
class Streak:
    """Since when every attempt of a webhook failed (None: the last one succeeded, or none yet)."""

    failing_since_ms: int | None = None
    last_failure_ms: int | None = None
    disable_requested_ms: int = 0


def fold_streak(streak: Streak, attempts: Iterable[AttemptRecord], settle_ms: int) -> Streak:
    """The streak after these attempts (ordered by time). Failures within `settle_ms` of a disable request
    are the tail of work already under way: they start no new streak (else re-enabling would disable again
    at the first failure)."""
    since, last, asked = streak.failing_since_ms, streak.last_failure_ms, streak.disable_requested_ms
    for a in sorted(attempts, key=lambda r: r.at_ms):
        if a.outcome == "success":
            since = None
        elif a.outcome in FAILURES:
            if asked and a.at_ms < asked + settle_ms:
                continue
            if since is None:
                since = a.at_ms
            last = a.at_ms if last is None else max(last, a.at_ms)
    return Streak(since, last, asked)


def should_disable(streak: Streak, now_ms: int, period_ms: int) -> bool:
    if streak.failing_since_ms is None or streak.last_failure_ms is None:
        return False
    already = streak.disable_requested_ms >= streak.failing_since_ms
    return not already and streak.last_failure_ms - streak.failing_since_ms >= period_ms


def streak_from_doc(doc: Doc | None) -> Streak:
    if doc is None:
        return Streak()
    return Streak(
        doc.get("failing_since_ms"), doc.get("last_failure_ms"), int(doc.get("disable_requested_ms", 0))
    )


# --- stats ------------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return float(sorted_values[rank - 1])


def window_stats(attempts: Iterable[Doc], since_ms: int) -> Doc:
    sent = [a for a in attempts if a["at_ms"] >= since_ms and a["outcome"] in SENT]
    ok = sum(1 for a in sent if a["outcome"] == "success")
    durations = sorted(float(a.get("duration_ms", 0.0)) for a in sent)
    failures = [a for a in sent if a["outcome"] != "success"]
    last = max(failures, key=lambda a: a["at_ms"], default=None)
    return {
        "attempts": len(sent),
        "successes": ok,
        "failures": len(sent) - ok,
        "success_rate": (ok / len(sent)) if sent else None,
        "p50_ms": percentile(durations, 0.50),
        "p99_ms": percentile(durations, 0.99),
        "last_failure": last,
    }


# --- list cursors -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: in `hour`, before (created_ms, id); None fields: at the hour's end."""

    hour: str
    created_ms: int | None = None
    id: str | None = None

    def encode(self) -> str:
        raw = orjson.dumps({"h": self.hour, "c": self.created_ms, "i": self.id})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError on anything that is not a cursor we made."""
        try:
            raw = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            hour, created, ident = raw["h"], raw.get("c"), raw.get("i")
        except Exception as exc:
            raise ValueError("not a cursor of this list") from exc
        if not isinstance(hour, str) or len(hour) != 13:
            raise ValueError("not a cursor of this list")
        if (created is None) != (ident is None) or not isinstance(created, int | None):
            raise ValueError("not a cursor of this list")
        return cls(hour, created, ident)


def before_cursor(doc: Doc, cursor: Cursor | None) -> bool:
    if cursor is None or cursor.created_ms is None or doc["hour"] != cursor.hour:
        return True
    return (doc["created_ms"], doc["_id"]) < (cursor.created_ms, cursor.id or "")


def hours_to_scan(
    hours: Iterable[str], since_ms: int | None, until_ms: int | None, cursor: Cursor | None
) -> list[str]:
    """The webhook's hours that may hold items of this page, newest first."""
    lo = hour_of(since_ms) if since_ms is not None else ""
    hi = hour_of(until_ms) if until_ms is not None else "9999"
    if cursor is not None:
        hi = min(hi, cursor.hour)
    return sorted({h for h in hours if lo <= h <= hi}, reverse=True)


def records_behind(ends: Mapping[Any, int], committed: Mapping[Any, int]) -> int:
    """Records before `ends` (per partition) that a group has not committed past (a partition without a
    commit: all of them)."""
    return sum(max(0, end - max(0, committed.get(tp, 0))) for tp, end in ends.items())
