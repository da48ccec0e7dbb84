"""The config feed in-process on real Kafka: readiness means every config written before start is held."""

from __future__ import annotations

import asyncio
import contextlib

from router.config_feed import ConfigFeed
from router.index import SubscriptionIndex
from tests.conftest import eventually
from tests.servers import Servers
from tests.support.kafka import produce
from webhooks_common.models import WebhookConfig, utcnow
from webhooks_common.topics import Topics


def config(i: int, version: int = 1, enabled: bool = True) -> WebhookConfig:
    return WebhookConfig(
        id=f"w{i}",
        entity_id=f"e{i % 100}",
        entity_name="E",
        name="n",
        enabled=enabled,
        event_url=f"https://example.com/{i}",
        version=version,
        updated_at=utcnow(),
    )


async def test_ready_only_after_reading_to_the_end_then_follows(servers: Servers, topics: Topics) -> None:
    n = 5000
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"w{i}".encode(), config(i).to_bytes()) for i in range(n)
    ]
    records += [(b"w0", None), (b"w1", config(1, version=2, enabled=False).to_bytes())]
    await produce(servers.kafka, topics.config, records)

    index = SubscriptionIndex()
    feed = ConfigFeed(servers.kafka, topics.config, index)
    task = asyncio.create_task(feed.run())
    try:
        await asyncio.wait_for(feed.ready.wait(), 30)
        # at the instant it is ready, the whole topic as of start-up is applied, tombstone included
        assert len(index) == n - 1
        assert index.enabled_count() == n - 2
        assert index.lookup("e5", "booking.create")[0].id == "w5"

        # then it follows new records
        await produce(servers.kafka, topics.config, [(b"w5", None), (b"new", config(7777).to_bytes())])
        await eventually(lambda: index.get("w5") is None and index.get("new") is not None, what="follow")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
