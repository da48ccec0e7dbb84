"""`make run` (tools/run.py) as a supervisor, and `whctl` against the system it runs.

The tests run in file order: the last one stops the system with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import eventually
from tests.e2e.conftest import running_stack
from tests.e2e.stack import Stack
from tests.servers import Servers
from tests.support.receiver import Receiver, Reply
from webhooks_devtools.pids import pid_alive


@pytest.fixture(scope="module")
async def stack(
    servers: Servers, secrets_key: str, rx: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    # Two quick attempts, so a failing URL reaches the dead-letter topic within a second.
    env = {
        "DELIVERER_RETRY_SCHEDULE": "0,0.2",
        "DELIVERER_JITTER": "0",
        "DELIVERER_SESSION_TIMEOUT_MS": "6000",
    }
    async with running_stack(servers, secrets_key, rx, tmp_path_factory.mktemp("stack"), env) as s:
        yield s


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, f"whctl failed: {proc.stderr}{proc.stdout}"
    return json.loads(proc.stdout)


async def test_the_development_profile_is_announced_and_the_environment_wins(stack: Stack) -> None:
    log = stack.log()
    assert "DEVELOPMENT PROFILE" in log
    for line in ("REGISTRY_ALLOW_HTTP=true", "DELIVERY_ALLOW_PRIVATE_TARGETS=true"):
        assert any(line in ln and "(dev profile)" in ln for ln in log.splitlines()), line
    # The test pinned the token key: the profile must not replace it.
    assert any("AUTH_JWT_SECRET=" in ln and "(environment)" in ln for ln in log.splitlines())
    assert f"The API is at {stack.api}" in log
    assert all(line.split("|", 1)[0].strip() for line in log.splitlines() if line.strip()), (
        "unprefixed output"
    )


async def test_whctl_creates_lists_sends_and_tails(stack: Stack, entity: str) -> None:
    path = f"/cli/{entity}"
    hook = _json(
        await stack.awhctl(
            "--json",
            "webhooks",
            "create",
            "--entity",
            entity,
            "--entity-name",
            "Cool Account",
            "--name",
            "Wink Stalker",
            "--url",
            stack.rx.url(path),
            "--event",
            "booking.created",
        )
    )
    assert isinstance(hook, dict) and hook["secret"].startswith("whsec_")
    listed = _json(await stack.awhctl("--json", "webhooks", "list", "--entity", entity))
    assert [h["id"] for h in listed] == [hook["id"]]
    await stack.barrier(entity)

    sent = _json(await stack.awhctl("--json", "send", "booking.create", "--entity", entity))
    assert isinstance(sent, dict) and sent["topic"] == stack.topics.wink_events
    got = await stack.delivered(path, sent["id"])
    assert Webhook(hook["secret"]).verify(got.body, got.headers)["type"] == "booking.create"

    tail = await stack.awhctl(
        "--json", "tail", "--from-beginning", "--webhook", hook["id"], "--count", "1", "--timeout", "30"
    )
    attempt = json.loads(tail.stdout.splitlines()[0])
    assert (attempt["outcome"], attempt["status"], attempt["event_id"]) == ("success", 204, sent["id"])


async def test_whctl_redrives_dead_letters(stack: Stack, entity: str) -> None:
    path = f"/flaky/{entity}"
    stack.rx.always(path, Reply(500))
    hook = await stack.create(entity, stack.rx.url(path), ["booking.created"])
    await stack.barrier(entity)
    event_id = await stack.send(entity, "booking.create")

    async def dead() -> list[dict[str, Any]]:
        out = _json(await stack.awhctl("--json", "dlq", "list", "--webhook", hook["id"]))
        assert isinstance(out, list)
        return out

    letters = await eventually(dead, timeout=30, interval=0.5, what="a dead letter")
    assert [d["task"]["event_id"] for d in letters] == [event_id]
    assert len(stack.received(path, event_id)) == 2  # both attempts of the schedule were made

    stack.rx.always(path, Reply(204))
    out = _json(await stack.awhctl("--json", "dlq", "redrive", "--webhook", hook["id"]))
    assert isinstance(out, dict) and out["redriven"] == 1
    await eventually(lambda: len(stack.received(path, event_id)) == 3, what="the re-driven delivery")
    ids = {r.webhook_id for r in stack.received(path, event_id)}
    assert len(ids) == 1  # same webhook-id as the dead attempts: receivers can deduplicate


async def test_a_crashed_service_is_restarted(stack: Stack, entity: str) -> None:
    [first] = stack.child_pids("deliverer")
    os.kill(first, signal.SIGKILL)
    await eventually(
        lambda: len(stack.child_pids("deliverer")) == 2, timeout=30, what="a restarted deliverer"
    )
    assert "deliverer exited with code -9" in stack.log()

    path = f"/after-crash/{entity}"
    await stack.create(entity, stack.rx.url(path), ["booking.created"])
    await stack.barrier(entity, timeout=60)  # the new deliverer first waits for the dead one's session to end
    event_id = await stack.send(entity, "booking.create")
    await stack.delivered(path, event_id)


async def test_ctrl_c_stops_everything_it_started(stack: Stack) -> None:
    children = [pids[-1] for pids in (stack.child_pids(n) for n in ("registry", "router", "deliverer"))]
    assert all(pid_alive(p) for p in children)
    assert stack.interrupt() == 0
    assert [p for p in children if pid_alive(p)] == []
    assert "all stopped" in stack.log()
