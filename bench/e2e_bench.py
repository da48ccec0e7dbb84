"""End-to-end benchmarks of the whole system on this machine (issue 8). `make bench` runs it.

    .tools/bin/uv run --frozen python bench/e2e_bench.py [--events 40000] [--seconds 10] [--only x,y]

Scenarios (loopback only, every one bounded and self-stopping):
  ceiling     bare aiohttp client -> receiver (own process, 204), 100 tasks, 515-byte bodies
  throughput  backlog of N events on wink.events -> router -> deliverer -> receiver; 100 webhooks/100 URLs
              (written once every consumer group has settled; rate over the 10% -> 90% window)
  latency     produce -> arrival at 100, 500, 1000 events/s (event carries its produce time), then the
              fan-out: one event to 1,000 webhooks of one entity, time until the last arrives
  isolation   throughput (1.5 N backlog) and latency@500 with 10% of the URLs never answering
  scale       two deliverer processes; two router workers (throughput)
  cost        CPU seconds per 1,000 deliveries per process (router, deliverer, Kafka, receiver), RSS
  queue100    isolation throughput with DELIVERER_PER_URL_QUEUE_LIMIT=100 (measured, not adopted)
  within1     latency @ 100, 500, 1000/s and throughput, ROUTER_BATCH_WITHIN_MS=1 (only when named in --only)
  linger2     latency @ 100, 500/s and throughput with ROUTER_TASKS_LINGER_MS=2 (only when named in --only)
  uvloop      the throughput run with the deliverer on uvloop's event loop (measured, not adopted)
  profile     py-spy on the router and the deliverer during a throughput run: hottest functions

Options for A/B in one run (issue 16): `--baseline REV` also runs latency (and throughput) on the router and
deliverer of another commit; `--variant NAME:KEY=VALUE,...` the same with settings changed; `--idle S`
measures each process's CPU with no traffic after the warm-up; `--profile-at RATE` runs py-spy at that rate.

Writes bench/results/<date>.json and the figures block at the top of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from cryptography.fernet import Fernet

from webhooks_devtools.procs import LineReady

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _host import describe, host_probe
from _load import BODY_BYTES, EventWriter, Hook, TaskTap, body_dict, make_hooks, pad_for
from _procs import (
    bench_proc,
    context_switches,
    cpu_seconds,
    free_port,
    kafka_pid,
    machine_busy_seconds,
    rss_mb,
)
from _profile import run_py_spy, summarize_folded
from _report import update_results_md
from _stack import Stack

ROOT = Path(__file__).resolve().parent.parent
RECEIVER_PORTS = 4
HOOKS = 100
FANOUT = 1000


def log(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def lat_summary(lat_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(lat_ms),
        "p50_ms": round(pct(lat_ms, 50), 2),
        "p95_ms": round(pct(lat_ms, 95), 2),
        "p99_ms": round(pct(lat_ms, 99), 2),
        "max_ms": round(max(lat_ms), 2) if lat_ms else float("nan"),
    }


class Bench:
    """Shared state of one run: the receiver process, the key, the clocks on every process we account for."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
        self.run_id = "b" + uuid.uuid4().hex[:6]
        self.key = Fernet.generate_key().decode()
        self.workdir = Path(tempfile.mkdtemp(prefix="e2e-bench-"))
        self.ports = [free_port() for _ in range(RECEIVER_PORTS)]
        self.ctl_port = free_port()
        self.receiver = bench_proc(
            "receiver",
            [
                sys.executable,
                str(ROOT / "bench" / "_receiver.py"),
                "--ports",
                ",".join(map(str, self.ports)),
                "--ctl",
                str(self.ctl_port),
            ],
            dict(os.environ),
            self.workdir,
            LineReady("receiver ready"),
        )
        self.kafka_pid = kafka_pid(ROOT)
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Bench:
        self.receiver.start()
        await self.receiver.wait_ready(30)
        self.http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.close()
        await self.receiver.stop(5)

    # --- receiver control ---------------------------------------------------------------------------

    async def ctl(self, method: str, path: str, body: Any = None) -> Any:
        assert self.http is not None
        url = f"http://127.0.0.1:{self.ctl_port}{path}"
        data = None if body is None else orjson.dumps(body)
        async with self.http.request(method, url, data=data) as r:
            r.raise_for_status()
            return orjson.loads(await r.read())

    async def reset(self, dead: list[Hook] | None = None) -> None:
        await self.ctl("POST", "/dead", [h.path for h in dead or []])
        await self.ctl("POST", "/reset")

    async def stats(self, lat: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = await self.ctl("GET", "/stats?lat=1" if lat else "/stats")
        return out

    # --- accounting -----------------------------------------------------------------------------------

    def pids(self, stack: Stack | None) -> dict[str, int]:
        pids = {"receiver": self.receiver.pid, "harness": os.getpid()}
        if self.kafka_pid is not None:
            pids["kafka"] = self.kafka_pid
        if stack is not None:
            pids.update(stack.pids())
        return pids

    def cpu(self, stack: Stack | None) -> dict[str, float]:
        snap = {name: cpu_seconds(pid) or 0.0 for name, pid in self.pids(stack).items()}
        snap["machine"] = machine_busy_seconds()
        snap["wall"] = time.monotonic()
        return snap

    def switches(self, stack: Stack | None) -> dict[str, int]:
        return {name: context_switches(pid) or 0 for name, pid in self.pids(stack).items()}

    def rss(self, stack: Stack | None) -> dict[str, float]:
        return {name: round(rss_mb(pid) or 0.0, 1) for name, pid in self.pids(stack).items()}

    def stack(self, name: str, hooks: list[Hook], **kw: Any) -> Stack:
        return Stack(
            kafka=self.kafka,
            prefix=f"{self.run_id}-{name}-",
            hooks=hooks,
            secrets_key=self.key,
            workdir=self.workdir,
            **kw,
        )


def cost(before: dict[str, float], after: dict[str, float], deliveries: int) -> dict[str, Any]:
    """CPU seconds per 1,000 deliveries for each process, the system (services + Kafka) and the rest."""
    per = {k: after.get(k, 0.0) - v for k, v in before.items()}
    wall = per.pop("wall", 0.0)
    ours = sum(v for k, v in per.items() if k != "machine")
    system = sum(v for k, v in per.items() if k.startswith(("router", "deliverer")) or k == "kafka")
    k = 1000 / deliveries if deliveries else float("nan")
    return {
        "deliveries": deliveries,
        "cpu_s": {name: round(v, 2) for name, v in per.items()},
        "per_1000": {name: round(v * k, 3) for name, v in per.items() if name != "machine"},
        "system_per_1000": round(system * k, 3),  # router(s) + deliverer(s) + Kafka
        "system_with_receiver_per_1000": round((system + per.get("receiver", 0.0)) * k, 3),
        "system_cores": round(system / wall, 3) if wall > 0 else None,  # cores used meanwhile
        # CPU used on the machine by processes that are not ours (other people's tests): noise indicator
        "others_cpu_s": round(per.get("machine", 0.0) - ours, 2),
        "others_cores": round((per.get("machine", 0.0) - ours) / wall, 2) if wall > 0 else None,
        "wall_s": round(wall, 2),
    }


# --- scenarios ------------------------------------------------------------------------------------


async def ceiling(b: Bench, seconds: float) -> dict[str, Any]:
    hooks = make_hooks(f"{b.run_id}-ceil-", HOOKS, b.ports)
    event_id, entity_id = "x" * 20, "e" * 24
    body = orjson.dumps(body_dict(event_id, entity_id, time.time_ns() // 1000, pad_for(event_id, entity_id)))
    headers = {"content-type": "application/json"}
    done = 0
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(k: int, until: float) -> None:
            nonlocal done
            i = k
            while time.monotonic() < until:
                async with session.post(hooks[i % HOOKS].url, data=body, headers=headers) as r:
                    await r.read()
                done += 1
                i += 100

        await asyncio.gather(*(worker(k, time.monotonic() + 1.0) for k in range(100)))  # warm-up, connections
        await b.reset()
        done = 0
        c0, t0 = b.cpu(None), time.monotonic()
        await asyncio.gather(*(worker(k, t0 + seconds) for k in range(100)))
        elapsed, c1 = time.monotonic() - t0, b.cpu(None)
    st = await b.stats()
    c = cost(c0, c1, done)
    return {
        "rate": round(done / elapsed, 1),
        "requests": done,
        "received": st["count"],
        "body_bytes": len(body),
        "seconds": round(elapsed, 2),
        "cpu_per_1000": {"client": c["per_1000"]["harness"], "receiver": c["per_1000"]["receiver"]},
        "others_cpu_s": c["others_cpu_s"],
        "others_cores": c["others_cores"],
    }


Sample = tuple[float, int, dict[str, float], dict[str, float]]  # time, deliveries so far, CPU s, RSS MB


def window(a: Sample, b: Sample, deliveries: int) -> dict[str, Any]:
    """The delivery rate, the window, the CPU cost of `deliveries` and the RSS from sample `a` to `b`."""
    return {
        "rate": round((b[1] - a[1]) / (b[0] - a[0]), 1),
        "window_s": round(b[0] - a[0], 2),
        "cost": cost(a[2], b[2], deliveries),
        "rss_mb": b[3],
    }


async def drain(
    b: Bench,
    name: str,
    events: int,
    *,
    routers: int = 1,
    deliverers: int = 1,
    dead_fraction: float = 0.0,
    deliverer_loop: str = "asyncio",
    extra_env: dict[str, str] | None = None,
    profile_s: float = 0.0,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """A backlog of `events` on wink.events, then start the services and count arrivals until drained.

    Rate, CPU and RSS are taken over the window from 10% to 90% of the expected (live) deliveries, so
    start-up (faust's rebalance) and the tail are left out.
    """
    prefix = f"{b.run_id}-{name}-"
    hooks = make_hooks(prefix, HOOKS, b.ports)
    dead = hooks[: int(HOOKS * dead_fraction)]
    stack = b.stack(
        name,
        hooks,
        routers=routers,
        deliverers=deliverers,
        deliverer_loop=deliverer_loop,
        extra_env=extra_env,
    )
    await stack.prepare()
    await b.reset(dead)
    expected = events * (HOOKS - len(dead)) // HOOKS
    samples: list[Sample] = []
    profiles: dict[str, Any] = {}
    try:
        await stack.start()
        settled = await stack.settled()
        t_load = time.monotonic()
        async with EventWriter(b.kafka, stack.topics, prefix) as w:
            await w.backlog([h.entity_id for h in hooks], events)
        t_start = time.monotonic()
        log(
            f"{name}: {routers} router(s), {deliverers} deliverer(s) (groups settled: {settled}); "
            f"{events} events written in {t_start - t_load:.1f}s"
        )
        last_progress, last_count = t_start, -1
        prof_task: asyncio.Task[Any] | None = None
        while True:
            st = await b.stats()
            now = time.monotonic()
            samples.append((now, st["count"], b.cpu(stack), b.rss(stack)))
            if profile_s and prof_task is None and st["count"] > 0:
                prof_task = asyncio.create_task(profile_stack(b, stack, profile_s))
            if st["count"] != last_count:
                last_progress, last_count = now, st["count"]
            if st["count"] >= expected and (prof_task is None or prof_task.done()):
                break
            if now - last_progress > 20 or now - t_start > timeout_s:
                log(f"{name}: stopped waiting at {st['count']}/{expected} deliveries")
                break
            await asyncio.sleep(0.25)
        if prof_task is not None:
            profiles = await prof_task
        final = await b.stats()
        batches, batched = await asyncio.to_thread(stack.router_batches)
    finally:
        codes = await stack.stop()
        await stack.drop_topics()
    # the window opens once the backlog is written (the harness's producer is off the CPU) and 10% arrived
    lo = next((s for s in samples if s[1] >= 0.1 * expected and s[0] >= t_start), None)
    hi = next((s for s in samples if s[1] >= 0.9 * expected), None)
    result: dict[str, Any] = {
        "events": events,
        "expected_deliveries": expected,
        "delivered": final["count"],
        "duplicates": final["count"] - final["unique"],
        "held_on_dead_urls": final["held"],
        "mean_body_bytes": final["mean_body_bytes"],
        "routers": routers,
        "deliverers": deliverers,
        "dead_urls": len(dead),
        "deliverer_loop": deliverer_loop,
        "env": extra_env or {},
        "groups_settled_before_load": settled,
        "backlog_write_s": round(t_start - t_load, 2),
        "exit_codes": codes,
        "router_mean_batch": round(batched / batches, 1) if batches else None,
    }
    after = [s for s in samples if s[0] >= t_start]
    result["stalls"] = stalls([(s[0] - t_start, s[1]) for s in after], expected)
    done_at = next((s[0] for s in after if s[1] >= expected), None)
    end_t = done_at if done_at is not None else (after[-1][0] if after else t_start)
    # every live delivery over the whole run: from the backlog written to the last one (or the time limit)
    result["rate_to_end"] = round(final["count"] / (end_t - t_start), 1) if end_t > t_start else 0.0
    result["completed_s"] = round(done_at - t_start, 1) if done_at is not None else None
    # arrivals per second, one point a second from the moment the backlog was written
    result["timeline"] = [
        [round(s[0] - t_start, 1), s[1]] for i, s in enumerate(samples) if s[0] >= t_start and i % 4 == 0
    ]
    if lo is not None and hi is not None and hi[0] > lo[0]:
        result.update(window(lo, hi, hi[1] - lo[1]))
    elif final["count"] < 0.9 * expected and samples:
        # Stalled. Headline: the steady state at the end (last 20 s); beside it, the rate before the stall.
        end = samples[-1]
        start = next((s for s in samples if s[0] >= end[0] - 20), end)
        result["note"] = f"stalled: {final['count']}/{expected} after {end[0] - t_start:.0f}s"
        if end[0] > start[0]:
            result.update(window(start, end, max(1, end[1] - start[1])))
        else:
            result["rate"] = 0.0
        mid = next((s for s in samples if s[1] >= 0.7 * expected), None)
        if lo is not None and mid is not None and mid[0] > lo[0]:
            result["rate_before_stall"] = round((mid[1] - lo[1]) / (mid[0] - lo[0]), 1)
    else:
        # too short a window for 10% -> 90% (tiny loads): from the first arrival to the last progress
        first = next((s for s in samples if s[1] > 0), None)
        top = max((s[1] for s in samples), default=0)
        last = next((s for s in samples if s[1] == top), None)
        if first is not None and last is not None and last[0] > first[0]:
            result.update(window(first, last, max(1, last[1] - first[1])))
        else:
            result["rate"] = 0.0
    if profiles:
        result["profile"] = profiles
    log(
        f"{name}: {result.get('rate')} deliveries/s ({final['count']}/{expected}); "
        f"router batches of {result['router_mean_batch']}"
    )
    return result


def stalls(points: list[tuple[float, int]], expected: int, min_s: float = 5.0) -> list[dict[str, float]]:
    """Periods of >= `min_s` seconds without a single live delivery while some were still expected."""
    out: list[dict[str, float]] = []
    since: tuple[float, int] | None = None
    for t, n in points:
        if since is not None and n != since[1]:
            if t - since[0] >= min_s:
                out.append(
                    {"at_s": round(since[0], 1), "for_s": round(t - since[0], 1), "delivered": since[1]}
                )
            since = None
        if since is None and n < expected:
            since = (t, n)
    if since is not None and points and points[-1][0] - since[0] >= min_s and since[1] < expected:
        out.append(
            {"at_s": round(since[0], 1), "for_s": round(points[-1][0] - since[0], 1), "delivered": since[1]}
        )
    return out


async def profile_stack(b: Bench, stack: Stack, seconds: float) -> dict[str, Any]:
    """py-spy on each service process for `seconds` while it works; top functions by own and total time."""
    out_dir = b.workdir / "profiles"
    out_dir.mkdir(exist_ok=True)
    runs = {p.name: run_py_spy(p.pid, seconds, out_dir / f"{p.name}.folded") for p in stack.procs()}
    results = await asyncio.gather(*(asyncio.to_thread(fn) for fn in runs.values()))
    summary: dict[str, Any] = {}
    for (name, _fn), path in zip(runs.items(), results, strict=True):
        summary[name] = summarize_folded(path) if path is not None else {"error": "py-spy failed"}
        summary[name]["folded"] = str(path)
    return summary


def at_least(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda st: int(st["count"]) >= n


async def wait_until(cond: Callable[[dict[str, Any]], bool], b: Bench, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        st = await b.stats()
        if cond(st) or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.1)


async def latency(
    b: Bench,
    rates: list[int],
    seconds: float,
    fanouts: int,
    *,
    name: str = "lat",
    extra_env: dict[str, str] | None = None,
    idle_s: float = 0.0,
    profile_at: int | None = None,
) -> dict[str, Any]:
    """One stack, idle for `idle_s` after its warm-up, fixed rates one after another, then the fan-out."""
    prefix = f"{b.run_id}-{name}-"
    hooks = make_hooks(prefix, HOOKS, b.ports)
    fan_entity = f"{prefix}fan"
    fan_hooks = make_hooks(prefix, FANOUT, b.ports, entity=fan_entity, first=HOOKS) if fanouts else []
    stack = b.stack(name, hooks + fan_hooks, extra_env=extra_env)
    await stack.prepare()
    out: dict[str, Any] = {"rates": {}, "fanout": {}, "env": extra_env or {}}
    entities = [h.entity_id for h in hooks]
    try:
        await stack.start()
        async with EventWriter(b.kafka, stack.topics, prefix) as w, TaskTap(b.kafka, stack.topics) as tap:
            await warm_up(b, w, entities, 200, expected_fraction=1.0)
            if idle_s > 0:
                out["idle"] = await idle(b, stack, idle_s)
                log(f"{name} idle: {out['idle']['system_cores']} cores ({out['idle']['cores']})")
            for rate in rates:
                await b.reset()
                tap.ms.clear()
                rb0 = await asyncio.to_thread(stack.router_batches)
                c0, s0, r0 = b.cpu(stack), b.switches(stack), time.monotonic()
                prof = None
                if rate == profile_at:  # py-spy over the paced window: where CPU goes at this rate
                    prof = asyncio.create_task(profile_stack(b, stack, max(1.0, seconds - 1)))
                sent = await w.paced(entities, rate, seconds)
                produce_s = time.monotonic() - r0
                if prof is not None:
                    out[f"profile_at_{rate}"] = await prof
                st = await wait_until(at_least(sent), b, 10)
                c1, s1 = b.cpu(stack), b.switches(stack)
                rb1 = await asyncio.to_thread(stack.router_batches)
                st = await b.stats(lat=True)
                batches = rb1[0] - rb0[0]
                res = {
                    # the router's batches in the window: how many, and their mean size
                    "router_batches_per_s": round(batches / (c1["wall"] - c0["wall"]), 1),
                    "router_mean_batch": round((rb1[1] - rb0[1]) / batches, 1) if batches else None,
                    "sent": sent,
                    "delivered": st["count"],
                    "produce_s": round(produce_s, 2),
                    **lat_summary(st["lat_ms"]),
                    # produce -> task written by the router (the rest of the latency is the deliverer's)
                    "router_share": lat_summary(list(tap.ms)),
                    "cost": cost(c0, c1, st["count"]),
                    # each a thread put to sleep and woken again: what a light load pays for (`_host.py`)
                    "switches_per_event": {
                        k: round((s1.get(k, 0) - v) / max(1, st["count"]), 1) for k, v in s0.items()
                    },
                    "rss_mb": b.rss(stack),
                }
                out["rates"][str(rate)] = res
                rs = res["router_share"]
                log(
                    f"{name}@{rate}/s: p50 {res['p50_ms']} p95 {res['p95_ms']} p99 {res['p99_ms']} ms "
                    f"(produce -> task: p50 {rs['p50_ms']} p99 {rs['p99_ms']} ms; router "
                    f"{res['router_batches_per_s']} batches/s of {res['router_mean_batch']}); "
                    f"context switches per event {res['switches_per_event']}"
                )
            runs: list[dict[str, Any]] = []
            for _ in range(fanouts):
                await b.reset()
                t_send = time.time()
                await asyncio.gather(await w.send(fan_entity))
                st = await wait_until(at_least(FANOUT), b, 30)
                full = await b.stats(lat=True)
                runs.append(
                    {
                        "delivered": st["count"],
                        "first_ms": round((st["first"] - t_send) * 1000, 1) if st["first"] else None,
                        "last_ms": round((st["last"] - t_send) * 1000, 1) if st["last"] else None,
                        "p50_ms": round(pct(full["lat_ms"], 50), 1),
                    }
                )
                await asyncio.sleep(0.5)
            if runs:
                out["fanout"] = {
                    "webhooks": FANOUT,
                    "runs": runs,
                    "last_ms_median": statistics.median(r["last_ms"] or float("nan") for r in runs),
                }
                log(f"fan-out to {FANOUT}: last arrival after {[r['last_ms'] for r in runs]} ms")
    finally:
        await stack.stop()
        await stack.drop_topics()
    return out


async def idle(b: Bench, stack: Stack, seconds: float) -> dict[str, Any]:
    """CPU (in cores) of each process while no event is sent, once the warm-up's work has ended."""
    await asyncio.sleep(3.0)
    c0 = b.cpu(stack)
    await asyncio.sleep(seconds)
    c1 = b.cpu(stack)
    c = cost(c0, c1, 0)
    wall = c["wall_s"]
    return {
        "seconds": wall,
        "cores": {k: round(v / wall, 3) for k, v in c["cpu_s"].items() if k != "machine"},
        "system_cores": c["system_cores"],
        "others_cores": c["others_cores"],
    }


async def warm_up(
    b: Bench, w: EventWriter, entities: list[str], rate: int, *, expected_fraction: float, within: float = 60
) -> None:
    """Traffic until events sent now arrive within a second (faust's partitions are assigned and flowing)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = (await b.stats())["count"]
        sent = await w.paced(entities, rate, 2.0)
        target = before + int(sent * expected_fraction)
        st = await wait_until(at_least(target), b, 1.0)
        if st["count"] >= target:
            return
    raise RuntimeError("the system did not start delivering within the warm-up")


async def isolation_latency(b: Bench, rate: int, seconds: float) -> dict[str, Any]:
    prefix = f"{b.run_id}-isolat-"
    hooks = make_hooks(prefix, HOOKS, b.ports)
    dead = hooks[: HOOKS // 10]
    stack = b.stack("isolat", hooks)
    await stack.prepare()
    await b.reset(dead)
    entities = [h.entity_id for h in hooks]
    try:
        await stack.start()
        async with EventWriter(b.kafka, stack.topics, prefix) as w:
            await warm_up(b, w, entities, rate, expected_fraction=0.9)
            await b.reset(dead)
            c0 = b.cpu(stack)
            sent = await w.paced(entities, rate, seconds)
            healthy = sent * 9 // 10
            st = await wait_until(at_least(healthy), b, 10)
            c1 = b.cpu(stack)
            st = await b.stats(lat=True)
    finally:
        await stack.stop()
        await stack.drop_topics()
    res = {
        "rate": rate,
        "sent": sent,
        "healthy_expected": healthy,
        "healthy_delivered": st["count"],
        "held_on_dead_urls": st["held"],
        **lat_summary(st["lat_ms"]),
        "cost": cost(c0, c1, st["count"]),
    }
    log(f"isolation latency@{rate}/s: healthy p50 {res['p50_ms']} p99 {res['p99_ms']} ms")
    return res


# --- run ------------------------------------------------------------------------------------------


def machine_info(b: Bench) -> dict[str, Any]:
    def version(mod: str) -> str:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:
            return "?"

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError):
        mem_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_gb": round(mem_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {m: version(m) for m in ("aiokafka", "aiohttp", "faust-streaming", "orjson", "pydantic")},
        "kafka": "Apache Kafka 4.1.1 (KRaft, one node, tools/infra.py)",
        "kafka_pid_found": b.kafka_pid is not None,
        "commit": commit.stdout.strip(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


async def machine_and_probe(b: Bench) -> dict[str, Any]:
    """`machine_info` and how fast the host is right now (`_host.py`), logged."""
    info = machine_info(b)
    info["host_probe"] = await asyncio.to_thread(host_probe)
    log(describe(info["host_probe"]))
    return info


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    async with Bench(args) as b:
        results["machine"] = await machine_and_probe(b)
        results["settings"] = {
            "events_per_throughput_run": args.events,
            "seconds_per_rate": args.seconds,
            "webhooks": HOOKS,
            "receiver_ports": RECEIVER_PORTS,
            "body_bytes": BODY_BYTES,
            "topics": "webhooks_common.topics.topic_specs defaults (6 input, 12 delivery partitions)",
            "services": "defaults of RouterSettings/DelivererSettings; DELIVERY_ALLOW_PRIVATE_TARGETS=true",
            "configs": "WebhookConfig records written straight to the config topic (registry not involved)",
        }
        sc = results["scenarios"] = {}
        log(f"run {b.run_id}; work dir {b.workdir}")
        only = set(args.only.split(",")) if args.only else None

        def want(name: str) -> bool:
            return only is None or name in only

        if want("ceiling"):
            sc["ceiling"] = await ceiling(b, args.seconds)
            log(f"ceiling: {sc['ceiling']['rate']}/s")
        if want("throughput"):
            sc["throughput"] = await drain(b, "tput", args.events)
        if want("latency"):
            sc["latency"] = await latency(
                b, [100, 500, 1000], args.seconds, args.fanouts, idle_s=args.idle, profile_at=args.profile_at
            )
        if args.baseline:
            # the same latency and throughput runs on the router and deliverer of another commit
            base_env = {"PYTHONPATH": baseline_pythonpath(args.baseline)}
            sc["baseline_latency"] = await latency(
                b, [100, 500, 1000], args.seconds, 0, name="base", extra_env=base_env, idle_s=args.idle
            )
            sc["baseline_latency"]["commit"] = args.baseline
            if want("throughput"):
                sc["baseline_throughput"] = await drain(b, "basetput", args.events, extra_env=base_env)
        for spec in args.variant or []:
            # the same latency (and throughput) runs with some settings changed: NAME:KEY=VALUE,KEY=VALUE
            vname, _, assignments = spec.partition(":")
            venv = dict(kv.split("=", 1) for kv in assignments.split(",") if kv)
            sc[f"variant_{vname}_latency"] = await latency(
                b, [100, 500, 1000], args.seconds, 0, name=vname, extra_env=venv, idle_s=args.idle
            )
            if want("throughput"):
                sc[f"variant_{vname}_throughput"] = await drain(b, vname, args.events, extra_env=venv)
        if want("isolation"):
            # 1.5x the backlog of (2): the dead URLs get more tasks than their lanes can queue
            # (10 x (500 queued + 8 in flight)), as they do within ~30 s of sustained saturation
            sc["isolation_throughput"] = await drain(
                b, "isotput", args.events * 3 // 2, dead_fraction=0.1, timeout_s=60
            )
            sc["isolation_latency"] = await isolation_latency(b, 500, args.seconds)
        if want("queue100"):
            # proposal check: dead lanes' queues small enough that 10 of them cannot fill max_pending
            sc["variant_isolation_queue100"] = await drain(
                b,
                "isoq100",
                args.events * 3 // 2,
                dead_fraction=0.1,
                timeout_s=60,
                extra_env={"DELIVERER_PER_URL_QUEUE_LIMIT": "100"},
            )
        if want("scale"):
            sc["scale_two_deliverers"] = await drain(b, "twodel", args.events, deliverers=2)
            sc["scale_two_routers"] = await drain(b, "tworout", args.events, routers=2)
        if only is not None and "within1" in only:  # measured, not adopted: see RESULTS.md
            # proposal check: the router's batch window at 1 ms instead of 5 (a setting, no code change)
            sc["variant_router_within_1ms"] = await latency(
                b,
                [100, 500, 1000],
                args.seconds,
                0,
                name="within1",
                extra_env={"ROUTER_BATCH_WITHIN_MS": "1"},
            )
            sc["variant_router_within_1ms_throughput"] = await drain(
                b, "within1", args.events, extra_env={"ROUTER_BATCH_WITHIN_MS": "1"}
            )
        if only is not None and "linger2" in only:
            # the router's task producer with its former 2 ms linger (a setting, no code change)
            sc["variant_router_linger_2"] = await latency(
                b, [100, 500], args.seconds, 0, name="linger2", extra_env={"ROUTER_TASKS_LINGER_MS": "2"}
            )
            sc["variant_router_linger_2_throughput"] = await drain(
                b, "linger2", args.events, extra_env={"ROUTER_TASKS_LINGER_MS": "2"}
            )
        if want("uvloop"):
            sc["variant_deliverer_uvloop"] = await drain(b, "uvloop", args.events, deliverer_loop="uvloop")
        if want("profile"):
            sc["profile"] = await drain(b, "prof", args.events, profile_s=args.profile_seconds)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["derived"] = derive(sc)
    return results


def baseline_pythonpath(rev: str) -> str:
    """The source folders of a checkout of `rev` (a git worktree under the temp dir), first on the path."""
    where = Path(tempfile.gettempdir()) / f"webhooks-baseline-{rev}"
    if not where.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(where), rev], cwd=ROOT, check=True)
    srcs = ["libs/common/src", "services/router/src", "services/deliverer/src"]
    return os.pathsep.join(str(where / s) for s in srcs)


def derive(sc: dict[str, Any]) -> dict[str, Any]:
    """Ratios and target checks, from figures of this same run."""
    d: dict[str, Any] = {}
    ceil = sc.get("ceiling", {}).get("rate")
    tput = sc.get("throughput", {}).get("rate")
    if ceil and tput:
        d["throughput_to_ceiling"] = round(tput / ceil, 3)
    iso = sc.get("isolation_throughput", {}).get("rate")
    if tput and iso is not None:
        d["isolation_throughput_ratio"] = round(iso / tput, 3)
    tput_end = sc.get("throughput", {}).get("rate_to_end")
    for key, name in (
        ("isolation_throughput", "isolation_rate_to_end_ratio"),
        ("variant_isolation_queue100", "isolation_queue100_rate_to_end_ratio"),
    ):
        r_end = sc.get(key, {}).get("rate_to_end")
        if tput_end and r_end is not None:
            d[name] = round(r_end / tput_end, 3)
    lat500 = sc.get("latency", {}).get("rates", {}).get("500")
    iso_lat = sc.get("isolation_latency")
    if lat500 and iso_lat:
        d["isolation_p99_ratio"] = round(iso_lat["p99_ms"] / lat500["p99_ms"], 2)
    for key, name in (
        ("variant_deliverer_uvloop", "deliverer_uvloop_ratio"),
        ("variant_isolation_queue100", "isolation_queue100_ratio"),
        ("scale_two_deliverers", "two_deliverers_ratio"),
        ("scale_two_routers", "two_routers_ratio"),
    ):
        r = sc.get(key, {}).get("rate")
        if tput and r:
            d[name] = round(r / tput, 3)
    return d


def main() -> None:
    # aiokafka warns about leader elections on just-created topics; it retries them by itself
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=40000, help="events per throughput (backlog) run")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per latency rate and for the ceiling")
    ap.add_argument("--fanouts", type=int, default=3, help="fan-out events (each to 1,000 webhooks)")
    ap.add_argument("--profile-seconds", type=float, default=10.0)
    ap.add_argument(
        "--variant",
        action="append",
        help="NAME:KEY=VALUE,...: also run latency (and throughput) with these settings (repeatable)",
    )
    ap.add_argument("--profile-at", type=int, help="py-spy the services during this latency rate (events/s)")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured before the rates")
    ap.add_argument(
        "--baseline", help="a git revision: also run latency (and throughput) on its router and deliverer"
    )
    ap.add_argument("--only", help="scenarios to run, comma-separated (names above)")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results/<date>.json)")
    ap.add_argument("--no-md", action="store_true", help="do not update bench/RESULTS.md")
    ap.add_argument(
        "--quick", action="store_true", help="tiny loads (development): 3000 events, 2 s per rate"
    )
    args = ap.parse_args()
    if args.quick:
        args.events, args.seconds, args.fanouts, args.profile_seconds = 3000, 2.0, 1, 3.0
    results = asyncio.run(run(args))
    out = args.out or ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    log(f"results: {out}")
    if not args.no_md:
        update_results_md(
            ROOT / "bench" / "RESULTS.md", results, out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
        )
        log("bench/RESULTS.md: figures block updated")


if __name__ == "__main__":
    main()
