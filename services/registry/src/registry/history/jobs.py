"""Recover and replay jobs, run by the history process (`python -m registry history`).

- recover: re-send every delivery of the webhook created in [since, until) whose last attempt failed or died,
  oldest first (a resend: same payload, same `webhook-id`).
- replay: re-read `wink.events` and `trippay.events` from the offsets for `since` (Kafka's offsets-for-times)
  up to those for `until`, and send every event of the webhook's entity that matches the webhook NOW and that
  it has not received (no delivery in the history, or only a dead one): events from before it existed or
  while it was disabled. Never a second copy of one delivered, in flight or asked for.

A job sends at most `history_job_rate` tasks/s so live deliveries keep their speed. Its progress (recover: the
last delivery sent; replay: the next offset of each partition) is saved as it goes, with a heartbeat; a job
whose process died is resumed from there by the next runner (the one not yet saved may be sent twice, never
skipped). A job that cannot go on ends `failed` with the reason: never silently half done. One job per
webhook at a time (a lock document; the API answers 409).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from registry.history import model
from registry.history.send import TaskSender, delivery_task
from registry.history.store import HistoryStore
from webhooks_common.catalog import event_list_matches, is_known_type
from webhooks_common.kafka import start_client, topic_partitions
from webhooks_common.models import InputEvent
from webhooks_common.topics import Topics

log = logging.getLogger(__name__)

Doc = dict[str, Any]
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STALE_AFTER_MS = 15_000  # a running job without a heartbeat this long lost its runner
GetWebhook = Callable[[str, str], Awaitable[Doc | None]]


def new_job(job_id: str, kind: str, webhook: Doc, since_ms: int, until_ms: int, now_ms: int) -> Doc:
    return {
        "_id": job_id,
        "kind": kind,
        "webhook_id": webhook["_id"],
        "entity_id": webhook["entity_id"],
        "since_ms": since_ms,
        "until_ms": until_ms,
        "state": QUEUED,
        "counts": {"considered": 0, "sent": 0, "skipped": 0},
        "created_ms": now_ms,
        "heartbeat_ms": now_ms,
        "progress": None,
        "missing": None,
        "error": None,
    }


def render_body(event: InputEvent) -> str:
    """The body the router renders for an input event (router/render.py; a unit test keeps them equal)."""
    occurred = event.occurred_at
    occurred = occurred.replace(tzinfo=UTC) if occurred.tzinfo is None else occurred.astimezone(UTC)
    timestamp = occurred.isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "timestamp": timestamp,
            "entityId": event.entity_id,
            "data": event.data,
        }
    ).decode()


class Pacer:
    """At most `rate` sends per second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval


