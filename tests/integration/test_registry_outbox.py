"""The outbox: nothing the API accepted is lost when Kafka is down or the registry dies before publishing;
MongoDB down answers 503 quickly; `resync` republishes everything."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from pymongo.asynchronous.database import AsyncDatabase

from registry.publisher import BATCH
from registry.settings import RegistrySettings
from registry.store import MongoStore, change_record
from tests.conftest import eventually
from tests.integration import test_registry_helpers as helpers
from tests.integration.test_registry_helpers import (
    JWT_SECRET,
    Api,
    StartRegistry,
    closed_port,
    configs_by_id,
    registry_api,
)
from tests.servers import ROOT, Servers
from tests.support.kafka import read_topic
from webhooks_common.topics import Topics

make_settings = helpers.make_settings
start_registry = helpers.start_registry
api = helpers.api


@contextlib.asynccontextmanager
async def gate_to(target: str, port: int) -> AsyncIterator[None]:
    """A TCP forwarder on 127.0.0.1:`port` to `target`: Kafka "comes back" when it opens."""
    host, _, tport = target.rpartition(":")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(tport))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_change_made_while_kafka_is_down_is_published_once_it_is_back(
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    mongo_db: AsyncDatabase[Any],
) -> None:
    port = closed_port()
    async with registry_api(make_settings(kafka_bootstrap_servers=f"127.0.0.1:{port}")) as api:
        created = await api.create()  # accepted although no broker answers
        change = await mongo_db["webhook_changes"].find_one({"_id": f"{created['id']}:1"})
        assert change is not None and change["state"] == "pending"
        status, ready, _ = await api.call("GET", "/readyz", token=None)
        assert status == 503 and ready["checks"]["kafka"] is False

        async with gate_to(servers.kafka, port):  # the broker is reachable again

            def published(records: list[Any]) -> bool:
                return created["id"] in configs_by_id(records)

            records = await read_topic(servers.kafka, topics.config, until=published, timeout=30)
            assert configs_by_id(records)[created["id"]][0].version == 1  # type: ignore[union-attr]

            async def marked() -> bool:
                c = await mongo_db["webhook_changes"].find_one({"_id": f"{created['id']}:1"})
                return c is not None and c["state"] == "published"

            await eventually(marked, what="document marked published")


async def test_crash_between_mongo_write_and_publish_loses_nothing(
    start_registry: StartRegistry,
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    mongo_db: AsyncDatabase[Any],
) -> None:
    # A real `python -m registry` process that can store but not publish (its broker address is closed).
    unpublishable = start_registry(kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}")
    async with unpublishable as running, aiohttp.ClientSession() as session:
        created = await Api(running.base, session, "entity-crash").create()
        running.proc.kill()  # dies before it could publish
        await running.proc.wait(10)
    change = await mongo_db["webhook_changes"].find_one({"_id": f"{created['id']}:1"})
    assert change is not None and change["state"] == "pending"

    # A new registry (reaching the real broker) finds the pending change and publishes it.
    async with registry_api(make_settings()):

        def published(records: list[Any]) -> bool:
            return created["id"] in configs_by_id(records)

        records = await read_topic(servers.kafka, topics.config, until=published, timeout=30)
        config = configs_by_id(records)[created["id"]][0]
        assert config is not None and config.entity_id == "entity-crash" and config.version == 1


async def resync_cli(settings: RegistrySettings, servers: Servers, topics: Topics) -> bytes:
    """`python -m registry resync` as an operator runs it; its output."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGO_URL": settings.mongo_url,
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "WEBHOOK_SECRETS_KEY": settings.secrets_key or "",
        "AUTH_JWT_SECRET": JWT_SECRET,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "registry", "resync", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out
    return out


async def test_resync_republishes_every_config(
    make_settings: Callable[..., RegistrySettings], servers: Servers, topics: Topics
) -> None:
    async with registry_api(make_settings()) as api:
        ids = [(await api.create(name=f"hook {i}"))["id"] for i in range(3)]

        def all_there(records: list[Any]) -> bool:
            return set(ids) <= set(configs_by_id(records))

        before = await read_topic(servers.kafka, topics.config, until=all_there, timeout=20)
    out = await resync_cli(make_settings(), servers, topics)
    assert b"republished 3" in out

    def twice(records: list[Any]) -> bool:
        return len(records) >= len(before) + 3

    after = await read_topic(servers.kafka, topics.config, until=twice, timeout=20)
    again = configs_by_id(after[len(before) :])
    assert set(again) == set(ids)


