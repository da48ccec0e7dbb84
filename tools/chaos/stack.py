"""The real stack on private servers, for fault injection (`make chaos`, tests/integration/test_chaos*.py).

    infra = await PrivateInfra.start(tmp_dir)        # our own Kafka + FerretDB: we may kill them
    stack = Stack(infra.bootstrap, infra.mongo_url, prefix, workdir, routers=2, deliverers=2)
    await stack.start()
    ...; stack.deliverers[0].kill(); await infra.kill("kafka"); await infra.up(); ...
    await stack.stop(); await infra.down()

The shared servers on 9092/27017 are never touched: `PrivateInfra` runs tools/infra.py with its own
INFRA_DIR and ports, reusing the built jars and FerretDB binary by symlink (no rebuild).

Every service runs supervised (webhooks_devtools.supervise: restarted after any exit, with backoff, as
systemd/Kubernetes would). The exits we caused (`kill()`) are told apart from those that happened by
themselves (`unplanned`): the latter are what "needed a hand to come back" means.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from tools.chaos.traffic import Hook, Producer, Receivers, RegistryClient
from webhooks_devtools.metrics import sample
from webhooks_devtools.pids import pid_alive, rss_bytes, stop_pid
from webhooks_devtools.ports import free_port
from webhooks_devtools.procs import Proc, Readiness, http_get
from webhooks_devtools.services import deliverer_ready, readyz, service_argv
from webhooks_devtools.supervise import Backoff, Exit, Supervised

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
SHARED_INFRA = ROOT / ".infra"
# 1 s, doubling for quick re-crashes up to 10 s; a run of 20 s counts as stable.
BACKOFF = Backoff(first_s=1.0, ceiling_s=10.0, stable_after_s=20.0)
Service = Supervised  # a service process of the stack, kept running


# --- private Kafka + FerretDB -----------------------------------------------------------------------


async def _run(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"timed out after {timeout}s"
    return int(proc.returncode or 0), out.decode(errors="replace")


@dataclass
class PrivateInfra:
    """One Kafka and one FerretDB of our own, started and stopped through tools/infra.py (pid files)."""

    dir: Path
    kafka_port: int
    mongo_port: int
    heap: str = "384m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/webhooks"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "INFRA_DIR": str(self.dir),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MONGO_URL": self.mongo_url,
            "KAFKA_HEAP": self.heap,
        }

    @classmethod
    async def start(cls, directory: Path) -> PrivateInfra:
        await _ensure_built()
        _link_builds(directory)
        infra = cls(directory, free_port(pair=True), free_port())
        await infra.up()
        return infra

    async def up(self, timeout: float = 150.0) -> float:
        """Start whatever of the two is not running (idempotent); returns the seconds it took."""
        t0 = time.monotonic()
        code, out = await _run([PY, str(ROOT / "tools" / "infra.py"), "up"], self.env(), timeout)
        if code != 0:
            raise RuntimeError(f"private infra did not come up ({code}):\n{out[-3000:]}")
        return time.monotonic() - t0

    def pid(self, name: str) -> int | None:
        try:
            pid = int((self.dir / "run" / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    async def kill(self, name: str, sig: int = signal.SIGKILL, within: float = 30.0) -> None:
        """Signal `kafka` or `ferretdb` (by its pid file) and wait until the process is gone."""
        pid = self.pid(name)
        if pid is not None:
            await asyncio.to_thread(stop_pid, pid, within, sig)

    def rss(self) -> dict[str, int | None]:
        return {n: (rss_bytes(p) if (p := self.pid(n)) else None) for n in ("kafka", "ferretdb", "postgres")}

    async def down(self, *, keep_data: bool = False) -> None:
        """Stop both servers; their data (hundreds of MB after a soak) goes too unless `keep_data`."""
        await _run([PY, str(ROOT / "tools" / "infra.py"), "down"], self.env(), 90)
        for name in ("ferretdb", "postgres", "kafka"):  # belt and braces: never leave a private server behind
            await self.kill(name)
        if not keep_data:
            await asyncio.to_thread(shutil.rmtree, self.dir / "data", True)


def _link_builds(directory: Path) -> None:
    """The private INFRA_DIR reuses the shared build outputs (jars, FerretDB binary) instead of rebuilding."""
    (directory / "kafka").mkdir(parents=True, exist_ok=True)
    (directory / "bin").mkdir(parents=True, exist_ok=True)
    for link, target in (
        (directory / "kafka" / "libs", SHARED_INFRA / "kafka" / "libs"),
        (directory / "bin" / "ferretdb-local", SHARED_INFRA / "bin" / "ferretdb-local"),
    ):
        if not link.exists():
            link.symlink_to(target)


async def _ensure_built() -> None:
    if (SHARED_INFRA / "kafka" / "libs").exists() and (SHARED_INFRA / "bin" / "ferretdb-local").exists():
        return
    code, out = await _run([PY, str(ROOT / "tools" / "infra.py"), "build"], dict(os.environ), 900)
    if code != 0:
        raise RuntimeError(f"cannot build the local Kafka/FerretDB:\n{out[-3000:]}")


# --- supervised services ----------------------------------------------------------------------------


def service(name: str, module: str, env: dict[str, str], log_path: Path, ready: Readiness) -> Service:
    proc = Proc(name, service_argv(module), env, cwd=ROOT, log_path=log_path, ready=ready, new_session=True)
    return Supervised(proc, BACKOFF)


def rss(svc: Service) -> int | None:
    return rss_bytes(svc.pid) if svc.pid else None


class Stack:
    """registries + routers + deliverers (`python -m ...`), each supervised, all with one topic prefix."""

    def __init__(
        self,
        bootstrap: str,
        mongo_url: str,
        prefix: str,
        workdir: Path,
        *,
        registries: int = 2,
        routers: int = 2,
        deliverers: int = 2,
        input_partitions: int = 6,
        jwt_secret: str,
        secrets_key: str,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        base = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "MONGO_URL": mongo_url,
            "KAFKA_TOPIC_PREFIX": prefix,
            "WEBHOOK_SECRETS_KEY": secrets_key,
            "AUTH_JWT_SECRET": jwt_secret,
            "DELIVERY_ALLOW_PRIVATE_TARGETS": "true",
            "REGISTRY_ALLOW_HTTP": "true",
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            # (consumer groups: the services prepend KAFKA_TOPIC_PREFIX themselves, so runs sharing a Kafka
            # never share a group)
            "ROUTER_INPUT_PARTITIONS": str(input_partitions),
            "DELIVERER_METRICS_HOST": "127.0.0.1",
            "ROUTER_WEB_BIND": "127.0.0.1",
            "REGISTRY_HOST": "127.0.0.1",
            **(extra_env or {}),
        }
        self.env = base
        # More than one registry on the database: only the holder of the outbox lease publishes.
        self.registries: list[Service] = []
        for i in range(registries):
            port = free_port()
            env = {**base, "REGISTRY_PORT": str(port)}
            self.registries.append(
                service(f"registry{i}", "registry", env, workdir / f"registry{i}.log", readyz(port))
            )
        self.routers: list[Service] = []
        for i in range(routers):
            port = free_port()
            env = {**base, "ROUTER_WEB_PORT": str(port), "ROUTER_DATADIR": str(workdir / f"router{i}-data")}
            self.routers.append(
                service(f"router{i}", "router", env, workdir / f"router{i}.log", readyz(port))
            )
        self.deliverers: list[Service] = []
        for i in range(deliverers):
            port = free_port()  # its own: readiness is asked there
            env = {**base, "DELIVERER_METRICS_PORT": str(port)}
            log = workdir / f"deliverer{i}.log"
            self.deliverers.append(service(f"deliverer{i}", "deliverer", env, log, deliverer_ready(port)))

    @property
    def registry(self) -> Service:
        """The registry whose API the run uses, unless a fault asks for another."""
        return self.registries[0]

    @property
    def api(self) -> str:
        return self.api_of(self.registry)

    def api_of(self, registry: Service) -> str:
        return f"http://127.0.0.1:{registry.proc.env['REGISTRY_PORT']}"

    async def lease_holders(self) -> list[Service]:
        """The registries whose /metrics say they hold the outbox lease (and so publish)."""
        held = []
        for r in self.registries:
            status, body = await asyncio.to_thread(http_get, f"{self.api_of(r)}/metrics")
            if status == 200 and sample(body.decode(errors="replace"), "registry_outbox_lease_held") == 1:
                held.append(r)
        return held

    @property
    def services(self) -> list[Service]:
        return [*self.registries, *self.routers, *self.deliverers]

    def router_port(self, router: Service) -> int:
        return int(router.proc.env["ROUTER_WEB_PORT"])

    def metrics_urls(self) -> dict[str, tuple[str, str]]:
        """(/metrics URL, metric name prefix) of every process with a config view: routers and deliverers."""
        urls = {r.name: (f"http://127.0.0.1:{self.router_port(r)}/metrics", "router") for r in self.routers}
        for d in self.deliverers:
            urls[d.name] = (f"http://127.0.0.1:{d.proc.env['DELIVERER_METRICS_PORT']}/metrics", "deliverer")
        return urls

    async def config_skips(self) -> dict[str, dict[str, int]]:
        """Per process: the config records its config view skipped, by reason (what its /metrics says)."""
        out: dict[str, dict[str, int]] = {}
        for name, (url, prefix) in self.metrics_urls().items():
            status, body = await asyncio.to_thread(http_get, url)
            out[name] = skipped_by_reason(body.decode(errors="replace"), prefix) if status == 200 else {}
        return out

    async def wait_routers_hold(self, n: int, within: float = 60.0) -> None:
        """Until every router's index holds `n` webhooks (published by the outbox, read from Kafka)."""
        deadline = time.monotonic() + within
        held: list[int] = []
        while time.monotonic() < deadline:
            held = []
            for r in self.routers:
                url = f"http://127.0.0.1:{self.router_port(r)}/readyz"
                status, body = await asyncio.to_thread(http_get, url)
                held.append(int(json.loads(body).get("webhooks", 0)) if status == 200 else 0)
            if all(h >= n for h in held):
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"routers hold {held} webhooks, not {n}, after {within}s")

    async def start(self, within: float = 90.0) -> None:
        for svc in self.services:
            await svc.start()
        await self.wait_ready(within)

    async def wait_ready(self, within: float, services: list[Service] | None = None) -> None:
        todo = services or self.services
        results = await asyncio.gather(*(s.wait_ready(within) for s in todo))
        late = [s for s, ok in zip(todo, results, strict=True) if not ok]
        if late:
            detail = "\n".join(f"--- {s.name}:\n{s.proc.log_tail()}" for s in late)
            raise RuntimeError(f"not ready after {within}s: {[s.name for s in late]}\n{detail}")

    async def all_ready(self) -> bool:
        return all(await asyncio.gather(*(s.is_ready() for s in self.services)))

    def unplanned_exits(self) -> dict[str, list[Exit]]:
        return {s.name: s.unplanned for s in self.services if s.unplanned}

    def rss(self) -> dict[str, int | None]:
        return {s.name: rss(s) for s in self.services}

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.services))


