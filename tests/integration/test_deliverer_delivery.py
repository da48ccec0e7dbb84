"""The deliverer on real Kafka against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from standardwebhooks.webhooks import Webhook

from deliverer.app import Deliverer
from tests.conftest import eventually
from tests.integration.test_deliverer_helpers import (
    Hook,
    changed,
    deliverer_settings,
    make_hook,
    make_task,
    publish,
    records,
    values,
)
from tests.servers import Servers
from tests.support.kafka import read_topic
from tests.support.receiver import Receiver, Reply
from webhooks_common.decoders import decode_attempt, decode_command
from webhooks_common.models import DeadLetter
from webhooks_common.topics import Topics
from webhooks_common.wire import AttemptRecord


async def test_signed_delivery_500_then_success_keeps_webhook_id(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    hook = make_hook(secrets_key, receiver.url("/hook"))
    receiver.script("/hook", [Reply(500, body=b"boom")])
    task = make_task(hook)
    await publish(servers.kafka, topics, configs=[hook.config], tasks=[task])

    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key)
    async with Deliverer(settings) as d:
        got = await eventually(lambda: len(receiver.requests("/hook")) >= 2 and receiver.requests("/hook"))
        attempts = await eventually(
            lambda: _attempts(servers, topics, want=2), what="two attempt records", timeout=10
        )
        url = f"http://127.0.0.1:{d.metrics_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            metrics = await resp.text()

    first, second = got[0], got[1]
    assert first.webhook_id == second.webhook_id == task.task_id
    for req in (first, second):
        assert req.body == task.body.encode()  # the router's bytes, exactly
        assert req.headers["content-type"] == "application/json"
        assert req.headers["user-agent"]
        # verified by the reference library, not by our code
        assert Webhook(hook.secret).verify(req.body, req.headers)["id"] == task.event_id
    assert [(a.attempt, a.outcome, a.status) for a in attempts] == [(1, "retry", 500), (2, "success", 204)]
    assert attempts[0].response_snippet == "boom" and attempts[0].next_attempt_at_ms is not None
    assert 'deliverer_attempts_total{outcome="success"} 1.0' in metrics
    assert 'deliverer_attempts_total{outcome="retry"} 1.0' in metrics


async def _attempts(servers: Servers, topics: Topics, want: int) -> list[AttemptRecord] | None:
    recs = await read_topic(servers.kafka, topics.attempts, until=lambda r: len(r) >= want, timeout=1)
    got = sorted((decode_attempt(r.value) for r in recs), key=lambda a: (a.task_id, a.attempt))
    return got if len(got) >= want else None


async def test_410_disables_the_webhook_and_later_tasks_are_dropped(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    hook = make_hook(secrets_key, receiver.url("/gone"))
    receiver.always("/gone", Reply(410))
    await publish(servers.kafka, topics, configs=[hook.config], tasks=[make_task(hook, 1)])
    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key)
    async with Deliverer(settings):
        cmds = await eventually(
            lambda: read_topic(servers.kafka, topics.commands, until=lambda r: len(r) >= 1, timeout=1),
            what="a disable command",
        )
        cmd = decode_command(cmds[0].value)
        assert (cmd.action, cmd.webhook_id, cmd.requested_by) == ("disable", hook.config.id, "deliverer")
        assert cmds[0].key == hook.config.id.encode()
        # the registry has not answered yet, but the deliverer already stopped sending to this webhook
        await publish(servers.kafka, topics, tasks=[make_task(hook, 2)])
        attempts = await eventually(lambda: _attempts(servers, topics, want=2), what="two attempt records")
    outcomes = sorted(a.outcome for a in attempts)
    assert outcomes == ["disabled", "dropped"]
    assert len(receiver.requests("/gone")) == 1


async def test_retry_after_is_honoured(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    hook = make_hook(secrets_key, receiver.url("/busy"))
    receiver.script("/busy", [Reply(429, headers={"Retry-After": "2"})])
    await publish(servers.kafka, topics, configs=[hook.config], tasks=[make_task(hook)])
    # scheduled 1 s, the server asks 2 s: within [1, 2] so 2 s it is
    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key, retry_schedule="0,1")
    async with Deliverer(settings):
        got = await eventually(lambda: len(receiver.requests("/busy")) >= 2 and receiver.requests("/busy"))
        attempts = await eventually(lambda: _attempts(servers, topics, want=2))
    assert got[1].at - got[0].at >= 1.9
    first = attempts[0]
    assert first.outcome == "retry" and first.status == 429
    assert first.next_attempt_at_ms is not None and first.next_attempt_at_ms - first.at_ms == 2000
    assert attempts[1].outcome == "success"


async def test_timeouts_retry_then_dead_letter_with_history(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    hook = make_hook(secrets_key, receiver.url("/slow"))
    receiver.always("/slow", Reply(200, delay_s=3))
    task = make_task(hook)
    await publish(servers.kafka, topics, configs=[hook.config], tasks=[task])
    settings = deliverer_settings(
        servers.kafka, topics, group_id, secrets_key, retry_schedule="0,0.2,0.2", timeout_s=0.5
    )
    async with Deliverer(settings):
        dlq = await eventually(
            lambda: read_topic(servers.kafka, topics.dlq, until=lambda r: len(r) >= 1, timeout=1),
            what="a dead letter",
        )
        attempts = await eventually(lambda: _attempts(servers, topics, want=3))
    dead = DeadLetter.from_bytes(dlq[0].value)
    assert dead.task.task_id == task.task_id and dead.task.body == task.body
    assert "3 attempt(s) failed" in dead.reason and "timeout" in dead.reason
    assert [(h.attempt, h.outcome, h.error) for h in dead.task.history] == [
        (1, "retry", "timeout"),
        (2, "retry", "timeout"),
        (3, "dead", "timeout"),
    ]
    assert [a.outcome for a in attempts] == ["retry", "retry", "dead"]
    assert len(receiver.requests("/slow")) == 3


@contextlib.asynccontextmanager
async def retry_pending(
    servers: Servers,
    topics: Topics,
    group_id: str,
    secrets_key: str,
    receiver: Receiver,
    path: str,
    *,
    retries: str,
) -> AsyncIterator[Hook]:
    """A running deliverer whose first attempt of a task for a hook at `path` got a 500: the retry (after
    the delays of `retries`) is pending while the body of the `async with` changes the hook."""
    hook = make_hook(secrets_key, receiver.url(path))
    receiver.always(path, Reply(500))
    await publish(servers.kafka, topics, configs=[hook.config], tasks=[make_task(hook)])
    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key, retry_schedule=retries)
    async with Deliverer(settings):
        await eventually(lambda: _attempts(servers, topics, want=1), what="first attempt")
        yield hook


async def test_pending_retry_of_a_disabled_webhook_is_dropped(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    async with retry_pending(
        servers, topics, group_id, secrets_key, receiver, "/flaky", retries="0,3,3"
    ) as hook:
        await publish(servers.kafka, topics, configs=[changed(hook, enabled=False)])
        attempts = await eventually(lambda: _attempts(servers, topics, want=2), what="the retry's fate")
    assert [a.outcome for a in attempts] == ["retry", "dropped"]
    assert attempts[1].error == "webhook disabled"
    assert len(receiver.requests("/flaky")) == 1


async def test_retry_goes_to_the_current_url(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    async with retry_pending(servers, topics, group_id, secrets_key, receiver, "/old", retries="0,2") as hook:
        await publish(servers.kafka, topics, configs=[changed(hook, event_url=receiver.url("/new"))])
        await eventually(lambda: receiver.requests("/new"), what="the retry at the new URL")
    assert len(receiver.requests("/old")) == 1
    Webhook(hook.secret).verify(receiver.requests("/new")[0].body, receiver.requests("/new")[0].headers)


async def test_private_target_refused_when_not_allowed(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    by_name = make_hook(secrets_key, f"http://localhost:{receiver.port}/a")  # resolves to loopback
    by_ip = make_hook(secrets_key, receiver.url("/b"))
    await publish(
        servers.kafka,
        topics,
        configs=[by_name.config, by_ip.config],
        tasks=[make_task(by_name), make_task(by_ip)],
    )
    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key, allow_private_targets=False)
    async with Deliverer(settings):
        dlq = await eventually(
            lambda: read_topic(servers.kafka, topics.dlq, until=lambda r: len(r) >= 2, timeout=1),
            what="two dead letters",
        )
        attempts = await eventually(lambda: _attempts(servers, topics, want=2))
    reasons = sorted(DeadLetter.from_bytes(r.value).reason for r in dlq)
    assert all(r.startswith("target refused") and "loopback" in r for r in reasons), reasons
    assert [a.outcome for a in attempts] == ["refused", "refused"]
    assert receiver.requests() == []  # nothing reached the receiver, and no retries were scheduled
    assert values(await records(servers.kafka, topics.retry("1s"), idle=0.3)) == []
