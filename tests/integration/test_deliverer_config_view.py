"""The deliverer's config view on real Kafka: bad config records are skipped, /readyz follows the feed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from deliverer.app import Deliverer
from tests.conftest import eventually
from tests.integration.test_deliverer_helpers import deliverer_settings, make_hook, make_task, publish
from tests.servers import Servers
from tests.support.kafka import produce
from tests.support.receiver import Receiver, Reply
from webhooks_common.kafka import delete_topics
from webhooks_common.topics import Topics


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rx:
        yield rx


async def _get(port: int | None, path: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as resp:
        return resp.status, await resp.read()


async def test_bad_config_records_are_skipped_and_readyz_turns_503_when_the_feed_dies(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    hook = make_hook(secrets_key, receiver.url("/hook"))
    receiver.always("/hook", Reply(204))
    # A key that is not UTF-8 once stopped the deliverer from starting at all (UnicodeDecodeError).
    await produce(servers.kafka, topics.config, [(b"\xff\xfe", b"{}"), (b"wx", b"not json")])
    await publish(servers.kafka, topics, configs=[hook.config], tasks=[make_task(hook)])

    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key)
    async with Deliverer(settings) as d:
        await eventually(lambda: receiver.requests("/hook"), what="a delivery with the good config")
        assert d.ready() == (True, "")
        status, body = await _get(d.metrics_port, "/readyz")
        assert status == 200 and orjson.loads(body)["ready"] is True
        metrics = (await _get(d.metrics_port, "/metrics"))[1].decode()
        assert 'deliverer_config_skipped_records_total{reason="bad_key"} 1.0' in metrics
        assert 'deliverer_config_skipped_records_total{reason="undecodable"} 1.0' in metrics

        await delete_topics(servers.kafka, [topics.config])

        async def down() -> dict[str, object] | None:
            status, body = await _get(d.metrics_port, "/readyz")
            return orjson.loads(body) if status == 503 else None

        answer = await eventually(down, timeout=30, what="/readyz 503 after the config topic is deleted")
        assert answer["ready"] is False and topics.config in str(answer["reason"]), answer
        ready, reason = d.ready()
        assert not ready and topics.config in reason
        assert "deliverer_config_ready 0.0" in (await _get(d.metrics_port, "/metrics"))[1].decode()
