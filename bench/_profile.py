"""py-spy sampling of a running service and a summary of its collapsed stacks.

`py-spy record --format raw` writes one line per distinct stack: `frame;frame;...;leaf count`, each frame
`function (file)` (with --nolineno). Own time = samples where the function is the leaf; total time =
samples where it is anywhere on the stack. Idle threads are not sampled (py-spy's default), so shares are
of the time the process was running Python or native code on its behalf.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*)\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def run_py_spy(pid: int, seconds: float, out: Path, rate: int = 200) -> Callable[[], Path | None]:
    """A blocking call (run it in a thread) that samples `pid` for `seconds` into `out`."""

    def go() -> Path | None:
        exe = py_spy()
        if exe is None:
            return None
        cmd = [exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(rate), "--nonblocking"]
        cmd += ["--nolineno", "-f", "raw", "-o", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            return None
        if proc.returncode != 0 or not out.exists():
            out.with_suffix(".err").write_bytes(proc.stdout + proc.stderr)
            return None
        return out

    return go


def short(frame: str) -> str:
    """`handle (/x/site-packages/aiokafka/consumer/fetcher.py)` -> `aiokafka/consumer/fetcher.py:handle`."""
    m = FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib/" + path.split("/", 1)[1]
            break
    return f"{path}:{m['fn']}"


def package(frame: str) -> str:
    s = short(frame)
    head = s.split("/", 1)[0]
    if head == "stdlib":
        parts = s.split("/")
        return f"stdlib/{parts[1].split(':')[0].removesuffix('.py')}"
    return head.split(":")[0].removesuffix(".py")


def summarize_folded(path: Path, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    own_pkg: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = [f for f in stack.split(";") if FRAME.match(f)]
        if not frames:
            continue
        samples += count
        leaf = frames[-1]
        own[short(leaf)] += count
        own_pkg[package(leaf)] += count
        for f in {short(f) for f in frames}:
            total[f] += count

    def share(c: Counter[str], n: int) -> list[list[Any]]:
        return [[name, round(100 * v / samples, 1)] for name, v in c.most_common(n)] if samples else []

    # epoll waits are sampled too (py-spy cannot tell this idle wait from work): report them apart
    idle = sum(v for k, v in own.items() if k.endswith(("EpollSelector.select", "Condition.wait")))
    return {
        "samples": samples,
        "idle_pct": round(100 * idle / samples, 1) if samples else 0.0,
        "own_pct": share(own, top),
        "total_pct": share(total, top * 2),
        "own_by_package_pct": share(own_pkg, 12),
    }
