"""The registry's commands consumer on real Kafka + the MongoDB-protocol store: bad records set aside."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import TopicPartition

from registry.settings import RegistrySettings
from tests.conftest import eventually
from tests.integration import test_registry_helpers as helpers
from tests.integration.test_registry_helpers import registry_api
from tests.servers import Servers
from tests.support.kafka import produce, read_topic
from webhooks_common.kafka import admin_client
from webhooks_common.models import InvalidEvent
from webhooks_common.topics import Topics
from webhooks_common.wire import disable_command, encode

make_settings = helpers.make_settings


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    async with admin_client(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    meta = offsets.get(tp)
    return meta.offset if meta is not None else -1


async def test_bad_command_records_are_set_aside_and_good_ones_applied(
    servers: Servers, topics: Topics, make_settings: Callable[..., RegistrySettings]
) -> None:
    settings = make_settings()
    async with registry_api(settings) as api:
        first, second = await api.create(), await api.create()

        def cmd(webhook_id: str) -> dict[str, Any]:
            return orjson.loads(encode(disable_command(webhook_id, api.entity, "410 Gone", "deliverer")))

        bad = [
            b"{not json",
            orjson.dumps({**cmd(first["id"]), "action": "delete"}),  # unknown action
            orjson.dumps({**cmd(first["id"]), "at_ms": "now"}),  # a field of the wrong type
            orjson.dumps({k: v for k, v in cmd(first["id"]).items() if k != "webhook_id"}),
        ]
        good = [orjson.dumps(cmd(first["id"])), orjson.dumps(cmd(second["id"]))]
        records = [(b"k", bad[0]), (b"k", bad[1]), (b"k", good[0]), (b"k", bad[2]), (b"k", bad[3])]
        records.append((b"k", good[1]))
        await produce(servers.kafka, topics.commands, records)

        async def both_disabled() -> bool:
            for hook in (first, second):
                _, record, _ = await api.call("GET", api.path(f"/{hook['id']}"))
                if record["enabled"] is not False:
                    return False
            return True

        await eventually(both_disabled, what="both webhooks disabled by their commands")
        recs = await eventually(
            lambda: read_topic(servers.kafka, topics.invalid, until=lambda r: len(r) >= 4, timeout=1),
            what="four records set aside",
        )
        group = settings.consumer_group(settings.commands_group)
        tp = TopicPartition(topics.commands, 0)

        async def committed_past_all() -> bool:
            return await _committed(servers.kafka, group, tp) >= len(records)

        await eventually(committed_past_all, what="the commit past every record")

    invalid = [InvalidEvent.from_bytes(r.value) for r in recs]
    assert all(e.reason == "undecodable" and e.source_topic == topics.commands for e in invalid)
    assert sorted(base64.b64decode(e.value_b64 or "") for e in invalid) == sorted(bad)
    details = " ".join(e.detail for e in invalid)
    assert "$.action" in details and "$.at_ms" in details and "webhook_id" in details, details
