"""The integrators' side of the bench, in its own process: aiohttp on several loopback ports.

    python bench/_receiver.py --ports 18001,18002,18003,18004 --ctl 18000

Every POST is answered 204 at once, except on "dead" paths, which hold the request open until the
client gives up. Each arrival on a live path is counted with its latency: the body's `data.t` is the
producer's clock (unix microseconds) when the event was written to Kafka, read on the same machine.
Control (on its own port): POST /reset, POST /dead (JSON list of paths), GET /stats[?lat=1].
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

import orjson
from aiohttp import web


class Recorder:
    def __init__(self) -> None:
        self.dead: frozenset[str] = frozenset()
        self.reset()

    def reset(self) -> None:
        self.count = 0  # arrivals on live paths
        self.held = 0  # requests held open on dead paths
        self.first = 0.0
        self.last = 0.0
        self.lat_ms: list[float] = []
        self.ids: set[str] = set()  # webhook-id of live arrivals: duplicates = count - len(ids)
        self.unparsed = 0
        self.body_bytes = 0

    def stats(self, with_lat: bool) -> dict[str, object]:
        out: dict[str, object] = {
            "count": self.count,
            "unique": len(self.ids),
            "held": self.held,
            "first": self.first,
            "last": self.last,
            "unparsed": self.unparsed,
            "mean_body_bytes": round(self.body_bytes / self.count, 1) if self.count else 0,
        }
        if with_lat:
            out["lat_ms"] = self.lat_ms
        return out


def build_apps(rec: Recorder) -> tuple[web.Application, web.Application]:
    forever = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if request.path in rec.dead:
            rec.held += 1
            await forever.wait()  # never set: the client times out and closes
        now = time.time()
        rec.count += 1
        rec.body_bytes += len(body)
        if not rec.first:
            rec.first = now
        rec.last = now
        wid = request.headers.get("webhook-id")
        if wid is not None:
            rec.ids.add(wid)
        try:
            sent_us = orjson.loads(body)["data"]["t"]
            rec.lat_ms.append((now * 1e6 - sent_us) / 1000)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            rec.unparsed += 1
        return web.Response(status=204)

    async def reset(_r: web.Request) -> web.Response:
        rec.reset()
        return web.json_response({"ok": True})

    async def dead(request: web.Request) -> web.Response:
        rec.dead = frozenset(orjson.loads(await request.read()))
        return web.json_response({"dead": len(rec.dead)})

    async def stats(request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps(rec.stats(request.query.get("lat") == "1")), content_type="application/json"
        )

    hooks = web.Application()
    hooks.router.add_post("/{tail:.*}", hook)
    ctl = web.Application()
    ctl.router.add_post("/reset", reset)
    ctl.router.add_post("/dead", dead)
    ctl.router.add_get("/stats", stats)
    return hooks, ctl


async def serve(ports: list[int], ctl_port: int) -> None:
    rec = Recorder()
    hooks, ctl = build_apps(rec)
    runners = []
    for app, app_ports in ((hooks, ports), (ctl, [ctl_port])):
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        for port in app_ports:
            await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
        runners.append(runner)
    print(f"receiver ready on {ports} (control {ctl_port})", flush=True)
    try:
        await asyncio.Event().wait()  # until SIGTERM/SIGINT (aiohttp's handlers raise GracefulExit)
    finally:
        for runner in runners:
            await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", required=True, help="comma-separated webhook ports")
    ap.add_argument("--ctl", type=int, required=True, help="control port")
    args = ap.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    with contextlib.suppress(KeyboardInterrupt, web.GracefulExit):
        asyncio.run(serve(ports, args.ctl))


if __name__ == "__main__":
    main()
