"""`/healthz` (the process answers) and `/readyz` (every named check holds) on an aiohttp app."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

# A check answers whether its part is ready, with a reason when it is not (a bare bool says no reason).
Check = Callable[[], bool | tuple[bool, str]]


def evaluate(checks: Mapping[str, Check]) -> tuple[bool, dict[str, bool], str]:
    """(all ready, each check's answer, the reasons of those that are not ready)."""
    results: dict[str, bool] = {}
    reasons: list[str] = []
    for name, check in checks.items():
        answer = check()
        ok, reason = answer if isinstance(answer, tuple) else (bool(answer), "")
        results[name] = ok
        if not ok:
            reasons.append(f"{name}: {reason}" if reason else f"{name}: not ready")
    return all(results.values()), results, "; ".join(reasons)


def add_health_routes(app: web.Application, checks: Mapping[str, Check]) -> None:
    """`checks` is read at each request, so a check added after startup (e.g. a config view) counts."""

    async def healthz(_r: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_r: web.Request) -> web.Response:
        ok, results, reason = evaluate(checks)
        body = {"ready": ok, "status": "ready" if ok else "not ready", "checks": results, "reason": reason}
        return web.json_response(body, status=200 if ok else 503)

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
