"""Recover and replay jobs, run by the history process (`python -m registry history`).

- recover: re-send every delivery of the webhook created in [since, until) whose last attempt failed or died,
  oldest first (a resend: same payload, same `webhook-id`).
- replay: re-read `wink.events` and `trippay.events` from the offsets for `since` (Kafka's offsets-for-times)
  up to those for `until`, and send every event of the webhook's entity that matches the webhook NOW and that
  it has not received (no delivery in the history, or only a dead one): events from before it existed or
  while it was disabled. Never a second copy of one delivered, in flight or asked for.

A job works in chunks (about a quarter of a second of its rate, at most CHUNK_MAX tasks): one round of store
lookups for the chunk, its deliveries marked as asked for (so a concurrent or later job skips them), its
tasks produced together and their acks awaited together, then its progress saved (recover: the last delivery
sent; replay: the next offset of each partition) with a heartbeat. Chunks are paced so that a job writes at
most `history_job_rate` tasks/s and live deliveries keep their speed.

A job whose process died is resumed from its saved progress by the next runner. Its unsaved chunk may have
been produced in part or not at all: each delivery a job marks carries the name of the job's run
(`requested_by`), so the resumed run sends again what an earlier run of the same job marked and is still
pending (never skipped), and skips what it marked itself. A job that failed inside a chunk leaves that chunk
marked the same way; the webhook's next job sends those again. That is the only second copy a job makes:
after a process death or a failed job, of at most the one unsaved chunk (and of an event the input log holds
twice), only while no attempt is recorded for it, each with the same `webhook-id` (the receiver's
idempotency key: the deliverer does not deduplicate).

A job starts only once the history holds every attempt and dead letter written before it (the writer's
group has committed past them on `webhooks.attempts` and `webhooks.dlq`): recover reads failures from the
history and replay skips what it shows as received, and the writer may be minutes behind (it holds its
batches while delivery keeps the cores busy). Without that, a recover would miss failures not stored yet
and a replay would send a second copy of a live delivery not stored yet.

A job that cannot go on ends `failed` with the reason: never silently half done. One job per webhook at a
time (a lock document; the API answers 409).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
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
from webhooks_common.kafka import admin_client, start_client, topic_partitions
from webhooks_common.models import InputEvent
from webhooks_common.topics import Topics

log = logging.getLogger(__name__)

Doc = dict[str, Any]
QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
STALE_AFTER_MS = 15_000  # a running job without a heartbeat this long lost its runner
CHUNK_MAX = 200  # tasks in one chunk at most: what a resumed job may send a second time
CHUNK_S = 0.25  # a chunk holds about this long of the job's rate (small chunks at a low rate)
READ_MAX = 500  # records of one poll of the input topics
SAVE_IDLE_S = 1.0  # progress through records for no one is saved this often
HISTORY_POLL_S = 0.5  # how often a job waiting for the history looks again
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
        "run": None,  # `<job id>:<token>` of the runner's run: what it marks as asked for carries it
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


def chunk_size(rate: float) -> int:
    return max(1, min(CHUNK_MAX, int(rate * CHUNK_S)))


def new_run(job_id: str) -> str:
    return f"{job_id}:{uuid.uuid4().hex[:12]}"


def earlier_run(requested_by: object, run: str) -> bool:
    """Marked by another run of the same job (one that died: one job per webhook, one runner per job)."""
    by = str(requested_by or "")
    return by != run and by.rpartition(":")[0] == run.rpartition(":")[0]


def abandoned(requested_by: object, run: str, failed_jobs: frozenset[str]) -> bool:
    """Marked as asked for by a run whose task may never have been produced, and that nobody will finish:
    an earlier run of this job (it died), or a job that failed (it stopped inside a chunk)."""
    by = str(requested_by or "")
    return earlier_run(by, run) or (by != "" and by.rpartition(":")[0] in failed_jobs)


INSERT, MARK, RESEND, SKIP = "insert", "mark", "resend", "skip"


def replay_action(doc: Doc | None, run: str, failed_jobs: frozenset[str] = frozenset()) -> str:
    """What a replay run does with an event the webhook matches, given the webhook's delivery of it and the
    webhook's failed jobs."""
    if doc is None:
        return INSERT  # never sent to this webhook
    status = doc.get("status")
    if status == model.DEAD:
        return MARK  # tried, never received
    if status == model.PENDING and abandoned(doc.get("requested_by"), run, failed_jobs):
        return RESEND  # its run died or failed before its task was surely produced
    return SKIP  # delivered, in flight, or asked for already (by this run too: an event the log holds twice)


def requested_delivery(webhook: Doc, event: InputEvent, body: str, now_ms: int, run: str) -> Doc:
    """The delivery a replay records as asked for before it sends the task."""
    doc = model.requested_delivery(webhook["_id"], webhook["entity_id"], event.id, event.type, body, now_ms)
    return {**doc, "requested_by": run}


