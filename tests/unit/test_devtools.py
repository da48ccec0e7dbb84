"""webhooks_devtools: output lines however long, the restart backoff, a child's start/readiness/stop and
its supervision (real child processes, loopback HTTP)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.conftest import eventually
from webhooks_devtools.lines import LineSplitter
from webhooks_devtools.metrics import sample
from webhooks_devtools.ports import free_port, port_free
from webhooks_devtools.procs import HttpReady, LineReady, Proc, ProcError
from webhooks_devtools.services import DELIVERER_READY_LINE, service_ready
from webhooks_devtools.supervise import Backoff, Supervised


def test_lines_are_cut_at_the_bound_and_the_rest_of_a_long_line_is_skipped() -> None:
    s = LineSplitter(max_bytes=10)
    assert s.feed(b"short\nabc") == [b"short"]
    out = s.feed(b"x" * 30)  # no newline yet: the head goes out at once, cut
    assert out == [b"abc" + b"x" * 7 + b" [... line cut at 10 bytes]"]
    assert s.feed(b"y" * 100_000) == []  # still the same line: skipped
    assert s.feed(b"zz\nnext\nla") == [b"next"]
    assert s.feed(b"0123456789AB\n") == [b"la0123456789AB"[:10] + b" [... line cut at 10 bytes]"]
    assert s.feed(b"tail") == [] and s.flush() == [b"tail"]


def test_backoff_doubles_to_a_ceiling_and_starts_over_after_a_stable_run_or_a_planned_kill() -> None:
    b = Backoff(first_s=1.0, ceiling_s=10.0, stable_after_s=20.0)
    assert [b.delay(n) for n in (0, 1, 2, 3, 4, 5)] == [1, 1, 2, 4, 8, 10]
    assert b.crashes_after_exit(2, uptime_s=1) == 3
    assert b.crashes_after_exit(2, uptime_s=30) == 1
    assert b.crashes_after_exit(2, uptime_s=1, planned=True) == 1


def test_a_sample_is_read_from_a_prometheus_page_and_a_missing_one_is_none() -> None:
    page = (
        "# HELP registry_outbox_lease_held held\n# TYPE registry_outbox_lease_held gauge\n"
        "registry_outbox_lease_held 1.0\n"
        '# TYPE skipped_total counter\nskipped_total{reason="bad_key"} 3.0\n'
    )
    assert sample(page, "registry_outbox_lease_held") == 1.0
    assert sample(page, "skipped_total") == 3.0
    assert sample(page, "registry_outbox_lease") is None


def test_free_port_is_free_and_a_bound_one_is_not() -> None:
    port = free_port(pair=True)
    assert port_free(port) and port_free(port + 1)


def test_free_ports_are_below_the_range_outgoing_connections_take_theirs_from() -> None:
    start = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert all(20000 <= p < start for p in ports), sorted(ports)
    assert len(set(ports)) == len(ports)  # never the same one twice in a process


def _child(tmp: Path, code: str, **kw: object) -> Proc:
    return Proc("child", [sys.executable, "-c", code], {}, cwd=tmp, log_path=tmp / "child.log", **kw)  # type: ignore[arg-type]


async def test_ready_from_a_line_since_the_current_start_and_a_stop_that_must_kill(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    p = _child(tmp_path, code, ready=LineReady(r"^up$"))
    await p.start().wait_ready(10)
    assert await p.stop(grace=0.5) == -signal.SIGKILL and p.killed_after_grace
    assert p.found(r"^up$") is not None  # the log of the current (last) start
    await p.start().wait_ready(10)  # started again: the same name, log and readiness
    assert p.starts == 2 and p.log_text().count("up\n") == 2
    await p.stop(grace=0.5)


async def test_wait_ready_fails_early_with_the_output_when_the_child_exits(tmp_path: Path) -> None:
    p = _child(tmp_path, "import sys; print('bad config'); sys.exit(2)", ready=LineReady("never"))
    with pytest.raises(ProcError, match=r"exited with 2(.|\n)*bad config"):
        await p.start().wait_ready(10)


@pytest.fixture
def http_404() -> Iterator[str]:
    class NotHere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404 if self.path == "/readyz" else 200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotHere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_http_readiness_falls_back_to_the_callers_choice_while_the_endpoint_is_missing(
    tmp_path: Path, http_404: str
) -> None:
    code = "import time; time.sleep(1); print('ready now', flush=True); time.sleep(60)"
    p = _child(tmp_path, code, ready=HttpReady(f"{http_404}/readyz", fallback=LineReady("ready now")))
    p.start()
    assert not await p.is_ready()  # 404, and the line is not there yet
    await p.wait_ready(10)
    assert await HttpReady(f"{http_404}/healthz")(p)  # 200 is ready without asking the fallback
    assert not await HttpReady(f"{http_404}/readyz")(p)  # 404 without a fallback: not ready
    await p.stop(5)


async def test_output_given_line_by_line_is_watched_for_readiness(tmp_path: Path) -> None:
    seen: list[str] = []
    code = "print('x' * 100_000); print('ready', flush=True); import time; time.sleep(60)"
    p = Proc(
        "c", [sys.executable, "-c", code], {}, cwd=tmp_path, on_line=seen.append, ready=LineReady("^ready$")
    )
    await p.start().wait_ready(10)
    assert seen[-1] == "ready" and seen[0].endswith("line cut at 16384 bytes]")
    await p.stop(5)


async def test_a_supervised_process_is_restarted_and_a_planned_kill_is_told_apart(tmp_path: Path) -> None:
    messages: list[str] = []
    code = "import sys,time; print('up', flush=True); time.sleep(float(sys.argv[1]))"
    proc = Proc("svc", [sys.executable, "-c", code, "0.3"], {}, cwd=tmp_path, log_path=tmp_path / "s.log")
    svc = Supervised(proc, Backoff(first_s=0.1, ceiling_s=0.2, stable_after_s=60), messages.append)
    await svc.start()
    await eventually(lambda: len(svc.exits) >= 2, timeout=10, what="two exits")  # by itself, each time
    assert [e.planned for e in svc.exits[:2]] == [False, False] and svc.crashes >= 2
    proc.argv[-1] = "60"  # from the next restart on, it stays up
    await eventually(
        lambda: proc.alive() and proc.popen is not None and list(proc.popen.args)[-1] == "60",  # type: ignore[arg-type]
        timeout=10,
        what="a start that stays up",
    )
    starts = svc.starts
    svc.kill()
    assert await svc.restarted(starts, within=10)  # started again after the kill, and up
    assert any(e.planned for e in svc.exits)
    assert svc.crashes == 1 and len(svc.unplanned) == len(svc.exits) - 1
    await svc.stop(grace=5)
    starts = svc.starts
    # longer than the backoff: a restart would have happened
    assert not await svc.restarted(starts, within=0.4)
    assert svc.starts == starts and not proc.alive()  # stopped: no more restarts
    assert any("exited with code 0" in m for m in messages)


def test_each_service_is_asked_for_readiness_where_it_answers() -> None:
    assert service_ready("registry", {"REGISTRY_PORT": "18080"}) == HttpReady("http://127.0.0.1:18080/readyz")
    assert service_ready("router", {}) == HttpReady("http://127.0.0.1:6066/readyz")
    deliverer = service_ready("deliverer", {"DELIVERER_METRICS_PORT": "19100"})
    assert deliverer == HttpReady("http://127.0.0.1:19100/readyz", fallback=LineReady(DELIVERER_READY_LINE))
    # port 0 (any): the port is not known here, the ready line is all there is
    assert service_ready("deliverer", {"DELIVERER_METRICS_PORT": "0"}) == LineReady(DELIVERER_READY_LINE)
