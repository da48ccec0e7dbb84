"""Two registry processes on one database: of writers racing from one version, exactly one wins, and the
config topic gets the revisions in version order."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
from pymongo.asynchronous.database import AsyncDatabase

from tests.integration import test_registry_helpers as helpers
from tests.integration.test_registry_helpers import Api, StartRegistry, configs_by_id
from tests.servers import Servers
from tests.support.kafka import read_topic
from webhooks_common.topics import Topics

make_settings = helpers.make_settings
start_registry = helpers.start_registry

WRITERS = 8
ROUNDS = 12
LEASE_METRIC = "registry_outbox_lease_held"


async def lease_held(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(LEASE_METRIC + " "))


async def test_eight_writers_on_two_registry_processes_win_exactly_the_versions_they_add(
    start_registry: StartRegistry, servers: Servers, topics: Topics, mongo_db: AsyncDatabase[Any]
) -> None:
    entity = str(uuid.uuid4())
    async with (
        start_registry() as first,
        start_registry() as second,
        aiohttp.ClientSession() as session,
    ):
        apis = [Api(first.base, session, entity), Api(second.base, session, entity)]
        hook = await apis[0].create()
        path = apis[0].path(f"/{hook['id']}")
        won: list[int] = []
        lost = 0

        async def writer(n: int) -> None:
            nonlocal lost
            api = apis[n % 2]
            for r in range(ROUNDS):
                status, body, _ = await api.call("GET", path)
                assert status == 200, body
                status, body, _ = await api.call(
                    "PATCH",
                    path,
                    json={"name": f"writer {n} round {r}"},
                    headers={"If-Match": str(body["version"])},
                )
                if status == 200:
                    won.append(body["version"])
                else:
                    assert status == 409, body
                    lost += 1

        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        status, final, _ = await apis[1].call("GET", path)
        assert status == 200

        def has_final(records: list[Any]) -> bool:
            seen = configs_by_id(records).get(hook["id"], [])
            return bool(seen) and seen[-1] is not None and seen[-1].version == final["version"]

        # While both run: one holds the outbox lease and publishes what either wrote.
        records = await read_topic(servers.kafka, topics.config, until=has_final, timeout=30)
        held = [await lease_held(session, registry.base) for registry in (first, second)]
        assert sorted(held) == [0.0, 1.0], held  # what an SRE sees: which registry publishes

    # Every successful compare-and-set added exactly one version, and no version was won twice.
    assert lost > 0, "the writers never raced: the test proves nothing"
    assert len(won) == final["version"] - 1
    assert sorted(won) == list(range(2, final["version"] + 1))
    # The last change is what both the database and routing hold.
    doc = await mongo_db["webhooks"].find_one({"_id": hook["id"]})
    assert doc is not None and (doc["version"], doc["name"]) == (final["version"], final["name"])
    seen = configs_by_id(records)[hook["id"]]
    assert seen[-1] is not None and seen[-1].name == final["name"]
    # Whichever process wrote them, the revisions reach the topic in version order (one publisher at a
    # time): a compacted topic keeps the last record, so an older one after a newer would stay for good.
    versions = [c.version for c in seen if c is not None]
    assert versions == sorted(versions), versions
