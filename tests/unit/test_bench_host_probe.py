"""The benches' host probe and context-switch counter read real processes (`bench/_host.py`, `_procs.py`)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench._host"), importlib.import_module("bench._procs")


def test_switches_count_each_sleep_of_a_process(bench: tuple[ModuleType, ModuleType]) -> None:
    _, procs = bench
    # it starts sleeping only once told to, so the first count is taken before any of the forty sleeps
    script = "import sys, time\nsys.stdin.readline()\nfor _ in range(40): time.sleep(0.005)\ntime.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    try:
        first = procs.context_switches(child.pid)
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        deadline = time.monotonic() + 10
        while (now := procs.context_switches(child.pid)) < first + 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert now >= first + 40  # forty sleeps, each one a switch
    finally:
        child.kill()
        child.wait()
    assert procs.context_switches(child.pid) is None  # gone


def test_probe_measures_the_echo_servers_cpu_both_ways(bench: tuple[ModuleType, ModuleType]) -> None:
    host, _ = bench
    probe = host.host_probe()
    assert probe["python_loop_ns"] > 0
    # the child's own CPU per round trip: zero would mean the probe read the wrong process
    assert 0 < probe["busy_us"] < 100_000
    assert 0 < probe["wakeup_us"] < 100_000
    assert "ns/iteration" in host.describe(probe)


def test_a_child_that_exited_still_counts_in_its_parents_reaped_cpu(
    bench: tuple[ModuleType, ModuleType],
) -> None:
    """As a PostgreSQL backend does when its connection closes: its CPU leaves the live processes' sum."""
    _, procs = bench
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    # the parent runs a child that burns 0.3 s of CPU, waits for it, then sleeps until killed
    script = f"import subprocess, sys, time\nsubprocess.run([sys.executable, '-c', {burn!r}])\ntime.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while (reaped := procs.reaped_cpu_seconds(parent.pid)) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reaped >= 0.25
        assert procs.cpu_seconds(parent.pid) < 0.25  # the parent's own CPU does not hold the child's
    finally:
        parent.kill()
        parent.wait()
    assert procs.reaped_cpu_seconds(parent.pid) is None  # gone
