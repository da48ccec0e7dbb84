"""Two registries on one database, each changing webhooks on what it saw of them moments ago (recent.py):
a base made stale by the other registry never wins, so no change is lost and no stale answer is given."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from registry.settings import RegistrySettings
from tests.integration import test_registry_helpers as helpers
from tests.integration.test_registry_helpers import Api, registry_api

make_settings = helpers.make_settings


@asynccontextmanager
async def two_registries(make_settings: Callable[..., RegistrySettings]) -> AsyncIterator[tuple[Api, Api]]:
    """Two registries (each with its own recent webhooks, kept longer than any test takes) on one entity."""
    entity = str(uuid.uuid4())
    async with (
        registry_api(make_settings(recent_ttl_s=300), entity) as first,
        registry_api(make_settings(recent_ttl_s=300), entity) as second,
    ):
        yield first, second


async def get(api: Api, webhook_id: str) -> dict[str, object]:
    status, body, _ = await api.call("GET", api.path(f"/{webhook_id}"))
    assert status == 200, body
    return dict(body)


async def test_a_change_on_a_stale_base_keeps_the_other_registrys_change(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    async with two_registries(make_settings) as (first, second):
        hook = await first.create(name="original")  # the first registry keeps version 1
        status, body, _ = await second.call("PATCH", second.path(f"/{hook['id']}"), json={"name": "renamed"})
        assert status == 200 and body["version"] == 2, body

        status, body, _ = await first.call("PATCH", first.path(f"/{hook['id']}"), json={"enabled": False})

        assert status == 200, body
        assert (body["version"], body["name"], body["enabled"]) == (3, "renamed", False)
        stored = await get(second, hook["id"])
        assert (stored["version"], stored["name"], stored["enabled"]) == (3, "renamed", False)


async def test_setting_back_a_value_the_other_registry_changed_is_written(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    async with two_registries(make_settings) as (first, second):
        hook = await first.create(enabled=True)
        await get(first, hook["id"])  # enabled, as the first registry last saw it
        status, body, _ = await second.call("PATCH", second.path(f"/{hook['id']}"), json={"enabled": False})
        assert status == 200 and body["version"] == 2, body

        # Nothing to change on what the first registry saw; something to change on what is stored.
        status, body, _ = await first.call("PATCH", first.path(f"/{hook['id']}"), json={"enabled": True})

        assert status == 200, body
        assert (body["version"], body["enabled"]) == (3, True)
        assert (await get(second, hook["id"]))["enabled"] is True


async def test_if_match_is_judged_on_the_stored_version_not_on_the_kept_one(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    async with two_registries(make_settings) as (first, second):
        hook = await first.create()
        path = first.path(f"/{hook['id']}")
        status, body, _ = await second.call("PATCH", path, json={"name": "second's"})
        assert status == 200 and body["version"] == 2, body

        # The client read version 2 (from the second registry); the first still keeps version 1.
        status, body, resp = await first.call(
            "PATCH", path, json={"name": "first's"}, headers={"If-Match": "2"}
        )
        assert status == 200, body
        assert (body["version"], body["name"]) == (3, "first's")

        status, body, resp = await first.call("PATCH", path, json={"name": "late"}, headers={"If-Match": "2"})
        assert status == 409, body
        assert resp.headers["ETag"] == '"3"'
        assert (await get(second, hook["id"]))["name"] == "first's"


async def test_a_webhook_deleted_by_the_other_registry_is_not_found(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    async with two_registries(make_settings) as (first, second):
        hook = await first.create()
        status, body, _ = await second.call("DELETE", second.path(f"/{hook['id']}"))
        assert status == 200, body

        status, body, _ = await first.call("PATCH", first.path(f"/{hook['id']}"), json={"name": "ghost"})
        assert status == 404, body
        status, body, _ = await first.call("DELETE", first.path(f"/{hook['id']}"))
        assert status == 404, body
