"""Serving the Webhooks page, and the development-only token endpoint it can sign in with.

The page is plain files (no build step, nothing fetched from elsewhere at run time). Every response of it
carries a Content-Security-Policy that allows only this origin: no inline script or style, no other host.
These routes are not part of the API's route table (and /openapi.json): they serve a client of the API.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from registry.problems import Problem
from registry.settings import RegistrySettings
from webhooks_common import tokens

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
DEV_TOKEN_PATH = "/dev/token"
DEV_TOKEN_TTL_S = 8 * 3600
MAX_ENTITY = 200


def page_files() -> dict[str, tuple[bytes, str]]:
    """name -> (body, content type) of every file of the page, read once."""
    root = resources.files("registry.page") / "static"
    out: dict[str, tuple[bytes, str]] = {}
    for item in root.iterdir():
        suffix = item.name[item.name.rfind(".") :]
        if item.is_file() and suffix in TYPES:
            out[item.name] = (item.read_bytes(), TYPES[suffix])
    return out


def entity_from(body: Any) -> str:
    """The entity a development token is asked for (pure; Problem 400 when missing or malformed)."""
    entity = body.get("entity") if isinstance(body, dict) else None
    if not isinstance(entity, str) or not entity.strip() or len(entity) > MAX_ENTITY:
        raise Problem(400, f'send {{"entity": "<managing entity id, 1-{MAX_ENTITY} characters>"}}')
    return entity.strip()


def _file_response(files: dict[str, tuple[bytes, str]], name: str) -> web.Response:
    if name not in files:
        raise web.HTTPNotFound()
    body, ctype = files[name]
    return web.Response(body=body, content_type=ctype, charset="utf-8", headers=SECURITY_HEADERS)


def add_page_routes(app: web.Application, settings: RegistrySettings) -> None:
    files = page_files()
    config = orjson.dumps({"devTokens": settings.dev_tokens})

    async def index(request: web.Request) -> web.Response:
        return _file_response(files, "index.html")

    async def asset(request: web.Request) -> web.Response:
        return _file_response(files, request.match_info["name"])

    async def page_config(request: web.Request) -> web.Response:
        return web.Response(body=config, content_type="application/json", headers=SECURITY_HEADERS)

    app.router.add_get("/", index)
    app.router.add_get("/page/config.json", page_config)
    app.router.add_get("/page/{name}", asset)
    if settings.dev_tokens and settings.jwt_secret:
        secret = settings.jwt_secret

        async def dev_token(request: web.Request) -> web.Response:
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                body = None
            entity = entity_from(body)
            token = tokens.mint_token(secret, "dev-page", [entity], ttl=DEV_TOKEN_TTL_S)
            return web.Response(
                body=orjson.dumps({"token": token, "entity": entity, "expiresIn": DEV_TOKEN_TTL_S}),
                content_type="application/json",
                headers={"Cache-Control": "no-store"},
            )

        app.router.add_post(DEV_TOKEN_PATH, dev_token)
