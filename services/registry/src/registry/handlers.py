"""HTTP adapters: parse and check the request, call the service, render with the API models."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from registry.auth import Authenticator, Principal, authorize
from registry.errors import FieldError, InvalidFields
from registry.problems import Problem
from registry.routes import Route
from registry.schemas import Health, RotatedSecretResponse, SecretResponse, WebhookBody, WebhookPatch
from registry.validation import changes_from, check_fields, new_webhook_from, parse_model
from webhooks_common.metrics import metrics_response

if TYPE_CHECKING:
    from registry.app import Runtime

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,18})"?\s*$')


def parse_if_match(value: str | None) -> int | None:
    """`3`, `"3"` or `W/"3"` -> 3; absent or `*` -> None (unconditional)."""
    if value is None or value.strip() in ("", "*"):
        return None
    m = _ETAG.match(value)
    if not m:
        raise Problem(400, 'If-Match must be the webhook\'s version, e.g. `3` or `"3"`')
    return int(m.group(1))


def json_response(payload: Any, status: int = 200, etag: int | None = None) -> web.Response:
    body: Any
    if isinstance(payload, BaseModel):
        body = payload.model_dump(mode="json", by_alias=True)
    elif isinstance(payload, list):
        body = [p.model_dump(mode="json", by_alias=True) if isinstance(p, BaseModel) else p for p in payload]
    else:
        body = payload
    headers = {"ETag": f'"{etag}"'} if etag is not None else None
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


async def read_json(request: web.Request, max_bytes: int) -> Any:
    if request.content_length is not None and request.content_length > max_bytes:
        raise Problem(413, f"the request body is larger than {max_bytes} bytes")
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Problem(415, f"send the body as application/json, not {ctype}")
    raw = await request.read()  # aiohttp stops at client_max_size (413) even without Content-Length
    if not raw.strip():
        raise Problem(400, "the request body is empty")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"the request body is not valid JSON: {exc}") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guard(
    fn: Callable[..., Awaitable[web.StreamResponse]], scope: str | None, authenticator: Authenticator
) -> Handler:
    """`fn(request, principal, entity)` behind authentication and the scope/entity check (no scope: `fn`)."""
    if scope is None:
        return fn
    required = scope

    async def handler(request: web.Request) -> web.StreamResponse:
        principal = await authenticator.principal(request.headers.get("Authorization"))
        entity = request.match_info["managingEntityIdentifier"]
        authorize(principal, required, entity)
        return await fn(request, principal, entity)

    return handler


class Handlers:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def guarded(self, route: Route) -> Handler:
        """The handler of `route`, behind authentication and scope/entity checks when it has a scope."""
        return guard(getattr(self, route.handler), route.scope, self.rt.authenticator)

    def _checked(self, model: BaseModel, entity: str) -> dict[str, Any]:
        present = {k: getattr(model, k) for k in model.model_fields_set}
        if "entity" in present and present["entity"] is not None:
            present["entity"] = present["entity"].model_dump()
        if isinstance(model, WebhookBody):
            present.setdefault("enabled", model.enabled)
            present.setdefault("event_list", model.event_list)
        fields, errors = check_fields(present, entity, self.rt.url_policy)
        if errors:
            raise InvalidFields(errors)
        return fields

    async def create(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        body = parse_model(WebhookBody, await read_json(request, self.rt.settings.max_body_bytes))
        new = new_webhook_from(self._checked(body, entity))
        record = await self.rt.service.create(entity, new, who.subject)
        return json_response(record, 201, etag=record.version)

    async def list_webhooks(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        return json_response(await self.rt.service.list_webhooks(entity))

    async def events(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        return json_response(self.rt.service.events())

    async def read(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        record = await self.rt.service.get(entity, request.match_info["id"])
        return json_response(record, etag=record.version)

    async def update(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        if_match = parse_if_match(request.headers.get("If-Match"))
        body = parse_model(WebhookPatch, await read_json(request, self.rt.settings.max_body_bytes))
        nulls = [k for k in body.model_fields_set if getattr(body, k) is None]
        if nulls:
            alias = {n: WebhookPatch.model_fields[n].alias or n for n in nulls}
            raise InvalidFields([FieldError(alias[n], "must not be null") for n in nulls])
        changes = changes_from(self._checked(body, entity))
        record = await self.rt.service.update(
            entity, request.match_info["id"], changes, who.subject, if_match
        )
        return json_response(record, etag=record.version)

    async def delete(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        if_match = parse_if_match(request.headers.get("If-Match"))
        result = await self.rt.service.delete(entity, request.match_info["id"], who.subject, if_match)
        return json_response(result)

    async def secret(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        secret = await self.rt.service.secret(entity, request.match_info["id"])
        return _no_store(json_response(SecretResponse(secret=secret)))

    async def rotate(self, request: web.Request, who: Principal, entity: str) -> web.Response:
        secret, until = await self.rt.service.rotate_secret(entity, request.match_info["id"], who.subject)
        return _no_store(json_response(RotatedSecretResponse(secret=secret, previous_expires_at=until)))

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(Health(status="ok"))

    async def readyz(self, request: web.Request) -> web.Response:
        mongo, kafka = await asyncio.gather(self.rt.mongo_ok(), self.rt.kafka_ok())
        ready = mongo and kafka
        body = Health(status="ready" if ready else "not ready", checks={"mongodb": mongo, "kafka": kafka})
        return json_response(body, 200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.rt.metrics.registry)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.rt.openapi_bytes, content_type="application/json")


def _no_store(resp: web.Response) -> web.Response:
    # A signing secret must not sit in shared caches.
    resp.headers["Cache-Control"] = "no-store"
    return resp