class Pacer:
    """At most `rate` sends per second, taken a chunk at a time."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0

    async def wait(self, n: int) -> None:
        """Returns when `n` more may be sent."""
        if n <= 0 or self.rate <= 0:
            return
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + n / self.rate


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
        history_group: str | None = None,
        history_wait_s: float = 600.0,
    ) -> None:
        """`history_group`: the writer's consumer group, whose progress a job waits for (None: no wait)."""
        self.store, self.sender, self.get_webhook = store, sender, get_webhook
        self.topics, self.bootstrap = topics, bootstrap
        self.rate, self.poll_s = rate, poll_s
        self.history_group, self.history_wait_s = history_group, history_wait_s
        self._failed_jobs: frozenset[str] = frozenset()  # of the webhook whose job runs (see `abandoned`)

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
        resumed = job["state"] == RUNNING
        if resumed:
            log.warning("resuming job %s after its runner stopped", jid)
        job["run"] = new_run(jid)
        fields = {"state": RUNNING, "run": job["run"], "heartbeat_ms": int(time.time() * 1000)}
        await self.store.update_job(jid, fields)
        try:
            webhook = await self.get_webhook(job["entity_id"], job["webhook_id"])
            if webhook is None:
                raise JobFailed("the webhook was deleted")
            if not webhook["enabled"]:
                raise JobFailed("the webhook was disabled")
            await self._history_complete(job)
            self._failed_jobs = await self.store.failed_job_ids(job["webhook_id"])
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
        fields.update(counts=job["counts"], missing=job.get("missing"))
        await self.store.update_job(job["_id"], fields)
        await self.store.release_job(job["webhook_id"], job["_id"])

    async def _checkpoint(self, job: Doc) -> None:
        """Save the progress (only ever after the tasks before it are acked by Kafka) with a heartbeat."""
        fields = {k: job.get(k) for k in ("counts", "progress", "missing")}
        await self.store.update_job(job["_id"], {**fields, "heartbeat_ms": int(time.time() * 1000)})

    async def _history_complete(self, job: Doc) -> None:
        """Return once the writer's group has committed past every record on the attempts and dead-letter
        topics as they end now, heartbeating meanwhile; fail the job after `history_wait_s`."""
        if self.history_group is None:
            return
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await start_client(consumer)
        try:
            tps = [
                TopicPartition(topic, p)
                for topic in (self.topics.attempts, self.topics.dlq)
                for p in sorted(await _partitions(consumer, topic))
            ]
            marks = await consumer.end_offsets(tps) if tps else {}
        finally:
            await consumer.stop()
        deadline = time.monotonic() + self.history_wait_s
        beat = time.monotonic()
        async with admin_client(self.bootstrap) as admin:
            while True:
                done = await admin.list_consumer_group_offsets(self.history_group, partitions=tps)
                behind = model.records_behind(marks, {tp: m.offset for tp, m in done.items()})
                if behind == 0:
                    return
                if time.monotonic() > deadline:
                    raise JobFailed(
                        f"the history is {behind} records behind after {self.history_wait_s:g} s "
                        "(is the history writer running?); try again later"
                    )
                if time.monotonic() - beat > STALE_AFTER_MS / 3000:
                    beat = time.monotonic()
                    await self._checkpoint(job)
                await asyncio.sleep(HISTORY_POLL_S)

    # --- recover ------------------------------------------------------------------------------------

    async def _recover(self, job: Doc, webhook: Doc) -> None:
        wid, since, until = job["webhook_id"], job["since_ms"], job["until_ms"]
        stored = await self.store.webhook_hours(wid)
        hours = sorted(h for h in stored if model.hour_of(since) <= h <= model.hour_of(until))
        done = tuple(job["progress"]) if job["progress"] else None  # (created_ms, id) of the last one sent
        # what a dead run's unsaved chunk or a failed job's last chunk marked is pending, no longer failed
        # or dead: sent again (see `abandoned`); other pending ones are in flight
        statuses = (model.FAILED, model.DEAD, model.PENDING)
        size, pacer = chunk_size(self.rate), Pacer(self.rate)
        for hour in hours:
            run, failed_jobs = job["run"], self._failed_jobs
            found = [
                d
                for d in await self.store.deliveries_with_status(wid, hour, statuses, stored[hour])
                if d["status"] != model.PENDING or abandoned(d.get("requested_by"), run, failed_jobs)
            ]
            todo = sorted(
                (d for d in found if since <= d["created_ms"] < until and (done is None or _key(d) > done)),
                key=_key,
            )
            for i in range(0, len(todo), size):
                await self._recover_chunk(job, webhook, todo[i : i + size], pacer)

    async def _recover_chunk(self, job: Doc, webhook: Doc, chunk: list[Doc], pacer: Pacer) -> None:
        ready = [d for d in chunk if d.get("payload")]  # the others' payload was not kept
        await pacer.wait(len(ready))
        now = int(time.time() * 1000)
        await self.store.mark_requested_many(ready, now, job["run"])
        await self.sender.send_many(
            [delivery_task(webhook, d["event_id"], d["event_type"], d["payload"], now) for d in ready]
        )
        counts = job["counts"]
        counts["considered"] += len(chunk)
        counts["sent"] += len(ready)
        counts["skipped"] += len(chunk) - len(ready)
        job["progress"] = [chunk[-1]["created_ms"], chunk[-1]["_id"]]
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
        size, pacer = chunk_size(self.rate), Pacer(self.rate)
        chunk: list[tuple[InputEvent, str]] = []
        saved_at = time.monotonic()
        empty_polls = 0
        while active:
            batch = await consumer.getmany(*active, timeout_ms=1000, max_records=READ_MAX)
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
                        p["next"] = p["stop"]  # nothing before it is left (the last may be a marker)
                        break
                    if rec.offset == p["begin"] and p["begin"] > 0 and rec.timestamp > since:
                        # the records before this one were removed by retention: part of the window is gone
                        gone = max((job.get("missing") or {}).get("until_ms") or 0, min(rec.timestamp, until))
                        job["missing"] = {"since_ms": since, "until_ms": gone}
                    if since <= rec.timestamp < until:
                        event = _wanted(webhook, rec.value)
                        if event is not None:
                            chunk.append((event, self.topics.source_of(tp.topic)))
                    # saved with the chunk that holds it: a record is never passed before its task is acked
                    p["next"] = rec.offset + 1
                    if len(chunk) >= size:
                        await self._replay_chunk(job, webhook, chunk, pacer)
                        chunk, saved_at = [], time.monotonic()
                if p["next"] >= p["stop"]:
                    active.pop(tp, None)
                    consumer.pause(tp)
            if chunk or time.monotonic() - saved_at >= SAVE_IDLE_S:
                await self._replay_chunk(job, webhook, chunk, pacer)
                chunk, saved_at = [], time.monotonic()

    async def _replay_chunk(
        self, job: Doc, webhook: Doc, events: list[tuple[InputEvent, str]], pacer: Pacer
    ) -> None:
        """Send the chunk's events that the webhook has not received, then save the job's progress."""
        run = job["run"]
        wanted: dict[str, tuple[InputEvent, str]] = {}
        for event, source in events:  # an event the log holds twice is sent once
            wanted.setdefault(model.delivery_id(webhook["_id"], event.id), (event, source))
        fields = {"status": 1, "requested_by": 1, "bucket": 1}
        known = await self.store.deliveries_by_id(list(wanted), fields=fields)
        actions = {did: replay_action(known.get(did), run, self._failed_jobs) for did in wanted}
        to_send = [did for did, action in actions.items() if action != SKIP]
        await pacer.wait(len(to_send))
        now = int(time.time() * 1000)
        bodies = {did: render_body(wanted[did][0]) for did in to_send}
        # recorded as asked for before they are sent: a concurrent or later job skips them
        raced = await self.store.insert_requested_many(
            [
                requested_delivery(webhook, wanted[did][0], bodies[did], now, run)
                for did in to_send
                if actions[did] == INSERT
            ]
        )
        await self.store.mark_requested_many(
            [known[did] for did in to_send if actions[did] != INSERT], now, run
        )
        tasks = []
        for did in to_send:
            if did in raced:
                continue  # a live delivery recorded meanwhile
            event, source = wanted[did]
            tasks.append(delivery_task(webhook, event.id, event.type, bodies[did], now, source))
        await self.sender.send_many(tasks)
        counts = job["counts"]
        counts["considered"] += len(events)
        counts["sent"] += len(tasks)
        counts["skipped"] += len(events) - len(tasks)
        await self._checkpoint(job)


def _key(delivery: Doc) -> tuple[int, str]:
    """A recover's order: oldest first."""
    return delivery["created_ms"], delivery["_id"]


def _wanted(webhook: Doc, raw: bytes | None) -> InputEvent | None:
    """The input event, if it is of the webhook's entity and a type it takes now."""
    if raw is None:
        return None
    try:
        event = InputEvent.from_bytes(raw)
    except ValidationError:
        return None  # the router set it aside too
    if event.entity_id != webhook["entity_id"] or not is_known_type(event.type):
        return None
    if not event_list_matches(list(webhook.get("event_list") or []), event.type):
        return None
    return event


class JobFailed(Exception):
    """A job cannot go on (its webhook is gone or disabled)."""


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    try:
        return await topic_partitions(consumer, topic)
    except LookupError:
        raise JobFailed(f"topic {topic} has no partitions (does it exist?)") from None
