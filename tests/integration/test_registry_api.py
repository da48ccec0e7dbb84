"""The registry's HTTP API against real FerretDB + Kafka: auth, validation, errors, versions, publishing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import aiohttp

from registry.settings import RegistrySettings
from tests.conftest import eventually
from tests.integration import test_registry_helpers as helpers
from tests.integration.test_registry_helpers import JWT_SECRET, Api, configs_by_id, registry_api
from tests.servers import Servers
from tests.support.kafka import produce, read_topic
from webhooks_common.secrets import SecretBox
from webhooks_common.tokens import mint_token
from webhooks_common.topics import Topics
from webhooks_common.wire import disable_command, encode

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}

# Fixtures shared with the other registry test modules.
api = helpers.api
make_settings = helpers.make_settings


def problem_of(status: int, body: Any, resp: aiohttp.ClientResponse, expected: int) -> dict[str, Any]:
    assert status == expected, body
    assert resp.content_type == PROBLEM
    assert body["status"] == expected and body["title"] and body["type"] and body["detail"]
    return dict(body)


async def test_create_read_list_and_versioned_update(api: Api) -> None:
    created = await api.create(eventList=["booking.created", "booking.created", "property.*"])
    assert created["version"] == 1
    assert created["ownerIdentifier"] == api.entity and created["ownerName"] == "The Siam Residences"
    assert created["userIdentifier"] == "user-1"
    assert created["eventList"] == ["booking.created", "property.*"]  # duplicates removed, order kept

    status, read, resp = await api.call("GET", api.path(f"/{created['id']}"))
    assert status == 200 and read == created
    assert resp.headers["ETag"] == '"1"'

    status, listed, _ = await api.call("GET", api.path("/list"))
    assert status == 200 and [w["id"] for w in listed] == [created["id"]]

    # Partial update with the current version, then the same stale version again: 409.
    status, updated, resp = await api.call(
        "PATCH", api.path(f"/{created['id']}"), json={"enabled": False}, headers={"If-Match": '"1"'}
    )
    assert status == 200, updated
    assert updated["version"] == 2 and updated["enabled"] is False and updated["name"] == created["name"]
    assert resp.headers["ETag"] == '"2"'
    status, body, resp = await api.call(
        "PATCH", api.path(f"/{created['id']}"), json={"name": "again"}, headers={"If-Match": "1"}
    )
    problem_of(status, body, resp, 409)

    # A full Wink body without If-Match is applied too, and the version keeps growing by one.
    status, updated, _ = await api.call("PATCH", api.path(f"/{created['id']}"), json=api.body(name="Renamed"))
    assert status == 200 and updated["version"] == 3 and updated["name"] == "Renamed" and updated["enabled"]

    # DELETE honours If-Match as well.
    status, body, resp = await api.call("DELETE", api.path(f"/{created['id']}"), headers={"If-Match": "2"})
    problem_of(status, body, resp, 409)
    status, body, _ = await api.call("DELETE", api.path(f"/{created['id']}"), headers={"If-Match": "3"})
    assert status == 200 and body == {"id": created["id"], "success": True, "message": body["message"]}
    status, body, resp = await api.call("GET", api.path(f"/{created['id']}"))
    problem_of(status, body, resp, 404)
    status, listed, _ = await api.call("GET", api.path("/list"))
    assert listed == []


async def test_authentication_and_authorization(api: Api) -> None:
    path = api.path("/list")
    problem_of(*await api.call("GET", path, token=None), 401)
    problem_of(*await api.call("GET", path, token="not-a-jwt"), 401)
    problem_of(
        *await api.call(
            "GET", path, token=mint_token("another-secret-of-the-same-length-0123456", "u", [api.entity])
        ),
        401,
    )
    problem_of(*await api.call("GET", path, token=mint_token(JWT_SECRET, "u", [api.entity], ttl=-60)), 401)
    status, body, resp = await api.call("GET", path, headers={"Authorization": "Basic dTpw"}, token=None)
    problem_of(status, body, resp, 401)

    read_only = mint_token(JWT_SECRET, "u", [api.entity], ["account.read"])
    assert (await api.call("GET", path, token=read_only))[0] == 200
    problem_of(*await api.call("POST", api.path(), json=api.body(), token=read_only), 403)
    created = await api.create()
    no_remove = mint_token(JWT_SECRET, "u", [api.entity], ["account.read", "account.write"])
    problem_of(*await api.call("DELETE", api.path(f"/{created['id']}"), token=no_remove), 403)

    other_entity = mint_token(JWT_SECRET, "u", [str(uuid.uuid4())])
    problem_of(*await api.call("GET", path, token=other_entity), 403)


async def test_another_entitys_webhook_is_not_found(api: Api) -> None:
    mine = await api.create()
    other = str(uuid.uuid4())
    both = mint_token(JWT_SECRET, "u", [api.entity, other])
    for method, suffix in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("GET", "/secret"),
        ("POST", "/secret/rotate"),
    ]:
        json = {"name": "x"} if method == "PATCH" else None
        status, body, resp = await api.call(
            method, api.path(f"/{mine['id']}{suffix}", entity=other), json=json, token=both
        )
        problem_of(status, body, resp, 404)
    status, listed, _ = await api.call("GET", api.path("/list", entity=other), token=both)
    assert listed == []


async def test_validation_errors_name_each_field(api: Api) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        (api.body(name=""), "name", "at least 1"),
        (api.body(name="x" * 201), "name", "at most 200"),
        (api.body(entity={"identifier": str(uuid.uuid4()), "name": "X"}), "entity.identifier", "path"),
        (api.body(eventUrl="http://hooks.example.com/x"), "eventUrl", "https"),
        (api.body(eventUrl="https://user:pw@hooks.example.com/x"), "eventUrl", "credentials"),
        (api.body(eventUrl="https://10.1.2.3/x"), "eventUrl", "private"),
        (api.body(eventUrl="https://127.0.0.1:8443/x"), "eventUrl", "private"),
        (api.body(eventUrl="https://169.254.169.254/latest"), "eventUrl", "private"),
        (api.body(eventUrl="https://[::1]/x"), "eventUrl", "private"),
        (api.body(eventUrl="https://hooks.example.com/" + "a" * 2048), "eventUrl", "2048"),
        (api.body(eventUrl="/relative"), "eventUrl", "absolute"),
        (api.body(eventList=["booking.created", "no.such.event"]), "eventList[1]", "no.such.event"),
        (api.body(eventList=["nothing.*"]), "eventList[0]", "nothing."),
        (api.body(eventList=["book*"]), "eventList[0]", "*"),
        (api.body(enabled="yes"), "enabled", "boolean"),
        ({k: v for k, v in api.body().items() if k != "eventUrl"}, "eventUrl", "required"),
    ]
    for payload, field, words in cases:
        status, body, resp = await api.call("POST", api.path(), json=payload)
        problem = problem_of(status, body, resp, 400)
        reasons = {e["field"]: e["reason"] for e in problem["errors"]}
        assert field in reasons, (payload, problem)
        assert words in reasons[field], (field, reasons[field])
    status, listed, _ = await api.call("GET", api.path("/list"))
    assert listed == []

    # An empty list means all events; wildcards and the `booking.created` alias are accepted.
    created = await api.create(eventList=[])
    assert created["eventList"] == []
    created = await api.create(eventList=["booking.*", "booking.created", "booking.create"])
    assert created["eventList"] == ["booking.*", "booking.created", "booking.create"]


async def test_http_and_private_targets_follow_the_switches(
    make_settings: Callable[..., RegistrySettings],
) -> None:
    settings = make_settings(allow_http=True, allow_private_targets=True)
    async with registry_api(settings) as api:
        created = await api.create(eventUrl="http://127.0.0.1:9999/hook")
        assert created["eventUrl"] == "http://127.0.0.1:9999/hook"
        status, body, resp = await api.call("POST", api.path(), json=api.body(eventUrl="ftp://example.com/x"))
        problem_of(status, body, resp, 400)


async def test_event_url_follows_the_deliverers_rule(
    api: Api, make_settings: Callable[..., RegistrySettings]
) -> None:
    # What the deliverer could never send is refused at once, even where private targets are allowed.
    settings = make_settings(allow_http=True, allow_private_targets=True)
    async with registry_api(settings) as dev:
        created = await dev.create(eventUrl="HTTPS://EXAMPLE.COM/Path?Q=1")
        assert created["eventUrl"] == "https://example.com/Path?Q=1"  # scheme and host are case-insensitive
        status, patched, _ = await dev.call(
            "PATCH", dev.path(f"/{created['id']}"), json={"eventUrl": "HTTP://Hooks.Example.com/x"}
        )
        assert status == 200 and patched["eventUrl"] == "http://hooks.example.com/x"
        for url in (
            "https://127.1/",
            "https://2130706433/",
            "https://0/",
            "https://0x7f.0.0.1/",
            "https://010.0.0.1/",
        ):
            status, body, resp = await dev.call("POST", dev.path(), json=dev.body(eventUrl=url))
            problem = problem_of(status, body, resp, 400)
            assert "eventUrl" in problem["detail"]
            [error] = problem["errors"]
            assert error["field"] == "eventUrl" and "dotted-decimal" in error["reason"], (url, error)
            status, body, resp = await dev.call(
                "PATCH", dev.path(f"/{created['id']}"), json={"eventUrl": url}
            )
            problem_of(status, body, resp, 400)
    # An address the deliverer refuses at connect time is refused here already.
    status, body, resp = await api.call("POST", api.path(), json=api.body(eventUrl="https://100.64.0.1/x"))
    assert "not globally routable" in problem_of(status, body, resp, 400)["errors"][0]["reason"]


async def test_an_empty_or_unchanging_patch_changes_nothing(
    api: Api, servers: Servers, topics: Topics
) -> None:
    created = await api.create()
    path = api.path(f"/{created['id']}")
    for patch in ({}, {"name": created["name"], "eventList": created["eventList"]}):
        status, body, resp = await api.call("PATCH", path, json=patch, headers={"If-Match": '"1"'})
        assert status == 200 and body == created, body
        assert resp.headers["ETag"] == '"1"'
    status, body, resp = await api.call("PATCH", path, json={}, headers={"If-Match": '"7"'})
    problem_of(status, body, resp, 409)  # a stale version is still a conflict
    status, read, _ = await api.call("GET", path)
    assert read["version"] == 1
    # Nothing was published but the creation.
    status, renamed, _ = await api.call("PATCH", path, json={"name": "Renamed"})
    assert renamed["version"] == 2
    records = await read_topic(
        servers.kafka,
        topics.config,
        until=lambda r: any(c and c.version == 2 for c in configs_by_id(r).get(created["id"], [])),
        timeout=15,
    )
    assert [c and c.version for c in configs_by_id(records)[created["id"]]] == [1, 2]


async def test_protocol_errors_are_problems(api: Api) -> None:
    problem_of(
        *await api.call("POST", api.path(), data=b"name=x", headers={"Content-Type": "text/plain"}), 415
    )
    problem_of(
        *await api.call("POST", api.path(), data=b"{not json", headers={"Content-Type": "application/json"}),
        400,
    )
    problem_of(
        *await api.call("POST", api.path(), data=b"[1, 2]", headers={"Content-Type": "application/json"}), 400
    )
    big = b'{"name": "' + b"x" * (65 * 1024) + b'"}'
    problem_of(
        *await api.call("POST", api.path(), data=big, headers={"Content-Type": "application/json"}), 413
    )
    problem_of(*await api.call("GET", "/no/such/route"), 404)
    status, body, resp = await api.call("PUT", api.path("/list"))
    problem_of(status, body, resp, 405)
    assert "GET" in resp.headers["Allow"]
    problem_of(
        *await api.call("PATCH", api.path(f"/{uuid.uuid4()}"), json={"name": "x"}, headers={"If-Match": "v"}),
        400,
    )


async def test_cap_per_entity(make_settings: Callable[..., RegistrySettings]) -> None:
    async with registry_api(make_settings(max_webhooks_per_entity=2)) as api:
        first = await api.create()
        await api.create()
        status, body, resp = await api.call("POST", api.path(), json=api.body())
        problem = problem_of(status, body, resp, 409)
        assert "maximum of 2 webhooks" in problem["detail"]
        assert (await api.call("DELETE", api.path(f"/{first['id']}")))[0] == 200
        await api.create()  # room again after a removal


async def test_event_list_is_the_catalogue(api: Api) -> None:
    status, events, _ = await api.call("GET", api.path("/event/list"))
    assert status == 200
    values = {e["value"] for e in events}
    assert len(events) == 105 and "booking.create" in values
    assert all(e["label"] for e in events)


async def test_secret_and_rotation(api: Api, servers: Servers, topics: Topics, secrets_key: str) -> None:
    created = await api.create()
    sid = created["id"]
    status, first, resp = await api.call("GET", api.path(f"/{sid}/secret"))
    assert status == 200 and first["secret"].startswith("whsec_")
    assert resp.headers["Cache-Control"] == "no-store"
    read_only = mint_token(JWT_SECRET, "u", [api.entity], ["account.read"])
    problem_of(*await api.call("POST", api.path(f"/{sid}/secret/rotate"), token=read_only), 403)

    status, rotated, _ = await api.call("POST", api.path(f"/{sid}/secret/rotate"))
    assert status == 200 and rotated["secret"] != first["secret"] and rotated["previousExpiresAt"]
    status, current, _ = await api.call("GET", api.path(f"/{sid}/secret"))
    assert current["secret"] == rotated["secret"]
    status, record, _ = await api.call("GET", api.path(f"/{sid}"))
    assert record["version"] == 2

    # The published config carries both secrets (encrypted); the old one with an expiry.
    box = SecretBox(secrets_key)

    def has_v2(records: list[Any]) -> bool:
        return any(c is not None and c.version == 2 for c in configs_by_id(records).get(sid, []))

    records = await read_topic(servers.kafka, topics.config, until=has_v2)
    config = next(c for c in configs_by_id(records)[sid] if c is not None and c.version == 2)
    assert [box.decrypt(s.encrypted) for s in config.secrets] == [first["secret"], rotated["secret"]]
    assert config.secrets[0].expires_at is not None and config.secrets[1].expires_at is None


async def test_every_change_is_published_with_a_tombstone_on_delete(
    api: Api, servers: Servers, topics: Topics
) -> None:
    created = await api.create()
    wid = created["id"]
    await api.call("PATCH", api.path(f"/{wid}"), json={"eventList": ["property.*"]})
    await api.call("DELETE", api.path(f"/{wid}"))

    def done(records: list[Any]) -> bool:
        return any(r.value is None for r in records)

    records = await read_topic(servers.kafka, topics.config, until=done, timeout=15)
    assert all(r.key == wid.encode() for r in records)
    values = configs_by_id(records)[wid]
    assert values[-1] is None  # the tombstone comes last
    configs = [c for c in values if c is not None]
    assert configs and configs[0].version == 1 and configs[0].entity_id == api.entity
    assert configs[0].event_url == created["eventUrl"] and configs[0].changed_at_ms > 0
    assert [c.version for c in configs] == sorted(c.version for c in configs)


async def test_disable_command_goes_through_the_same_path(api: Api, servers: Servers, topics: Topics) -> None:
    created = await api.create()
    cmd = disable_command(created["id"], api.entity, "410 Gone", "deliverer")
    # A malformed command first: it is skipped, not retried forever.
    await produce(
        servers.kafka, topics.commands, [(b"junk", b"{not json"), (created["id"].encode(), encode(cmd))]
    )

    async def disabled() -> dict[str, Any] | None:
        _, record, _ = await api.call("GET", api.path(f"/{created['id']}"))
        return dict(record) if record["enabled"] is False else None

    record = await eventually(disabled, what="webhook disabled by the command")
    assert record["version"] == 2 and record["userIdentifier"] == "system:deliverer"

    def has_disabled(records: list[Any]) -> bool:
        return any(c is not None and not c.enabled for c in configs_by_id(records).get(created["id"], []))

    assert has_disabled(await read_topic(servers.kafka, topics.config, until=has_disabled, timeout=15))


async def test_health_metrics_and_openapi(api: Api) -> None:
    assert (await api.call("GET", "/healthz", token=None))[0] == 200

    async def ready() -> bool:
        return (await api.call("GET", "/readyz", token=None))[0] == 200

    await eventually(ready, what="readyz 200")
    await api.create()
    status, text, _ = await api.call("GET", "/metrics", token=None)
    assert status == 200 and "registry_http_requests_total" in text
    status, doc, _ = await api.call("GET", "/openapi.json", token=None)
    assert status == 200 and doc["openapi"].startswith("3.1")
    assert set(doc["paths"][api.path(entity="{managingEntityIdentifier}")]) == {"post"}
