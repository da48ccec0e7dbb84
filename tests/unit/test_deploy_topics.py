"""The one-shot topics step of compose and Kubernetes (`python tools/create_topics.py`) against the real
broker: run as the container runs it, settings from the environment only."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.servers import Servers
from tools import create_topics
from webhooks_common.kafka import admin_client
from webhooks_common.topics import Topics, topic_specs

ROOT = Path(__file__).resolve().parents[2]


async def run_tool(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "tools/create_topics.py",
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_creates_every_topic_with_its_partitions_once(servers: Servers, uid: str) -> None:
    topics = Topics(prefix=f"t{uid}.")
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "TOPICS_INPUT_PARTITIONS": "2",
        "TOPICS_DELIVERY_PARTITIONS": "5",
    }
    code, out = await run_tool(env)
    assert code == 0, out
    expected = {s.name: s for s in topic_specs(topics, input_partitions=2, delivery_partitions=5)}
    assert f"created {len(expected)}" in out

    async with admin_client(servers.kafka) as admin:
        described = await admin.describe_topics(list(expected))
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == {name: spec.partitions for name, spec in expected.items()}
    assert partitions[topics.deliveries] == 5 and partitions[topics.wink_events] == 2

    # A second run (every `docker compose up`, every Job re-run) changes nothing and still succeeds
    # (in-process this time: the entry point was covered above).
    settings = create_topics.TopicsSettings(
        kafka_bootstrap_servers=servers.kafka, topic_prefix=topics.prefix, delivery_partitions=5
    )
    assert await create_topics.create(settings) == []


def test_refuses_an_invalid_partition_count(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOPICS_DELIVERY_PARTITIONS", "0")
    with pytest.raises(SystemExit) as exc:
        create_topics.main()
    assert exc.value.code == 2
    assert "TOPICS_DELIVERY_PARTITIONS" in capsys.readouterr().err  # the variable to fix, by its name
