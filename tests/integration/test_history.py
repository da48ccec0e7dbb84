"""The delivery history over the real stack: the registry's API (in-process), the deliverer (in-process),
the history writer, real Kafka, the real store and a loopback receiver. The router's part (an input event
becoming a task) is played by writing the task it would write."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from deliverer.app import Deliverer
from registry.history.writer import WriterProcess
from registry.settings import RegistrySettings
from tests.conftest import eventually
from tests.integration import test_registry_helpers as helpers
from tests.integration.test_deliverer_helpers import deliverer_settings
from tests.integration.test_registry_helpers import Api, registry_api
from tests.servers import Servers
from tests.support.receiver import Receiver, Reply
from webhooks_common.kafka import make_producer, started
from webhooks_common.models import DeliveryTask
from webhooks_common.topics import Topics

make_settings = helpers.make_settings


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rx:
        yield rx


@asynccontextmanager
async def stack(
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    group_id: str,
    secrets_key: str,
    *,
    retry_schedule: str = "0,0.5,0.5",
    **over: Any,
) -> AsyncIterator[Api]:
    settings = make_settings(
        allow_http=True,
        allow_private_targets=True,
        history_port=0,
        history_host="127.0.0.1",
        history_group=f"hist-{uuid.uuid4().hex[:8]}",
        history_flush_s=0.05,
        **over,
    )
    dsettings = deliverer_settings(
        servers.kafka, topics, group_id, secrets_key, retry_schedule=retry_schedule
    )
    async with (
        registry_api(settings) as api,
        WriterProcess(settings),
        Deliverer(dsettings),
    ):
        yield api


def task_for(hook: dict[str, Any], event_type: str = "booking.create") -> DeliveryTask:
    """What the router writes for one event and this webhook."""
    ev = f"ev-{uuid.uuid4().hex[:10]}"
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


async def route(servers: Servers, topics: Topics, *tasks: DeliveryTask) -> None:
    async with started(make_producer(servers.kafka)) as producer:
        for t in tasks:
            await producer.send_and_wait(topics.deliveries, t.to_bytes(), key=t.url.encode())


async def delivery_items(api: Api, hook_id: str, query: str = "") -> list[dict[str, Any]]:
    status, body, _ = await api.call("GET", api.path(f"/{hook_id}/delivery/list{query}"))
    assert status == 200, body
    return list(body["items"])


async def test_history_shows_what_the_receiver_got_and_answered_then_resend_and_test(
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    group_id: str,
    secrets_key: str,
    receiver: Receiver,
) -> None:
    receiver.script("/hook", [Reply(500, body=b"boom, try later")])  # then 204
    async with stack(make_settings, servers, topics, group_id, secrets_key) as api:
        hook = await api.create(eventUrl=receiver.url("/hook"), eventList=["booking.created"])
        task = task_for(hook)
        await route(servers, topics, task)

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

        # another entity's webhook does not exist for this caller
        other = Api(api.base, api.session, str(uuid.uuid4()))
        status, body, resp = await other.call("GET", other.path(f"/{hook['id']}/delivery/list"))
        assert status == 404 and resp.content_type == "application/problem+json"


async def test_sustained_failure_disables_the_webhook(
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    group_id: str,
    secrets_key: str,
    receiver: Receiver,
) -> None:
    receiver.always("/down", Reply(503))
    async with stack(
        make_settings,
        servers,
        topics,
        group_id,
        secrets_key,
        retry_schedule="0,0.5,0.5,0.5,0.5,0.5,0.5,0.5",
        history_auto_disable_after_s=2.0,
    ) as api:
        hook = await api.create(eventUrl=receiver.url("/down"), eventList=["booking.created"])
        await route(servers, topics, task_for(hook))

        async def disabled() -> dict[str, Any] | None:
            status, body, _ = await api.call("GET", api.path(f"/{hook['id']}"))
            return body if status == 200 and body["enabled"] is False else None

        record = await eventually(disabled, timeout=30, what="the webhook disabled")
        assert record["version"] == hook["version"] + 1
    assert len(receiver.requests("/down")) >= 4  # failing for 2 s at a 0.5 s retry pace
