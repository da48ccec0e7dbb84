"""One system under test: its own topics (a prefix per stack), router workers and deliverer processes.

The services run exactly as deployed (`python -m router`, `python -m deliverer`), each in its own
process, configured through the environment; only the topic prefix, ports and consumer groups differ
from `make run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import urllib.request
from pathlib import Path

import orjson
from _load import Hook, create_stack_topics, write_configs
from _procs import Proc, bench_proc, free_port
from aiokafka.admin import AIOKafkaAdminClient

from webhooks_common.topics import Topics, topic_specs
from webhooks_devtools.services import deliverer_ready, readyz

ASSIGNED = re.compile(r"assigned (\d+) partitions")

# Code run before `python -m deliverer` in its process, per variant of the bench.
DELIVERER_VARIANTS = {
    # uvloop's event loop instead of asyncio's
    "uvloop": "import asyncio, uvloop\nasyncio.set_event_loop_policy(uvloop.EventLoopPolicy())",
}


class Stack:
    # settings of the services started here: never inherited from the shell that runs the bench
    settings_prefixes: tuple[str, ...] = ("ROUTER_", "DELIVERER_")

    def __init__(
        self,
        *,
        kafka: str,
        prefix: str,
        hooks: list[Hook],
        secrets_key: str,
        workdir: Path,
        routers: int = 1,
        deliverers: int = 1,
        extra_env: dict[str, str] | None = None,
        deliverer_loop: str = "asyncio",
    ) -> None:
        self.kafka = kafka
        self.topics = Topics(prefix=prefix)
        self.hooks = hooks
        self.secrets_key = secrets_key
        self.workdir = workdir / prefix.rstrip("-")
        self.n_routers = routers
        self.n_deliverers = deliverers
        self.extra_env = extra_env or {}
        self.deliverer_loop = deliverer_loop
        self.routers: list[tuple[Proc, int]] = []  # (process, web port)
        self.deliverers: list[Proc] = []

    async def prepare(self) -> None:
        """Topics and webhook configs (before any service starts: they must read them to be ready)."""
        await create_stack_topics(self.kafka, self.topics)
        await write_configs(self.kafka, self.topics, self.hooks, self.secrets_key)

    def _env(self) -> dict[str, str]:
        """The parent's environment without its settings for our services, then the stack's, then
        `extra_env` (a scenario's settings win)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(self.settings_prefixes)}
        env.update(
            {
                "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                "KAFKA_TOPIC_PREFIX": self.topics.prefix,
                "WEBHOOK_SECRETS_KEY": self.secrets_key,
                "DELIVERY_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on 127.0.0.1
                "LOG_FORMAT": "text",
                "LOG_LEVEL": "INFO",
            }
        )
        env.update(self._services_env())
        env.update(self.extra_env)
        return env

    def _services_env(self) -> dict[str, str]:
        """What the services a subclass adds need (their ports, their store)."""
        return {}

    async def start(self, within: float = 90.0) -> None:
        """Start every process, then wait until each is ready (webhooks_devtools.services)."""
        env = self._env()
        for i in range(self.n_routers):
            port = free_port()
            router_env = {
                **env,
                "ROUTER_WEB_PORT": str(port),
                "ROUTER_WEB_BIND": "127.0.0.1",
                "ROUTER_INPUT_PARTITIONS": str(_input_partitions(self.topics)),
                "ROUTER_DATADIR": str(self.workdir / f"router-{i + 1}-data"),
            }
            argv = [sys.executable, "-m", "router"]
            proc = bench_proc(f"router-{i + 1}", argv, router_env, self.workdir, readyz(port))
            self.routers.append((proc.start(), port))
        for i in range(self.n_deliverers):
            metrics_port = free_port()  # its own: readiness is asked there
            deliverer_env = {
                **env,
                "DELIVERER_METRICS_PORT": str(metrics_port),
                "DELIVERER_METRICS_HOST": "127.0.0.1",
                # shorter wait for attempts in flight at stop (requests held by dead URLs): bench time only
                "DELIVERER_SHUTDOWN_GRACE_S": "2",
            }
            name, argv = f"deliverer-{i + 1}", self._deliverer_argv()
            proc = bench_proc(name, argv, deliverer_env, self.workdir, deliverer_ready(metrics_port))
            self.deliverers.append(proc.start())
        await asyncio.gather(*(p.wait_ready(within) for p in self.procs()))

    async def settled(self, within: float = 60.0) -> bool:
        """Until every partition of each consumer group is owned by exactly one of our processes.

        Work written after this is not interrupted by a start-up rebalance (a second process joining).
        Deliverers: the last `assigned N partitions` line of each; routers: `partitions` in /readyz.
        """
        specs = {s.name: s.partitions for s in topic_specs(self.topics)}
        want_deliverer = sum(n for t, n in specs.items() if t == self.topics.deliveries or ".retry." in t)
        want_router = sum(specs[t] for t in self.topics.inputs)
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            held = [_last_assigned(p.log_text()) for p in self.deliverers]
            routed = [await asyncio.to_thread(_router_partitions, port) for _, port in self.routers]
            flat = [tp for r in routed for tp in r]
            deliverers_ok = sum(held) == want_deliverer and all(held)
            if deliverers_ok and all(routed) and len(flat) == len(set(flat)) == want_router:
                return True
            await asyncio.sleep(0.2)
        return False

    def _deliverer_argv(self) -> list[str]:
        """`python -m deliverer`, or the same with one thing changed in its process (a measurement only)."""
        prelude = DELIVERER_VARIANTS.get(self.deliverer_loop)
        if prelude is None:
            return [sys.executable, "-m", "deliverer"]
        code = f"{prelude}\nimport runpy\nrunpy.run_module('deliverer', run_name='__main__', alter_sys=True)"
        return [sys.executable, "-c", code]

    def router_batches(self) -> tuple[float, float]:
        """(batches, events) routed so far by all routers, from their /metrics (router_batch_events)."""
        batches = events = 0.0
        for _, port in self.routers:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("router_batch_events_count "):
                    batches += float(line.split()[1])
                elif line.startswith("router_batch_events_sum "):
                    events += float(line.split()[1])
        return batches, events

    def procs(self) -> list[Proc]:
        return [p for p, _ in self.routers] + self.deliverers

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.procs() if p.pid is not None}

    async def stop(self, grace: float = 20.0) -> dict[str, int | None]:
        codes = await asyncio.gather(*(p.stop(grace) for p in self.procs()))
        return {p.name: c for p, c in zip(self.procs(), codes, strict=True)}

    async def drop_topics(self) -> None:
        """Delete the stack's topics: the broker is shared, and hundreds of idle partitions slow it down."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka)
        await admin.start()
        try:
            with contextlib.suppress(Exception):
                await admin.delete_topics([s.name for s in topic_specs(self.topics)], timeout_ms=30000)
        finally:
            await admin.close()
        shutil.rmtree(self.workdir / "router-1-data", ignore_errors=True)
        shutil.rmtree(self.workdir / "router-2-data", ignore_errors=True)


def _last_assigned(log: str) -> int:
    found = ASSIGNED.findall(log)
    return int(found[-1]) if found else 0


def _router_partitions(port: int) -> list[str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return list(orjson.loads(r.read()).get("partitions", []))
    except (OSError, ValueError):
        return []


def _input_partitions(topics: Topics) -> int:
    return next(s.partitions for s in topic_specs(topics) if s.name == topics.wink_events)
