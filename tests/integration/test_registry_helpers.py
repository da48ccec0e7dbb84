"""Shared fixtures of the registry's integration tests (imported by the test_registry_* modules)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest
from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from registry.app import build_app
from registry.settings import RegistrySettings
from tests.servers import ROOT, Servers
from webhooks_common.models import WebhookConfig
from webhooks_common.tokens import mint_token
from webhooks_common.topics import Topics
from webhooks_devtools.ports import free_port
from webhooks_devtools.procs import HttpReady, Proc

JWT_SECRET = "registry-tests-secret-0123456789abcdef"


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    return free_port()


def settings_for(
    servers: Servers, topics: Topics, db: AsyncDatabase[Any], secrets_key: str, **over: Any
) -> RegistrySettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": servers.kafka,
        "mongo_url": f"mongodb://{servers.mongo_url.split('://', 1)[1].split('/', 1)[0]}/{db.name}",
        "topic_prefix": topics.prefix,
        "secrets_key": secrets_key,
        "jwt_secret": JWT_SECRET,
        "host": "127.0.0.1",
        "port": 0,
        "allow_private_targets": False,
        "commands_group": f"reg-{uuid.uuid4().hex[:8]}",
        "publish_poll_seconds": 0.2,
    }
    values.update(over)
    return RegistrySettings(**values)


class Api:
    """A tiny client of a running registry: `await api.call("GET", "/path", token=...)`."""

    def __init__(self, base: str, session: aiohttp.ClientSession, entity: str) -> None:
        self.base, self.session, self.entity = base, session, entity
        self.token = mint_token(JWT_SECRET, "user-1", [entity])

    def path(self, suffix: str = "", entity: str | None = None) -> str:
        return f"/api/managing-entity/{entity or self.entity}/webhook{suffix}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        token: str | bool | None = True,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        hdrs = dict(headers or {})
        if token is True:
            hdrs["Authorization"] = f"Bearer {self.token}"
        elif isinstance(token, str):
            hdrs["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base + path, json=json, data=data, headers=hdrs) as resp:
            raw = await resp.read()
            try:
                body = await resp.json(content_type=None) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            return resp.status, body, resp

    def body(self, **over: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": "Booking sync",
            "entity": {"identifier": self.entity, "name": "The Siam Residences"},
            "enabled": True,
            "eventList": ["booking.created"],
            "eventUrl": "https://hooks.example.com/wink",
        }
        doc.update(over)
        return doc

    async def create(self, **over: Any) -> dict[str, Any]:
        status, body, _ = await self.call("POST", self.path(), json=self.body(**over))
        assert status == 201, body
        return dict(body)


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def registry_api(settings: RegistrySettings, entity: str | None = None) -> AsyncIterator[Api]:
    async with running(build_app(settings)) as base, aiohttp.ClientSession() as session:
        yield Api(base, session, entity or str(uuid.uuid4()))


def configs_by_id(records: list[Any]) -> dict[str, list[WebhookConfig | None]]:
    out: dict[str, list[WebhookConfig | None]] = {}
    for r in records:
        value = None if r.value is None else WebhookConfig.from_bytes(r.value)
        out.setdefault(r.key.decode(), []).append(value)
    return out


@pytest.fixture
def make_settings(
    servers: Servers, topics: Topics, mongo_db: AsyncDatabase[Any], secrets_key: str
) -> Callable[..., RegistrySettings]:
    return lambda **over: settings_for(servers, topics, mongo_db, secrets_key, **over)


@pytest.fixture
async def api(make_settings: Callable[..., RegistrySettings]) -> AsyncIterator[Api]:
    async with registry_api(make_settings()) as client:
        yield client


def process_env(settings: RegistrySettings, topics: Topics, port: int) -> dict[str, str]:
    """The environment of a `python -m registry` child with these settings."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "MONGO_URL": settings.mongo_url,
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "WEBHOOK_SECRETS_KEY": settings.secrets_key or "",
        "AUTH_JWT_SECRET": JWT_SECRET,
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(port),
        "REGISTRY_COMMANDS_ENABLED": "false",
        "REGISTRY_PUBLISH_POLL_SECONDS": str(settings.publish_poll_seconds),
        "REGISTRY_PUBLISH_LEASE_S": str(settings.publish_lease_s),
        "LOG_LEVEL": "WARNING",
    }


class RegistryProcess(NamedTuple):
    base: str
    proc: Proc


@asynccontextmanager
async def registry_process(
    settings: RegistrySettings, topics: Topics, tmp: Path
) -> AsyncIterator[RegistryProcess]:
    """A real `python -m registry` process, ready (/healthz answers)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = Proc(
        f"registry-{port}",
        [sys.executable, "-m", "registry"],
        process_env(settings, topics, port),
        cwd=ROOT,
        log_path=tmp / f"registry-{port}.log",
        ready=HttpReady(f"{base}/healthz"),
    ).start()
    try:
        await proc.wait_ready(30)
        yield RegistryProcess(base, proc)
    finally:
        await proc.stop(grace=15)


StartRegistry = Callable[..., AbstractAsyncContextManager[RegistryProcess]]


@pytest.fixture
def start_registry(
    make_settings: Callable[..., RegistrySettings], topics: Topics, tmp_path: Path
) -> StartRegistry:
    """Starts a real registry process on this test's topics and database; keywords override settings."""
    return lambda **over: registry_process(make_settings(**over), topics, tmp_path)
