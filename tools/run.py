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
import sys
import threading
import time
from collections.abc import Awaitable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from webhooks_devtools.ports import free_port, port_free
from webhooks_devtools.procs import Proc
from webhooks_devtools.services import service_argv, service_ready
from webhooks_devtools.supervise import Backoff, Supervised

ROOT = Path(__file__).resolve().parent.parent
CALLER_ENV = dict(os.environ)  # before the profile is applied: what the user set themselves
SERVICES = ("registry", "router", "deliverer", "history")
STOP_GRACE_S = float(os.environ.get("RUN_STOP_GRACE_S", "15"))
READY_TIMEOUT_S = 120.0
COLOURS = {"run": "1", "infra": "2", "registry": "36", "router": "35", "deliverer": "33", "history": "32"}
BACKOFF = Backoff(first_s=1.0, ceiling_s=30.0, stable_after_s=60.0)
T = TypeVar("T")


# --- pure decisions ---------------------------------------------------------------------------------


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


def shown_path(path: Path, root: Path) -> str:
    """`path` relative to the repository when it is inside it, else as given (WEBHOOKS_DEV_ENV may point
    anywhere)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]")
# aiokafka logs a retriable coordinator lookup at ERROR; against a Kafka that has just started (every
# first `make run`) the group coordinator is not elected yet, and the client simply retries.
HARMLESS_ERRORS = ("GroupCoordinatorNotAvailableError", "CoordinatorNotAvailableError")
PROGRESS_EVERY_S = 10.0


def clean_line(text: str) -> str | None:
    """A child's output line as shown: terminal escapes and control characters removed (a child writing
    colours or cursor moves leaves debris in a log or a terminal that is not its own); None for the lines
    that carry nothing (faust echoes `-INT-` for each Ctrl-C it sees)."""
    text = ANSI.sub("", text)
    if not text.strip() or set(text.split()) == {"-INT-"}:
        return None
    return text


def relevel(text: str) -> str:
    """The harmless ERROR of a fresh start, shown as what it is (text and JSON log lines)."""
    if not any(name in text for name in HARMLESS_ERRORS):
        return text
    note = " (harmless: Kafka is still electing the group coordinator; retried)"
    if " ERROR " in text:
        return text.replace(" ERROR ", " INFO ", 1) + note
    if '"level": "ERROR"' in text:
        return text.replace('"level": "ERROR"', '"level": "INFO"', 1)
    return text


def progress_line(what: str, elapsed_s: float) -> str:
    return f"still {what} ({elapsed_s:.0f}s so far)"


def receiver_port(env: Mapping[str, str]) -> str:
    return env.get("RECEIVER_PORT") or "9000"


# --- output -----------------------------------------------------------------------------------------


class Out:
    """Prefixed lines on stdout; every child's reader thread writes here, hence the lock."""

    def __init__(self) -> None:
        self.colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self._lock = threading.Lock()
        self.last_at = time.monotonic()

    def line(self, name: str, text: str) -> None:
        shown = clean_line(text)
        if shown is None:
            return
        tag = f"{name:>9} |"
        if self.colour:
            tag = f"\033[{COLOURS.get(name, '0')}m{tag}\033[0m"
        with self._lock:
            sys.stdout.write(f"{tag} {relevel(shown)}\n")
            sys.stdout.flush()
            self.last_at = time.monotonic()


OUT = Out()


def say(text: str) -> None:
    OUT.line("run", text)


# --- children ---------------------------------------------------------------------------------------


def child(name: str, argv: list[str], env: dict[str, str], ready: bool = True) -> Proc:
    """A child whose output is printed with its name; in its own session, so that the terminal's Ctrl-C
    reaches only this supervisor, which stops the children in order."""
    return Proc(
        name,
        argv,
        env,
        cwd=ROOT,
        on_line=lambda text: OUT.line(name, text),
        ready=service_ready(name, env) if ready else None,
        new_session=True,
    )


