"""The delivery history over the real stack: the registry's API (in-process), the deliverer (in-process),
the history writer, real Kafka, the real store and a loopback receiver. The router's part (an input event
becoming a task) is played by writing the task it would write."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest
from click.testing import CliRunner
from pymongo import monitoring

from deliverer.app import Deliverer
from registry.history import model
from registry.history.jobs import JobRunner, new_job, render_body, requested_delivery
from registry.history.send import TaskSender
from registry.history.store import HistoryStore
from registry.history.writer import HistoryWriter, WriterProcess
from registry.settings import RegistrySettings
from tests.conftest import eventually
from tests.integration import test_registry_helpers as helpers
from tests.integration.test_deliverer_helpers import deliverer_settings
from tests.integration.test_registry_helpers import Api, registry_api
from tests.servers import Servers
from tests.support import factories
from tests.support.kafka import read_topic
from tests.support.receiver import Received, Receiver, Reply
from webhooks_cli.main import cli
from webhooks_common.kafka import make_producer, started
from webhooks_common.models import DeliveryTask, InputEvent
from webhooks_common.topics import Topics
from webhooks_common.wire import AttemptRecord

make_settings = helpers.make_settings


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rx:
        yield rx


@dataclass
class HistoryStack:
    """The registry API, the history writer and a deliverer on the shared servers: one test's stack."""

    make_settings: Callable[..., RegistrySettings]
    servers: Servers
    topics: Topics
    group_id: str
    secrets_key: str

    @asynccontextmanager
    async def start(
        self, *, retry_schedule: str = "0,0.5,0.5", **over: Any
    ) -> AsyncIterator[tuple[Api, WriterProcess]]:
        settings = self.make_settings(
            allow_http=True,
            allow_private_targets=True,
            history_port=0,
            history_host="127.0.0.1",
            history_group=f"hist-{uuid.uuid4().hex[:8]}",
            history_flush_s=0.05,
            **over,
        )
        dsettings = deliverer_settings(
            self.servers.kafka, self.topics, self.group_id, self.secrets_key, retry_schedule=retry_schedule
        )
        async with (
            registry_api(settings) as api,
            WriterProcess(settings) as writer,
            Deliverer(dsettings),
        ):
            yield api, writer

    async def route(self, *tasks: DeliveryTask) -> None:
        """Write delivery tasks as the router would."""
        async with started(make_producer(self.servers.kafka)) as producer:
            for t in tasks:
                await producer.send_and_wait(self.topics.deliveries, t.to_bytes(), key=t.url.encode())


@pytest.fixture
def hist(
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    group_id: str,
    secrets_key: str,
) -> HistoryStack:
    return HistoryStack(make_settings, servers, topics, group_id, secrets_key)


def task_for(
    hook: dict[str, Any], event_type: str = "booking.create", event_id: str | None = None
) -> DeliveryTask:
    """What the router writes for one event and this webhook."""
    ev = event_id or f"ev-{uuid.uuid4().hex[:10]}"
    entity = hook["ownerIdentifier"]
    event = {
        "id": ev,
        "type": event_type,
        "timestamp": "2026-11-30T19:00:00Z",
        "entityId": entity,
        "data": {},
    }
    body = orjson.dumps(event).decode()
    return DeliveryTask(
        task_id=f"{ev}:{hook['id']}",
        event_id=ev,
        event_type=event_type,
        entity_id=hook["ownerIdentifier"],
        webhook_id=hook["id"],
        webhook_version=hook["version"],
        url=hook["eventUrl"],
        body=body,
        entered_at_ms=int(time.time() * 1000),
    )


async def delivery_items(api: Api, hook_id: str, query: str = "") -> list[dict[str, Any]]:
    status, body, _ = await api.call("GET", api.path(f"/{hook_id}/delivery/list{query}"))
    assert status == 200, body
    return list(body["items"])


