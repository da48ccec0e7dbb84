"""The config view (webhooks_common.config_view) feeding the router's index, on real Kafka.

Readiness means every config written before start is held; a bad record is skipped and later ones apply;
a feed that dies makes the view (and the router's /readyz) not ready, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import orjson
from prometheus_client import CollectorRegistry

from router.index import SubscriptionIndex
from tests.conftest import eventually
from tests.servers import Servers
from tests.support.kafka import produce
from tests.support.router_proc import RouterWorker
from webhooks_common.config_view import ConfigTopicView, ConfigViewMetrics
from webhooks_common.kafka import delete_topics, ensure_topics
from webhooks_common.models import WebhookConfig, utcnow
from webhooks_common.topics import Topics, topic_specs


def config(i: int | str, version: int = 1, enabled: bool = True) -> WebhookConfig:
    return WebhookConfig(
        id=f"w{i}",
        entity_id=f"e{i % 100}" if isinstance(i, int) else "e0",
        entity_name="E",
        name="n",
        enabled=enabled,
        event_url=f"https://example.com/{i}",
        version=version,
        updated_at=utcnow(),
    )


@contextlib.asynccontextmanager
async def running(view: ConfigTopicView) -> AsyncIterator[ConfigTopicView]:
    task = asyncio.create_task(view.run())
    try:
        yield view
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def skipped(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("t_config_skipped_records_total", {"reason": reason}) or 0.0


async def test_ready_only_after_reading_to_the_end_then_follows(servers: Servers, topics: Topics) -> None:
    n = 5000
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"w{i}".encode(), config(i).to_bytes()) for i in range(n)
    ]
    records += [(b"w0", None), (b"w1", config(1, version=2, enabled=False).to_bytes())]
    await produce(servers.kafka, topics.config, records)

    index = SubscriptionIndex()
    view = ConfigTopicView(servers.kafka, topics.config, index)
    assert not view.ready and view.reason == "not started"
    async with running(view):
        await asyncio.wait_for(view.wait_ready(), 30)
        # at the instant it is ready, the whole topic as of start-up is applied, tombstone included
        assert len(index) == n - 1
        assert index.enabled_count() == n - 2
        assert index.lookup("e5", "booking.create")[0].id == "w5"
        assert view.status() == (True, "caught up with the config topic")

        # then it follows new records; an older version never replaces a newer one
        await produce(
            servers.kafka,
            topics.config,
            [(b"w5", None), (b"wnew", config("new").to_bytes()), (b"w1", config(1, version=1).to_bytes())],
        )
        await eventually(lambda: index.get("w5") is None and index.get("wnew") is not None, what="follow")
        held = index.get("w1")
        assert held is not None and held.version == 2 and not held.enabled


async def test_bad_records_are_skipped_and_later_configs_still_apply(
    servers: Servers, topics: Topics
) -> None:
    registry = CollectorRegistry()
    await produce(
        servers.kafka,
        topics.config,
        [
            (b"w1", config(1).to_bytes()),
            (b"w2", b"{not json"),
            (b"\xff\xfe", config(4).to_bytes()),
            # key w5, value of w6: taking it as w5 once left the index unable to replace w5 (KeyError)
            (b"w5", config(6).to_bytes()),
            (b"w5", config(5, version=2).to_bytes()),
            (b"w7", orjson.dumps({"v": 2, "id": "w7"})),
            (b"w8", config(8).to_bytes()),
        ],
    )
    index = SubscriptionIndex()
    view = ConfigTopicView(servers.kafka, topics.config, index, metrics=ConfigViewMetrics("t", registry))
    async with running(view):
        await asyncio.wait_for(view.wait_ready(), 30)
        assert sorted(s.id for s in (index.get(w) for w in ("w1", "w5", "w8")) if s) == ["w1", "w5", "w8"]
        assert len(index) == 3
        # (a record without key cannot be written to a compacted topic: the unit tests cover that one)
        assert {r: skipped(registry, r) for r in ("undecodable", "bad_key", "key_mismatch")} == {
            "undecodable": 2,
            "bad_key": 1,
            "key_mismatch": 1,
        }
        # while following too
        await produce(servers.kafka, topics.config, [(b"w9", b"\x00"), (b"w9", config(9).to_bytes())])
        await eventually(lambda: index.get("w9") is not None, what="good config after a bad one")
        assert skipped(registry, "undecodable") == 3
        assert view.ready


async def test_a_feed_whose_topic_is_deleted_is_not_ready_with_the_reason_then_recovers(
    servers: Servers, topics: Topics
) -> None:
    await produce(servers.kafka, topics.config, [(b"w1", config(1).to_bytes())])
    registry = CollectorRegistry()
    index = SubscriptionIndex()
    view = ConfigTopicView(servers.kafka, topics.config, index, metrics=ConfigViewMetrics("t", registry))
    async with running(view):
        await asyncio.wait_for(view.wait_ready(), 30)
        assert registry.get_sample_value("t_config_ready") == 1

        await delete_topics(servers.kafka, [topics.config])
        await eventually(lambda: not view.ready, timeout=30, what="not ready after the topic is deleted")
        assert topics.config in view.reason, view.reason
        assert registry.get_sample_value("t_config_ready") == 0
        assert (registry.get_sample_value("t_config_feed_failures_total") or 0) >= 1
        assert index.get("w1") is not None  # the last known state stays in force meanwhile

        # the topic comes back (re-created, configs republished): ready again, new records applied
        await ensure_topics(servers.kafka, [s for s in topic_specs(topics) if s.name == topics.config])
        await produce(servers.kafka, topics.config, [(b"w2", config(2).to_bytes())])
        await eventually(lambda: view.ready and index.get("w2") is not None, timeout=60, what="ready again")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_feed_whose_broker_is_gone_is_not_ready_with_the_reason(topics: Topics) -> None:
    registry = CollectorRegistry()
    view = ConfigTopicView(
        f"127.0.0.1:{_closed_port()}",
        topics.config,
        SubscriptionIndex(),
        metrics=ConfigViewMetrics("t", registry),
        retry_max_s=0.5,
    )
    async with running(view):
        await eventually(
            lambda: (registry.get_sample_value("t_config_feed_failures_total") or 0) >= 2, what="two failures"
        )
        ready, reason = view.status()
        assert not ready
        assert "KafkaConnectionError" in reason, reason
    assert view.status() == (False, "stopped")


async def test_router_readyz_answers_503_with_the_reason_when_its_feed_dies(
    servers: Servers, topics: Topics
) -> None:
    await produce(servers.kafka, topics.config, [(b"w1", config(1).to_bytes())])
    async with RouterWorker(servers.kafka, topics) as worker:
        await worker.wait_ready()
        status, body = worker.get("/readyz")
        assert status == 200 and orjson.loads(body)["reason"] == "caught up with the config topic"

        await delete_topics(servers.kafka, [topics.config])

        async def down() -> dict[str, object] | None:
            status, body = await asyncio.to_thread(worker.get, "/readyz")
            return orjson.loads(body) if status == 503 else None

        answer = await eventually(down, timeout=30, what="/readyz 503 after the config topic is deleted")
        assert answer["ready"] is False
        assert topics.config in str(answer["reason"]), answer
        assert "router_config_ready 0.0" in worker.metrics()
