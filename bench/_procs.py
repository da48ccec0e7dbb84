"""Child processes of the benches and what /proc says about them (CPU seconds, context switches, RSS).

Every process a bench starts is a webhooks_devtools `Proc` (`bench_proc`): its output in a log file in
the bench's work folder, stopped with SIGTERM and then SIGKILL after a grace period (a faust worker can
hang on SIGTERM), never by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from webhooks_devtools.pids import rss_bytes
from webhooks_devtools.ports import free_port
from webhooks_devtools.procs import Proc, Readiness

__all__ = [
    "Proc",
    "bench_proc",
    "context_switches",
    "cpu_seconds",
    "free_port",
    "kafka_pid",
    "machine_busy_seconds",
    "reaped_cpu_seconds",
    "rss_mb",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def bench_proc(
    name: str, argv: list[str], env: dict[str, str], workdir: Path, ready: Readiness | None = None
) -> Proc:
    """A child of a bench, run in `workdir` with its output in `workdir/NAME.log`."""
    return Proc(name, argv, env, cwd=workdir, log_path=workdir / f"{name}.log", ready=ready)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields from the state on (field 3 is [0]); None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of every thread of `pid` (None when it is gone)."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15


def reaped_cpu_seconds(pid: int) -> float | None:
    """cutime + cstime: CPU of `pid`'s exited children that it has waited for (None when it is gone)."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[13]) + int(fields[14])) / CLK_TCK  # fields 16, 17


def context_switches(pid: int) -> int | None:
    """Voluntary + involuntary context switches of every thread of `pid` so far (None when it is gone).

    Why: each switch is a thread going to sleep and being woken again, and on this VM a wake-up from idle
    costs a process far more CPU than the work it wakes for (`_host.py`). Switches per event count those
    wake-ups in a way that does not depend on how fast the host is that hour."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        for line in status.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def rss_mb(pid: int) -> float | None:
    rss = rss_bytes(pid)
    return None if rss is None else rss / (1024 * 1024)


def machine_busy_seconds() -> float:
    """CPU seconds used by everything on this machine (all cores) since boot: all but idle and iowait."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def kafka_pid(root: Path) -> int | None:
    """The local broker's pid from tools/infra.py's pid file, when it runs here."""
    pid_file = Path(os.environ.get("INFRA_DIR", root / ".infra")) / "run" / "kafka.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if cpu_seconds(pid) is not None else None
