"""The whole system as `make run` starts it (tools/run.py: registry, router, deliverer as child processes),
driven like a user would: the registry's HTTP API, events on the input topics, a real HTTP receiver.

Isolation: its own topic prefix, MongoDB database, consumer groups and free ports per stack.

Sound "nothing arrives": `barrier(entity)` returns once the router routes with every change made before
it (a probe webhook's URL is changed after them and probe events are sent until one reaches the new URL;
config records are published and applied in order). `assert_not_routed` then reads webhooks.deliveries to
its end after a later marker event of the same entity and topic arrived: a task that does not exist
there can never be delivered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from tests.conftest import eventually
from tests.servers import ROOT
from tests.support.receiver import Received, Receiver
from webhooks_cli.events import sample_event, topic_for
from webhooks_cli.kafka_io import read_to_end
from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.models import DeliveryTask
from webhooks_common.tokens import mint_token
from webhooks_common.topics import Topics
from webhooks_devtools.ports import free_port
from webhooks_devtools.procs import LineReady, Proc

PROBE_TYPE = "account.under_review"


def mongo_url_with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


class Stack:
    def __init__(
        self,
        kafka: str,
        mongo_url: str,
        secrets_key: str,
        tmp: Path,
        rx: Receiver,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        uid = uuid.uuid4().hex[:8]
        self.kafka = kafka
        self.topics = Topics(prefix=f"e{uid}.")
        self.db = f"e2e_{uid}"
        self.mongo_url = mongo_url_with_db(mongo_url, self.db)
        self.jwt_secret = "e2e-" + uuid.uuid4().hex
        self.registry_port = free_port()
        self.router_port = free_port()
        self.api = f"http://127.0.0.1:{self.registry_port}"
        self.rx = rx
        self.log_path = tmp / "run.log"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "MONGO_URL": self.mongo_url,
            "KAFKA_TOPIC_PREFIX": self.topics.prefix,
            "AUTH_JWT_SECRET": self.jwt_secret,
            "WEBHOOK_SECRETS_KEY": secrets_key,
            "REGISTRY_PORT": str(self.registry_port),
            "REGISTRY_HOST": "127.0.0.1",
            "ROUTER_WEB_PORT": str(self.router_port),
            "ROUTER_WEB_BIND": "127.0.0.1",
            "ROUTER_DATADIR": str(tmp / "router"),
            "ROUTER_SESSION_TIMEOUT_S": "6",
            "DELIVERER_METRICS_PORT": "0",
            "DELIVERER_METRICS_HOST": "127.0.0.1",
            "TOPICS_INPUT_PARTITIONS": "3",
            "TOPICS_DELIVERY_PARTITIONS": "4",
            "RUN_STOP_GRACE_S": "10",
            "NO_COLOR": "1",
            **(extra_env or {}),
        }
        # The dev profile (REGISTRY_ALLOW_HTTP, DELIVERY_ALLOW_PRIVATE_TARGETS) must come from tools/run.py.
        for name in ("REGISTRY_ALLOW_HTTP", "DELIVERY_ALLOW_PRIVATE_TARGETS"):
            self.env.pop(name, None)
        self.proc = Proc(
            "make run",
            [sys.executable, str(ROOT / "tools" / "run.py")],
            self.env,
            cwd=ROOT,
            log_path=self.log_path,
            ready=LineReady("READY in"),
            new_session=True,
        )
        self._producer: AIOKafkaProducer | None = None
        self._http: aiohttp.ClientSession | None = None
        self._probes: dict[str, tuple[str, int]] = {}  # entity -> (probe webhook id, generation)

    # --- process ------------------------------------------------------------------------------------

    def log(self) -> str:
        return self.proc.log_text()

    def log_tail(self, n: int = 80) -> str:
        return self.proc.log_tail(n)

    def child_pids(self, name: str) -> list[int]:
        """Pids of `name` children in start order (from the supervisor's `started NAME (pid N)` lines)."""
        marker = f"started {name} (pid "
        return [int(line.split(marker)[1].rstrip(")")) for line in self.log().splitlines() if marker in line]

    def spawn(self) -> None:
        self.proc.start()

    async def start(self) -> None:
        self.spawn()
        await self.proc.wait_ready(120)  # `make run` printed READY
        self._producer = make_producer(self.kafka)
        await start_client(self._producer)
        self._http = aiohttp.ClientSession()

    def interrupt(self, timeout: float = 40) -> int | None:
        """Ctrl-C, as a person would; returns run.py's exit code (kills it after `timeout`)."""
        code = self.proc.stop_sync(timeout, signal.SIGINT)
        if self.proc.killed_after_grace:
            raise AssertionError(f"tools/run.py did not stop within {timeout}s:\n{self.log_tail()}")
        return code

    async def close(self) -> None:
        if self._producer is not None:
            await stop_client(self._producer)
        if self._http is not None:
            await self._http.close()
        if self.proc.alive():
            await asyncio.to_thread(self.interrupt)

    def whctl(
        self, *args: str, timeout: float = 60, columns: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `whctl ARGS` (as a person in another terminal would, with this stack's settings; in a
        terminal `columns` wide if given)."""
        keys = (
            "KAFKA_BOOTSTRAP_SERVERS",
            "MONGO_URL",
            "KAFKA_TOPIC_PREFIX",
            "REGISTRY_PORT",
            "AUTH_JWT_SECRET",
        )
        env = {**os.environ, **{k: self.env[k] for k in keys}}
        if columns is not None:
            env["COLUMNS"] = str(columns)
        return subprocess.run(
            [sys.executable, "-m", "webhooks_cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    async def awhctl(
        self, *args: str, timeout: float = 60, columns: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(self.whctl, *args, timeout=timeout, columns=columns)

    # --- registry API -------------------------------------------------------------------------------

    def token(self, entity: str) -> str:
        return mint_token(self.jwt_secret, "e2e-user", [entity])

    async def call(self, method: str, entity: str, path: str = "", body: Any = None) -> tuple[int, Any]:
        assert self._http is not None
        url = f"{self.api}/api/managing-entity/{entity}/webhook{path}"
        headers = {"Authorization": f"Bearer {self.token(entity)}"}
        async with self._http.request(method, url, json=body, headers=headers) as resp:
            raw = await resp.read()
            return resp.status, orjson.loads(raw) if raw else None

    async def create(
        self,
        entity: str,
        url: str,
        events: list[str],
        *,
        name: str = "Wink Stalker",
        entity_name: str = "Cool Account",
        enabled: bool = True,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "entity": {"identifier": entity, "name": entity_name},
            "enabled": enabled,
            "eventList": events,
            "eventUrl": url,
        }
        status, hook = await self.call("POST", entity, "", body)
        assert status == 201, hook
        return dict(hook)

    async def patch(self, entity: str, webhook_id: str, **fields: Any) -> dict[str, Any]:
        status, hook = await self.call("PATCH", entity, f"/{webhook_id}", fields)
        assert status == 200, hook
        return dict(hook)

    async def delete(self, entity: str, webhook_id: str) -> None:
        status, body = await self.call("DELETE", entity, f"/{webhook_id}")
        assert status == 200 and body["success"], body

    async def secret(self, entity: str, webhook_id: str) -> str:
        status, body = await self.call("GET", entity, f"/{webhook_id}/secret")
        assert status == 200, body
        return str(body["secret"])

    # --- events -------------------------------------------------------------------------------------

    async def send(self, entity: str, event_type: str, data: dict[str, Any] | None = None) -> str:
        """Produce one sample event the way a product service does (key: entity id); returns its id."""
        assert self._producer is not None
        event = sample_event(event_type, entity, data=data)
        await self._producer.send_and_wait(
            topic_for(self.topics, event_type), event.to_bytes(), key=entity.encode()
        )
        return event.id

    # --- receiver -----------------------------------------------------------------------------------

    def received(self, path: str, event_id: str | None = None) -> list[Received]:
        return [
            r
            for r in self.rx.requests(path)
            if event_id is None or orjson.loads(r.body).get("id") == event_id
        ]

    async def delivered(self, path: str, event_id: str, timeout: float = 30) -> Received:
        got = await eventually(
            lambda: self.received(path, event_id), timeout=timeout, what=f"event {event_id} at {path}"
        )
        return got[0]

    # --- soundness helpers --------------------------------------------------------------------------

    async def barrier(self, entity: str, timeout: float = 30) -> None:
        """Return once events sent from now on are routed with every change made so far."""
        if entity not in self._probes:
            path = f"/probe/{entity}/0"
            hook = await self.create(entity, self.rx.url(path), [PROBE_TYPE], name="probe")
            self._probes[entity] = (hook["id"], 0)
        else:
            wid, gen = self._probes[entity]
            gen += 1
            path = f"/probe/{entity}/{gen}"
            await self.patch(entity, wid, eventUrl=self.rx.url(path))
            self._probes[entity] = (wid, gen)
        last_sent = 0.0

        async def probe_arrived() -> bool:
            nonlocal last_sent
            if self.rx.requests(path):
                return True
            if time.monotonic() - last_sent > 0.3:  # one probe event every 0.3 s until one arrives
                last_sent = time.monotonic()
                await self.send(entity, PROBE_TYPE)
            return False

        await eventually(probe_arrived, timeout=timeout, what=f"a probe at {path} (barrier for {entity})")

    async def tasks_for(self, event_id: str) -> list[DeliveryTask]:
        """Every delivery task of `event_id` written to webhooks.deliveries so far."""
        records = await read_to_end(self.kafka, self.topics.deliveries)
        tasks = [DeliveryTask.from_bytes(r.value) for r in records if r.value is not None]
        return [t for t in tasks if t.event_id == event_id]

    async def assert_not_routed(self, event_id: str, webhook_id: str, path: str) -> None:
        """Call after a marker event sent after `event_id` (same entity and topic) arrived."""
        tasks = [t for t in await self.tasks_for(event_id) if t.webhook_id == webhook_id]
        assert tasks == [], f"event {event_id} was routed to webhook {webhook_id}: {tasks}"
        assert self.received(path, event_id) == []

    async def assert_removed(self, entity: str, webhook_id: str, path: str, marker: str) -> None:
        """The webhook is gone (404) and gets nothing: an event sent now is not routed to it. Needs a
        webhook of `entity` on `/m/{entity}` subscribed to the `marker` event type."""
        status, _ = await self.call("GET", entity, f"/{webhook_id}")
        assert status == 404
        await self.barrier(entity)
        negative = await self.send(entity, "booking.create")
        mark = await self.send(entity, marker)
        await self.delivered(f"/m/{entity}", mark)
        await self.assert_not_routed(negative, webhook_id, path)