def skipped_by_reason(metrics_text: str, prefix: str) -> dict[str, int]:
    """`<prefix>_config_skipped_records_total{reason}` from a Prometheus text page (non-zero ones)."""
    name = f"{prefix}_config_skipped_records_total"
    out: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and s.value:
                out[s.labels["reason"]] = int(s.value)
    return out


class Sizes(Protocol):
    registries: int
    routers: int
    deliverers: int
    input_partitions: int


async def start_with_webhooks(
    bootstrap: str,
    mongo_url: str,
    prefix: str,
    workdir: Path,
    sizes: Sizes,
    *,
    jwt_secret: str,
    entities: list[str],
    rx: Receivers,
    extra_env: dict[str, str],
) -> tuple[Stack, list[Hook], Producer]:
    """A started stack (in `workdir/services`), one webhook per entity created through its API (to a
    receiver of `rx`) and held by every router, and a started producer for the load. On failure, the
    services started so far are stopped."""
    stack = Stack(
        bootstrap,
        mongo_url,
        prefix,
        workdir / "services",
        registries=sizes.registries,
        routers=sizes.routers,
        deliverers=sizes.deliverers,
        input_partitions=sizes.input_partitions,
        jwt_secret=jwt_secret,
        secrets_key=Fernet.generate_key().decode(),
        extra_env=extra_env,
    )
    try:
        await stack.start()
        async with RegistryClient(stack.api, jwt_secret, entities) as api:
            hooks = await api.create_hooks(entities, rx)
        await stack.wait_routers_hold(len(hooks))
        producer = Producer(bootstrap)
        await producer.start()
    except BaseException:
        await stack.stop()
        raise
    return stack, hooks, producer