async def test_history_shows_what_the_receiver_got_and_answered_then_resend_and_test(
    hist: HistoryStack, receiver: Receiver
) -> None:
    receiver.script("/hook", [Reply(500, body=b"boom, try later")])  # then 204
    async with hist.start() as (api, writer):
        hook = await api.create(eventUrl=receiver.url("/hook"), eventList=["booking.created"])
        task = task_for(hook)
        await hist.route(task)

        async def succeeded() -> list[dict[str, Any]] | None:
            items = await delivery_items(api, hook["id"])
            return items if items and items[0]["status"] == "succeeded" else None

        items = await eventually(succeeded, what="the delivery shown as succeeded")
        assert len(items) == 1
        item = items[0]
        assert (item["eventId"], item["eventType"], item["attempts"], item["lastStatusCode"]) == (
            task.event_id,
            "booking.create",
            2,
            204,
        )
        got = receiver.requests("/hook")
        assert len(got) == 2 and got[0].webhook_id == got[1].webhook_id == task.task_id

        status, detail, _ = await api.call("GET", api.path(f"/{hook['id']}/delivery/{task.event_id}"))
        assert status == 200, detail
        assert detail["payload"] == orjson.loads(got[0].body) == orjson.loads(task.body)
        attempts = detail["attempts"]
        assert [(a["attempt"], a["outcome"], a["statusCode"]) for a in attempts] == [
            (1, "retry", 500),
            (2, "success", 204),
        ]
        assert attempts[0]["responseBody"] == "boom, try later"
        assert all(a["durationMs"] > 0 for a in attempts)

        # resend: a new chain, the same webhook-id
        status, body, _ = await api.call("POST", api.path(f"/{hook['id']}/delivery/{task.event_id}/resend"))
        assert status == 202 and body == {"eventId": task.event_id, "status": "pending"}, body
        await eventually(lambda: len(receiver.requests("/hook")) >= 3, what="the resend")
        third = receiver.requests("/hook")[2]
        assert third.webhook_id == task.task_id and third.body == task.body.encode()

        async def three_attempts() -> bool:
            items = await delivery_items(api, hook["id"])
            return items[0]["attempts"] == 3 and items[0]["status"] == "succeeded"

        await eventually(three_attempts, what="the resent attempt in the history")

        # a test event through the normal path
        status, body, _ = await api.call("POST", api.path(f"/{hook['id']}/test"), json={})
        assert status == 202, body
        test_id = body["eventId"]
        await eventually(lambda: len(receiver.requests("/hook")) >= 4, what="the test event")
        sent = orjson.loads(receiver.requests("/hook")[3].body)
        assert sent["id"] == test_id and sent["test"] is True and sent["type"] == "booking.create"

        async def test_succeeded() -> bool:
            items = await delivery_items(api, hook["id"])
            return [i["status"] for i in items if i["eventId"] == test_id] == ["succeeded"]

        await eventually(test_succeeded, what="the test delivery succeeded")
        items = await delivery_items(api, hook["id"])
        assert [i["eventId"] for i in items] == [test_id, task.event_id]  # newest first

        status, stats, _ = await api.call("GET", api.path(f"/{hook['id']}/stats"))
        assert status == 200, stats
        hour = stats["lastHour"]
        assert (hour["attempts"], hour["successes"], hour["failures"]) == (4, 3, 1)
        assert hour["successRate"] == 0.75 and hour["lastFailure"]["statusCode"] == 500
        assert stats["lastDay"]["attempts"] == 4

        async def writer_metrics() -> str:
            async with api.session.get(f"http://127.0.0.1:{writer.port}/metrics") as resp:
                return await resp.text()

        metrics = await eventually(
            lambda: _with(writer_metrics(), "history_writer_lag_records 0.0"), what="the writer caught up"
        )
        assert 'history_writer_records_total{kind="attempt"} 4.0' in metrics

        # the same through whctl (blocking HTTP: in a thread, the API runs on this loop)
        def whctl(*args: str) -> Any:
            opts = ("--entity", api.entity, "--api", api.base, "--token", api.token)
            result = CliRunner().invoke(cli, ["--json", "webhooks", *args, *opts])
            assert result.exit_code == 0, result.output
            return json.loads(result.output)

        page = await asyncio.to_thread(whctl, "deliveries", hook["id"], "--status", "succeeded")
        assert [i["eventId"] for i in page["items"]] == [test_id, task.event_id]
        detail = await asyncio.to_thread(whctl, "delivery", hook["id"], task.event_id)
        assert len(detail["attempts"]) == 3
        assert (await asyncio.to_thread(whctl, "stats", hook["id"]))["lastDay"]["attempts"] == 4
        assert (await asyncio.to_thread(whctl, "secret", hook["id"]))["secret"].startswith("whsec_")
        resent = await asyncio.to_thread(whctl, "resend", hook["id"], task.event_id)
        assert resent["eventId"] == task.event_id

        # another entity's webhook does not exist for this caller
        other = Api(api.base, api.session, str(uuid.uuid4()))
        status, body, resp = await other.call("GET", other.path(f"/{hook['id']}/delivery/list"))
        assert status == 404 and resp.content_type == "application/problem+json"


async def _with(text: Awaitable[str], part: str) -> str | None:
    got = await text
    return got if part in got else None


async def test_the_writer_holds_its_batches_while_the_host_is_busy_and_deliveries_flow(
    hist: HistoryStack, receiver: Receiver
) -> None:
    # thresholds at 0: every reading counts as a full host with deliveries flowing, so each batch waits its
    # longest (3 s) and is then stored anyway
    async with hist.start(history_yield_cpu=0.0, history_yield_rate=0.0, history_yield_max_s=3.0) as (
        api,
        writer,
    ):
        governor = writer.writer.governor
        await eventually(lambda: None not in (governor.rate, governor.busy), what="the first readings")
        hook = await api.create(eventUrl=receiver.url("/hook"))
        task = task_for(hook)
        await hist.route(task)
        await eventually(lambda: receiver.requests("/hook"), what="the delivery")
        delivered = time.monotonic()

        async def stored() -> bool:
            return bool(await delivery_items(api, hook["id"]))

        await eventually(stored, timeout=30, what="the delivery in the history after the hold")
        assert time.monotonic() - delivered >= 2.5
        held = writer.writer.metrics.registry.get_sample_value("history_writer_held_seconds_total")
        assert held is not None and held >= 2.5


