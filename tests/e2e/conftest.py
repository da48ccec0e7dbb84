"""One running system per test module (starting it costs seconds; each test uses its own entities)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.e2e.stack import Stack
from tests.servers import Servers
from tests.support.receiver import Receiver


@contextlib.asynccontextmanager
async def running_stack(
    servers: Servers, secrets_key: str, rx: Receiver, tmp: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    s = Stack(servers.kafka, servers.mongo_url, secrets_key, tmp, rx, extra_env)
    try:
        await s.start()
        yield s
    finally:
        await s.close()
        client: AsyncMongoClient[Any] = AsyncMongoClient(s.mongo_url, serverSelectionTimeoutMS=5000)
        try:
            await client.drop_database(s.db)
        finally:
            await client.close()


@pytest.fixture(scope="module")
async def rx() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
async def stack(
    servers: Servers, secrets_key: str, rx: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async with running_stack(servers, secrets_key, rx, tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture
def entity() -> str:
    """A fresh managing entity per test, so tests sharing a stack never see each other's webhooks."""
    return f"ent-{uuid.uuid4().hex[:10]}"