async def test_resync_ends_on_a_change_published_while_it_read_the_older_state(
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    mongo_db: AsyncDatabase[Any],
) -> None:
    # As if a registry's outbox published version 2 while resync was sending the version 1 it had read:
    # the document still says 1 (its writer is between the two writes), the revision of 2 exists.
    async with registry_api(make_settings()) as api:
        hook = await api.create(name="v1")

        def published(records: list[Any]) -> bool:
            return hook["id"] in configs_by_id(records)

        await read_topic(servers.kafka, topics.config, until=published, timeout=20)
    stored = await mongo_db["webhooks"].find_one({"_id": hook["id"]})
    assert stored is not None
    newer = {**stored, "version": stored["version"] + 1, "name": "v2"}
    await mongo_db["webhook_changes"].insert_one({**change_record(newer, time.time()), "state": "published"})

    await resync_cli(make_settings(), servers, topics)

    def ends_on_v2(records: list[Any]) -> bool:
        seen = configs_by_id(records).get(hook["id"], [])
        return bool(seen) and seen[-1] is not None and seen[-1].name == "v2"

    assert ends_on_v2(await read_topic(servers.kafka, topics.config, until=ends_on_v2, timeout=20))


async def test_mongo_down_answers_503_quickly_and_readyz_says_so(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    settings = make_settings(mongo_url=f"mongodb://127.0.0.1:{closed_port()}/x", mongo_timeout_ms=300)
    async with registry_api(settings) as api:
        status, body, resp = await api.call("GET", api.path("/list"))
        assert status == 503 and resp.content_type == "application/problem+json", body
        assert "MongoDB" in body["detail"]
        status, body, _ = await api.call("POST", api.path(), json=api.body())
        assert status == 503
        status, ready, _ = await api.call("GET", "/readyz", token=None)
        assert status == 503 and ready["checks"]["mongodb"] is False


async def test_rapid_changes_racing_the_publisher_all_reach_the_topic(
    api: Api, servers: Servers, topics: Topics, mongo_db: AsyncDatabase[Any]
) -> None:
    """PATCHes land while the publisher marks earlier versions published.

    FerretDB v1 writes whole documents back, so a publisher that wrote the webhook document could revert a
    change racing it (an e2e "disable" once went unpublished): it marks the change log only.
    """
    hooks = [await api.create(name=f"hook {i}") for i in range(20)]
    versions = {h["id"]: h["version"] for h in hooks}
    enabled: dict[str, bool] = {}

    async def toggle(hook_id: str, rounds: int) -> None:
        for i in range(rounds):
            status, body, _ = await api.call(
                "PATCH",
                api.path(f"/{hook_id}"),
                json={"enabled": i % 2 == 1},
                headers={"If-Match": str(versions[hook_id])},
            )
            assert status == 200, body
            versions[hook_id], enabled[hook_id] = body["version"], body["enabled"]

    await asyncio.gather(*(toggle(h, 6) for h in versions))

    def all_final(records: list[Any]) -> bool:
        seen = configs_by_id(records)
        return all(
            seen.get(h) and seen[h][-1] is not None and seen[h][-1].version == v  # type: ignore[union-attr]
            for h, v in versions.items()
        )

    records = await read_topic(servers.kafka, topics.config, until=all_final, timeout=30)
    published = configs_by_id(records)
    for hook_id, version in versions.items():
        last = published[hook_id][-1]
        assert last is not None and (last.version, last.enabled) == (version, enabled[hook_id]), hook_id
        doc = await mongo_db["webhooks"].find_one({"_id": hook_id})
        assert doc is not None and (doc["version"], doc["enabled"]) == (version, enabled[hook_id])

    async def outbox_empty() -> bool:
        return await mongo_db["webhook_changes"].count_documents({"state": "pending"}) == 0

    # every revision marked, by the batched marks (a mark that matched nothing would leave them pending)
    await eventually(outbox_empty, timeout=20, what="no pending change left")
    assert await mongo_db["webhook_changes"].count_documents({"state": "published"}) == 20 * 7


async def test_marking_many_changes_marks_exactly_the_pending_revisions_named(
    servers: Servers, mongo_db: AsyncDatabase[Any]
) -> None:
    store = MongoStore(servers.mongo_url, mongo_db.name, 5000)
    try:
        now = time.time()
        docs = [{"_id": f"w{i}", "entity_id": "e", "version": 1, "deleted": False} for i in range(4)]
        docs.append({**docs[0], "version": 2})
        await mongo_db["webhook_changes"].insert_many([change_record(doc, now) for doc in docs])
        assert await store.mark_all_published([("w0", 1), ("w1", 1), ("w9", 1)]) == 2
        assert await store.mark_all_published([("w0", 1)]) == 0  # published already
        assert await store.mark_all_published([]) == 0
        states = {c["_id"]: c["state"] async for c in mongo_db["webhook_changes"].find({})}
        assert states == {
            "w0:1": "published",
            "w1:1": "published",
            "w2:1": "pending",
            "w3:1": "pending",
            "w0:2": "pending",
        }
    finally:
        await store.close()


async def test_a_document_that_cannot_be_published_is_set_aside_and_the_others_flow(
    make_settings: Callable[..., RegistrySettings],
    servers: Servers,
    topics: Topics,
    mongo_db: AsyncDatabase[Any],
) -> None:
    early = time.time() - 5  # first in the outbox's order (and younger than a repair's wait)
    damaged = [
        {"_id": "bad-bool", "entity_id": "e", "enabled": "yes", "version": 1, "deleted": False},
        {"_id": "bad-missing", "entity_id": "e", "version": 3, "deleted": False},
        {"_id": 42, "entity_id": "e", "version": 1},  # cannot even be marked: skipped in memory
    ]
    await mongo_db["webhook_changes"].insert_many([change_record(doc, early) for doc in damaged])
    async with registry_api(make_settings()) as api:
        ids = [(await api.create(name=f"hook {i}"))["id"] for i in range(3)]
        await api.call("PATCH", api.path(f"/{ids[0]}"), json={"name": "renamed"})

        def all_there(records: list[Any]) -> bool:
            got = configs_by_id(records)
            return set(ids) <= set(got) and any(c and c.version == 2 for c in got[ids[0]])

        records = await read_topic(servers.kafka, topics.config, until=all_there, timeout=20)
        assert set(configs_by_id(records)) == set(ids)  # nothing of the damaged ones went out

        for wid, version in (("bad-bool", 1), ("bad-missing", 3)):
            change = await mongo_db["webhook_changes"].find_one({"_id": f"{wid}:{version}"})
            assert change is not None and change["state"] == "set_aside" and change["error"], change
        status, metrics, _ = await api.call("GET", "/metrics", token=None)
        assert status == 200
        assert "registry_configs_set_aside_total 3.0" in metrics


async def test_a_full_batch_is_marked_by_one_statement_and_the_store_keeps_answering(
    servers: Servers, mongo_db: AsyncDatabase[Any]
) -> None:
    """FerretDB v1 stops answering on an `update` command of ~50 statements (services/registry/README.md); the
    publisher's batch of up to BATCH revisions is one statement matching many documents, which must not."""
    store = MongoStore(servers.mongo_url, mongo_db.name, 5000)
    try:
        docs = [{"_id": f"w{i}", "entity_id": "e", "version": 1, "deleted": False} for i in range(BATCH)]
        await mongo_db["webhook_changes"].insert_many([change_record(doc, time.time()) for doc in docs])
        marked = await asyncio.wait_for(store.mark_all_published([(f"w{i}", 1) for i in range(BATCH)]), 60)
        assert marked == BATCH
        await asyncio.wait_for(store.ping(), 10)
        assert await mongo_db["webhook_changes"].count_documents({"state": "pending"}) == 0
    finally:
        await store.close()