async def test_sustained_failure_disables_the_webhook(hist: HistoryStack, receiver: Receiver) -> None:
    receiver.always("/down", Reply(503))
    async with hist.start(
        retry_schedule="0,0.5,0.5,0.5,0.5,0.5,0.5,0.5",
        history_auto_disable_after_s=2.0,
    ) as (api, _writer):
        hook = await api.create(eventUrl=receiver.url("/down"), eventList=["booking.created"])
        await hist.route(task_for(hook))

        async def disabled() -> dict[str, Any] | None:
            status, body, _ = await api.call("GET", api.path(f"/{hook['id']}"))
            return body if status == 200 and body["enabled"] is False else None

        record = await eventually(disabled, timeout=30, what="the webhook disabled")
        assert record["version"] == hook["version"] + 1
        assert record["disabledReason"].startswith("every delivery attempt failed since"), record
        status, enabled, _ = await api.call("PATCH", api.path(f"/{hook['id']}"), json={"enabled": True})
        assert status == 200 and enabled["enabled"] is True and enabled["disabledReason"] is None, enabled
    assert len(receiver.requests("/down")) >= 4  # failing for 2 s at a 0.5 s retry pace


def attempt(
    hook_id: str, entity: str, event: str, n: int, at_ms: int, outcome: str, status: int
) -> AttemptRecord:
    kind = "booking.cancel" if event.endswith(("1", "3", "5", "7", "9")) else "booking.create"
    body = orjson.dumps({"id": event}).decode() if n == 1 else None
    return factories.attempt_record(
        event, hook_id, n, at_ms, outcome, status=status, entity_id=entity, event_type=kind, body=body
    )


