"""One child process: started with its output in a log file or given line by line to a callback, ready
when its readiness check says so, stopped with SIGTERM and then SIGKILL after a bound.

    p = Proc("router", [sys.executable, "-m", "router"], env, cwd=ROOT, log_path=tmp / "router.log",
             ready=HttpReady(f"http://127.0.0.1:{port}/readyz"))
    p.start()
    await p.wait_ready(60)          # raises ProcError (with the log's tail) if it exits or is late
    ...
    await p.stop(grace=15)          # SIGTERM, SIGKILL after 15 s; returns the exit code

Waits poll the process (`Popen.poll`) instead of waiting on asyncio's transport: asyncio's
`Process.wait()` returns only once the child's pipes are closed, so a reader that stopped reading made
a dead child look alive for ever (`make run` did not stop). Every process is stopped by its own pid,
never by name.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Protocol, Self

from webhooks_devtools.lines import LineSplitter

POLL_S = 0.05


class ProcError(RuntimeError):
    """A child exited or did not become ready in time (the message carries its output's tail)."""


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of GET `url`; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


# --- readiness ----------------------------------------------------------------------------------------


class Readiness(Protocol):
    """Whether a started process is ready; `patterns` are the output lines it looks for (if any)."""

    @property
    def patterns(self) -> tuple[str, ...]: ...

    async def __call__(self, proc: Proc) -> bool: ...


@dataclass(frozen=True)
class LineReady:
    """Ready once a line matching `pattern` was printed since the current start."""

    pattern: str

    @property
    def patterns(self) -> tuple[str, ...]:
        return (self.pattern,)

    async def __call__(self, proc: Proc) -> bool:
        return await asyncio.to_thread(proc.found, self.pattern) is not None


@dataclass(frozen=True)
class HttpReady:
    """Ready when GET `url` answers 200. `fallback` is asked instead while the URL answers 404: a
    version of the service without that endpoint (the caller chooses what else tells it is ready)."""

    url: str
    fallback: Readiness | None = None
    timeout: float = 1.5

    @property
    def patterns(self) -> tuple[str, ...]:
        return self.fallback.patterns if self.fallback is not None else ()

    async def __call__(self, proc: Proc) -> bool:
        status, _ = await asyncio.to_thread(http_get, self.url, self.timeout)
        if status == 404 and self.fallback is not None:
            return await self.fallback(proc)
        return status == 200


# --- the process ----------------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Proc:
    """A child process, started again by `start()` after it exited (the same name, log and readiness).

    Output: with `log_path`, stdout and stderr are appended to that file; with `on_line`, a reader
    thread hands each line (cut at `max_line` bytes, see lines.py) to the callback. `new_session`: the
    child gets its own session, so a terminal's Ctrl-C reaches only us and we stop children in order.
    """

    name: str
    argv: list[str]
    env: Mapping[str, str]
    _: KW_ONLY
    cwd: Path
    log_path: Path | None = None
    on_line: Callable[[str], None] | None = None
    ready: Readiness | None = None
    new_session: bool = False
    max_line: int = 16 * 1024
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts: int = field(default=0, init=False)
    started_at: float = field(default=0.0, init=False)  # time.monotonic() of the last start
    killed_after_grace: bool = field(default=False, init=False)  # the last stop() had to SIGKILL
    _log_offset: int = field(default=0, init=False)  # size of the log file when the current process started
    _found: dict[str, re.Match[str]] = field(default_factory=dict, init=False)
    _tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200), init=False)
    _reader: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if (self.log_path is None) == (self.on_line is None):
            raise ValueError("give exactly one of log_path and on_line")
        self.argv = list(self.argv)  # our own copies: a caller's later changes do not leak in
        self.env = dict(self.env)
        self._watch = [re.compile(p) for p in (self.ready.patterns if self.ready is not None else ())]

    # --- state ----------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    # --- start ----------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self.alive():
            raise ProcError(f"{self.name} is already running (pid {self.pid})")
        self.cwd.mkdir(parents=True, exist_ok=True)
        self._found.clear()
        self._tail.clear()
        common = {
            "cwd": self.cwd,
            "env": self.env,
            "stdin": subprocess.DEVNULL,
            "stderr": subprocess.STDOUT,
            "start_new_session": self.new_session,
        }
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                self._log_offset = log.tell()
                self.popen = subprocess.Popen(self.argv, stdout=log, **common)  # type: ignore[call-overload]
        else:
            self.popen = subprocess.Popen(self.argv, stdout=subprocess.PIPE, **common)  # type: ignore[call-overload]
            assert self.popen.stdout is not None
            self._reader = threading.Thread(
                target=self._read, args=(self.popen.stdout,), name=f"output-{self.name}", daemon=True
            )
            self._reader.start()
        self.starts += 1
        self.started_at = time.monotonic()
        return self

    def _read(self, pipe: object) -> None:
        """Reader thread: until end of output, each line to `on_line`; never gives up on a line."""
        fd = pipe.fileno()  # type: ignore[attr-defined]
        splitter = LineSplitter(self.max_line)
        try:
            while chunk := os.read(fd, 65536):
                for raw in splitter.feed(chunk):
                    self._line(raw)
            for raw in splitter.flush():
                self._line(raw)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[attr-defined]

    def _line(self, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        for pattern in self._watch:
            if pattern.pattern not in self._found and (m := pattern.search(text)):
                self._found[pattern.pattern] = m
        self._tail.append(text)
        assert self.on_line is not None
        with contextlib.suppress(Exception):  # a failing printer must not stop the draining
            self.on_line(text)

    # --- output ---------------------------------------------------------------------------------------

    def output_since_start(self) -> str:
        """What the current process printed so far (log file mode; the last lines with `on_line`)."""
        if self.log_path is None:
            return "\n".join(self._tail)
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_text(self) -> str:
        """The whole log (every start), or the last lines with `on_line`."""
        if self.log_path is None:
            return "\n".join(self._tail)
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def found(self, pattern: str) -> re.Match[str] | None:
        """The first line matching `pattern` since the current start (with `on_line`: only patterns of
        the readiness check are watched)."""
        if self.log_path is None:
            return self._found.get(pattern)
        return re.search(pattern, self.output_since_start())

    # --- readiness ------------------------------------------------------------------------------------

    async def is_ready(self) -> bool:
        if not self.alive():
            return False
        if self.ready is None:
            return True
        try:
            return await self.ready(self)
        except Exception:
            return False

    async def ready_within(self, within: float, *, give_up_on_exit: bool = False) -> bool:
        """Polls readiness until `within` seconds passed (or, with `give_up_on_exit`, the process ended)."""
        deadline = time.monotonic() + within
        while True:
            if await self.is_ready():
                return True
            if time.monotonic() > deadline or (give_up_on_exit and not self.alive()):
                return False
            await asyncio.sleep(0.1)

    async def wait_ready(self, within: float = 60.0) -> None:
        """Until ready; ProcError (with the output's tail) when the process exits or is not ready in time."""
        if await self.ready_within(within, give_up_on_exit=True):
            return
        why = f"exited with {self.returncode}" if not self.alive() else f"not ready after {within:.0f}s"
        raise ProcError(f"{self.name} {why}:\n{self.log_tail()}")

    # --- stop -----------------------------------------------------------------------------------------

    def send(self, sig: int) -> None:
        if self.alive():
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL now (a crash to survive, or a stop that cannot wait)."""
        self.send(signal.SIGKILL)

    async def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the process ended; None if it still runs after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.popen is not None and self.popen.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            await asyncio.sleep(POLL_S)
        return self.returncode

    async def stop(self, grace: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        """`sig` (SIGTERM), then SIGKILL after `grace` seconds; returns the exit code."""
        self.killed_after_grace = False
        if self.alive():
            self.send(sig)
            if await self.wait(grace) is None:
                self.killed_after_grace = True
                self.kill()
                await self.wait(10)
        return self.returncode

    def stop_sync(self, grace: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        """`stop()` for synchronous code (blocks; inside a running event loop it blocks that loop too)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.stop(grace, sig))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.stop(grace, sig)).result()
