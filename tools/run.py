"""`make run`: the whole system on one machine, in the development profile.

    python tools/run.py              # local servers, topics, registry + router + deliverer (Ctrl-C stops all)
    python tools/run.py deliverer    # one more instance of one service, in the foreground (make deliverer)

What `make run` does: applies the development profile (a variable set in the environment wins, then
`.env`), starts the local Kafka/FerretDB unless the settings point at servers that answer
(tools/infra.py up), creates every topic (idempotent), starts each service as a child process with
its output prefixed by its name, restarts a crashed child with backoff, and on SIGINT/SIGTERM stops
every child (SIGTERM, then SIGKILL after a grace period: a faust worker can hang).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CALLER_ENV = dict(os.environ)  # before the profile is applied: what the user set themselves
SERVICES = ("registry", "router", "deliverer", "history")
STOP_GRACE_S = float(os.environ.get("RUN_STOP_GRACE_S", "15"))
READY_TIMEOUT_S = 120.0
COLOURS = {"run": "1", "infra": "2", "registry": "36", "router": "35", "deliverer": "33", "history": "32"}
DELIVERER_READY = re.compile(r"(?:deliverer|history writer) ready metrics_port=(\d+)")


# --- pure decisions ---------------------------------------------------------------------------------


def restart_delay(crashes: int) -> float:
    """Seconds to wait before restarting a service that crashed `crashes` times in a row: 1, 2, 4 .. 30."""
    return float(min(30, 2 ** max(0, crashes - 1)))


def crashes_after_exit(previous: int, uptime_s: float, stable_after_s: float = 60.0) -> int:
    """A service that ran a while before crashing starts its backoff over."""
    return 1 if uptime_s >= stable_after_s else previous + 1


def is_repeated_signal(first_at: float, now: float, echo_window_s: float = 1.0) -> bool:
    """A second Ctrl-C means "kill now", unless it is the echo of the first one: under `make` and `uv run`
    the terminal's SIGINT reaches this process directly and once more forwarded by `uv`."""
    return now - first_at > echo_window_s


def port_choice(wanted: str | None, default: int, is_free: bool, auto: str) -> tuple[str, str]:
    """(value, why) for a port setting: the environment's, else the default when free, else `auto`."""
    if wanted:
        return wanted, "set"
    if is_free:
        return str(default), "default"
    return auto, f"{default} is busy"


def derived_env(env: Mapping[str, str]) -> dict[str, str]:
    """Settings that follow from others unless set: the router's partition count follows the topics'.
    (Consumer groups take KAFKA_TOPIC_PREFIX in the services themselves.)"""
    out: dict[str, str] = {}
    if "ROUTER_INPUT_PARTITIONS" not in env:
        out["ROUTER_INPUT_PARTITIONS"] = env.get("TOPICS_INPUT_PARTITIONS", "6")
    return out