async def test_list_pages_newest_first_filters_and_retention_on_the_real_store(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    settings = make_settings(history_auto_disable_after_s=0)
    store = HistoryStore(settings.mongo_url, settings.database)
    await store.ensure_indexes()
    writer = HistoryWriter(settings, store, cast(Any, None))  # no producer: auto-disable is off
    try:
        async with registry_api(settings) as api:
            hook = await api.create()
            wid, entity = hook["id"], hook["ownerIdentifier"]
            start = (int(time.time() * 1000) // 3_600_000 - 3) * 3_600_000  # three whole hours ago
            recs: list[AttemptRecord] = []
            expected: list[tuple[int, str, str]] = []  # (created, event, status)
            for i in range(15):
                created = start + (i // 5) * 3_600_000 + (i % 5) * 60_000
                ev = f"ev{i:02d}"
                if i % 3 == 0:
                    recs.append(attempt(wid, entity, ev, 1, created, "retry", 500))
                    expected.append((created, ev, "failed"))
                else:
                    recs += [
                        attempt(wid, entity, ev, 1, created, "retry", 502),
                        attempt(wid, entity, ev, 2, created + 1000, "success", 200),
                    ]
                    expected.append((created, ev, "succeeded"))
            # every first attempt failed: all 15 are listed as failed until their second attempts are stored
            await writer.store_batch([r for r in recs if r.attempt == 1], [])
            assert len(await delivery_items(api, wid, "?status=failed&limit=100")) == 15
            await writer.store_batch(recs[:10], [])
            await writer.store_batch(recs[5:], [])  # overlapping: a re-consumed part changes nothing
            newest_first = [e for _, e, _ in sorted(expected, reverse=True)]

            seen: list[str] = []
            query = "?limit=4"
            while True:
                status, page, _ = await api.call("GET", api.path(f"/{wid}/delivery/list{query}"))
                assert status == 200, page
                seen += [i["eventId"] for i in page["items"]]
                if page["nextCursor"] is None:
                    break
                query = f"?limit=4&cursor={page['nextCursor']}"
            assert seen == newest_first

            items = await delivery_items(api, wid, "?limit=100")
            by_id = {i["eventId"]: i for i in items}
            assert (
                by_id["ev04"]["attempts"] == 2 and by_id["ev03"]["attempts"] == 1
            )  # stored twice, counted once
            failed = await delivery_items(api, wid, "?status=failed")
            assert [i["eventId"] for i in failed] == [e for e in newest_first if int(e[2:]) % 3 == 0]
            assert {i["status"] for i in failed} == {"failed"} and failed[0]["lastStatusCode"] == 500
            # failed first, then succeeded: listed as succeeded alone; asked for again: as pending alone
            succeeded = await delivery_items(api, wid, "?status=succeeded")
            assert [i["eventId"] for i in succeeded] == [e for e in newest_first if int(e[2:]) % 3 != 0]
            asked = await store.delivery(wid, "ev04")
            assert asked is not None
            await store.mark_requested(asked["_id"], asked["bucket"], int(time.time() * 1000))
            assert [i["eventId"] for i in await delivery_items(api, wid, "?status=pending")] == ["ev04"]
            assert "ev04" not in [i["eventId"] for i in await delivery_items(api, wid, "?status=succeeded")]
            cancels = await delivery_items(api, wid, "?eventType=booking.cancel")
            assert [i["eventId"] for i in cancels] == [e for e in newest_first if int(e[2:]) % 2 == 1]
            since = datetime.fromtimestamp((start + 3_600_000) / 1000, UTC).isoformat()
            until = datetime.fromtimestamp((start + 3_600_000 + 120_000) / 1000, UTC).isoformat()
            window = await delivery_items(api, wid, f"?since={since}&until={until}".replace("+", "%2B"))
            assert [i["eventId"] for i in window] == ["ev06", "ev05"]

            for bad in ("?status=nope", "?limit=0", "?limit=x", "?cursor=garbage", "?since=yesterday"):
                status, body, resp = await api.call("GET", api.path(f"/{wid}/delivery/list{bad}"))
                assert status == 400 and resp.content_type == "application/problem+json", (bad, body)

            # retention: with the clock two hours on, the oldest hour is past a 3.5-hour retention
            removed = await store.prune(start + 5 * 3_600_000 + 1, retention_days=3.5 / 24)
            assert removed == 5
            left = await delivery_items(api, wid, "?limit=100")
            assert [i["eventId"] for i in left] == newest_first[:10]
            assert await store.attempts_of(f"{wid}:ev00") == []
            assert await store.prune(start + 5 * 3_600_000 + 1, retention_days=3.5 / 24) == 0
    finally:
        await store.close()


async def test_the_store_reads_several_hours_and_many_ids_in_one_query_each(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    """What a page's wave and the writer's lookup ask the store: hours together by their buckets, with a
    status by their status buckets (an hour stored before `bucket` existed by webhook and hour, one stored
    before `status_bucket` by bucket and status; a cursor bounding only its own hour), and `_id`s beyond one
    query's chunk; the results as if asked one by one. And the indexes of before `bucket` go."""
    settings = make_settings()
    store = HistoryStore(settings.mongo_url, settings.database)
    await store.deliveries.create_index("status")  # as a version before `bucket` made it
    await store.ensure_indexes()
    try:
        assert "status_1" not in await store.deliveries.index_information()
        hours = [model.hour_of(h * 3_600_000) for h in (500_003, 500_002, 500_001, 500_000)]  # newest first
        layouts = dict(
            zip(hours, (model.BY_STATUS, model.UNKEYED, model.KEYED, model.BY_STATUS), strict=True)
        )

        def stored_as(hour: str, status: str) -> dict[str, Any]:
            """What the version that first stored the hour wrote."""
            bucket = model.bucket_of("w", hour)
            if layouts[hour] == model.UNKEYED:
                return {"status": status}
            if layouts[hour] == model.KEYED:
                return {"status": status, "bucket": bucket}
            return {"bucket": bucket, **model.status_fields(bucket, status)}

        docs: list[dict[str, Any]] = [
            {
                "_id": f"w:{h}:{i}",
                "webhook_id": "w",
                "hour": hour,
                "created_ms": model.hour_start_ms(hour) + i * 1000,
                **stored_as(hour, "failed" if i % 2 else "succeeded"),
            }
            for h, hour in enumerate(hours)
            for i in range(4)
        ]
        other = {**docs[0], "_id": "x:0", "webhook_id": "x", "bucket": model.bucket_of("x", hours[0])}
        other.update(model.status_fields(other["bucket"], "failed"))
        await store.deliveries.insert_many([*docs, other])
        walk = sorted(docs, key=lambda d: (d["hour"], d["created_ms"]), reverse=True)

        async def read(hs: list[str], limit: int, **kw: Any) -> list[str]:
            args: dict[str, Any] = {"status": None, "event_type": None, "cursor": None, "layouts": layouts}
            found = await store.deliveries_in_hours(
                "w", hs, **{**args, "since_ms": None, "until_ms": None, **kw, "limit": limit}
            )
            return [d["_id"] for d in found]

        assert await read(hours, 100) == [d["_id"] for d in walk]
        assert await read(hours, 6) == [d["_id"] for d in walk[:6]]
        for status in ("failed", "succeeded"):
            assert await read(hours, 100, status=status) == [d["_id"] for d in walk if d["status"] == status]
            assert await read(hours[:1], 100, status=status) == [
                d["_id"] for d in walk if d["hour"] == hours[0] and d["status"] == status
            ]
        assert (
            await read(hours[1:], 3, status="failed")
            == [d["_id"] for d in walk if d["hour"] != hours[0] and d["status"] == "failed"][:3]
        )
        # a stale status bucket (an older version set the status alone) lists nothing under its old status
        await store.deliveries.update_one({"_id": "w:0:1"}, {"$set": {"status": "succeeded"}})
        assert "w:0:1" not in await read(hours[:1], 100, status="failed")
        assert await read(hours, 100, layouts=None) == [d["_id"] for d in walk if d["hour"] != hours[1]]
        cut = walk[5]  # the second newest of the second hour
        cursor = model.Cursor(cut["hour"], cut["created_ms"], cut["_id"])
        assert await read(hours, 100, cursor=cursor) == [d["_id"] for d in walk if d not in walk[4:6]]

        ids = [
            f"w:{h}:{i}" for h in range(4) for i in range(100, -1, -1)
        ]  # w:2:* and w:3:* past the first chunk
        found = await store.deliveries_by_id(ids, fields={"status": 1})
        assert sorted(found) == sorted(d["_id"] for d in docs)
        assert found["w:2:1"] == {"_id": "w:2:1", "status": "failed"}
    finally:
        await store.close()


async def _job_done(api: Api, hook_id: str, job_id: str) -> dict[str, Any] | None:
    status, job, _ = await api.call("GET", api.path(f"/{hook_id}/job/{job_id}"))
    assert status == 200, job
    return job if job["state"] in ("succeeded", "failed") else None


async def test_recover_resends_exactly_the_failed_ones_oldest_first_one_job_at_a_time(
    hist: HistoryStack, receiver: Receiver
) -> None:
    failing: set[str] = set()

    def answer(req: Received) -> Reply:
        return Reply(500) if orjson.loads(req.body)["id"] in failing else Reply(204)

    receiver.always("/r", answer)
    async with hist.start(retry_schedule="0", history_job_rate=4) as (api, _writer):
        hook = await api.create(eventUrl=receiver.url("/r"), eventList=["booking.created"])
        tasks = [task_for(hook) for _ in range(4)]
        failing.update({tasks[0].event_id, tasks[2].event_id})
        for t in tasks:  # one at a time: their creation order is their order in the history
            await hist.route(t)
            await eventually(lambda t=t: [r for r in receiver.requests("/r") if r.webhook_id == t.task_id])

        async def statuses() -> dict[str, str] | None:
            items = {i["eventId"]: i["status"] for i in await delivery_items(api, hook["id"])}
            return items if len(items) == 4 and "failed" not in items.values() else None

        got = await eventually(statuses, what="two dead, two succeeded")
        assert sorted(got.values()) == ["dead", "dead", "succeeded", "succeeded"]
        failing.clear()
        before = len(receiver.requests("/r"))

        since = datetime.fromtimestamp(time.time() - 600, UTC).isoformat()
        status, job, _ = await api.call("POST", api.path(f"/{hook['id']}/recover"), json={"since": since})
        assert status == 202 and job["state"] == "queued" and job["kind"] == "recover", job
        status, body, _ = await api.call("POST", api.path(f"/{hook['id']}/replay"), json={"since": since})
        assert status == 409 and job["jobId"] in body["detail"], body

        done = await eventually(lambda: _job_done(api, hook["id"], job["jobId"]), what="the recover job")
        assert done["state"] == "succeeded" and done["counts"] == {"considered": 2, "sent": 2, "skipped": 0}
        await eventually(lambda: len(receiver.requests("/r")) >= before + 2, what="two resends")
        again = [r.webhook_id for r in receiver.requests("/r")[before:]]
        assert again == [tasks[0].task_id, tasks[2].task_id]  # exactly the failed ones, oldest first

        async def all_succeeded() -> bool:
            items = await delivery_items(api, hook["id"])
            return {i["status"] for i in items} == {"succeeded"}

        await eventually(all_succeeded, what="every delivery succeeded")
        # the lock is gone with the job: another may start
        status, body, _ = await api.call("POST", api.path(f"/{hook['id']}/recover"), json={"since": since})
        assert status == 202, body
        done = await eventually(lambda: _job_done(api, hook["id"], body["jobId"]), what="an empty recover")
        assert done["counts"]["sent"] == 0
    assert len(receiver.requests("/r")) == before + 2


async def test_a_job_waits_until_the_history_holds_what_was_delivered_before_it(
    hist: HistoryStack, receiver: Receiver
) -> None:
    # the writer holds every batch 3 s (as when delivery keeps the cores busy): a recover asked for right
    # after a failure must still find it, not read a history that does not show it yet
    answers = {"n": 0}

    def answer(_req: Received) -> Reply:
        answers["n"] += 1
        return Reply(500) if answers["n"] == 1 else Reply(204)

    receiver.always("/r", answer)
    over = {"history_yield_cpu": 0.0, "history_yield_rate": 0.0, "history_yield_max_s": 3.0}
    async with hist.start(retry_schedule="0", **over) as (api, writer):
        governor = writer.writer.governor
        await eventually(lambda: None not in (governor.rate, governor.busy), what="the first readings")
        hook = await api.create(eventUrl=receiver.url("/r"))
        task = task_for(hook)
        await hist.route(task)
        await eventually(lambda: len(receiver.requests("/r")) == 1, what="the attempt, answered 500: dead")
        assert await delivery_items(api, hook["id"]) == []  # not stored yet: the writer holds its batch

        since = datetime.fromtimestamp(time.time() - 600, UTC).isoformat()
        status, job, _ = await api.call("POST", api.path(f"/{hook['id']}/recover"), json={"since": since})
        assert status == 202, job
        done = await eventually(lambda: _job_done(api, hook["id"], job["jobId"]), what="the recover job")
        assert done["state"] == "succeeded" and done["counts"]["sent"] == 1, done
        await eventually(lambda: len(receiver.requests("/r")) == 2, what="the resend")
        assert receiver.requests("/r")[1].webhook_id == task.task_id


def input_event(entity: str, event_type: str = "booking.create") -> tuple[str, bytes]:
    ev = f"in-{uuid.uuid4().hex[:10]}"
    return ev, factories.input_event(ev, entity, event_type, {"n": 1}, occurred_at="2026-11-30T19:00:00Z")


async def test_replay_sends_what_came_before_the_webhook_and_while_disabled_and_nothing_twice(
    hist: HistoryStack, receiver: Receiver
) -> None:
    entity = str(uuid.uuid4())
    t0 = time.time()

    async def publish(*events: tuple[str, bytes], entity_key: str = entity) -> None:
        async with started(make_producer(hist.servers.kafka)) as producer:
            for _, value in events:
                await producer.send_and_wait(hist.topics.wink_events, value, key=entity_key.encode())

    before = [input_event(entity), input_event(entity)]
    await publish(*before)  # no webhook yet
    async with hist.start() as (any_api, _writer):
        api = Api(any_api.base, any_api.session, entity)  # a token for this entity
        hook = await api.create(eventUrl=receiver.url("/p"), eventList=["booking.created"])
        live_id, live_value = input_event(entity)
        await publish((live_id, live_value))
        await hist.route(task_for(hook, event_id=live_id))  # what the router made of it
        await eventually(lambda: receiver.requests("/p"), what="the live delivery")

        async def live_recorded() -> bool:
            return [i["eventId"] for i in await delivery_items(api, hook["id"])] == [live_id]

        await eventually(live_recorded, what="the live delivery in the history")
        status, off, _ = await api.call("PATCH", api.path(f"/{hook['id']}"), json={"enabled": False})
        assert status == 200 and off["enabled"] is False
        while_off = [input_event(entity)]
        other_type = input_event(entity, "managing_entity.created")
        other_entity = input_event("someone-else")
        await publish(*while_off, other_type)
        await publish(other_entity, entity_key="someone-else")
        status, on, _ = await api.call("PATCH", api.path(f"/{hook['id']}"), json={"enabled": True})
        assert status == 200 and on["enabled"] is True

        since = datetime.fromtimestamp(t0 - 5, UTC).isoformat()
        status, job, _ = await api.call("POST", api.path(f"/{hook['id']}/replay"), json={"since": since})
        assert status == 202, job
        done = await eventually(lambda: _job_done(api, hook["id"], job["jobId"]), what="the replay job")
        assert done["state"] == "succeeded", done
        assert done["counts"] == {"considered": 4, "sent": 3, "skipped": 1}
        assert done["missing"] is None
        want = {ev for ev, _ in before + while_off}
        await eventually(lambda: len(receiver.requests("/p")) >= 4, what="three replayed events")

        async def recorded() -> bool:
            items = await delivery_items(api, hook["id"])
            return len(items) == 4 and {i["status"] for i in items} == {"succeeded"}

        await eventually(recorded, what="the replayed deliveries in the history")
    ids = [orjson.loads(r.body)["id"] for r in receiver.requests("/p")]
    assert sorted(ids) == sorted([live_id, *want])  # each once: the live one not again, no other type/entity
    first = orjson.loads(next(r.body for r in receiver.requests("/p") if orjson.loads(r.body)["id"] in want))
    assert first["timestamp"] == "2026-11-30T19:00:00Z" and first["data"] == {"n": 1}


async def test_a_job_whose_runner_died_resumes_after_what_it_had_done(
    make_settings: Callable[..., RegistrySettings], servers: Servers, topics: Topics
) -> None:
    settings = make_settings(history_auto_disable_after_s=0)
    store = HistoryStore(settings.mongo_url, settings.database)
    await store.ensure_indexes()
    writer = HistoryWriter(settings, store, cast(Any, None))
    sender = TaskSender(servers.kafka, topics.deliveries)
    webhook = {
        "_id": "w1",
        "entity_id": "ent",
        "enabled": True,
        "version": 3,
        "event_url": "https://x.example/h",
    }

    async def get_webhook(entity: str, wid: str) -> dict[str, Any] | None:
        return webhook if (entity, wid) == ("ent", "w1") else None

    runner = JobRunner(store, sender, get_webhook, topics, servers.kafka, rate=1000)
    try:
        now = int(time.time() * 1000)
        dead = [attempt("w1", "ent", f"ev{i}", 1, now - 60_000 + i, "dead", 500) for i in range(3)]
        await writer.store_batch(dead, [])
        job = new_job("j1", "recover", webhook, now - 120_000, now, now - 30_000)
        # it was running, sent ev0, checkpointed, and its process died (no heartbeat for 30 s)
        job.update(state="running", heartbeat_ms=now - 30_000, progress=[now - 60_000, "w1:ev0"])
        job["counts"].update(considered=1, sent=1)
        assert await store.create_job(job) is None
        assert (await store.create_job(new_job("j2", "replay", webhook, 0, now, now)) or {}).get(
            "_id"
        ) == "j1"

        await runner.run_due()
        done = await store.job("w1", "j1")
        assert done is not None and done["state"] == "succeeded", done
        assert done["counts"] == {"considered": 3, "sent": 3, "skipped": 0}
        recs = await read_topic(servers.kafka, topics.deliveries, until=lambda r: len(r) >= 2, timeout=5)
        sent = [DeliveryTask.from_bytes(r.value) for r in recs]
        assert [(t.event_id, t.task_id, t.webhook_version, t.url) for t in sent] == [
            ("ev1", "ev1:w1", 3, "https://x.example/h"),
            ("ev2", "ev2:w1", 3, "https://x.example/h"),
        ]
        assert (
            await store.create_job(new_job("j3", "replay", webhook, 0, now, now))
        ) is None  # lock released
    finally:
        await sender.close()
        await store.close()


class UpdateSizes(monitoring.CommandListener):
    """The number of statements of every `update` command sent (and of every `insert`, in `inserts`)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.inserts: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.sizes.append(len(event.command.get("updates", [])))
        elif event.command_name == "insert":
            self.inserts.append(len(event.command.get("documents", [])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_the_writer_never_sends_a_bulk_update_which_freezes_ferretdb(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    """FerretDB v1.24 on PostgreSQL stops answering every client on an `update` command of ~50 statements
    (45 pass, 50 hang): the writer updates known deliveries one command each. Checked at 30 deliveries, below
    the freezing size, so that this test fails without freezing the shared server."""
    settings = make_settings(history_auto_disable_after_s=0)
    sizes = UpdateSizes()
    store = HistoryStore(settings.mongo_url, settings.database, listeners=[sizes])
    await store.ensure_indexes()
    writer = HistoryWriter(settings, store, cast(Any, None))
    try:
        now = int(time.time() * 1000)
        first = [attempt("w1", "ent", f"ev{i}", 1, now + i, "retry", 503) for i in range(30)]
        second = [attempt("w1", "ent", f"ev{i}", 2, now + 1000 + i, "success", 200) for i in range(30)]
        await writer.store_batch(first, [])
        await writer.store_batch(second, [])
        docs = [await store.delivery("w1", f"ev{i}") for i in range(30)]
        assert all(d is not None and (d["attempts"], d["status"]) == (2, "succeeded") for d in docs)
        assert sizes.sizes and max(sizes.sizes) == 1, sizes.sizes
    finally:
        await store.close()


@dataclass
class JobKit:
    """A job runner on the real store and Kafka, for a webhook that takes every booking event of `entity`."""

    store: HistoryStore
    writer: HistoryWriter
    runner: JobRunner
    webhook: dict[str, Any]
    sizes: UpdateSizes
    kafka: str
    topics: Topics

    async def publish(self, events: list[tuple[str, bytes]]) -> None:
        async with started(make_producer(self.kafka)) as producer:
            acks = [await producer.send(self.topics.wink_events, value, key=b"k") for _, value in events]
            await asyncio.gather(*acks)

    async def publish_own(self, n: int) -> tuple[int, int, list[str], list[InputEvent]]:
        """n events of the webhook's entity on wink.events: a `since` before them, a `now` after, their ids
        and the events."""
        since = int(time.time() * 1000) - 1000
        events = [input_event(self.webhook["entity_id"]) for _ in range(n)]
        await self.publish(events)
        parsed = [InputEvent.from_bytes(raw) for _, raw in events]
        return since, int(time.time() * 1000), [ev for ev, _ in events], parsed

    async def sent(self) -> list[DeliveryTask]:
        """Every task on webhooks.deliveries (all there: the job waited for each one's ack)."""
        recs = await read_topic(self.kafka, self.topics.deliveries, idle=2.0, timeout=15)
        return [DeliveryTask.from_bytes(r.value) for r in recs]


@pytest.fixture
async def job_kit(
    make_settings: Callable[..., RegistrySettings], servers: Servers, topics: Topics
) -> AsyncIterator[Callable[[float], JobKit]]:
    settings = make_settings(history_auto_disable_after_s=0)
    sizes = UpdateSizes()
    store = HistoryStore(settings.mongo_url, settings.database, listeners=[sizes])
    await store.ensure_indexes()
    sender = TaskSender(servers.kafka, topics.deliveries)
    entity = f"ent-{uuid.uuid4().hex[:8]}"
    webhook = {
        "_id": f"w-{uuid.uuid4().hex[:8]}",
        "entity_id": entity,
        "enabled": True,
        "version": 2,
        "event_url": "https://x.example/h",
        "event_list": ["booking.*"],
    }

    async def get_webhook(ent: str, wid: str) -> dict[str, Any] | None:
        return webhook if (ent, wid) == (entity, webhook["_id"]) else None

    def kit(rate: float) -> JobKit:
        runner = JobRunner(store, sender, get_webhook, topics, servers.kafka, rate=rate)
        writer = HistoryWriter(settings, store, cast(Any, None))
        return JobKit(store, writer, runner, webhook, sizes, servers.kafka, topics)

    try:
        yield kit
    finally:
        await sender.close()
        await store.close()


async def test_a_replay_runs_at_its_rate_in_chunks_and_sends_nothing_twice(
    job_kit: Callable[[float], JobKit],
) -> None:
    """800 events replayed at a rate of 1,000/s end within seconds: a chunk at a time (one round of lookups,
    a few small inserts, its tasks produced together, one saved progress). Sent one by one, each waiting for
    its writes and its ack, they went at some 20 to 100/s. Nothing twice, and no write command near the
    size that freezes FerretDB."""
    kit = job_kit(1000)
    wid, entity = kit.webhook["_id"], kit.webhook["entity_id"]
    since = int(time.time() * 1000) - 1000
    events = [input_event(entity) for _ in range(800)]
    await kit.publish(events + [input_event("someone-else") for _ in range(50)])
    now = int(time.time() * 1000)
    delivered = [attempt(wid, entity, ev, 1, now, "success", 200) for ev, _ in events[:40]]
    died = [attempt(wid, entity, ev, 1, now, "dead", 500) for ev, _ in events[40:50]]
    await kit.writer.store_batch(delivered + died, [])
    job = new_job("fast", "replay", kit.webhook, since, now + 1, now)
    assert await kit.store.create_job(job) is None
    kit.sizes.sizes.clear()
    kit.sizes.inserts.clear()  # the job's writes from here

    started_at = time.monotonic()
    await kit.runner.run_due()
    took = time.monotonic() - started_at

    done = await kit.store.job(wid, "fast")
    assert done is not None and done["state"] == "succeeded", done
    assert done["counts"] == {"considered": 800, "sent": 760, "skipped": 40}
    assert 0.5 <= took < 5.0, f"{took:.1f} s: {760 / took:.0f} tasks/s"  # paced, yet far above 20/s
    tasks = await kit.sent()
    assert sorted(t.event_id for t in tasks) == sorted(ev for ev, _ in events[40:])  # each once
    assert all((t.task_id, t.webhook_version) == (f"{t.event_id}:{wid}", 2) for t in tasks)
    assert max(kit.sizes.sizes) == 1 and max(kit.sizes.inserts) <= 25, (kit.sizes.sizes, kit.sizes.inserts)
    # asked for, pending until the deliverer's attempts arrive: a second replay sends nothing
    again = new_job("again", "replay", kit.webhook, since, now + 1, now)
    assert await kit.store.create_job(again) is None
    await kit.runner.run_due()
    done = await kit.store.job(wid, "again")
    assert done is not None and done["counts"] == {"considered": 800, "sent": 0, "skipped": 800}, done


async def test_a_resumed_replay_sends_again_only_what_its_unsaved_chunk_marked(
    job_kit: Callable[[float], JobKit],
) -> None:
    """The job's process died in a chunk, after marking e0 and e1 as asked for, before saving its progress
    (their tasks may or may not be on Kafka). Resumed, it sends them (at worst a second copy, same
    `webhook-id`), never skips them; what another job asked for, or the webhook got, is not sent."""
    kit = job_kit(1000)
    wid, entity = kit.webhook["_id"], kit.webhook["entity_id"]
    since, now, ids, parsed = await kit.publish_own(8)
    job = new_job("died", "replay", kit.webhook, since, now + 1, now - 60_000)
    job.update(state="running", heartbeat_ms=now - 30_000)
    assert await kit.store.create_job(job) is None
    marked = [requested_delivery(kit.webhook, e, render_body(e), now, "died:run1") for e in parsed[:2]]
    other = requested_delivery(kit.webhook, parsed[2], render_body(parsed[2]), now, "another-job:run1")
    await kit.store.insert_requested_many([*marked, other])
    await kit.writer.store_batch(
        [
            attempt(wid, entity, ids[3], 1, now, "success", 200),
            attempt(wid, entity, ids[4], 1, now, "dead", 500),
        ],
        [],
    )

    await kit.runner.run_due()

    done = await kit.store.job(wid, "died")
    assert done is not None and done["state"] == "succeeded", done
    assert done["counts"] == {"considered": 8, "sent": 6, "skipped": 2}
    tasks = await kit.sent()
    assert sorted(t.event_id for t in tasks) == sorted([ids[0], ids[1], *ids[4:]])


async def test_the_next_job_sends_what_a_failed_job_left_marked(job_kit: Callable[[float], JobKit]) -> None:
    """A job that failed inside a chunk (its tasks refused by Kafka, say) left e0 and e1 marked as asked for:
    pending, and nobody would finish them. The webhook's next replay, and a recover, send them; what a job
    that did not fail asked for (in flight) is not sent twice."""
    kit = job_kit(1000)
    wid = kit.webhook["_id"]
    since, now, ids, parsed = await kit.publish_own(3)
    for job_id, state in (("broken", "failed"), ("fine", "succeeded")):
        old = new_job(job_id, "replay", kit.webhook, since, now, now - 60_000)
        old["state"] = state
        await kit.store.jobs.insert_one(old)
    runs = ["broken:r1", "broken:r1", "fine:r1"]
    marked = [
        requested_delivery(kit.webhook, e, render_body(e), now, r) for e, r in zip(parsed, runs, strict=True)
    ]
    await kit.store.insert_requested_many(marked)

    job = new_job("next", "replay", kit.webhook, since, now + 1, now)
    assert await kit.store.create_job(job) is None
    await kit.runner.run_due()
    done = await kit.store.job(wid, "next")
    assert done is not None and done["counts"] == {"considered": 3, "sent": 2, "skipped": 1}, done
    assert sorted(t.event_id for t in await kit.sent()) == sorted(ids[:2])

    # the same for a recover: mark e2 as the failed job's, then recover the window
    e2 = model.delivery_id(wid, ids[2])
    await kit.store.mark_requested(e2, marked[2]["bucket"], now, "broken:r2")
    rec = new_job("rec", "recover", kit.webhook, since - 60_000, now + 60_000, now)
    assert await kit.store.create_job(rec) is None
    await kit.runner.run_due()
    done = await kit.store.job(wid, "rec")
    # e0, e1 were just asked for by "next" (it succeeded: in flight); e2 was left by the failed one
    assert done is not None and done["counts"]["sent"] == 1, done
