"""Pure decisions of the deliverer: outcomes, delays, Retry-After, offsets, tiers, prechecks, records."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest

from deliverer import records
from deliverer.backoff import next_delay, parse_retry_after
from deliverer.classify import Action, Outcome, TargetRefused, action_for, classify, error_name
from deliverer.configs import WebhookView
from deliverer.handler import Verdict, precheck
from deliverer.lanes import Lanes
from deliverer.retry import release_at_ms, tier_for
from deliverer.settings import DEFAULT_SCHEDULE, parse_schedule
from tests.support.factories import delivery_task
from webhooks_common import wire
from webhooks_common.consumer import OffsetTracker
from webhooks_common.decoders import decode_attempt, decode_command
from webhooks_common.models import DeadLetter, DeliveryTask
from webhooks_common.topics import RETRY_TIERS
from webhooks_common.urls import forbidden_reason

SCHEDULE = parse_schedule(DEFAULT_SCHEDULE)


# --- classify -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.SUCCESS),
        (204, Outcome.SUCCESS),
        (299, Outcome.SUCCESS),
        (301, Outcome.FAILED),  # redirects are not followed: a failure
        (400, Outcome.FAILED),
        (404, Outcome.FAILED),
        (410, Outcome.GONE),
        (429, Outcome.THROTTLED),
        (500, Outcome.FAILED),
        (503, Outcome.THROTTLED),
    ],
)
def test_classify_status(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_classify_errors() -> None:
    assert classify(None, TimeoutError()) is Outcome.FAILED
    assert classify(None, aiohttp.ClientConnectionError("reset")) is Outcome.FAILED
    refused = TargetRefused("127.0.0.1 is loopback")
    assert classify(None, refused) is Outcome.REFUSED
    # aiohttp wraps resolver errors; the refusal is found through the chain
    try:
        try:
            raise refused
        except TargetRefused as inner:
            raise aiohttp.ClientConnectionError("cannot connect") from inner
    except aiohttp.ClientConnectionError as wrapped:
        assert classify(None, wrapped) is Outcome.REFUSED
        assert error_name(wrapped) == "refused"
    assert error_name(TimeoutError()) == "timeout"
    assert error_name(aiohttp.ClientOSError()) == "ClientOSError"


def test_retryability_lives_on_the_outcome() -> None:
    assert Outcome.FAILED.retryable and Outcome.THROTTLED.retryable
    assert not Outcome.REFUSED.retryable and not Outcome.GONE.retryable and not Outcome.SUCCESS.retryable
    assert not TargetRefused("x").retryable


def test_action_for() -> None:
    assert action_for(Outcome.SUCCESS, None) is Action.COMMIT
    assert action_for(Outcome.GONE, None) is Action.DISABLE
    assert action_for(Outcome.FAILED, 5.0) is Action.RETRY
    assert action_for(Outcome.THROTTLED, 5.0) is Action.RETRY
    assert action_for(Outcome.FAILED, None) is Action.DEAD  # last attempt used
    assert action_for(Outcome.REFUSED, None) is Action.DEAD


# --- delays ---------------------------------------------------------------------------------------


def test_default_schedule_has_eight_attempts() -> None:
    assert SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def test_next_delay_follows_schedule_without_jitter() -> None:
    delays = [next_delay(a, Outcome.FAILED, None, SCHEDULE) for a in range(1, 9)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]


def test_next_delay_jitter_stays_within_bounds_and_varies() -> None:
    rng = random.Random(7)
    got = {next_delay(2, Outcome.FAILED, None, SCHEDULE, jitter=0.1, rng=rng) for _ in range(50)}
    assert all(d is not None and 270 <= d <= 330 for d in got)
    assert len(got) > 1


def test_next_delay_final_outcomes_do_not_retry() -> None:
    assert next_delay(1, Outcome.REFUSED, None, SCHEDULE) is None
    assert next_delay(1, Outcome.GONE, None, SCHEDULE) is None
    assert next_delay(1, Outcome.SUCCESS, None, SCHEDULE) is None


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, 300.0), (10.0, 300.0), (450.0, 450.0), (600.0, 600.0), (86400.0, 600.0)],
)
def test_retry_after_is_clamped_within_scheduled_and_twice(
    retry_after: float | None, expected: float
) -> None:
    assert next_delay(2, Outcome.THROTTLED, retry_after, SCHEDULE) == expected


def test_retry_after_ignored_for_other_failures() -> None:
    assert next_delay(2, Outcome.FAILED, 450.0, SCHEDULE) == 300.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now.timestamp()) == 120.0
    assert parse_retry_after(" 0 ", now.timestamp()) == 0.0
    http_date = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(http_date, now.timestamp()) == pytest.approx(90.0)
    past = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(past, now.timestamp()) == 0.0
    assert parse_retry_after("soon", now.timestamp()) is None
    assert parse_retry_after("-5", now.timestamp()) is None
    assert parse_retry_after(None, now.timestamp()) is None


def test_parse_schedule_rejects_nonsense() -> None:
    assert parse_schedule("0, 1,2") == (0.0, 1.0, 2.0)
    with pytest.raises(ValueError):
        parse_schedule("")
    with pytest.raises(ValueError):
        parse_schedule("0,-1")


# --- offsets --------------------------------------------------------------------------------------


def test_offsets_commit_only_contiguous_prefix() -> None:
    t = OffsetTracker()
    for off in (10, 11, 12, 14):  # 13 compacted away / not ours
        t.add(off)
    assert t.committable() is None
    t.done(11)
    assert t.committable() is None  # 10 still in flight
    t.done(10)
    assert t.committable() == 12
    t.done(14)
    assert t.committable() == 12  # 12 holds it back
    t.done(12)
    assert t.committable() == 15
    assert len(t) == 0


def test_offsets_must_grow() -> None:
    t = OffsetTracker()
    t.add(5)
    with pytest.raises(ValueError):
        t.add(5)


# --- delay topics ---------------------------------------------------------------------------------


def test_tier_for_picks_largest_tier_not_longer_than_delay() -> None:
    assert tier_for(0.2, RETRY_TIERS)[0] == "1s"
    assert tier_for(1, RETRY_TIERS)[0] == "1s"
    assert tier_for(4.9, RETRY_TIERS)[0] == "1s"
    assert tier_for(5.5, RETRY_TIERS)[0] == "5s"
    assert tier_for(300, RETRY_TIERS)[0] == "5m"
    assert tier_for(36000, RETRY_TIERS)[0] == "2h"


def test_release_time() -> None:
    assert release_at_ms(due_at_ms=10_000, record_ts_ms=1_000, tier_s=5) == 6_000  # hop, then re-park
    assert release_at_ms(due_at_ms=3_000, record_ts_ms=1_000, tier_s=5) == 3_000


# --- precheck -------------------------------------------------------------------------------------


def _view(enabled: bool = True, version: int = 2) -> WebhookView:
    return WebhookView("w1", "e1", version, enabled, "https://example.com/hook", [(b"k", None)])


def test_precheck() -> None:
    task = records.decode_task(
        TASK.model_copy(update={"webhook_version": 2, "entered_at_ms": 1_000}).to_bytes()
    )
    assert precheck(_view(), False, task, 2_000, 60_000)[0] is Verdict.GO
    assert precheck(_view(enabled=False), False, task, 2_000, 60_000) == (Verdict.DROP, "webhook disabled")
    assert precheck(None, True, task, 2_000, 60_000) == (Verdict.DROP, "webhook removed")
    assert precheck(None, False, task, 2_000, 60_000)[0] is Verdict.DEFER
    assert precheck(None, False, task, 100_000, 60_000) == (Verdict.DROP, "webhook unknown")
    assert precheck(_view(version=1), False, task, 2_000, 60_000)[0] is Verdict.DEFER
    assert precheck(_view(version=1), False, task, 100_000, 60_000)[0] is Verdict.GO


def test_valid_keys_skip_expired() -> None:
    view = WebhookView("w", "e", 1, True, "u", [(b"old", 100.0), (b"new", None), (b"later", 300.0)])
    assert view.valid_keys(200.0) == [b"new", b"later"]


# --- SSRF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "100.64.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "::ffff:127.0.0.1",
        "ff02::1",
    ],
)
def test_forbidden_addresses(addr: str) -> None:
    assert forbidden_reason(addr) is not None


@pytest.mark.parametrize("addr", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_allowed(addr: str) -> None:
    assert forbidden_reason(addr) is None


# --- records match the shared models --------------------------------------------------------------

TASK = delivery_task("ev1", "w1", webhook_version=3)


def test_records_parse_with_shared_models() -> None:
    task = records.decode_task(TASK.to_bytes())
    assert records.task_bytes(task) == TASK.to_bytes()  # the router's wire format, byte for byte
    rec = decode_attempt(
        records.attempt_record(
            task,
            url="u",
            outcome="retry",
            at_ms=5,
            duration_ms=1.5,
            status=500,
            snippet="oops",
            next_attempt_at_ms=10,
        )
    )
    assert (rec.task_id, rec.attempt, rec.outcome, rec.status, rec.next_attempt_at_ms) == (
        "ev1:w1",
        1,
        "retry",
        500,
        10,
    )
    nxt = records.with_history(task, records.summary(1, 5, "retry", 500, None), attempt=2)
    again = DeliveryTask.from_bytes(records.task_bytes(nxt))
    assert again.attempt == 2 and again.history[0].status == 500 and again.body == TASK.body
    dead = DeadLetter.from_bytes(records.dead_letter(nxt, "8 attempt(s) failed", 9))
    assert dead.task.task_id == "ev1:w1" and dead.reason.startswith("8")
    cmd = decode_command(records.disable_command(task, "410", 9))
    assert cmd.action == "disable" and cmd.webhook_id == "w1" and cmd.requested_by == "deliverer"


def test_decode_task_rejects_garbage_and_bad_fields() -> None:
    good = orjson.loads(TASK.to_bytes())
    bad_fields: list[dict[str, Any]] = [
        {"due_at_ms": "soon"},
        {"attempt": "two"},
        {"webhook_version": "x"},
        {"entered_at_ms": "yesterday"},
        {"attempt": 0},
        {"v": 2},
        {"body": None},
    ]
    raws = [None, b"[]", b'{"task_id": 1}', b"not json"]
    raws += [orjson.dumps({**good, **bad}) for bad in bad_fields]
    raws += [orjson.dumps({k: v for k, v in good.items() if k != "webhook_id"})]
    for raw in raws:
        with pytest.raises((msgspec.DecodeError, msgspec.ValidationError, ValueError)):
            records.decode_task(raw)
    # unknown fields are ignored (a newer writer may add some), as the pydantic models do
    assert records.decode_task(orjson.dumps({**good, "extra": 1})).task_id == TASK.task_id


def test_wire_structs_and_models_agree() -> None:
    summary = wire.AttemptSummary(attempt=1, at_ms=2, outcome="retry", status=500)
    task = records.with_history(records.decode_task(TASK.to_bytes()), summary)
    model = DeliveryTask.from_bytes(wire.encode(task))
    assert model.to_bytes() == wire.encode(task)
    dead = wire.DeadLetter(task=task, reason="r", dead_at_ms=3)
    assert DeadLetter.from_bytes(wire.encode(dead)).to_bytes() == wire.encode(dead)
    cmd = decode_command(records.disable_command(task, "410", 9))
    assert decode_command(wire.encode(cmd)) == cmd  # defined once (wire), no model to agree with


# --- lanes ----------------------------------------------------------------------------------------


def _no_error(job: object, exc: Exception) -> None:
    raise AssertionError(f"{job} raised {exc!r}")


async def test_a_job_that_raises_frees_its_slot_and_reports_its_error() -> None:
    done: list[str] = []
    errors: list[tuple[str, str]] = []

    async def run(job: str) -> None:
        if job == "boom":
            raise RuntimeError("bug in an attempt")
        done.append(job)

    lanes: Lanes[str] = Lanes(
        run, on_error=lambda j, e: errors.append((j, str(e))), per_url=1, max_in_flight=1, queue_limit=10
    )
    for job in ("boom", "a", "b"):
        assert lanes.offer("http://x", job)
    assert await lanes.wait_idle(1)
    for _ in range(5):
        await asyncio.sleep(0)
    await lanes.wait_idle(1)
    assert errors == [("boom", "bug in an attempt")]
    assert done == ["a", "b"]  # the slot came back and the lane went on
    assert lanes.in_flight == 0


async def test_lanes_limit_per_url_and_globally_and_overflow() -> None:
    gates: dict[str, asyncio.Event] = {"slow": asyncio.Event(), "fast": asyncio.Event()}
    started: list[tuple[str, int]] = []

    async def run(job: tuple[str, int]) -> None:
        started.append(job)
        await gates[job[0]].wait()

    lanes: Lanes[tuple[str, int]] = Lanes(run, on_error=_no_error, per_url=2, max_in_flight=3, queue_limit=2)
    assert all(lanes.offer("slow", ("slow", i)) for i in range(4))  # 2 running + 2 queued
    assert not lanes.offer("slow", ("slow", 4))  # its queue is full: the caller parks it
    assert lanes.offer("fast", ("fast", 0)) and lanes.offer("fast", ("fast", 1))
    await asyncio.sleep(0)
    assert lanes.in_flight == 3  # global cap
    assert sorted(started) == [("fast", 0), ("slow", 0), ("slow", 1)]
    gates["fast"].set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert ("fast", 1) in started  # the slow URL did not hold the fast one back
    gates["slow"].set()
    assert await lanes.wait_idle(1)
    for _ in range(5):
        await asyncio.sleep(0)
    await lanes.wait_idle(1)
    assert len(started) == 6


# --- lanes: dead URLs must not starve healthy ones ---------------------------------------------------


async def test_a_freed_slot_goes_to_a_waiting_lane_before_its_own() -> None:
    from deliverer.lanes import Lanes

    started: list[str] = []
    gates: dict[str, asyncio.Event] = {}

    async def run(job: str) -> None:
        started.append(job)
        gates[job] = asyncio.Event()
        await gates[job].wait()

    lanes: Lanes[str] = Lanes(run, on_error=_no_error, per_url=2, max_in_flight=2, queue_limit=100)
    for i in range(4):
        lanes.offer("http://slow", f"slow{i}")
    lanes.offer("http://healthy", "healthy0")
    await asyncio.sleep(0)
    assert started == ["slow0", "slow1"]  # every global slot taken by one URL
    gates["slow0"].set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert started[2] == "healthy0"  # the waiting lane got the freed slot, not slow2
    for g in list(gates.values()):
        g.set()
    await lanes.wait_idle(1)


async def test_a_url_that_stops_answering_gets_one_attempt_and_a_short_queue() -> None:
    from deliverer.lanes import Lanes

    running: dict[str, int] = {"http://dead": 0}
    peak = 0
    release = asyncio.Event()

    async def run(job: str) -> None:
        nonlocal peak
        running["http://dead"] += 1
        peak = max(peak, running["http://dead"])
        await release.wait()
        running["http://dead"] -= 1

    lanes: Lanes[str] = Lanes(
        run, on_error=_no_error, per_url=8, max_in_flight=256, queue_limit=500, degraded_queue_limit=3
    )
    lanes.mark("http://dead", answered=False)
    accepted = [lanes.offer("http://dead", f"j{i}") for i in range(10)]
    await asyncio.sleep(0)
    assert peak == 1
    assert (
        accepted.count(True) == 4
    )  # one in flight + three queued; the rest is refused (parked by the caller)
    lanes.mark("http://dead", answered=True)
    assert not lanes.is_degraded("http://dead")
    release.set()
    await lanes.wait_idle(1)


@pytest.mark.parametrize(("separate", "reads"), [(True, [["d"], ["r1", "r2"]]), (False, [["d", "r1", "r2"]])])
async def test_fresh_deliveries_and_retries_are_read_by_consumers_of_their_own_in_one_group(
    separate: bool, reads: list[list[str]]
) -> None:
    from unittest.mock import MagicMock

    from deliverer.consumer import delivery_runtimes
    from deliverer.settings import DelivererSettings
    from webhooks_common.topics import Topics

    topics = Topics(prefix="t.")
    settings = DelivererSettings(kafka_bootstrap_servers="127.0.0.1:1", separate_retry_consumer=separate)
    runtimes = delivery_runtimes(
        settings, topics, MagicMock(), MagicMock(), [("r1", 1.0), ("r2", 5.0)], MagicMock(), lambda _e: None
    )
    names = {topics.deliveries: "d", topics.retry("r1"): "r1", topics.retry("r2"): "r2"}
    try:
        assert [[names[t] for t in r.topics] for r in runtimes] == reads
        assert len({r._s.group_id for r in runtimes}) == 1
    finally:
        for r in runtimes:
            await r.stop()


class HangingLanes:
    """Lanes on a fake clock whose attempts hang until `release` is set: 2 per URL, a short queue of 3, silent
    after 2 s."""

    def __init__(self) -> None:
        from deliverer.lanes import Lanes

        self.now = 100.0
        self.release = asyncio.Event()

        async def run(job: str) -> None:
            await self.release.wait()

        self.lanes: Lanes[str] = Lanes(
            run,
            on_error=_no_error,
            per_url=2,
            max_in_flight=256,
            queue_limit=500,
            degraded_queue_limit=3,
            silent_after_s=2.0,
            clock=lambda: self.now,
        )


async def test_a_url_silent_since_its_attempts_started_gets_the_short_queue_before_any_timeout() -> None:
    h = HangingLanes()
    lanes = h.lanes
    first = [lanes.offer("http://quiet", f"a{i}") for i in range(10)]
    await asyncio.sleep(0)
    assert all(first)  # two in flight, eight queued: within the full queue while the URL may still answer
    h.now += 1.9
    assert not lanes.is_silent("http://quiet")
    assert lanes.offer("http://quiet", "b0")
    h.now += 0.2  # 2.1 s since the attempts started, none finished
    assert lanes.is_silent("http://quiet")
    assert not lanes.is_degraded("http://quiet")  # no attempt has timed out yet
    assert not lanes.offer("http://quiet", "b1")  # refused: the caller parks it
    assert lanes.offer("http://other", "c0")  # other URLs are not touched
    h.release.set()  # the attempts finish (answered or not): the lane is heard from again
    await asyncio.sleep(0)
    assert not lanes.is_silent("http://quiet")
    assert lanes.offer("http://quiet", "b2")
    await lanes.wait_idle(1)


async def test_a_burst_queued_before_its_url_stopped_answering_is_handed_back_beyond_the_short_queue() -> (
    None
):
    h = HangingLanes()
    lanes = h.lanes
    assert all(lanes.offer("http://a", f"a{i}") for i in range(10))  # 2 in flight, 8 queued
    assert all(lanes.offer("http://b", f"b{i}") for i in range(10))
    await asyncio.sleep(0)
    assert lanes.shed("http://a") == []  # answering as far as anyone knows: its queue is its own
    h.now += 2.1  # silent: none of the attempts finished
    assert lanes.shed("http://a") == ["a5", "a6", "a7", "a8", "a9"]  # the newest; the oldest 3 stay
    assert lanes.shed("http://a") == []
    lanes.mark("http://b", answered=False)  # degraded by a timeout: the same
    assert lanes.shed("http://b") == ["b5", "b6", "b7", "b8", "b9"]
    assert lanes.queued() == 6
    assert lanes.shed("http://nobody") == []
    h.release.set()
    await lanes.wait_idle(1)


def test_a_url_that_is_not_answering_has_its_overflow_parked_for_longer() -> None:
    from deliverer.handler import overflow_delay_s
    from deliverer.settings import DelivererSettings

    s = DelivererSettings(
        kafka_bootstrap_servers="127.0.0.1:1", overflow_delay_s=5, unanswered_overflow_delay_s=30
    )
    assert overflow_delay_s(s, unanswered=False) == 5
    assert overflow_delay_s(s, unanswered=True) == 30
    assert tier_for(30, RETRY_TIERS)[0] == "30s"  # one hop, not a 5 s tier re-parked six times
    shorter = s.model_copy(update={"unanswered_overflow_delay_s": 1})
    assert overflow_delay_s(shorter, unanswered=True) == 5  # never sooner than any overflow
