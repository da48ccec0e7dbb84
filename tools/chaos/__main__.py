"""Fault tolerance, measured: `make chaos` (faults under load) and `make soak` (bad input).

    python -m tools.chaos chaos            # 200 webhooks, 20,000 events, 9 faults (about 9 minutes)
    python -m tools.chaos soak             # 100,000 + 30,000 malformed records (input topics + internal
                                           # topics) among 10,000 valid events (about 3 minutes)
    python -m tools.chaos soak --bad 5000 --internal 3000 --valid 500 --no-save   # a quick look
    python -m tools.chaos all              # both, one report
    python -m tools.chaos chaos --events 500 --rate 25 --webhooks 10 --plan deliverer,kafka   # a quick look
    python -m tools.chaos chaos --events 600 --rate 20 --webhooks 10 --plan sabotage --no-save
        # self-test of the harness: really deletes delivery tasks; must end with lost > 0 and exit 1

Faults (--plan, comma-separated, in order): deliverer, router (SIGKILL one, the supervisor restarts it),
kafka (SIGKILL the broker, start it again), ferretdb (stop it for --ferretdb-down s), registry (SIGKILL
the registry holding the outbox lease, then create a webhook through another: its event must arrive),
receivers (10% of the receivers answer 500 for --receivers-fail s), receivers+deliverer (the same, with a
deliverer SIGKILLed half-way), sabotage (the self-test above).

Everything runs on a private Kafka + FerretDB pair started for the run (never the shared servers), with
the real services as subprocesses. Results: bench/results/chaos.json, bench/results/soak.json and the
report bench/CHAOS.md (rewritten from whichever results exist). Exit code 1 when an event was lost, a
fault was not recovered from by itself, or a soak check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # also when run as `python tools/chaos`

from tools.chaos.report import chaos_verdict, render, soak_verdict  # noqa: E402
from tools.chaos.scenario import FULL_PLAN, ChaosConfig, run_chaos  # noqa: E402
from tools.chaos.soak import SoakConfig, run_soak  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "bench" / "CHAOS.md"


def say(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    return path


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


NOTES_MARK = "<!-- notes: written by hand, kept when the report is regenerated -->"


def write_report() -> None:
    # The figures are regenerated; the analysis written under the marker survives a new run.
    old = REPORT.read_text() if REPORT.exists() else ""
    notes = old[old.index(NOTES_MARK) :] if NOTES_MARK in old else NOTES_MARK + "\n"
    REPORT.write_text(render(load("chaos"), load("soak")) + "\n" + notes)
    say(f"report: {REPORT.relative_to(ROOT)}")


def run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """asyncio.run, with SIGTERM (e.g. a CI timeout) cancelling the run like Ctrl-C does, so that the
    private servers and the services are stopped on the way out."""

    async def guarded() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await coro

    try:
        return asyncio.run(guarded())
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: services and private servers stopped")
        raise SystemExit(130) from None


def code_version() -> dict[str, Any]:
    """Which code ran: HEAD, and the service files that differed from it (others commit concurrently)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.rstrip()

    dirty = git("status", "--porcelain", "--", "services", "libs")
    return {"head": git("rev-parse", "--short", "HEAD"), "uncommitted": dirty.splitlines()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=["chaos", "soak", "all", "report"])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=60.0, help="input events per second")
    parser.add_argument("--webhooks", type=int, default=200)
    parser.add_argument("--plan", default=",".join(FULL_PLAN), help="faults in order")
    parser.add_argument("--registries", type=int, default=2, help="registry processes on the one database")
    parser.add_argument("--ferretdb-down", type=float, default=30.0)
    parser.add_argument("--receivers-fail", type=float, default=30.0)
    parser.add_argument("--kafka-down", type=float, default=0.0, help="extra seconds the broker stays dead")
    parser.add_argument(
        "--bad", type=int, default=100_000, help="soak: malformed records on the input topics"
    )
    parser.add_argument(
        "--internal", type=int, default=30_000, help="soak: malformed records on the internal topics"
    )
    parser.add_argument("--valid", type=int, default=10_000, help="soak: valid events among them")
    parser.add_argument("--soak-rate", type=float, default=1500.0, help="soak: records per second")
    parser.add_argument("--no-save", action="store_true", help="print the results, keep bench/ as it is")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # aiokafka is loud while the broker is away
    ok = True
    if args.what == "report":
        write_report()
        return 0
    if args.what in ("chaos", "all"):
        cfg = ChaosConfig(
            events=args.events,
            rate=args.rate,
            webhooks=args.webhooks,
            plan=tuple(p for p in args.plan.split(",") if p),
            registries=args.registries,
            ferretdb_down_s=args.ferretdb_down,
            receivers_fail_s=args.receivers_fail,
            kafka_down_s=args.kafka_down,
            progress=say,
        )
        result = run(run_chaos(cfg))
        result["code"] = code_version()
        problems = chaos_verdict(result)
        result["verdict"] = problems or ["ok"]
        ok &= not problems
        say(f"chaos: expected {result['events_expected']}, lost {result['lost']}, dup {result['duplicates']}")
        for p in problems:
            say(f"  PROBLEM: {p}")
        if not args.no_save:
            say(f"results: {save('chaos', result).relative_to(ROOT)}")
    if args.what in ("soak", "all"):
        scfg = SoakConfig(
            bad=args.bad, internal=args.internal, valid=args.valid, rate=args.soak_rate, progress=say
        )
        result = run(run_soak(scfg))
        result["code"] = code_version()
        problems = soak_verdict(result)
        result["verdict"] = problems or ["ok"]
        ok &= not problems
        for p in problems:
            say(f"  PROBLEM: {p}")
        if not args.no_save:
            say(f"results: {save('soak', result).relative_to(ROOT)}")
    if not args.no_save:
        write_report()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