class Supervisor:
    """From its first SIGINT/SIGTERM on, everything stops: a phase still starting (`unless_stopped`) is
    given up, then the children kept running by `run` (restarted with backoff until then) are stopped."""

    def __init__(self) -> None:
        self.children: list[Supervised] = []
        self.stopping = asyncio.Event()
        self._first_signal_at: float | None = None

    def _on_signal(self, signum: int) -> None:
        now = time.monotonic()
        if self._first_signal_at is None:
            self._first_signal_at = now
            say(f"{signal.Signals(signum).name}: stopping everything (Ctrl-C again to kill at once)")
            self.stopping.set()
        elif is_repeated_signal(self._first_signal_at, now):
            say("killing every child now")
            for c in self.children:
                c.proc.kill()

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def unless_stopped(self, step: Awaitable[T], what: str | None = None) -> T | None:
        """The result of `step`, or None (and `step` cancelled) when a signal asks to stop first. With
        `what`, a progress line whenever nothing was printed for PROGRESS_EVERY_S (long first steps)."""
        work = asyncio.ensure_future(step)
        stop = asyncio.create_task(self.stopping.wait())
        ticker = asyncio.create_task(_progress(what)) if what else None
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if ticker is not None:
            ticker.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return None

    async def run(self, children: list[Supervised], after_start: asyncio.Future[None] | None = None) -> None:
        """Keep `children` running until a signal, then stop them all (SIGTERM, SIGKILL after a grace)."""
        self.children = children
        try:
            for c in children:
                if not self.stopping.is_set():
                    await c.start()
            await self.stopping.wait()
        finally:
            if after_start is not None:
                after_start.cancel()
            await asyncio.gather(*(c.stop(STOP_GRACE_S) for c in children))
            say("all stopped")


async def _progress(what: str) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        if now - OUT.last_at >= PROGRESS_EVERY_S:
            say(progress_line(what, now - started))


# --- environment ------------------------------------------------------------------------------------


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
            "REGISTRY_DEV_TOKENS": "the Webhooks page can mint development tokens",
            "REGISTRY_HOST": "the API on loopback only",
            "ROUTER_WEB_BIND": "the router's web port on loopback only",
            "DELIVERER_METRICS_HOST": "the deliverer's metrics on loopback only",
            "LOG_FORMAT": "readable logs",
            "AUTH_JWT_SECRET": "HS256 key of API tokens",
            "WEBHOOK_SECRETS_KEY": "Fernet key of stored signing secrets",
        }
        width = max(len(f"{s.name}={s.value}") for s in resolved if s.name not in devprofile.GENERATED)
        for s in resolved:
            shown = s.value if s.name not in devprofile.GENERATED else "*" * 8
            origin = s.origin
            if s.origin == devprofile.PROFILE and s.name in devprofile.GENERATED:
                origin = f"dev profile, kept in {shown_path(devprofile.dev_env_path(ROOT), ROOT)}"
            say(f"  {f'{s.name}={shown}':<{width}}  {why.get(s.name, ''):<50} ({origin})")
    return env


# The service ports `make run` chooses (the registry's is the API's: it is never moved).
PORTS = {
    "router": ("ROUTER_WEB_PORT", 6066, "router web port"),
    "deliverer": ("DELIVERER_METRICS_PORT", 9100, "deliverer metrics port"),
    "history": ("REGISTRY_HISTORY_PORT", 9102, "history writer port"),
}


def choose_ports(env: dict[str, str], services: tuple[str, ...], *, defaults: bool) -> None:
    """`make run` keeps the documented default ports when they are free; an extra instance (`make
    deliverer`, `make router`) always takes automatic ones so that several can run side by side. A port
    of its own rather than 0 (any): readiness is asked on it."""
    for service in (s for s in services if s in PORTS):
        setting, default, label = PORTS[service]
        value, why = port_choice(env.get(setting), default, defaults and port_free(default), str(free_port()))
        env[setting] = value
        if why != "set":
            say(f"{label} {value} ({why if defaults else 'automatic'})")


async def wait_ready(children: list[Supervised], timeout: float) -> list[str]:
    """Wait until each service is ready (its readiness endpoint); returns the names that were not in time."""

    async def one(c: Supervised) -> str | None:
        if await c.wait_ready(timeout):
            say(f"{c.name} ready")
            return None
        return c.name

    return sorted(n for n in await asyncio.gather(*(one(c) for c in children)) if n)


