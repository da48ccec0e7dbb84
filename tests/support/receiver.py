"""A loopback HTTP receiver for delivery tests: records every request, answers as scripted per path.

    async with Receiver() as rx:
        rx.script("/a", [Reply(500), Reply(200)])   # then the default (204) for later requests
        rx.hang("/slow")                              # never answers (until the receiver stops)
        url = rx.url("/a")
        ...
        await eventually(lambda: len(rx.requests("/a")) == 2)

Or use the `receiver` fixture (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0  # wait before answering
    hang: bool = False  # never answer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.time() when received

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    def __init__(self, host: str = "127.0.0.1", default: Reply | None = None) -> None:
        self.host = host
        self.port = 0
        self.default = default or Reply()
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._fixed: dict[str, Reply | Callable[[Received], Reply]] = {}
        self._requests: list[Received] = []
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # --- behaviour ----------------------------------------------------------------------------------

    def script(self, path: str, replies: list[Reply]) -> None:
        """Answer the next requests to `path` with these replies in order, then the path's fixed reply."""
        self._scripts[path].extend(replies)

    def always(self, path: str, reply: Reply | Callable[[Received], Reply]) -> None:
        self._fixed[path] = reply

    def hang(self, path: str) -> None:
        self.always(path, Reply(hang=True))

    # --- observation --------------------------------------------------------------------------------

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[Received]:
        return [r for r in self._requests if path is None or r.path == path]

    # --- server -------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        got = Received(request.path, headers, await request.read(), time.time())
        self._requests.append(got)
        queue = self._scripts.get(request.path)
        if queue:
            reply = queue.popleft()
        else:
            fixed = self._fixed.get(request.path, self.default)
            reply = fixed(got) if callable(fixed) else fixed
        if reply.hang:
            await self._stopping.wait()
            raise web.HTTPServiceUnavailable()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
