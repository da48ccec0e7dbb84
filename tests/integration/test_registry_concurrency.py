"""Two registry processes on one database: of writers racing from one version, exactly one wins, and the
config topic gets the revisions in version order."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
from pymongo.asynchronous.database import AsyncDatabase

from tests.conftest import eventually
from tests.integration import test_registry_helpers as helpers
from tests.integration.test_registry_helpers import Api, StartRegistry, configs_by_id
from tests.servers import Servers
from tests.support.kafka import read_topic
from webhooks_common.topics import Topics
from webhooks_devtools.metrics import sample

make_settings = helpers.make_settings
start_registry = helpers.start_registry

WRITERS = 8
ROUNDS = 12
LEASE_METRIC = "registry_outbox_lease_held"


async def lease_held(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(base + "/metrics") as resp:
        text = await resp.text()
    held = sample(text, LEASE_METRIC)
    assert held is not None, f"no {LEASE_METRIC} on {base}/metrics"
    return held


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


LEASE_S = 6.0


async def test_when_the_publishing_registry_crashes_the_other_publishes_once_its_lease_ends(
    start_registry: StartRegistry, servers: Servers, topics: Topics
) -> None:
    entity = str(uuid.uuid4())
    async with (
        start_registry(publish_lease_s=LEASE_S) as first,
        start_registry(publish_lease_s=LEASE_S) as second,
        aiohttp.ClientSession() as session,
    ):
        registries = {first.base: first, second.base: second}
        holder_base = await eventually(
            lambda: _holder(session, list(registries)), timeout=20, what="one registry holds the lease"
        )
        survivor = next(r for base, r in registries.items() if base != holder_base)
        registries[holder_base].proc.kill()
        crashed_at = time.monotonic()

        api = Api(survivor.base, session, entity)
        hook = await api.create(name="after the crash")

        def published(records: list[Any]) -> bool:
            return hook["id"] in configs_by_id(records)

        records = await read_topic(servers.kafka, topics.config, until=published, timeout=LEASE_S + 15)
        assert published(records), "the surviving registry never published the change"
        # Not before the crashed holder's lease could have ended: it might still have been sending.
        assert time.monotonic() - crashed_at >= LEASE_S * 0.8 - 1
        assert await lease_held(session, survivor.base) == 1.0


async def test_a_registry_that_stops_cleanly_hands_publishing_over_at_once(
    start_registry: StartRegistry, servers: Servers, topics: Topics
) -> None:
    entity = str(uuid.uuid4())
    async with start_registry() as first, aiohttp.ClientSession() as session:
        await eventually(
            lambda: lease_held(session, first.base), timeout=20, what="the first holds the lease"
        )
        async with start_registry() as second:
            assert await lease_held(session, second.base) == 0.0
            await first.proc.stop()
            stopped_at = time.monotonic()
            hook = await Api(second.base, session, entity).create(name="after the hand-over")

            def published(records: list[Any]) -> bool:
                return hook["id"] in configs_by_id(records)

            records = await read_topic(servers.kafka, topics.config, until=published, timeout=15)
            assert published(records)
            # Within a poll or two of the stop, far sooner than the 15 s lease would end by itself.
            assert time.monotonic() - stopped_at < 8


async def _holder(session: aiohttp.ClientSession, bases: list[str]) -> str | None:
    held = [base for base in bases if await lease_held(session, base) == 1.0]
    return held[0] if len(held) == 1 else None