class JobRunner:
    def __init__(
        self,
        store: HistoryStore,
        sender: TaskSender,
        get_webhook: GetWebhook,
        topics: Topics,
        bootstrap: str,
        *,
        rate: float,
        poll_s: float = 1.0,
    ) -> None:
        self.store, self.sender, self.get_webhook = store, sender, get_webhook
        self.topics, self.bootstrap = topics, bootstrap
        self.rate, self.poll_s = rate, poll_s

    async def run(self) -> None:
        while True:
            try:
                await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job runner failed; will retry", extra={"error": repr(exc)})
            await asyncio.sleep(self.poll_s)

    async def run_due(self) -> None:
        now = int(time.time() * 1000)
        due = await self.store.jobs_in(QUEUED)
        due += [j for j in await self.store.jobs_in(RUNNING) if now - j["heartbeat_ms"] > STALE_AFTER_MS]
        for job in sorted(due, key=lambda j: j["created_ms"]):
            await self.run_job(job)

    async def run_job(self, job: Doc) -> None:
        jid = job["_id"]
        if job["state"] == RUNNING:
            log.warning("resuming job %s after its runner stopped", jid)
        await self.store.update_job(jid, {"state": RUNNING, "heartbeat_ms": int(time.time() * 1000)})
        try:
            webhook = await self.get_webhook(job["entity_id"], job["webhook_id"])
            if webhook is None:
                raise JobFailed("the webhook was deleted")
            if not webhook["enabled"]:
                raise JobFailed("the webhook was disabled")
            if job["kind"] == "recover":
                await self._recover(job, webhook)
            else:
                await self._replay(job, webhook)
        except asyncio.CancelledError:
            raise  # left running: resumed by the next runner
        except Exception as exc:
            reason = str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}"
            log.warning("job %s failed: %s", jid, reason)
            await self._finish(job, FAILED, error=reason)
            return
        await self._finish(job, SUCCEEDED)

    async def _finish(self, job: Doc, state: str, error: str | None = None) -> None:
        now = int(time.time() * 1000)
        fields: Doc = {"state": state, "finished_ms": now, "heartbeat_ms": now, "error": error}
        fields["counts"] = job["counts"]
        await self.store.update_job(job["_id"], fields)
        await self.store.release_job(job["webhook_id"], job["_id"])

    async def _checkpoint(self, job: Doc) -> None:
        await self.store.update_job(
            job["_id"],
            {"counts": job["counts"], "progress": job["progress"], "heartbeat_ms": int(time.time() * 1000)},
        )

    # --- recover ------------------------------------------------------------------------------------

    async def _recover(self, job: Doc, webhook: Doc) -> None:
        wid, since, until = job["webhook_id"], job["since_ms"], job["until_ms"]
        hours = sorted(
            h
            for h in await self.store.webhook_hours(wid)
            if model.hour_of(since) <= h <= model.hour_of(until)
        )
        done = tuple(job["progress"]) if job["progress"] else None  # (created_ms, id) of the last one sent
        pacer = Pacer(self.rate)
        for hour in hours:
            found = [
                d
                for status in (model.FAILED, model.DEAD)
                for d in await self.store.deliveries_with_status(wid, hour, status)
            ]
            for d in sorted(found, key=lambda d: (d["created_ms"], d["_id"])):
                key = (d["created_ms"], d["_id"])
                if not since <= d["created_ms"] < until or (done is not None and key <= done):
                    continue
                job["counts"]["considered"] += 1
                if not d.get("payload"):
                    job["counts"]["skipped"] += 1
                else:
                    await pacer.wait()
                    now = int(time.time() * 1000)
                    await self.store.mark_requested(d["_id"], now)
                    await self.sender.send(
                        delivery_task(webhook, d["event_id"], d["event_type"], d["payload"], now)
                    )
                    job["counts"]["sent"] += 1
                job["progress"] = list(key)
                await self._checkpoint(job)

    # --- replay -------------------------------------------------------------------------------------

    async def _replay(self, job: Doc, webhook: Doc) -> None:
        since, until = job["since_ms"], job["until_ms"]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await start_client(consumer)
        try:
            tps = [
                TopicPartition(topic, p)
                for topic in self.topics.inputs
                for p in sorted(await _partitions(consumer, topic))
            ]
            progress: list[Doc] = list(job["progress"] or await self._plan(consumer, tps, since, until))
            job["progress"] = progress
            await self._checkpoint(job)
            await self._read(consumer, job, webhook, progress, since, until)
        finally:
            await consumer.stop()

    async def _plan(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition], since: int, until: int
    ) -> list[Doc]:
        """Per partition: where to start (offset for `since`), where to stop (offset for `until`, or the end
        now), and where its log begins (to tell a window Kafka no longer holds)."""
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times({tp: since for tp in tps})
        stops = await consumer.offsets_for_times({tp: until for tp in tps})
        plan: list[Doc] = []  # a list: field names may not hold the dots of topic names
        for tp in tps:
            start = starts[tp].offset if starts[tp] is not None else ends[tp]
            stop = stops[tp].offset if stops[tp] is not None else ends[tp]
            plan.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "next": start,
                    "stop": stop,
                    "begin": begins[tp],
                }
            )
        return plan

    async def _read(
        self, consumer: AIOKafkaConsumer, job: Doc, webhook: Doc, progress: list[Doc], since: int, until: int
    ) -> None:
        active: dict[TopicPartition, Doc] = {}
        for p in progress:
            if p["next"] < p["stop"]:
                active[TopicPartition(p["topic"], p["partition"])] = p
        if not active:
            return
        consumer.assign(list(active))
        for tp, p in active.items():
            consumer.seek(tp, p["next"])
        pacer = Pacer(self.rate)
        missing_until = (job.get("missing") or {}).get("until_ms")
        empty_polls = 0
        while active:
            batch = await consumer.getmany(*active, timeout_ms=1000, max_records=200)
            if not batch:
                # no record left before `stop` (a transaction marker, a compacted or removed record): done
                empty_polls += 1
                for tp in list(active):
                    if await consumer.position(tp) >= active[tp]["stop"] or empty_polls >= 5:
                        active.pop(tp)
                continue
            empty_polls = 0
            for tp, recs in batch.items():
                got = active.get(tp)
                if got is None:
                    continue
                p = got
                for rec in recs:
                    if rec.offset >= p["stop"]:
                        break
                    if rec.offset == p["begin"] and p["begin"] > 0 and rec.timestamp > since:
                        # the records before this one were removed by retention: part of the window is gone
                        missing_until = max(missing_until or 0, min(rec.timestamp, until))
                        job["missing"] = {"since_ms": since, "until_ms": missing_until}
                    if since <= rec.timestamp < until:
                        await self._replay_one(
                            job, webhook, rec.value, self.topics.source_of(tp.topic), pacer
                        )
                    p["next"] = rec.offset + 1
                await self._checkpoint(job)
                if p["next"] >= p["stop"]:
                    active.pop(tp, None)
                    consumer.pause(tp)
            await self.store.update_job(job["_id"], {"missing": job.get("missing")})

    async def _replay_one(self, job: Doc, webhook: Doc, raw: bytes | None, source: str, pacer: Pacer) -> None:
        if raw is None:
            return
        try:
            event = InputEvent.from_bytes(raw)
        except ValidationError:
            return  # the router set it aside too
        if event.entity_id != webhook["entity_id"] or not is_known_type(event.type):
            return
        if not event_list_matches(list(webhook.get("event_list") or []), event.type):
            return
        job["counts"]["considered"] += 1
        status = await self.store.delivery_status(model.delivery_id(webhook["_id"], event.id))
        if status is not None and status != model.DEAD:
            job["counts"]["skipped"] += 1  # delivered, in flight, or asked for already
            return
        await pacer.wait()
        body = render_body(event)
        now = int(time.time() * 1000)
        did = model.delivery_id(webhook["_id"], event.id)
        # recorded as asked for before it is sent: a resumed or concurrent replay skips it
        if status is None:
            await self.store.insert_requested(
                {
                    "_id": did,
                    "webhook_id": webhook["_id"],
                    "entity_id": webhook["entity_id"],
                    "event_id": event.id,
                    "event_type": event.type,
                    "created_ms": now,
                    "hour": model.hour_of(now),
                    "attempt_ids": [],
                    "attempts": 0,
                    "requested_ms": now,
                    "status": model.PENDING,
                    "payload": body,
                }
            )
        else:
            await self.store.mark_requested(did, now)
        await self.sender.send(delivery_task(webhook, event.id, event.type, body, now, source))
        job["counts"]["sent"] += 1
        await self._checkpoint(job)


class JobFailed(Exception):
    """A job cannot go on (its webhook is gone or disabled)."""


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    try:
        return await topic_partitions(consumer, topic)
    except LookupError:
        raise JobFailed(f"topic {topic} has no partitions (does it exist?)") from None
