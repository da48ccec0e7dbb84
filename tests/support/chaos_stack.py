"""The real stack on private servers, for fault injection (tools/chaos.py, tests/integration/test_chaos*.py).

    infra = await PrivateInfra.start(tmp_dir)        # our own Kafka + FerretDB: we may kill them
    stack = Stack(infra.bootstrap, infra.mongo_url, prefix, workdir, routers=2, deliverers=2)
    await stack.start()
    ...; stack.deliverers[0].kill(); await infra.kill("kafka"); await infra.up(); ...
    await stack.stop(); await infra.down()

The shared servers on 9092/27017 are never touched: `PrivateInfra` runs tools/infra.py with its own
INFRA_DIR and ports, reusing the built jars and FerretDB binary by symlink (no rebuild).

Every service runs under `Service`, a small supervisor that restarts a process that exited, with
backoff (what systemd/Kubernetes would do). It tells apart the exits we caused (`kill()`) from those
that happened by themselves (`unplanned`): the latter are what "needed a hand to come back" means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
SHARED_INFRA = ROOT / ".infra"


def free_port(*, pair: bool = False) -> int:
    """A free TCP port on 127.0.0.1; with `pair`, one whose successor is free too (Kafka's controller)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair or (port < 65535 and port_free(port + 1)):
            return port
    raise RuntimeError("no free port pair found")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a live process (Linux /proc), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


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
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    async def kill(self, name: str, sig: int = signal.SIGKILL, within: float = 30.0) -> None:
        """Signal `kafka` or `ferretdb` (by its pid file) and wait until the process is gone."""
        pid = self.pid(name)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + within
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.1)

    def rss(self) -> dict[str, int | None]:
        return {n: (rss_bytes(p) if (p := self.pid(n)) else None) for n in ("kafka", "ferretdb")}

    async def down(self, *, keep_data: bool = False) -> None:
        """Stop both servers; their data (hundreds of MB after a soak) goes too unless `keep_data`."""
        await _run([PY, str(ROOT / "tools" / "infra.py"), "down"], self.env(), 90)
        for name in ("ferretdb", "kafka"):  # belt and braces: never leave a private server behind
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


async def _ensure_built() -> None:
    if (SHARED_INFRA / "kafka" / "libs").exists() and (SHARED_INFRA / "bin" / "ferretdb-local").exists():
        return
    code, out = await _run([PY, str(ROOT / "tools" / "infra.py"), "build"], dict(os.environ), 900)
    if code != 0:
        raise RuntimeError(f"cannot build the local Kafka/FerretDB:\n{out[-3000:]}")


# --- supervised services ----------------------------------------------------------------------------


@dataclass
class Exit:
    at: float  # time.time()
    code: int
    planned: bool  # we killed it


@dataclass
class Service:
    """A service process kept running: restarted after any exit (1 s, doubling for quick re-crashes)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_check: Callable[[Service], Awaitable[bool]]
    proc: asyncio.subprocess.Process | None = None
    exits: list[Exit] = field(default_factory=list)
    starts: int = 0
    started_at: float = 0.0
    log_offset: int = 0  # size of the log when the current process started
    _killing: bool = False
    _stopping: bool = False
    _keeper: asyncio.Task[None] | None = None
    _running: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def unplanned(self) -> list[Exit]:
        return [e for e in self.exits if not e.planned]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    def rss(self) -> int | None:
        pid = self.pid
        return rss_bytes(pid) if pid else None

    async def _spawn(self) -> None:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.starts += 1
        self.started_at = time.monotonic()
        self._running.set()

    async def _keep(self) -> None:
        quick = 0
        while not self._stopping:
            assert self.proc is not None
            code = await self.proc.wait()
            self._running.clear()
            if self._stopping:
                return
            self.exits.append(Exit(time.time(), code, self._killing))
            uptime = time.monotonic() - self.started_at
            quick = quick + 1 if uptime < 20 and not self._killing else 0
            self._killing = False
            await asyncio.sleep(min(10.0, 2.0 ** max(0, quick - 1)))
            if not self._stopping:
                await self._spawn()

    async def start(self) -> None:
        await self._spawn()
        self._keeper = asyncio.create_task(self._keep(), name=f"keep-{self.name}")

    def kill(self) -> None:
        """SIGKILL the current process (a planned fault); the keeper restarts it."""
        if self.proc is not None and self.proc.returncode is None:
            self._killing = True
            self.proc.kill()

    async def is_ready(self) -> bool:
        if self.pid is None:
            return False
        try:
            return await self.ready_check(self)
        except Exception:
            return False

    async def wait_ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self.is_ready():
                return True
            await asyncio.sleep(0.2)
        return False

    def log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    async def stop(self, grace: float = 15.0) -> None:
        self._stopping = True
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper


async def _http_ready(url: str) -> bool:
    status, _ = await asyncio.to_thread(http_get, url, 1.5)
    return status == 200


_DELIVERER_READY = re.compile(r"deliverer ready metrics_port=(\d+)")


async def _deliverer_ready(svc: Service) -> bool:
    return _DELIVERER_READY.search(await asyncio.to_thread(svc.log_since_start)) is not None


class Stack:
    """registry + routers + deliverers (`python -m ...`), each supervised, all with one topic prefix."""

    def __init__(
        self,
        bootstrap: str,
        mongo_url: str,
        prefix: str,
        workdir: Path,
        *,
        routers: int = 2,
        deliverers: int = 2,
        input_partitions: int = 6,
        jwt_secret: str,
        secrets_key: str,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.registry_port = free_port()
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
            "DELIVERER_METRICS_PORT": "0",
            "DELIVERER_METRICS_HOST": "127.0.0.1",
            "ROUTER_WEB_BIND": "127.0.0.1",
            "REGISTRY_HOST": "127.0.0.1",
            "REGISTRY_PORT": str(self.registry_port),
            **(extra_env or {}),
        }
        self.env = base
        self.registry = Service(
            "registry",
            [PY, "-m", "registry"],
            base,
            workdir / "registry.log",
            lambda s: _http_ready(f"{self.api}/readyz"),
        )
        self.routers: list[Service] = []
        for i in range(routers):
            port = free_port()
            env = {
                **base,
                "ROUTER_WEB_PORT": str(port),
                "ROUTER_DATADIR": str(workdir / f"router{i}-data"),
            }
            self.routers.append(
                Service(
                    f"router{i}",
                    [PY, "-m", "router"],
                    env,
                    workdir / f"router{i}.log",
                    lambda s, port=port: _http_ready(f"http://127.0.0.1:{port}/readyz"),  # type: ignore[misc]
                )
            )
        self.deliverers = [
            Service(
                f"deliverer{i}",
                [PY, "-m", "deliverer"],
                base,
                workdir / f"deliverer{i}.log",
                _deliverer_ready,
            )
            for i in range(deliverers)
        ]

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def services(self) -> list[Service]:
        return [self.registry, *self.routers, *self.deliverers]

    def router_port(self, router: Service) -> int:
        return int(router.env["ROUTER_WEB_PORT"])

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
            detail = "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in late)
            raise RuntimeError(f"not ready after {within}s: {[s.name for s in late]}\n{detail}")

    async def all_ready(self) -> bool:
        return all(await asyncio.gather(*(s.is_ready() for s in self.services)))

    def unplanned_exits(self) -> dict[str, list[Exit]]:
        return {s.name: s.unplanned for s in self.services if s.unplanned}

    def rss(self) -> dict[str, int | None]:
        return {s.name: s.rss() for s in self.services}

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.services))