def banner(env: Mapping[str, str], elapsed: float) -> str:
    api = f"http://127.0.0.1:{env.get('REGISTRY_PORT', '8080')}"
    rx = f"http://127.0.0.1:{receiver_port(env)}"
    whctl = ".venv/bin/whctl"
    exports = shell_exports(
        env,
        ("KAFKA_BOOTSTRAP_SERVERS", "MONGO_URL", "KAFKA_TOPIC_PREFIX", "REGISTRY_PORT", "RECEIVER_PORT")
        # whctl finds the profile's key in .infra/dev.env by itself; a key the caller set must be passed on.
        + (("AUTH_JWT_SECRET",) if "AUTH_JWT_SECRET" in CALLER_ENV else ()),
    )
    lines = [
        f"READY in {elapsed:.1f}s. The API is at {api} (schema: {api}/openapi.json).",
        f"The Webhooks page: {api}/ (development profile: it can mint a token for an entity you give).",
        "In another terminal (from this folder):",
    ]
    if exports:
        lines.append(f"  {exports}      # the settings this stack runs with")
    lines += [
        f"  make receiver                                          # sample receiver on {rx}",
        f"  TOKEN=$({whctl} token --entity cool-account)          # development token (all scopes)",
        f"  curl -s -X POST {api}/api/managing-entity/cool-account/webhook \\",
        '    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
        """    -d '{"name":"Wink Stalker","entity":{"identifier":"cool-account","name":"Cool Account"},"""
        f""""enabled":true,"eventList":["booking.created"],"eventUrl":"{rx}/hooks"}}'""",
        f"  {whctl} send booking.create --entity cool-account     # a sample event; see it at the receiver",
        f"  {whctl} tail                                          # the delivery log",
        "Walkthrough: README.md. Ctrl-C here stops everything.",
    ]
    return "\n".join(lines)


# --- commands ---------------------------------------------------------------------------------------


async def run_all() -> int:
    sup = Supervisor()
    with sup.signals():
        return await _run_all(sup)


async def _run_all(sup: Supervisor) -> int:
    t0 = time.monotonic()
    env = build_env(describe=True)
    os.environ.update(env)  # the topic helper below and tools/infra.py read the same settings

    say("local servers: tools/infra.py up (does nothing when the configured servers answer)")
    infra = child("infra", [sys.executable, str(ROOT / "tools" / "infra.py"), "up"], env, ready=False)
    code = await sup.unless_stopped(
        infra.start().wait(),
        "starting the local Kafka and FerretDB (a first run downloads and builds them: about a minute)",
    )
    if sup.stopping.is_set():
        await infra.stop(STOP_GRACE_S)
        say("stopped before the services started")
        return 130
    if code != 0:
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
    say(f"topics: creating what is missing (prefix {cs.topic_prefix!r})")
    created = await sup.unless_stopped(
        ensure_topics(cs.kafka_bootstrap_servers, specs),
        "creating topics (Kafka may still be electing leaders)",
    )
    if created is None:
        say("stopped before the services started")
        return 130
    say(
        f"topics: {len(created)} created, {len(specs) - len(created)} already there "
        f"(prefix {cs.topic_prefix!r})"
    )

    port = int(env.get("REGISTRY_PORT", "8080"))
    if port and not port_free(port):
        say(f"port {port} is taken: stop what uses it or set REGISTRY_PORT=<another port>")
        return 1
    choose_ports(env, SERVICES, defaults=True)
    children = [Supervised(child(n, service_argv(n), env), BACKOFF, say) for n in SERVICES]

    async def announce() -> None:
        missing = await wait_ready(children, READY_TIMEOUT_S)
        if missing:
            say(f"not ready after {READY_TIMEOUT_S:.0f}s: {', '.join(missing)} (see their output above)")
            return
        for text in banner(env, time.monotonic() - t0).splitlines():
            say(text)

    announcer = asyncio.ensure_future(announce())
    await sup.run(children, after_start=announcer)
    say("the local Kafka and FerretDB keep running (their data too): `make infra-down` stops them")
    return 0


async def run_one(name: str) -> int:
    env = build_env(describe=True)
    choose_ports(env, (name,), defaults=False)
    say(f"one {name} in the foreground (another `make {name}` adds an instance); Ctrl-C stops it")
    sup = Supervisor()
    with sup.signals():
        await sup.run([Supervised(child(name, service_argv(name), env), BACKOFF, say)])
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
