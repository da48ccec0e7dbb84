"""Fixtures shared by every tier: real servers, per-test topic names, consumer groups and databases."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.servers import Servers, select_servers
from tests.support.receiver import Receiver
from webhooks_common.kafka import admin_client, delete_topics, ensure_topics
from webhooks_common.topics import Topics, topic_specs


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with select_servers() as s:
        yield s


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def topics(servers: Servers, uid: str) -> AsyncIterator[Topics]:
    """A fresh set of every system topic, prefixed for this test alone; deleted afterwards.

    Deleting matters: every test makes ~45 partitions, and a single broker kept every one of them from
    every run (a 512 MB heap ran out at ~15k partitions).
    """
    t = Topics(prefix=f"t{uid}.")
    specs = topic_specs(t, input_partitions=3, delivery_partitions=4)
    await ensure_topics(servers.kafka, specs)
    yield t
    try:
        # Also topics a service made under the prefix (faust's changelog/repartition topics, for one).
        admin_names = await _topics_with_prefix(servers.kafka, t.prefix)
        await delete_topics(servers.kafka, sorted(admin_names | {s.name for s in specs}))
    except Exception as exc:  # clean-up only: never fail a test on it
        logging.getLogger(__name__).warning("could not delete test topics %s*: %r", t.prefix, exc)


async def _topics_with_prefix(bootstrap: str, prefix: str) -> set[str]:
    async with admin_client(bootstrap) as admin:
        return {n for n in await admin.list_topics() if n.startswith(prefix)}


@pytest.fixture
def group_id(uid: str) -> str:
    return f"g{uid}"


@pytest.fixture
async def mongo_db(servers: Servers, uid: str) -> AsyncIterator[AsyncDatabase[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(servers.mongo_url, serverSelectionTimeoutMS=5000)
    db = client[f"test_{uid}"]
    try:
        yield db
    finally:
        await client.drop_database(db.name)
        await client.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A loopback HTTP receiver of its own (tests.support.receiver)."""
    async with Receiver() as rx:
        yield rx


@pytest.fixture(scope="session")
def secrets_key() -> str:
    return Fernet.generate_key().decode()


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Poll `check` until it returns a truthy value or the deadline passes (no bare sleeps in tests)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last) or isinstance(last, Awaitable):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)