def shell_exports(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    """`export A=1 B=2` for the names set in `env` (what another terminal needs to talk to this stack)."""
    parts = [f"{n}={env[n]}" for n in names if env.get(n)]
    return ("export " + " ".join(parts)) if parts else ""


# --- output -----------------------------------------------------------------------------------------


class Out:
    def __init__(self) -> None:
        self.colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def line(self, name: str, text: str) -> None:
        tag = f"{name:>9} |"
        if self.colour:
            tag = f"\033[{COLOURS.get(name, '0')}m{tag}\033[0m"
        sys.stdout.write(f"{tag} {text}\n")
        sys.stdout.flush()


OUT = Out()


def say(text: str) -> None:
    OUT.line("run", text)


# --- children ---------------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    crashes: int = 0
    restarts: int = 0
    notes: dict[str, str] = field(default_factory=dict)  # facts read from the output (e.g. metrics port)
    _pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own session: the terminal's Ctrl-C reaches only the supervisor, which stops children in order.
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        self._pump = asyncio.create_task(self._pump_output(self.proc))
        say(f"started {self.name} (pid {self.proc.pid})")

    async def _pump_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            text = raw.decode(errors="replace").rstrip("\n")
            m = DELIVERER_READY.search(text)
            if m:
                self.notes["metrics_port"] = m.group(1)
            OUT.line(self.name, text)

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        if self._pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pump, 2)
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, grace: float) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
            say(f"{self.name} stopped (exit {self.proc.returncode})")
        except TimeoutError:
            say(f"{self.name} did not stop within {grace:.0f}s: killing pid {self.proc.pid}")
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.stopping = asyncio.Event()

    async def _keep_running(self, child: Child) -> None:
        while not self.stopping.is_set():
            await child.start()
            code = await child.wait()
            if self.stopping.is_set():
                return
            uptime = time.monotonic() - child.started_at
            child.crashes = crashes_after_exit(child.crashes, uptime)
            delay = restart_delay(child.crashes)
            say(
                f"{child.name} exited with code {code} after {uptime:.1f}s (crash {child.crashes} in a row); "
                f"restarting in {delay:.0f}s"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            child.restarts += 1

    async def run(self, after_start: asyncio.Future[None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        first_signal_at: float | None = None

        def on_signal(signum: int) -> None:
            nonlocal first_signal_at
            now = time.monotonic()
            if first_signal_at is None:
                first_signal_at = now
                say(f"{signal.Signals(signum).name}: stopping everything (Ctrl-C again to kill at once)")
                self.stopping.set()
            elif is_repeated_signal(first_signal_at, now):
                say("killing every child now")
                for c in self.children:
                    if c.alive() and c.proc is not None:
                        with contextlib.suppress(ProcessLookupError):
                            c.proc.kill()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        keepers = [asyncio.create_task(self._keep_running(c)) for c in self.children]
        await self.stopping.wait()
        if after_start is not None:
            after_start.cancel()
        await asyncio.gather(*(c.stop(STOP_GRACE_S) for c in self.children))
        for k in keepers:
            k.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        say("all stopped")


# --- environment ------------------------------------------------------------------------------------


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_env(describe: bool) -> dict[str, str]:
    from dotenv import dotenv_values

    from webhooks_cli import devprofile

    dotenv = dotenv_values(ROOT / ".env") if (ROOT / ".env").exists() else {}
    values = devprofile.profile(ROOT, CALLER_ENV, dotenv)
    resolved = devprofile.resolve(CALLER_ENV, dotenv, values)
    env = devprofile.child_env(CALLER_ENV, resolved)
    env.update(derived_env(env))
    if describe:
        say("DEVELOPMENT PROFILE (never use it in production); a variable set in the environment wins:")
        why = {
            "REGISTRY_ALLOW_HTTP": "plain-http eventUrls accepted",
            "DELIVERY_ALLOW_PRIVATE_TARGETS": "deliveries to loopback/private addresses allowed",
            "LOG_FORMAT": "readable logs",
            "AUTH_JWT_SECRET": "HS256 key of API tokens",
            "WEBHOOK_SECRETS_KEY": "Fernet key of stored signing secrets",
        }
        width = max(len(f"{s.name}={s.value}") for s in resolved if s.name not in devprofile.GENERATED)
        for s in resolved:
            shown = s.value if s.name not in devprofile.GENERATED else "*" * 8
            origin = s.origin
            if s.origin == devprofile.PROFILE and s.name in devprofile.GENERATED:
                origin = f"dev profile, kept in {devprofile.dev_env_path(ROOT).relative_to(ROOT)}"
            say(f"  {f'{s.name}={shown}':<{width}}  {why.get(s.name, ''):<50} ({origin})")
    return env


def choose_ports(env: dict[str, str], services: tuple[str, ...], *, defaults: bool) -> None:
    """`make run` keeps the documented default ports when they are free; an extra instance (`make
    deliverer`, `make router`) always takes automatic ones so that several can run side by side."""
    if "router" in services:
        value, why = port_choice(
            env.get("ROUTER_WEB_PORT"), 6066, defaults and port_free(6066), str(free_port())
        )
        env["ROUTER_WEB_PORT"] = value
        if why != "set":
            say(f"router web port {value} ({why if defaults else 'automatic'})")
    if "deliverer" in services:
        value, why = port_choice(env.get("DELIVERER_METRICS_PORT"), 9100, defaults and port_free(9100), "0")
        env["DELIVERER_METRICS_PORT"] = value
        if why not in {"set", "default"}:
            say(f"deliverer metrics port: automatic ({why if defaults else 'extra instance'})")
    if "history" in services:
        value, why = port_choice(env.get("REGISTRY_HISTORY_PORT"), 9102, defaults and port_free(9102), "0")
        env["REGISTRY_HISTORY_PORT"] = value
        if why not in {"set", "default"}:
            say(f"history writer port: automatic ({why if defaults else 'extra instance'})")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError):
        return False


async def wait_ready(children: dict[str, Child], env: Mapping[str, str], timeout: float) -> list[str]:
    """Wait until each service says it is ready; returns the names that did not in time."""
    registry = f"http://127.0.0.1:{env.get('REGISTRY_PORT', '8080')}/readyz"
    router = f"http://127.0.0.1:{env.get('ROUTER_WEB_PORT', '6066')}/readyz"
    checks = {
        "registry": lambda: http_ok(registry),
        "router": lambda: http_ok(router),
        "deliverer": lambda: "metrics_port" in children["deliverer"].notes,
        "history": lambda: "metrics_port" in children["history"].notes,
    }
    pending = {n for n in children if n in checks}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            if await asyncio.to_thread(checks[name]):
                pending.discard(name)
                say(f"{name} ready")
        await asyncio.sleep(0.3)
    return sorted(pending)


def banner(env: Mapping[str, str], elapsed: float) -> str:
    api = f"http://127.0.0.1:{env.get('REGISTRY_PORT', '8080')}"
    whctl = ".venv/bin/whctl"
    exports = shell_exports(
        env,
        ("KAFKA_BOOTSTRAP_SERVERS", "MONGO_URL", "KAFKA_TOPIC_PREFIX", "REGISTRY_PORT")
        # whctl finds the profile's key in .infra/dev.env by itself; a key the caller set must be passed on.
        + (("AUTH_JWT_SECRET",) if "AUTH_JWT_SECRET" in CALLER_ENV else ()),
    )
    lines = [
        f"READY in {elapsed:.1f}s. The API is at {api} (schema: {api}/openapi.json).",
        "In another terminal (from this folder):",
    ]
    if exports:
        lines.append(f"  {exports}      # the settings this stack runs with")
    lines += [
        "  make receiver                                          # sample receiver on http://127.0.0.1:9000",
        f"  TOKEN=$({whctl} token --entity cool-account)          # development token (all scopes)",
        f"  curl -s -X POST {api}/api/managing-entity/cool-account/webhook \\",
        '    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
        """    -d '{"name":"Wink Stalker","entity":{"identifier":"cool-account","name":"Cool Account"},"""
        """"enabled":true,"eventList":["booking.created"],"eventUrl":"http://127.0.0.1:9000/hooks"}'""",
        f"  {whctl} send booking.create --entity cool-account     # a sample event; see it at the receiver",
        f"  {whctl} tail                                          # the delivery log",
        "Walkthrough: README.md. Ctrl-C here stops everything.",
    ]
    return "\n".join(lines)


# --- commands ---------------------------------------------------------------------------------------


def service_argv(name: str) -> list[str]:
    if name == "history":  # the registry's delivery-history writer, its own process
        return [sys.executable, "-m", "registry", "history"]
    return [sys.executable, "-m", name]


async def run_all() -> int:
    t0 = time.monotonic()
    env = build_env(describe=True)
    os.environ.update(env)  # the topic helper below and tools/infra.py read the same settings

    say("local servers: tools/infra.py up (does nothing when the configured servers answer)")
    infra = Child("infra", [sys.executable, str(ROOT / "tools" / "infra.py"), "up"], env)
    await infra.start()
    if await infra.wait() != 0:
        say("infrastructure did not come up; see the lines above")
        return 1

    from webhooks_cli.settings import CliSettings
    from webhooks_common.kafka import ensure_topics
    from webhooks_common.settings import load_settings
    from webhooks_common.topics import Topics, topic_specs

    cs = load_settings(CliSettings)
    specs = topic_specs(
        Topics(cs.topic_prefix),
        input_partitions=cs.input_partitions,
        delivery_partitions=cs.delivery_partitions,
    )
    created = await ensure_topics(cs.kafka_bootstrap_servers, specs)
    say(
        f"topics: {len(created)} created, {len(specs) - len(created)} already there "
        f"(prefix {cs.topic_prefix!r})"
    )

    port = int(env.get("REGISTRY_PORT", "8080"))
    if port and not port_free(port):
        say(f"port {port} is taken: stop what uses it or set REGISTRY_PORT=<another port>")
        return 1
    choose_ports(env, SERVICES, defaults=True)
    children = {name: Child(name, service_argv(name), env) for name in SERVICES}
    sup = Supervisor(list(children.values()))

    async def announce() -> None:
        missing = await wait_ready(children, env, READY_TIMEOUT_S)
        if missing:
            say(f"not ready after {READY_TIMEOUT_S:.0f}s: {', '.join(missing)} (see their output above)")
            return
        for text in banner(env, time.monotonic() - t0).splitlines():
            say(text)

    announcer = asyncio.ensure_future(announce())
    await sup.run(after_start=announcer)
    say("the local Kafka and FerretDB keep running (their data too): `make infra-down` stops them")
    return 0


async def run_one(name: str) -> int:
    env = build_env(describe=True)
    choose_ports(env, (name,), defaults=False)
    child = Child(name, service_argv(name), env)
    sup = Supervisor([child])
    say(f"one {name} in the foreground (another `make {name}` adds an instance); Ctrl-C stops it")
    await sup.run()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("service", nargs="?", choices=SERVICES, help="run only this service")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    code = asyncio.run(run_one(args.service) if args.service else run_all())
    raise SystemExit(code)


if __name__ == "__main__":
    main()
