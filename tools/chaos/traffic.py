"""Traffic for the chaos and soak runs: loopback receivers that count deliveries by `webhook-id`, webhooks
created through the registry API, and a steady-rate producer of input events that never gives up on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiokafka.errors import KafkaError

from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.tokens import mint_token

EVENT_TYPE = "booking.created"


# --- receivers --------------------------------------------------------------------------------------


class Receivers:
    """`servers` aiohttp receivers on 127.0.0.1; path `/h/<n>` is webhook n's URL.

    A 2xx answer is a delivery; `failing` paths answer 500 (the integrator outage of the chaos run).
    """

    def __init__(self, servers: int = 4, delay_ms: tuple[int, int] = (0, 0)) -> None:
        self.n_servers = servers
        # Integrators take a while to answer: attempts are in flight when a deliverer is killed.
        self.delay_ms = delay_ms
        self._rnd = random.Random(7)
        self.ports: list[int] = []
        self.failing: set[str] = set()
        self.delivered: Counter[str] = Counter()  # webhook-id -> 2xx answers given
        self.first_at: dict[str, float] = {}  # webhook-id -> time.time() of its first 2xx
        self.refused = 0  # 500s answered
        self.requests = 0
        self._runners: list[web.AppRunner] = []

    def url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.ports[n % self.n_servers]}/h/{n}"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        if self.delay_ms[1]:
            await asyncio.sleep(self._rnd.uniform(*self.delay_ms) / 1000)
        if request.path in self.failing:
            self.refused += 1
            return web.Response(status=500, text="chaos: integrator down")
        wid = request.headers.get("webhook-id", "")
        self.delivered[wid] += 1
        self.first_at.setdefault(wid, time.time())
        return web.Response(status=204)

    async def start(self) -> Receivers:
        for _ in range(self.n_servers):
            app = web.Application()
            app.router.add_route("POST", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            self.ports.append(int(runner.addresses[0][1]))
            self._runners.append(runner)
        return self

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.delivered.values() if n > 1)


# --- registry API -----------------------------------------------------------------------------------


@dataclass
class Hook:
    n: int
    entity: str
    id: str
    url: str


class RegistryClient:
    def __init__(self, api: str, jwt_secret: str, entities: list[str]) -> None:
        self.api = api
        self.jwt_secret = jwt_secret
        self.token = mint_token(jwt_secret, "chaos", entities, ttl=6 * 3600)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RegistryClient:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, str, Any]:
        """(status, content type, parsed body)."""
        assert self.session is not None
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with self.session.request(method, self.api + path, json=body, headers=headers) as resp:
            raw = await resp.read()
            try:
                parsed = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = raw.decode(errors="replace")
            return resp.status, resp.content_type, parsed

    async def create(self, entity: str, url: str, name: str = "chaos") -> tuple[int, str, Any]:
        body = {
            "name": name,
            "entity": {"identifier": entity, "name": f"Entity {entity}"},
            "enabled": True,
            "eventList": [EVENT_TYPE],
            "eventUrl": url,
        }
        return await self.call("POST", f"/api/managing-entity/{entity}/webhook", body)

    async def create_hooks(self, entities: list[str], receivers: Receivers, offset: int = 0) -> list[Hook]:
        sem = asyncio.Semaphore(8)

        async def one(i: int, entity: str) -> Hook:
            async with sem:
                url = receivers.url(offset + i)
                for _ in range(30):  # a registry just started may still answer 503 for a moment
                    status, _, body = await self.create(entity, url)
                    if status == 201:
                        return Hook(offset + i, entity, body["id"], url)
                    await asyncio.sleep(1)
                raise AssertionError(f"cannot create a webhook: {status} {body}")

        return list(await asyncio.gather(*(one(i, e) for i, e in enumerate(entities))))


# --- input events -----------------------------------------------------------------------------------


def event_value(event_id: str, entity: str, seq: int, event_type: str = EVENT_TYPE) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "type": event_type,
            "occurredAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "entityId": entity,
            "data": {"seq": seq, "bookingId": f"B{seq:07d}", "amount": {"value": 1200 + seq % 500}},
        }
    )


@dataclass
class Sent:
    event_id: str
    task_id: str  # the webhook-id the integrator must receive: `{event id}:{webhook id}`
    due: float  # time.time() it was scheduled to be written (what lag is measured from)
    acked: float | None = None  # when Kafka acknowledged it
    meta: tuple[str, int, int] | None = None  # topic, partition, offset


@dataclass
class Producer:
    """Writes records at a steady rate; a record Kafka refuses or times out is re-sent until acknowledged
    (what a product service does), so `sent` ends with every record Kafka accepted."""

    bootstrap: str
    sent: list[Sent] = field(default_factory=list)
    resends: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    _inflight: set[asyncio.Task[None]] = field(default_factory=set)
    _producer: Any = None

    async def start(self) -> None:
        self._producer = make_producer(self.bootstrap, request_timeout_ms=15000, linger_ms=5)
        await start_client(self._producer)

    async def stop(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._producer is not None:
            await stop_client(self._producer)

    async def _send(self, topic: str, key: bytes | None, value: bytes | None, rec: Sent | None) -> None:
        while True:
            try:
                fut = await self._producer.send(topic, value=value, key=key)
                md = await fut
            except (KafkaError, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
                self.resends += 1
                await asyncio.sleep(0.5)
                continue
            if rec is not None:
                rec.acked = time.time()
                rec.meta = (md.topic, md.partition, md.offset)
            return

    def send(self, topic: str, key: bytes | None, value: bytes | None, rec: Sent | None = None) -> None:
        task = asyncio.create_task(self._send(topic, key, value, rec))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def flush(self, within: float = 120.0) -> None:
        if self._inflight:
            await asyncio.wait_for(asyncio.gather(*self._inflight), within)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)


async def steady(
    count: int, rate: float, emit: Any, *, stop: asyncio.Event | None = None, max_inflight: int = 20000
) -> None:
    """Call `emit(i)` for i in range(count) at `rate` per second (catching up after a stall)."""
    t0 = time.monotonic()
    for i in range(count):
        if stop is not None and stop.is_set():
            return
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        emit(i)


def new_id() -> str:
    return uuid.uuid4().hex


class Lag:
    """How far delivery is behind: the age of the oldest event scheduled but not yet delivered."""

    def __init__(self, sent: list[Sent], receivers: Receivers) -> None:
        self._sent, self._rx = sent, receivers
        self._head = 0

    def oldest_pending(self) -> Sent | None:
        delivered = self._rx.delivered
        while self._head < len(self._sent) and self._sent[self._head].task_id in delivered:
            self._head += 1
        return self._sent[self._head] if self._head < len(self._sent) else None

    def seconds(self, now: float | None = None) -> float:
        rec = self.oldest_pending()
        if rec is None:
            return 0.0
        return max(0.0, (now or time.time()) - rec.due)


@contextlib.asynccontextmanager
async def running_receivers(servers: int = 4) -> Any:
    rx = await Receivers(servers).start()
    try:
        yield rx
    finally:
        await rx.stop()
