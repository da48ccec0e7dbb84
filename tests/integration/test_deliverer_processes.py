"""`python -m deliverer` processes: two share the partitions; one killed with SIGKILL loses nothing."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from tests.conftest import eventually
from tests.integration.test_deliverer_helpers import (
    DelivererProcess,
    make_hook,
    make_task,
    process_env,
    publish,
)
from tests.servers import Servers
from tests.support.receiver import Receiver, Reply
from webhooks_common.topics import Topics


async def _successes(port: int) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    m = re.search(r'deliverer_attempts_total\{outcome="success"\} ([0-9.e+]+)', text)
    return float(m.group(1)) if m else 0.0


async def test_two_processes_share_the_partitions(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver, tmp_path: Path
) -> None:
    hooks = [make_hook(secrets_key, receiver.url(f"/p{i}")) for i in range(16)]  # keys spread over partitions
    await publish(servers.kafka, topics, configs=[h.config for h in hooks])
    env = process_env(servers.kafka, topics, group_id, secrets_key)
    procs = [DelivererProcess(env, tmp_path / f"d{i}.log") for i in range(2)]
    try:
        for p in procs:
            await p.start()
        tasks = [make_task(h, n) for n in range(25) for h in hooks]
        await publish(servers.kafka, topics, tasks=tasks)
        await eventually(
            lambda: {r.webhook_id for r in receiver.requests()} >= {t.task_id for t in tasks},
            timeout=60,
            what="all 400 tasks delivered",
        )
        counts = [await _successes(p.metrics_port or 0) for p in procs]
    finally:
        codes = [await p.terminate() for p in procs]
    assert all(c > 0 for c in counts), counts  # both processes delivered a share
    assert sum(counts) >= len(tasks)
    assert codes == [0, 0]  # SIGTERM: clean exit


async def test_sigkill_mid_stream_loses_nothing(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver, tmp_path: Path
) -> None:
    hooks = [make_hook(secrets_key, receiver.url(f"/k{i}")) for i in range(5)]
    for i in range(5):
        receiver.always(f"/k{i}", Reply(204, delay_s=0.02))  # slow enough to kill it mid-stream
    await publish(servers.kafka, topics, configs=[h.config for h in hooks])
    env = process_env(
        servers.kafka,
        topics,
        group_id,
        secrets_key,
        DELIVERER_PER_URL_CONCURRENCY="2",
        DELIVERER_SESSION_TIMEOUT_MS="6000",
    )
    first = DelivererProcess(env, tmp_path / "first.log")
    second = DelivererProcess(env, tmp_path / "second.log")
    tasks = [make_task(h, n) for n in range(100) for h in hooks]
    try:
        await first.start()
        await publish(servers.kafka, topics, tasks=tasks)
        await eventually(lambda: len(receiver.requests()) >= 50, what="the stream under way")
        first.kill()
        assert await first.proc.wait() == -9  # type: ignore[union-attr]
        seen_at_kill = {r.webhook_id for r in receiver.requests()}
        assert len(seen_at_kill) < len(tasks)  # it really died mid-stream
        await second.start()
        await eventually(
            lambda: {r.webhook_id for r in receiver.requests()} >= {t.task_id for t in tasks},
            timeout=60,
            what="every task delivered after the kill",
        )
    finally:
        await second.terminate()
    ids = [r.webhook_id for r in receiver.requests()]
    assert set(ids) == {t.task_id for t in tasks}
    # duplicates (redelivered uncommitted tasks) are allowed and keep their webhook-id
    assert len(ids) >= len(tasks)
