"""`/healthz` (the process answers) and `/readyz` (every named check holds) on an aiohttp app."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

Check = Callable[[], bool]


def add_health_routes(app: web.Application, checks: Mapping[str, Check]) -> None:
    """`checks` is read at each request, so a check added after startup (e.g. a config view) counts."""

    async def healthz(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_r: web.Request) -> web.Response:
        results = {name: bool(check()) for name, check in checks.items()}
        ok = all(results.values())
        return web.json_response(
            {"status": "ready" if ok else "not ready", "checks": results}, status=200 if ok else 503
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app`; returns the runner (cleanup() it) and the bound port (useful with port 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port or int(runner.addresses[0][1])
    return runner, bound
