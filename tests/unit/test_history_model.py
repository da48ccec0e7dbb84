"""Pure rules of the delivery history (registry/history/model.py) and the deliverer's attempt record."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from deliverer import records
from registry.history import model
from tests.support.factories import attempt_record
from webhooks_common.wire import AttemptRecord, DeadLetter, DeliveryTask

T0 = 1_796_000_000_000  # 2026-11-29T...


def rec(attempt: int, at_ms: int, outcome: str, status: int | None = None, **kw: object) -> AttemptRecord:
    return attempt_record("e1", "w1", attempt, at_ms, outcome, status=status, **kw)


def test_merge_is_idempotent_and_order_free() -> None:
    a1 = rec(1, T0, "retry", 500, body='{"id":"e1"}')
    a2 = rec(2, T0 + 1000, "success", 204)
    once = model.merge_delivery(None, [a2, a1])
    again = model.merge_delivery({**once, "_id": "w1:e1"}, [a1, a2])
    assert once["attempts"] == again["attempts"] == 2
    assert once["status"] == again["status"] == "succeeded"
    assert once["last"]["status"] == 204 and once["payload"] == '{"id":"e1"}'
    assert once["hour"] == model.hour_of(T0) and once["created_ms"] == T0
    assert "payload" not in again  # kept as it was, not rewritten


def test_a_resent_chain_counts_as_new_attempts_and_a_request_is_pending_until_its_attempt() -> None:
    first = model.merge_delivery(None, [rec(1, T0, "success", 200)])
    asked = {**first, "requested_ms": T0 + 5000}
    # an attempt older than the request (the first one, read again) leaves it pending
    assert model.merge_delivery(asked, [rec(1, T0, "success", 200)])["status"] == "pending"
    later = model.merge_delivery(asked, [rec(1, T0 + 6000, "retry", 502)])
    assert (later["attempts"], later["status"]) == (2, "failed")


def test_every_status_the_writer_sets_moves_the_status_bucket_with_it() -> None:
    """A delivery is listed under a status by `status_bucket`: each write of `status` carries it."""
    failed = model.merge_delivery(None, [rec(1, T0, "retry", 500)])
    bucket = model.bucket_of("w1", model.hour_of(T0))
    assert (failed["bucket"], failed["status_bucket"]) == (bucket, f"{bucket}:failed")
    ok = model.merge_delivery({**failed, "_id": "w1:e1"}, [rec(2, T0 + 1000, "success", 204)])
    assert (ok["status"], ok["status_bucket"]) == ("succeeded", f"{bucket}:succeeded")
    asked = model.merge_delivery({**failed, "requested_ms": T0 + 5000}, [rec(1, T0, "retry", 500)])
    assert (asked["status"], asked["status_bucket"]) == ("pending", f"{bucket}:pending")
    # stored before `bucket`: the status alone, as that version wrote it
    legacy = {k: v for k, v in failed.items() if k not in ("bucket", "status_bucket")}
    assert "status_bucket" not in model.merge_delivery(legacy, [rec(2, T0 + 1000, "success", 204)])
    made = model.requested_delivery("w1", "ent", "e2", "booking.create", "{}", T0)
    assert (made["status"], made["status_bucket"]) == ("pending", f"{bucket}:pending")


def test_an_hour_is_read_as_the_version_that_stored_it_wrote() -> None:
    assert model.layout_of(model.hour_doc("w1", model.hour_of(T0))) == model.BY_STATUS
    assert model.layout_of({"_id": "w1:h", "keyed": True}) == model.KEYED
    assert model.layout_of({"_id": "w1:h"}) == model.UNKEYED


def test_statuses_of_outcomes() -> None:
    assert [model.status_of(o) for o in ("success", "retry", "dead", "refused", "disabled", "dropped")] == [
        "succeeded",
        "failed",
        "dead",
        "dead",
        "dead",
        "dead",
    ]


def test_a_dead_letter_alone_makes_a_dead_delivery_with_its_payload() -> None:
    task = DeliveryTask(
        task_id="e1:w1", event_id="e1", event_type="t", entity_id="ent", webhook_id="w1",
        webhook_version=1, url="https://x", body='{"a":1}', entered_at_ms=T0,
    )  # fmt: skip
    doc = model.merge_delivery(None, [], DeadLetter(task=task, reason="3 attempt(s) failed", dead_at_ms=T0))
    assert (doc["status"], doc["payload"], doc["dead_reason"]) == ("dead", '{"a":1}', "3 attempt(s) failed")


def test_streak_disables_only_after_the_period_and_once() -> None:
    period = 10_000
    s = model.fold_streak(model.Streak(), [rec(1, T0, "retry", 500), rec(2, T0 + 5000, "retry", 500)], 1000)
    assert not model.should_disable(s, T0 + 5000, period)
    s = model.fold_streak(s, [rec(3, T0 + 10_000, "dead", 500)], 1000)
    assert model.should_disable(s, T0 + 10_000, period)
    # a success anywhere resets it
    ok = model.fold_streak(s, [rec(1, T0 + 11_000, "success", 200)], 1000)
    assert ok.failing_since_ms is None and not model.should_disable(ok, T0 + 11_000, period)
    # after a disable request, the tail of work under way starts no new streak
    asked = model.Streak(None, None, T0 + 20_000)
    tail = model.fold_streak(asked, [rec(4, T0 + 20_500, "retry", 500)], 1000)
    assert tail.failing_since_ms is None
    fresh = model.fold_streak(asked, [rec(1, T0 + 30_000, "retry", 500)], 1000)
    assert fresh.failing_since_ms == T0 + 30_000 and not model.should_disable(fresh, T0 + 30_000, period)
    # dropped/refused are not attempts that failed at the receiver
    assert model.fold_streak(model.Streak(), [rec(1, T0, "dropped")], 0).failing_since_ms is None


def test_window_stats() -> None:
    docs = [
        {"at_ms": T0 + i, "outcome": "success" if i % 4 else "retry", "duration_ms": float(i), "status": 500}
        for i in range(100)
    ] + [{"at_ms": T0 - 1, "outcome": "retry", "duration_ms": 1.0}, {"at_ms": T0 + 5, "outcome": "dropped"}]
    s = model.window_stats(docs, T0)
    assert (s["attempts"], s["successes"], s["failures"]) == (100, 75, 25)
    assert s["success_rate"] == 0.75 and s["p50_ms"] == 49.0 and s["p99_ms"] == 98.0
    assert s["last_failure"]["at_ms"] == T0 + 96
    assert model.window_stats([], T0)["success_rate"] is None


def test_cursor_round_trip_and_garbage() -> None:
    c = model.Cursor("2026-11-30T19", 123, "w1:e1")
    assert model.Cursor.decode(c.encode()) == c
    assert model.Cursor.decode(model.Cursor("2026-11-30T19").encode()).created_ms is None
    for bad in ("", "abc", "eyJ4IjoxfQ", model.Cursor("x").encode()):
        with pytest.raises(ValueError):
            model.Cursor.decode(bad)


def test_hours_to_scan_newest_first_within_window_and_cursor() -> None:
    hours = ["2026-11-30T10", "2026-11-30T12", "2026-11-30T11", "2026-11-29T23"]
    assert model.hours_to_scan(hours, None, None, None) == sorted(hours, reverse=True)
    since = model.hour_start_ms("2026-11-30T11")
    assert model.hours_to_scan(hours, since, None, model.Cursor("2026-11-30T11", 1, "x")) == ["2026-11-30T11"]


def test_hour_bucket_round_trip() -> None:
    assert model.hour_of(model.hour_start_ms("2026-11-30T19")) == "2026-11-30T19"
    assert model.hour_start_ms(model.hour_of(T0)) <= T0 < model.hour_start_ms(model.hour_of(T0)) + 3_600_000


def test_the_payload_rides_on_the_first_attempt_record_of_a_chain_only() -> None:
    task = DeliveryTask(
        task_id="e1:w1", event_id="e1", event_type="t", entity_id="ent", webhook_id="w1",
        webhook_version=1, url="https://x", body='{"a":1}', entered_at_ms=T0,
    )  # fmt: skip
    first = msgspec.json.decode(
        records.attempt_record(task, url="u", outcome="retry", at_ms=T0, body_max_bytes=100),
        type=AttemptRecord,
    )
    assert first.body == '{"a":1}'
    second = msgspec.structs.replace(task, attempt=2)
    rec2 = records.attempt_record(second, url="u", outcome="retry", at_ms=T0, body_max_bytes=100)
    assert msgspec.json.decode(rec2, type=AttemptRecord).body is None
    too_big = records.attempt_record(task, url="u", outcome="retry", at_ms=T0, body_max_bytes=3)
    assert msgspec.json.decode(too_big, type=AttemptRecord).body is None


@pytest.mark.parametrize(
    "occurred", ["2026-11-30T19:00:00Z", "2026-11-30T21:00:00.250+02:00", "2026-11-30T19:00:00.123456"]
)
def test_a_replayed_event_has_the_body_the_router_renders(occurred: str) -> None:
    from registry.history.jobs import render_body as replay_body
    from router.parsing import ParsedEvent, parse_event
    from router.render import render_body
    from webhooks_common.models import InputEvent

    raw = orjson.dumps(
        {"id": "e1", "type": "booking.create", "occurredAt": occurred, "entityId": "ent", "data": {"a": [1]}}
    )
    parsed = parse_event(b"ent", raw)
    assert isinstance(parsed, ParsedEvent)
    assert replay_body(InputEvent.from_bytes(raw)) == render_body(parsed)


def test_a_dead_letter_for_a_known_delivery_touches_only_its_reason_and_payload() -> None:
    task = DeliveryTask(
        task_id="e1:w1", event_id="e1", event_type="t", entity_id="ent", webhook_id="w1",
        webhook_version=1, url="https://x", body='{"a":1}', entered_at_ms=T0,
    )  # fmt: skip
    known = {**model.merge_delivery(None, [rec(1, T0, "retry", 500)]), "_id": "w1:e1"}
    fields = model.merge_delivery(known, [], DeadLetter(task=task, reason="gave up", dead_at_ms=T0 + 9))
    # another writer may have added attempts meanwhile: their summary is not overwritten from this read
    assert fields == {"dead_reason": "gave up", "payload": '{"a":1}'}


def test_a_replay_sends_what_the_webhook_lacks_and_again_only_what_a_dead_run_of_the_job_marked() -> None:
    from registry.history.jobs import INSERT, MARK, RESEND, SKIP, replay_action

    run = "job-1:b2"

    def pending(by: str | None) -> dict[str, object]:
        return {"status": model.PENDING, "requested_by": by}

    assert replay_action(None, run) == INSERT
    assert replay_action({"status": model.DEAD}, run) == MARK
    assert replay_action(pending("job-1:a1"), run) == RESEND  # its earlier run died before saving
    assert replay_action(pending(run), run) == SKIP  # this run sent it already (the log holds it twice)
    assert replay_action(pending("job-2:a1"), run) == SKIP  # another job asked for it
    assert replay_action(pending(None), run) == SKIP  # a resend or a live delivery in flight
    for status in (model.SUCCEEDED, model.FAILED):
        assert replay_action({"status": status, "requested_by": "job-1:a1"}, run) == SKIP
    # a job that failed inside a chunk: nobody finishes what it marked, the next job sends it
    failed = frozenset({"job-2"})
    assert replay_action(pending("job-2:a1"), run, failed) == RESEND
    assert replay_action(pending("job-3:a1"), run, failed) == SKIP  # job-3 still runs or succeeded
    assert replay_action(pending(None), run, failed) == SKIP


def test_chunks_hold_a_quarter_second_of_the_rate_within_bounds() -> None:
    from registry.history.jobs import CHUNK_MAX, chunk_size

    assert [chunk_size(r) for r in (0.5, 4, 100, 1000, 100_000)] == [1, 1, 25, CHUNK_MAX, CHUNK_MAX]


async def test_the_pacer_lets_a_chunk_go_once_the_previous_ones_fit_the_rate() -> None:
    import time

    from registry.history.jobs import Pacer

    pacer = Pacer(1000)
    t = time.monotonic()
    for _ in range(4):
        await pacer.wait(50)  # the first at once, then one every 50 ms
    assert 0.14 <= time.monotonic() - t < 1.0
    await pacer.wait(0)  # nothing to send: no wait


def test_records_behind_counts_what_the_group_has_not_committed_past() -> None:
    ends = {"a0": 10, "a1": 5, "d0": 3}
    assert model.records_behind(ends, {"a0": 10, "a1": 5, "d0": 3}) == 0
    assert model.records_behind(ends, {"a0": 12, "a1": 2}) == 3 + 3  # d0 never committed: all of it
    assert model.records_behind(ends, {"a0": -1, "a1": 5, "d0": 3}) == 10  # -1: no commit
