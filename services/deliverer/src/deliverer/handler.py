"""One delivery task from read to finished: checks, the attempt, and what gets published after it.

A task is finished (`job.done()`: its offset may be committed) only when everything it published is acked
by Kafka: the attempt record and, as the case may be, the retry, the dead letter or the disable command.
Any exception while handling a task goes to `job.fail(exc)`: the consumer runtime's policy decides
(retry it later, or set it aside), so a failing task never leaks its slot or holds its partition's commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from deliverer import records, signing
from deliverer.backoff import next_delay, parse_retry_after
from deliverer.classify import Action, Outcome, action_for, classify, error_name, find_refusal
from deliverer.configs import ConfigView, WebhookView
from deliverer.http_client import post
from deliverer.lanes import Lanes
from deliverer.metrics import DelivererMetrics
from deliverer.retry import tier_for
from deliverer.settings import DelivererSettings
from webhooks_common.consumer import Inbound
from webhooks_common.topics import Topics
from webhooks_common.wire import DeliveryTask

log = logging.getLogger(__name__)

# A task released from a delay topic this close to its due time is attempted rather than parked again.
DUE_SLACK_MS = 50


Job = Inbound[DeliveryTask]


def overflow_delay_s(settings: DelivererSettings, *, unanswered: bool) -> float:
    """How long a task that found its URL's queue full is parked. A URL that is not answering (degraded or
    silent) waits longer: it will not be heard from sooner, and each return to a full queue is a re-park."""
    if unanswered:
        return max(settings.overflow_delay_s, settings.unanswered_overflow_delay_s)
    return settings.overflow_delay_s


class Verdict(Enum):
    GO = "go"
    DROP = "dropped"
    DEFER = "defer"


def precheck(
    view: WebhookView | None, removed: bool, task: DeliveryTask, now_ms: int, grace_ms: int
) -> tuple[Verdict, str]:
    """May this task be attempted now, against our view of its webhook? (pure)"""
    entered = task.entered_at_ms or now_ms
    if view is None:
        if removed:
            return Verdict.DROP, "webhook removed"
        if now_ms - entered > grace_ms:
            return Verdict.DROP, "webhook unknown"
        return Verdict.DEFER, "config not seen yet"  # the router saw a config our follower has not read yet
    behind = view.version < task.webhook_version
    if behind and now_ms - entered <= grace_ms:
        return Verdict.DEFER, "config behind"
    if not view.enabled:
        return Verdict.DROP, "webhook disabled"
    return Verdict.GO, ""


class Pipeline:
    def __init__(
        self,
        *,
        settings: DelivererSettings,
        topics: Topics,
        view: ConfigView,
        session: aiohttp.ClientSession,
        producer: AIOKafkaProducer,
        metrics: DelivererMetrics,
        tiers: Sequence[tuple[str, float]],
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self._s = settings
        self._schedule = settings.schedule
        self._topics = topics
        self._view = view
        self._session = session
        self._producer = producer
        self._m = metrics
        self._tiers = tuple(tiers)
        self._on_fatal = on_fatal
        self._grace_ms = int(settings.unknown_webhook_grace_s * 1000)
        self.lanes: Lanes[Job] = Lanes(
            self._attempt,
            on_error=lambda job, exc: job.fail(exc),
            per_url=settings.per_url_concurrency,
            max_in_flight=settings.max_in_flight,
            queue_limit=settings.per_url_queue_limit,
            degraded_queue_limit=settings.degraded_queue_limit,
            silent_after_s=settings.silent_after_s,
        )
        self._unacked: set[asyncio.Future[Any]] = set()

    # --- intake -------------------------------------------------------------------------------------

    async def submit(self, job: Job) -> None:
        """Queue the task for its URL, or finish it at once (park, drop). Raises: the caller fails the job."""
        task = job.value
        now_ms = int(time.time() * 1000)
        due = task.due_at_ms
        if due - now_ms > DUE_SLACK_MS:
            await self._park(job, (due - now_ms) / 1000, "waiting", due_at_ms=due)
            return
        wid = task.webhook_id
        verdict, reason = precheck(self._view.get(wid), self._view.removed(wid), task, now_ms, self._grace_ms)
        if verdict is Verdict.DROP:
            await self._drop(job, reason)
        elif verdict is Verdict.DEFER:
            await self._park(job, 1.0, "config")
        else:
            view = self._view.get(wid)
            assert view is not None
            if not self.lanes.offer(view.url, job):
                # This URL already has a full queue: park the task instead of holding memory or the partition.
                unanswered = self.lanes.is_degraded(view.url) or self.lanes.is_silent(view.url)
                await self._park(job, overflow_delay_s(self._s, unanswered=unanswered), "overflow")
                if unanswered:
                    await self._shed(view.url)

    # --- the attempt --------------------------------------------------------------------------------

    async def _attempt(self, job: Job) -> None:
        if job.revoked:
            return  # the partition moved to another deliverer, which will deliver it
        task = job.value
        wid = task.webhook_id
        view = self._view.get(wid)
        now_ms = int(time.time() * 1000)
        verdict, reason = precheck(view, self._view.removed(wid), task, now_ms, self._grace_ms)
        if verdict is not Verdict.GO or view is None:
            # its webhook changed while the task was queued
            await (self._drop(job, reason) if verdict is Verdict.DROP else self._park(job, 1.0, "config"))
            return
        keys = view.valid_keys(time.time())
        url = view.url  # always the webhook's CURRENT url
        if not keys:
            await self._finish_dead(job, url, "no valid signing secret", now_ms, 0.0, None, "no-secret")
            return
        body = task.body.encode()
        headers = signing.headers(keys, task.task_id, int(time.time()), body, self._s.user_agent)
        self._m.in_flight.inc()
        try:
            res = await post(self._session, url, body, headers, self._s.response_snippet_bytes)
        finally:
            self._m.in_flight.dec()
        self._m.latency.observe(res.duration_s)
        self.lanes.mark(url, answered=res.status is not None)
        if res.status is None:
            await self._shed(url)
        outcome = classify(res.status, res.error)
        at_ms = int(time.time() * 1000)
        throttled = outcome is Outcome.THROTTLED
        retry_after = parse_retry_after(res.retry_after, at_ms / 1000) if throttled else None
        attempt = task.attempt
        delay = next_delay(attempt, outcome, retry_after, self._schedule, jitter=self._s.jitter)
        action = action_for(outcome, delay)
        err = error_name(res.error) if res.error is not None else None
        dur_ms = res.duration_s * 1000
        if outcome is Outcome.REFUSED:
            refusal = find_refusal(res.error)
            why = str(refusal or res.error)
            await self._finish_dead(job, url, f"target refused: {why}", at_ms, dur_ms, None, "refused")
            return
        if action is Action.DEAD:
            last = f"HTTP {res.status}" if res.status is not None else err
            reason = f"{attempt} attempt(s) failed, last: {last}"
            await self._finish_dead(job, url, reason, at_ms, dur_ms, res.status, err)
            return
        futs: list[asyncio.Future[Any]] = []
        next_at: int | None = None
        if action is Action.RETRY:
            assert delay is not None
            next_at = at_ms + int(delay * 1000)
            entry = records.summary(attempt, at_ms, "retry", res.status, err)
            nxt = records.with_history(task, entry, attempt=attempt + 1, due_at_ms=next_at)
            futs.append(await self._send(self._tier_topic(delay), job.key, records.task_bytes(nxt)))
        elif action is Action.DISABLE:
            self._view.mark_disabled(wid)
            log.info("webhook %s answered 410 Gone at %s: disabling it", wid, url)
            cmd = records.disable_command(task, f"{url} answered 410 Gone", at_ms)
            futs.append(await self._send(self._topics.commands, wid.encode(), cmd))
        self._m.attempts.labels(action.value).inc()
        futs.append(
            await self._log_attempt(
                task,
                url,
                action.value,
                at_ms,
                duration_ms=dur_ms,
                status=res.status,
                error=err,
                snippet=res.snippet,
                next_attempt_at_ms=next_at,
            )
        )
        self._finish(job, futs)

    # --- outcomes without an HTTP response ----------------------------------------------------------

    async def _finish_dead(
        self,
        job: Job,
        url: str,
        reason: str,
        at_ms: int,
        dur_ms: float,
        status: int | None,
        err: str | None,
    ) -> None:
        task = job.value
        wid = task.webhook_id
        label = "refused" if err == "refused" else "dead"
        final = records.with_history(task, records.summary(task.attempt, at_ms, label, status, err))
        dlq = await self._send(self._topics.dlq, wid.encode(), records.dead_letter(final, reason, at_ms))
        att = await self._log_attempt(task, url, label, at_ms, duration_ms=dur_ms, status=status, error=err)
        self._m.attempts.labels(label).inc()
        self._m.dlq.inc()
        log.warning("task %s dead-lettered: %s", task.task_id, reason)
        self._finish(job, [dlq, att])

    async def _drop(self, job: Job, reason: str) -> None:
        task = job.value
        wid = task.webhook_id
        view = self._view.get(wid)
        at_ms = int(time.time() * 1000)
        self._m.dropped.labels(reason).inc()
        url = view.url if view else task.url
        self._finish(job, [await self._log_attempt(task, url, "dropped", at_ms, error=reason)])

    async def _park(self, job: Job, delay_s: float, why: str, *, due_at_ms: int | None = None) -> None:
        """Put the task (unchanged attempt number) on a delay topic; no attempt is used."""
        due = due_at_ms if due_at_ms is not None else int(time.time() * 1000 + delay_s * 1000)
        value = records.task_bytes(job.value, due_at_ms=due)
        self._m.deferred.labels(why).inc()
        self._finish(job, [await self._send(self._tier_topic(delay_s), job.key, value)])

    async def _shed(self, url: str) -> None:
        """Park what a URL that stopped answering holds queued beyond its short queue (`Lanes.shed`)."""
        delay_s = overflow_delay_s(self._s, unanswered=True)
        for job in self.lanes.shed(url):
            if job.revoked:
                continue  # its partition's new owner delivers it
            try:
                await self._park(job, delay_s, "shed")
            except Exception as exc:  # out of its lane now: the runtime's policy decides, as for any failure
                job.fail(exc)

    # --- bookkeeping --------------------------------------------------------------------------------

    def _tier_topic(self, delay_s: float) -> str:
        return self._topics.retry(tier_for(delay_s, self._tiers)[0])

    async def _log_attempt(
        self, task: DeliveryTask, url: str, outcome: str, at_ms: int, **detail: Any
    ) -> asyncio.Future[Any]:
        """Publish the record of one attempt (or of a task dropped) on webhooks.attempts, keyed by webhook;
        `detail`: the optional fields of records.attempt_record."""
        rec = records.attempt_record(
            task, url=url, outcome=outcome, at_ms=at_ms, body_max_bytes=self._s.attempt_body_bytes, **detail
        )
        return await self._send(self._topics.attempts, task.webhook_id.encode(), rec)

    async def _send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = await self._producer.send(topic, value=value, key=key)
        return fut

    def _finish(self, job: Job, futs: list[asyncio.Future[Any]]) -> None:
        """Mark the job finished once every message it published is acked (then its offset may commit)."""
        agg: asyncio.Future[Any] = futs[0] if len(futs) == 1 else asyncio.gather(*futs)
        self._unacked.add(agg)

        def acked(f: asyncio.Future[Any]) -> None:
            self._unacked.discard(f)
            if f.cancelled() or f.exception() is not None:
                exc = f.exception() if not f.cancelled() else asyncio.CancelledError()
                log.error("publishing the outcome of task %s failed: %r", job.value.task_id, exc)
                # not marked done: its offset stays uncommitted and it is redelivered after the restart
                self._on_fatal(exc or RuntimeError("publish failed"))
                return
            job.done()

        agg.add_done_callback(acked)

    def forget(self, pred: Callable[[Job], bool]) -> None:
        """Drop queued jobs of revoked partitions (their new owner delivers them)."""
        self.lanes.drop_where(pred)

    def forget_all_queued(self) -> None:
        """On shutdown: queued jobs were never started; their offsets stay uncommitted for the next owner."""
        self.lanes.drop_queued()

    async def wait_acked(self, within_s: float) -> bool:
        if not self._unacked:
            return True
        _done, pending = await asyncio.wait(set(self._unacked), timeout=within_s)
        await asyncio.sleep(0)  # let the done-callbacks mark offsets
        return not pending
