"""The Webhooks page's routes on a registry app: the development-token endpoint exists only when
REGISTRY_DEV_TOKENS is on (the development profile), and the page carries its CSP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from registry.app import build_app
from registry.page.routes import CSP, entity_from
from registry.problems import Problem
from registry.settings import RegistrySettings
from tests.servers import Servers
from webhooks_common import tokens

SECRET = "page-tests-secret-0123456789abcdef"


@asynccontextmanager
async def registry(
    servers: Servers, secrets_key: str, dev_tokens: bool
) -> AsyncIterator[TestClient[Any, Any]]:
    host = servers.mongo_url.split("://", 1)[1].split("/", 1)[0]
    settings = RegistrySettings(
        kafka_bootstrap_servers=servers.kafka,
        mongo_url=f"mongodb://{host}/page_{uuid.uuid4().hex[:8]}",
        secrets_key=secrets_key,
        jwt_secret=SECRET,
        publisher_enabled=False,
        commands_enabled=False,
        dev_tokens=dev_tokens,
    )
    async with TestClient(TestServer(build_app(settings))) as client:
        yield client


async def test_no_development_token_endpoint_outside_the_development_profile(
    servers: Servers, secrets_key: str
) -> None:
    assert RegistrySettings.model_fields["dev_tokens"].default is False
    async with registry(servers, secrets_key, dev_tokens=False) as client:
        resp = await client.post("/dev/token", json={"entity": "cool-account"})
        assert resp.status == 404
        assert (await client.get("/page/config.json")).headers["Content-Security-Policy"] == CSP
        assert await (await client.get("/page/config.json")).json() == {"devTokens": False}
        page = await client.get("/")
        assert page.status == 200 and page.headers["Content-Security-Policy"] == CSP


async def test_development_token_endpoint_mints_a_token_for_the_entity_given(
    servers: Servers, secrets_key: str
) -> None:
    async with registry(servers, secrets_key, dev_tokens=True) as client:
        resp = await client.post("/dev/token", json={"entity": "cool-account"})
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        claims = jwt.decode((await resp.json())["token"], SECRET, algorithms=["HS256"])
        assert claims["entities"] == ["cool-account"]
        assert set(claims["scope"].split()) == set(tokens.SCOPES)
        listed = await client.get(
            "/api/managing-entity/cool-account/webhook/list",
            headers={"Authorization": f"Bearer {(await resp.json())['token']}"},
        )
        assert listed.status in (200, 503)  # 503 only while MongoDB is unreachable: never 401/403
        bad = await client.post("/dev/token", json={"entity": ""})
        assert bad.status == 400 and bad.content_type == "application/problem+json"


def test_development_tokens_need_the_hs256_key(secrets_key: str) -> None:
    with pytest.raises(ValueError, match="REGISTRY_DEV_TOKENS needs AUTH_JWT_SECRET"):
        RegistrySettings(secrets_key=secrets_key, jwks_url="https://idp.example/jwks", dev_tokens=True)
    with pytest.raises(Problem):
        entity_from({"entity": 3})
    assert entity_from({"entity": " acme "}) == "acme"
