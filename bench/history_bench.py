"""Delivery-history benchmarks (issue 14): what the history writer and its jobs cost the delivery path.

    INFRA_DIR=/work/main/.infra .tools/bin/uv run --frozen python bench/history_bench.py \
        [--events 40000] [--rounds 2] [--replay-events 100000] [--job-rate 1000] [--replay-max-s 300]
        [--store-records 1000000] [--store-rate 3000] [--store-query-rates 0,10,25] [--store-prune]
        [--only ab,replay,store,pages] [--pages-count 300]

Scenarios (loopback only, each bounded and self-stopping; the services run as deployed, `python -m ...`):
  ab      e2e_bench's throughput scenario (backlog of --events on wink.events, 100 webhooks on 100 URLs,
          1 router + 1 deliverer), alternately without and with the history writer (`python -m registry
          history`, its own database), --rounds times each (A-B-A-B: warm-up and drift cancel out).
          Deliveries/s over the 10% -> 90% window and CPU per process (writer, FerretDB, PostgreSQL
          included). During the "with" runs: the writer's lag on webhooks.attempts over time, from its
          `history_writer_lag_records` gauge and from Kafka (records on the topics minus records stored),
          its maximum, its value when the last delivery arrived and the time to catch up after that.
  replay  --replay-events events of one account written to wink.events before its webhook exists; the
          stack (router, deliverer, history writer, registry API) starts and routes them to no one; then
          a paced --rate events/s latency load on 100 other webhooks (produce -> arrival), first without a
          job, then while a replay job (POST .../replay through the API, at --job-rate tasks/s, the
          REGISTRY_HISTORY_JOB_RATE setting) sends the backlog to the new webhook (its own receiver
          process), then after it (when it ended within --replay-max-s). Reports p50/p99 per phase, the
          job's rate and progress, and the history API's list and detail latencies over what it stored.
  store   the store goal (issue 13) on the layout the writer ships, through the registry API:
          --store-records deliveries and their attempts (built by registry.history.model) prefilled over
          --store-webhooks webhooks and --store-days days, then a window per --store-query-rates entry:
          readers of list pages and details (0: --store-clients back to back; R: R visits/s on a Poisson
          schedule) while an inserter adds --store-rate deliveries/s, and with --store-prune the store's
          retention removes the oldest hours, one at a time, as fast as the inserter adds, from a third of
          the way in until the window ends. Only when named in --only.
  pages   one page at a time asked of the store directly, with nothing else running, on the store
          scenario's prefill: a page with a status filter read by `bucket` and status (as before
          `status_bucket`) against by `status_bucket`, alternating, per status (and unfiltered); wall time,
          queries and FerretDB's and PostgreSQL's CPU per page. Only when named in --only.

Writes bench/results/<date>-history.json; the figures go into bench/RESULTS.md by hand (the reading needs
the machine's load, which the JSON carries per window as `others_cores`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _load import EventWriter, Hook, make_hooks
from _procs import Proc, bench_proc, cpu_seconds, free_port
from _stack import Stack
from aiokafka import AIOKafkaConsumer, TopicPartition
from e2e_bench import HOOKS, Bench, cost, drain, lat_summary, log, machine_and_probe, wait_until, warm_up
from pymongo import AsyncMongoClient
from registry_bench import create_body, store_cpu, webhook_doc  # bench/ is the script's folder

from webhooks_common.tokens import mint_token
from webhooks_common.topics import topic_specs
from webhooks_devtools.procs import LineReady
from webhooks_devtools.services import readyz

ROOT = Path(__file__).resolve().parent.parent
JWT = "history-bench-secret-0123456789abcdef"


def metric(text: str, name: str) -> float:
    """Sum of every sample of `name` (all label sets) in a Prometheus text page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def http_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


class HistoryStack(Stack):
    """e2e_bench's stack, plus the history writer (and the registry API) on a database of its own."""

    settings_prefixes = (*Stack.settings_prefixes, "REGISTRY_")

    def __init__(
        self, *, history: bool, registry: bool = False, mongo: str, catch_up_s: float = 120, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.catch_up_s = catch_up_s
        self.history, self.with_registry = history, registry
        self.database = "bench_" + self.topics.prefix.strip("-").replace("-", "_").replace(".", "_")
        self.mongo_url = f"mongodb://{mongo}/{self.database}"
        self.mongo = mongo
        self.extras: list[Proc] = []
        self.writer_port = free_port()
        self.api_port = free_port()
        self.samples: list[dict[str, float]] = []  # the writer's lag over time
        self._sampler: asyncio.Task[None] | None = None
        self.delivered_at: float | None = None
        self.caught_up_at: float | None = None

    def _services_env(self) -> dict[str, str]:
        return {
            "MONGO_URL": self.mongo_url,
            "AUTH_JWT_SECRET": JWT,
            "REGISTRY_HISTORY_HOST": "127.0.0.1",
            "REGISTRY_HISTORY_PORT": str(self.writer_port),
            "REGISTRY_HOST": "127.0.0.1",
            "REGISTRY_PORT": str(self.api_port),
            "REGISTRY_ALLOW_HTTP": "true",
            "REGISTRY_COMMANDS_ENABLED": "false",
        }

    async def start(self, within: float = 90.0) -> None:
        env = self._env()
        if self.history:
            argv = [sys.executable, "-m", "registry", "history"]
            self.extras.append(
                bench_proc("history", argv, env, self.workdir, readyz(self.writer_port)).start()
            )
        if self.with_registry:
            argv = [sys.executable, "-m", "registry"]
            self.extras.append(bench_proc("registry", argv, env, self.workdir, readyz(self.api_port)).start())
        await super().start(within)  # waits for every process in procs(), the extras included
        if self.history:
            self._sampler = asyncio.create_task(self._sample())

    def procs(self) -> list[Proc]:
        return super().procs() + self.extras

    async def _sample(self) -> None:
        """Every 0.5 s: records on webhooks.attempts + webhooks.dlq, records the writer stored, its gauge."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [
                TopicPartition(spec.name, p)
                for spec in topic_specs(self.topics)
                if spec.name in (self.topics.attempts, self.topics.dlq)
                for p in range(spec.partitions)
            ]
            while True:
                ends = await consumer.end_offsets(tps) if tps else {}
                page = await asyncio.to_thread(http_text, f"http://127.0.0.1:{self.writer_port}/metrics")
                if page:
                    pid = self.extras[0].pid or 0
                    self.samples.append(
                        {
                            "t": time.monotonic(),
                            "produced": float(sum(ends.values())),
                            "stored": metric(page, "history_writer_records_total"),
                            "gauge": metric(page, "history_writer_lag_records"),
                            "held": metric(page, "history_writer_held_seconds_total"),
                            "cpu": cpu_seconds(pid) or 0.0,
                        }
                    )
                await asyncio.sleep(0.5)
        finally:
            await consumer.stop()

    async def catch_up(self, within: float) -> None:
        """Until the writer stored every record on its topics (Kafka's count), or `within` seconds."""
        self.delivered_at = time.monotonic()
        deadline = self.delivered_at + within
        while time.monotonic() < deadline:
            s = self.samples[-1] if self.samples else None
            if s is not None and s["t"] > self.delivered_at and s["stored"] >= s["produced"] > 0:
                self.caught_up_at = s["t"]
                return
            await asyncio.sleep(0.25)

    async def stop(self, grace: float = 20.0) -> dict[str, int | None]:
        if self.history and self.delivered_at is None:
            await self.catch_up(self.catch_up_s)
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        codes = await super().stop(grace)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://{self.mongo}")
        with contextlib.suppress(Exception):
            await client.drop_database(self.database)
        await client.close()
        return codes

    def lag_report(self) -> dict[str, Any]:
        s = self.samples
        if not s:
            return {}
        first = next((x for x in s if x["produced"] > 0), s[0])
        t0 = first["t"]

        def lag(x: dict[str, float]) -> float:
            return max(0.0, x["produced"] - x["stored"])

        at_delivered = next((x for x in s if self.delivered_at and x["t"] >= self.delivered_at), s[-1])
        end = s[-1]
        stored = end["stored"] - first["stored"]
        span = (self.caught_up_at or end["t"]) - t0
        cpu = end["cpu"] - first["cpu"]
        return {
            "max_lag_records": int(max(lag(x) for x in s)),
            "max_gauge_records": int(max(x["gauge"] for x in s)),
            "lag_when_last_delivered": int(lag(at_delivered)),
            "gauge_when_last_delivered": int(at_delivered["gauge"]),
            "lag_at_end": int(lag(end)),
            "catch_up_s": round(self.caught_up_at - self.delivered_at, 1)
            if self.caught_up_at and self.delivered_at
            else None,
            "delivered_after_s": round(self.delivered_at - t0, 1) if self.delivered_at else None,
            "stored": int(end["stored"]),
            "writer_rate": round(stored / span, 1) if span > 0 else None,
            "writer_cpu_per_1000_records": round(cpu / stored * 1000, 3) if stored else None,
            "held_s": round(end.get("held", 0.0), 1),  # batches held back for delivery (governor.py)
            # [s since the first attempt record, records produced, stored, gauge], one point a second
            "timeline": [
                [round(x["t"] - t0, 1), int(x["produced"]), int(x["stored"]), int(x["gauge"])]
                for i, x in enumerate(s)
                if x["t"] >= t0 and i % 2 == 0
            ],
        }


class HistoryBench(Bench):
    """e2e_bench's Bench whose stacks may run the history writer; CPU accounting includes the store."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.history = False
        self.registry = False
        self.extra_env: dict[str, str] = {}
        self.mongo = args.mongo
        self.catch_up_s = 120.0
        self.last: HistoryStack | None = None

    def stack(self, name: str, hooks: list[Hook], **kw: Any) -> Stack:
        kw["extra_env"] = {**self.extra_env, **(kw.get("extra_env") or {})}
        self.last = HistoryStack(
            history=self.history,
            registry=self.registry,
            mongo=self.mongo,
            catch_up_s=self.catch_up_s,
            kafka=self.kafka,
            prefix=f"{self.run_id}-{name}-",
            hooks=hooks,
            secrets_key=self.key,
            workdir=self.workdir,
            **kw,
        )
        return self.last

    def cpu(self, stack: Stack | None) -> dict[str, float]:
        return {**super().cpu(stack), **store_cpu()}


# --- ab ---------------------------------------------------------------------------------------------


def parse_variants(specs: list[str]) -> list[tuple[str, dict[str, str]]]:
    """`NAME:K=V,K=V` -> (NAME, {K: V}): a writer with other settings, run as one more arm of each round."""
    out = []
    for spec in specs:
        name, _, pairs = spec.partition(":")
        env = dict(p.split("=", 1) for p in pairs.split(",") if p)
        out.append((name, env))
    return out


async def ab(
    b: HistoryBench, events: int, rounds: int, variants: list[tuple[str, dict[str, str]]] | None = None
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    arms: list[tuple[str, bool, dict[str, str]]] = [("off", False, {}), ("on", True, {})]
    arms += [(name, True, env) for name, env in variants or []]
    for i in range(rounds):
        for arm, history, env in arms:
            name = f"{arm}{i + 1}"
            b.history, b.extra_env = history, env
            res = await drain(b, name, events)
            res["history_writer"] = history
            res["arm"], res["writer_env"] = arm, env
            if history and b.last is not None:
                res["writer"] = b.last.lag_report()
            runs.append(res)
            w = res.get("writer", {})
            log(
                f"ab {name}: {res.get('rate')} deliveries/s ({res['delivered']}/{res['expected_deliveries']})"
                + (
                    f"; writer lag max {w.get('max_lag_records')} (gauge {w.get('max_gauge_records')}), "
                    f"{w.get('lag_when_last_delivered')} when the last delivery arrived, caught up "
                    f"{w.get('catch_up_s')} s later; writer {w.get('writer_rate')} records/s, "
                    f"held {w.get('held_s')} s"
                    if history
                    else ""
                )
            )
    b.history, b.extra_env = False, {}

    def mean_rate(arm: str) -> float | None:
        rates = [r["rate"] for r in runs if r["arm"] == arm and r.get("rate")]
        return round(sum(rates) / len(rates), 1) if rates else None

    off, on = mean_rate("off"), mean_rate("on")
    summary: dict[str, Any] = {"rate_without": off, "rate_with": on}
    if off and on:
        summary["ratio"] = round(on / off, 3)
    for arm, _, _ in arms[2:]:
        rate = mean_rate(arm)
        summary[f"rate_{arm}"] = rate
        if off and rate:
            summary[f"ratio_{arm}"] = round(rate / off, 3)
    return {"runs": runs, "summary": summary}


# --- replay -----------------------------------------------------------------------------------------


class Api:
    def __init__(self, http: aiohttp.ClientSession, port: int, entity: str) -> None:
        self.http, self.entity = http, entity
        self.base = f"http://127.0.0.1:{port}/api/managing-entity/{entity}/webhook"
        self.auth = {"Authorization": f"Bearer {mint_token(JWT, 'bench', [entity])}"}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        t = time.perf_counter()
        async with self.http.request(method, self.base + path, json=body, headers=self.auth) as r:
            data = await r.read()
            ms = (time.perf_counter() - t) * 1000
            return r.status, orjson.loads(data) if data else None, ms


async def paced_window(
    b: Bench, stack: Stack, w: EventWriter, entities: list[str], rate: int, seconds: float
) -> tuple[dict[str, Any], list[float]]:
    """e2e_bench's latency measurement for one rate: paced load, wait for arrivals, p50/p99 and CPU."""
    await b.reset()
    c0 = b.cpu(stack)
    sent = await w.paced(entities, rate, seconds)
    await wait_until(lambda st: int(st["count"]) >= sent, b, 10)
    c1 = b.cpu(stack)
    st = await b.stats(lat=True)
    lat: list[float] = st["lat_ms"]
    return {
        "sent": sent,
        "delivered": st["count"],
        **lat_summary(lat),
        "cost": cost(c0, c1, st["count"]),
    }, lat


async def replay(b: HistoryBench, args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"{b.run_id}-rep-"
    hooks = make_hooks(prefix, HOOKS, b.ports)
    entities = [h.entity_id for h in hooks]
    account = f"{prefix}account"
    b.history, b.registry = True, True
    b.extra_env = {"REGISTRY_HISTORY_JOB_RATE": str(args.job_rate)}
    b.catch_up_s = 20.0  # the job may still be sending when the measurement ends
    stack = b.stack("rep", hooks)
    b.history, b.registry, b.extra_env, b.catch_up_s = False, False, {}, 120.0
    assert isinstance(stack, HistoryStack)
    rx_ports, rx_ctl = [free_port()], free_port()
    rx = bench_proc(
        "receiver-replay",
        [
            sys.executable,
            str(ROOT / "bench" / "_receiver.py"),
            "--ports",
            str(rx_ports[0]),
            "--ctl",
            str(rx_ctl),
        ],
        dict(os.environ),
        b.workdir,
        LineReady("receiver ready"),
    )
    out: dict[str, Any] = {
        "replay_events": args.replay_events,
        "job_rate_setting": args.job_rate,
        "rate": args.rate,
    }
    await stack.prepare()
    rx.start()
    await rx.wait_ready(30)
    assert b.http is not None

    async def rx_stats() -> dict[str, Any]:
        assert b.http is not None
        async with b.http.get(f"http://127.0.0.1:{rx_ctl}/stats") as r:
            got: dict[str, Any] = orjson.loads(await r.read())
            return got

    try:
        since = datetime.now(UTC)
        t = time.monotonic()
        async with EventWriter(b.kafka, stack.topics, f"{prefix}old") as w:
            await w.backlog([account], args.replay_events)
        out["backlog_write_s"] = round(time.monotonic() - t, 1)
        log(
            f"replay: {args.replay_events} events of {account} written in {out['backlog_write_s']} s "
            "(no webhook yet)"
        )
        await stack.start()
        async with EventWriter(b.kafka, stack.topics, prefix) as w:
            t = time.monotonic()
            # the router reads the backlog too (to no one): live events flow once it is through
            await warm_up(b, w, entities, 200, expected_fraction=1.0, within=180)
            out["router_through_backlog_s"] = round(time.monotonic() - t, 1)
            # two windows without a job: the first still carries start-up (the writer joining, the
            # router's last backlog batches: p99 of seconds in a trial), the second is the baseline
            for name in ("before_settle", "before"):
                out[name], _ = await paced_window(b, stack, w, entities, args.rate, args.seconds)
                log(
                    f"replay: {name} @{args.rate}/s: p50 {out[name]['p50_ms']} p99 {out[name]['p99_ms']} ms "
                    f"(others' load {out[name]['cost']['others_cores']} cores)"
                )

            api = Api(b.http, stack.api_port, account)
            body = create_body(
                "replay bench", account, f"http://127.0.0.1:{rx_ports[0]}/replay", ["booking.*"]
            )
            status, hook, _ = await api.call("POST", "", body)
            assert status == 201, hook
            await asyncio.sleep(2)  # the config reaches the deliverer's view (it signs with its secret)
            until = datetime.now(UTC)
            status, job, _ = await api.call(
                "POST", f"/{hook['id']}/replay", {"since": since.isoformat(), "until": until.isoformat()}
            )
            assert status == 202, job
            t_job = time.monotonic()
            progress: list[dict[str, Any]] = []

            async def poll_job() -> dict[str, Any]:
                while True:
                    _, j, _ = await api.call("GET", f"/{hook['id']}/job/{job['jobId']}")
                    rs = await rx_stats()
                    progress.append(
                        {
                            "t": round(time.monotonic() - t_job, 1),
                            "state": j["state"],
                            **j["counts"],
                            "arrived": rs["count"],
                        }
                    )
                    if j["state"] in ("succeeded", "failed") or time.monotonic() - t_job > args.replay_max_s:
                        return dict(j)
                    await asyncio.sleep(2)

            poller = asyncio.create_task(poll_job())
            during: list[dict[str, Any]] = []
            lat_all: list[float] = []
            while not poller.done():
                win, lat = await paced_window(b, stack, w, entities, args.rate, args.seconds)
                lat_all.extend(lat)
                win["running"] = not poller.done()
                win["job"] = progress[-1] if progress else None
                during.append(win)
                log(
                    f"replay: during the job @{args.rate}/s: p50 {win['p50_ms']} p99 {win['p99_ms']} ms "
                    f"(others' load {win['cost']['others_cores']} cores; "
                    f"job: {progress[-1] if progress else '?'})"
                )
                await asyncio.sleep(args.gap)
            final = await poller
            job_s = time.monotonic() - t_job
            out["during_windows"] = during
            out["during"] = lat_summary(lat_all)
            out["job"] = {"final": final, "seconds": round(job_s, 1), "progress": progress}
            sent = final["counts"]["sent"]
            out["job"]["rate"] = round(sent / job_s, 1) if job_s > 0 else None
            finished = final["state"] in ("succeeded", "failed")
            for _ in range(60 if finished else 0):  # the last replayed tasks arrive
                rs = await rx_stats()
                if rs["count"] >= sent:
                    break
                await asyncio.sleep(0.5)
            rs = await rx_stats()
            out["replay_arrivals"] = {"count": rs["count"], "unique": rs["unique"]}
            log(
                f"replay: job {final['state']} {final['counts']} in {job_s:.0f} s; receiver got {rs['count']}"
            )
            if finished:  # else the job still runs: no "after" window
                out["after"], _ = await paced_window(b, stack, w, entities, args.rate, args.seconds)
                log(
                    f"replay: after the job @{args.rate}/s: "
                    f"p50 {out['after']['p50_ms']} p99 {out['after']['p99_ms']} ms"
                )
            out["api"] = await api_latency(api, hook["id"], args.api_requests)
        out["writer"] = stack.lag_report()
        out["writer"].pop("timeline", None)
    finally:
        await stack.stop()
        await stack.drop_topics()
        await rx.stop(5)
    return out


async def api_latency(api: Api, hook_id: str, n: int, within_s: float = 60.0) -> dict[str, Any]:
    """The history API over the replayed webhook's deliveries: list pages (newest first, then a status
    filter and following the cursor) and delivery details, one request at a time; `n` rounds or as many as
    `within_s` allows (a replay puts all its deliveries in one hour bucket, which FerretDB sorts in Go:
    100,000 of them take seconds per page)."""
    rng = random.Random(5)
    out: dict[str, list[float]] = {"list": [], "list_status": [], "list_next_page": [], "detail": []}
    ids: list[str] = []
    deadline = time.monotonic() + within_s
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        status, page, ms = await api.call("GET", f"/{hook_id}/delivery/list?limit=50")
        assert status == 200, page
        out["list"].append(ms)
        ids.extend(i["eventId"] for i in page["items"])
        if cursor := page.get("nextCursor"):
            _, _, ms = await api.call("GET", f"/{hook_id}/delivery/list?limit=50&cursor={cursor}")
            out["list_next_page"].append(ms)
        _, _, ms = await api.call("GET", f"/{hook_id}/delivery/list?limit=50&status=succeeded")
        out["list_status"].append(ms)
        if ids:
            _, _, ms = await api.call("GET", f"/{hook_id}/delivery/{rng.choice(ids)}")
            out["detail"].append(ms)
    return {k: lat_summary(v) for k, v in out.items()}


# --- store: the store goal on the layout the writer ships, through the API ----------------------------


OUTCOMES = ["success"] * 8 + ["retry", "dead"]  # 80% succeeded, 10% failed, 10% dead


def history_docs(
    wid: str, entity: str, at_ms: int, rng: random.Random
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One delivery and its attempt, built by the writer's own functions (registry.history.model)."""
    from registry.history import model
    from webhooks_common.wire import AttemptRecord

    outcome = rng.choice(OUTCOMES)
    ev = uuid.uuid4().hex
    rec = AttemptRecord(
        task_id=f"{ev}:{wid}",
        event_id=ev,
        event_type="booking.create",
        webhook_id=wid,
        entity_id=entity,
        url=f"https://hooks.example.com/{wid}",
        attempt=1,
        outcome=outcome,
        status=204 if outcome == "success" else 500,
        duration_ms=12.5,
        response_snippet=None if outcome == "success" else "boom",
        at_ms=at_ms,
        body='{"id":"' + ev + '","type":"booking.create","data":{"pad":"' + "p" * 400 + '"}}',
    )
    delivery = {"_id": model.delivery_id(wid, ev), **model.merge_delivery(None, [rec])}
    return delivery, model.attempt_doc(rec)


async def prefill(
    store: Any, hooks: list[tuple[str, str]], args: argparse.Namespace, rng: random.Random, now_ms: int
) -> set[tuple[str, str]]:
    """--store-records deliveries and their attempts over --store-days days before `now_ms`, each of a random
    webhook of `hooks`, and their hours' documents; returns the (webhook, hour) pairs."""
    from registry.history import model

    span = args.store_days * 86_400_000
    hours: set[tuple[str, str]] = set()
    done = 0
    # "time": oldest first, as a store fills, so an hour's rows lie together on disk where retention
    # deletes them; "random": every record anywhere (the bench until 2026-12-02)
    ages = [rng.randrange(span) for _ in range(args.store_records)]
    if args.store_prefill_order == "time":
        ages.sort(reverse=True)
    while done < args.store_records:
        n = min(2000, args.store_records - done)
        pairs = []
        for age in ages[done : done + n]:
            w, e = hooks[rng.randrange(len(hooks))]
            pairs.append(history_docs(w, e, now_ms - 60_000 - age, rng))
        await store.deliveries.insert_many([p[0] for p in pairs], ordered=False)
        await store.attempts.insert_many([p[1] for p in pairs], ordered=False)
        hours |= {(p[0]["webhook_id"], p[0]["hour"]) for p in pairs}
        done += n
    await store.hours.insert_many([model.hour_doc(w, h) for w, h in hours])
    return hours


async def page_forms(b: HistoryBench, args: argparse.Namespace) -> dict[str, Any]:
    """One list page (limit 50) asked of the store directly, one at a time and with nothing else running, the
    two ways a page with a status filter has been read, on one prefill (as the store scenario's): "bucket",
    as before `status_bucket` (`bucket` `$in` the wave's hours and `status`, waves of at most 16 hours),
    and "status_bucket", as now (waves up to the page's 48 hours). Alternating page by page over
    --pages-count webhooks, per status: wall time of the page, queries, and FerretDB's and PostgreSQL's CPU
    per page."""
    from registry.history import model
    from registry.history.api import MAX_HOURS_PER_PAGE
    from registry.history.paging import WAVE_MAX, page_over_hours
    from registry.history.store import HistoryStore

    database = f"{b.run_id}-pages"
    store = HistoryStore(f"mongodb://{args.mongo}/{database}", database)
    rng = random.Random(11)
    hooks = [(f"wh{i}", f"e{i % 100}") for i in range(args.store_webhooks)]
    out: dict[str, Any] = {"records": args.store_records, "days": args.store_days, "pages": args.pages_count}
    try:
        await store.ensure_indexes()
        t = time.perf_counter()
        await prefill(store, hooks, args, rng, int(time.time() * 1000))
        out["prefill_s"] = round(time.perf_counter() - t, 1)
        log(f"pages: prefilled {args.store_records:,} deliveries + attempts in {out['prefill_s']} s")
        names = list(store_cpu())

        for status in ("failed", "succeeded", None):
            ways: dict[str, dict[str, Any]] = {
                w: {"ms": [], "queries": 0, "cpu": dict.fromkeys(names, 0.0)}
                for w in ("bucket", "status_bucket")
            }
            for i in range(args.pages_count):
                wid = hooks[(i * 7) % len(hooks)][0]
                stored = await store.webhook_hours(wid)
                hours = model.hours_to_scan(stored, None, None, None)
                for way in ("bucket", "status_bucket") if i % 2 else ("status_bucket", "bucket"):
                    old = way == "bucket"
                    layouts = {h: model.KEYED for h in hours} if old else stored
                    wave_max = WAVE_MAX if old or status is None else MAX_HOURS_PER_PAGE
                    acc = ways[way]

                    async def fetch(
                        batch: list[str],
                        n: int,
                        layouts: Any = layouts,
                        acc: Any = acc,
                        wid: str = wid,
                        status: str | None = status,
                    ) -> Any:
                        acc["queries"] += 1
                        return await store.deliveries_in_hours(
                            wid,
                            batch,
                            status=status,
                            event_type=None,
                            cursor=None,
                            since_ms=None,
                            until_ms=None,
                            limit=n,
                            layouts=layouts,
                        )

                    c0, t0 = store_cpu(), time.perf_counter()
                    await page_over_hours(hours, fetch, 50, MAX_HOURS_PER_PAGE, wave_max)
                    acc["ms"].append((time.perf_counter() - t0) * 1000)
                    c1 = store_cpu()
                    for name in names:
                        acc["cpu"][name] += c1[name] - c0[name]
            n = args.pages_count
            key = status or "all"
            out[key] = {
                way: {
                    **lat_summary(acc["ms"]),
                    "queries_per_page": round(acc["queries"] / n, 2),
                    "cpu_ms_per_page": {name: round(v * 1000 / n, 2) for name, v in acc["cpu"].items()},
                }
                for way, acc in ways.items()
            }
            log(f"pages: {key}: {out[key]}")
    finally:
        await store.client.drop_database(database)
        await store.close()
    return out


async def store_goal(b: HistoryBench, args: argparse.Namespace) -> dict[str, Any]:
    """Prefill --store-records deliveries (and their attempts) over --store-webhooks webhooks and --store-days
    days (oldest first unless --store-prefill-order random), in the writer's layout and indexes; then one
    window of --store-seconds per entry of --store-query-rates, each with an inserter adding --store-rate
    deliveries/s (insert_many of deliveries + attempts, batches of 300: the store's part of the writer's
    work) beside API readers of list pages (limit 50, newest first; half unfiltered, a quarter each
    status=failed / status=succeeded), each page followed by one of its deliveries' details. Rate 0:
    --store-clients readers back to back (closed loop, the machine saturated). A rate: visits started on a
    Poisson schedule (open loop), a page's latency counted from when it was due, so a late start counts.
    With --store-prune the store's own retention (`HistoryStore.prune`) removes the oldest hours, one per
    call and no faster than the inserter adds (a store that keeps its size), from a third of the way into
    each window to its end: whether it keeps up beside the inserter and the readers, and what it does to
    their pages."""
    from cryptography.fernet import Fernet

    from registry.history.store import HistoryStore

    prefix = f"{b.run_id}-store-"
    b.registry = True
    stack = b.stack("store", [], routers=0, deliverers=0)
    b.registry = False
    assert isinstance(stack, HistoryStack)
    await stack.prepare()
    rng = random.Random(11)
    hooks = [(f"{prefix}wh{i}", f"{prefix}e{i % 100}") for i in range(args.store_webhooks)]
    encrypted = Fernet(b.key.encode()).encrypt(b"whsec_bench").decode()
    store = HistoryStore(stack.mongo_url, stack.database)
    out: dict[str, Any] = {
        "records": args.store_records,
        "webhooks": args.store_webhooks,
        "days": args.store_days,
        "prefill_order": args.store_prefill_order,
        "rate_asked": args.store_rate,
        "clients": args.store_clients,
    }
    try:
        await store.ensure_indexes()
        now = datetime.now(UTC)
        await store.client[stack.database]["webhooks"].insert_many(
            [
                webhook_doc(
                    w,
                    e,
                    encrypted,
                    name=w,
                    url=f"https://hooks.example.com/{w}",
                    event_list=["booking.*"],
                    now=now,
                )
                for w, e in hooks
            ]
        )
        now_ms = int(time.time() * 1000)
        span = args.store_days * 86_400_000
        t = time.perf_counter()
        hours = await prefill(store, hooks, args, rng, now_ms)
        out["prefill_s"] = round(time.perf_counter() - t, 1)
        out["hour_buckets"] = len(hours)
        took = out["prefill_s"]
        log(
            f"store: prefilled {args.store_records:,} deliveries + attempts, {len(hours):,} hours in {took} s"
        )
        await stack.start()
        assert b.http is not None
        windows = StoreWindow(b, args, stack, store, hooks, hours, oldest_ms=now_ms - 60_000 - span)
        rates = [float(r) for r in str(args.store_query_rates).split(",")]
        out["windows"] = []
        for rate in rates:
            res = await windows.run(rate, args.store_prune)
            out["windows"].append(res)
            lat = "; ".join(f"{n} p50 {v['p50_ms']} p99 {v['p99_ms']} ms" for n, v in res["latency"].items())
            log(f"store: {res['mode']}: inserter {res['writer_rate']}/s of {args.store_rate}; {lat}")
            if "prune" in res:
                log(f"store: retention {res['prune']}")
    finally:
        await store.close()
        await stack.stop()
        await stack.drop_topics()
    return out


VISITS = ["list", "list", "list_failed", "list_succeeded"]
VISIT_QUERY = {"list": "", "list_failed": "&status=failed", "list_succeeded": "&status=succeeded"}


class StoreWindow:
    """The store goal's measured windows over one prefilled store: an inserter at --store-rate beside
    readers, closed or open loop, and optionally the store's retention removing the oldest hours meanwhile."""

    def __init__(
        self,
        b: HistoryBench,
        args: argparse.Namespace,
        stack: HistoryStack,
        store: Any,
        hooks: list[tuple[str, str]],
        hours: set[tuple[str, str]],
        oldest_ms: int,
    ) -> None:
        assert b.http is not None
        self.b, self.args, self.stack, self.store = b, args, stack, store
        self.hooks, self.hours = hooks, hours
        self.apis = {e: Api(b.http, stack.api_port, e) for _, e in hooks}
        self.wrng = random.Random(3)
        self.qrng = random.Random(5)  # the open loop's schedule: the same in every arm of an A/B
        self.drng = random.Random(7)  # which delivery of a page a visit opens (drawn as pages come back)
        self.windows = 0
        self.prune_to_ms = oldest_ms - oldest_ms % 3_600_000  # retention's next cutoff: an hour past it

    async def _visit(
        self, due: float, kind: str, w: str, e: str, seen: list[tuple[float, str, float]]
    ) -> int:
        """One list page (its latency counted from `due`) and one of its deliveries; the errors."""
        status, page, _ = await self.apis[e].call("GET", f"/{w}/delivery/list?limit=50{VISIT_QUERY[kind]}")
        seen.append((due, kind, (time.perf_counter() - due) * 1000))
        errors = int(status != 200)
        if status == 200 and page["items"]:
            ev = self.drng.choice(page["items"])["eventId"]
            sent = time.perf_counter()
            status, _, ms = await self.apis[e].call("GET", f"/{w}/delivery/{ev}")
            seen.append((sent, "detail", ms))
            errors += status != 200
        return errors

    async def run(self, rate: float, prune: bool) -> dict[str, Any]:
        from registry.history import model

        args, store = self.args, self.store
        self.windows += 1
        seen: list[tuple[float, str, float]] = []  # (started or due, kind, ms)
        errors = 0
        written = 0
        worst_lag = 0.0
        started = time.perf_counter()
        stop = started + args.store_seconds
        c0 = self.b.cpu(self.stack)

        async def closed(k: int) -> None:
            nonlocal errors
            crng = random.Random(k + 100 * self.windows)
            while time.perf_counter() < stop:
                w, e = self.hooks[crng.randrange(len(self.hooks))]
                errors += await self._visit(time.perf_counter(), crng.choice(VISITS), w, e, seen)

        async def opened() -> None:
            nonlocal errors
            visits: list[asyncio.Task[int]] = []
            due = started
            while True:
                due += self.qrng.expovariate(rate)
                if due >= stop:
                    break
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                w, e = self.hooks[self.qrng.randrange(len(self.hooks))]
                visits.append(asyncio.create_task(self._visit(due, self.qrng.choice(VISITS), w, e, seen)))
            errors += sum(await asyncio.gather(*visits))

        async def inserter() -> None:
            nonlocal written, worst_lag
            while args.store_rate > 0 and time.perf_counter() < stop:
                lag = time.perf_counter() - (started + written / args.store_rate)
                worst_lag = max(worst_lag, lag)
                if lag < 0:
                    await asyncio.sleep(-lag)
                pairs = []
                for _ in range(300):
                    w, e = self.hooks[self.wrng.randrange(len(self.hooks))]
                    pairs.append(history_docs(w, e, int(time.time() * 1000), self.wrng))
                await store.deliveries.insert_many([p[0] for p in pairs], ordered=False)
                await store.attempts.insert_many([p[1] for p in pairs], ordered=False)
                new_hours = {(p[0]["webhook_id"], p[0]["hour"]) for p in pairs} - self.hours
                self.hours.update(new_hours)
                if new_hours:
                    await store.hours.insert_many([model.hour_doc(w, h) for w, h in new_hours], ordered=False)
                written += 300

        pruned: dict[str, Any] = {}

        async def retention() -> None:
            """The store's prune with a cutoff one hour later each call (now = the cutoff, retention 0):
            each removes one whole hour, as the writer's loop does. Paced to remove no more deliveries a
            second than the inserter adds (a store that keeps its size) and never the last day."""
            await asyncio.sleep(args.store_seconds / 3)
            t0 = time.perf_counter()
            removed = hours_done = 0
            keep_from = int(time.time() * 1000) - 86_400_000
            while (now := time.perf_counter()) < stop and self.prune_to_ms + 3_600_000 <= keep_from:
                if (ahead := t0 + removed / max(args.store_rate, 1) - now) > 0:
                    await asyncio.sleep(min(ahead, stop - now))
                    continue
                self.prune_to_ms += 3_600_000
                # the first call finds no pointer and starts an hour before its cutoff
                removed += await store.prune(self.prune_to_ms, 0, first_run_lookback_days=1 / 24)
                hours_done += 1
            pruned.update(start=t0, end=time.perf_counter(), removed=removed, hours=hours_done)

        readers = [opened()] if rate > 0 else [closed(k) for k in range(args.store_clients)]
        jobs = [inserter(), *readers, *([retention()] if prune else [])]
        await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - started
        c1 = self.b.cpu(self.stack)
        kinds = ["list", "list_failed", "list_succeeded", "detail"]
        res: dict[str, Any] = {
            "mode": f"{rate:g} visits/s (open loop)"
            if rate > 0
            else f"{args.store_clients} clients (closed loop)",
            "query_rate": rate,
            "writer_rate": round(written / elapsed, 1),
            "writer_worst_lag_ms": round(worst_lag * 1000),
            "errors": errors,
            "latency": {k: lat_summary([ms for _, kind, ms in seen if kind == k]) for k in kinds},
            "requests_per_s": round(len(seen) / elapsed, 1),
            "cost": cost(c0, c1, len(seen)),
        }
        if pruned:
            during = [
                ms for t, kind, ms in seen if kind != "detail" and pruned["start"] <= t <= pruned["end"]
            ]
            before = [ms for t, kind, ms in seen if kind != "detail" and t < pruned["start"]]
            took = pruned["end"] - pruned["start"]
            res["prune"] = {
                "hours": pruned["hours"],
                "removed_deliveries": pruned["removed"],
                "seconds": round(took, 2),
                "deliveries_per_s": round(pruned["removed"] / took, 1),
                "pages_during": lat_summary(during),
                "pages_before": lat_summary(before),
            }
        return res


# --- run --------------------------------------------------------------------------------------------


def save(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


async def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Every scenario asked for; the results file is written after each one (a partial run keeps them)."""
    results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    only = set(args.only.split(","))
    async with HistoryBench(args) as b:
        results["machine"] = await machine_and_probe(b)
        results["settings"] = {k: v for k, v in vars(args).items() if k not in ("out",)}
        log(f"run {b.run_id}; work dir {b.workdir}")
        if "ab" in only:
            results["ab"] = await ab(b, args.events, args.rounds, parse_variants(args.writer_variant))
            log(f"ab: {results['ab']['summary']}")
            save(results, out)
        if "replay" in only:
            results["replay"] = await replay(b, args)
            save(results, out)
        if "store" in only:
            results["store"] = await store_goal(b, args)
            save(results, out)
        if "pages" in only:
            results["pages"] = await page_forms(b, args)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["loadavg_at_end"] = [f"{x:.2f}" for x in os.getloadavg()]
    return results


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--only", default="ab,replay", help="scenarios, comma-separated: ab, replay, store, pages"
    )
    ap.add_argument("--pages-count", type=int, default=300, help="pages: pages per status and way")
    ap.add_argument("--events", type=int, default=40000, help="backlog of each throughput run")
    ap.add_argument("--rounds", type=int, default=2, help="A/B rounds (each: without, then with the writer)")
    ap.add_argument(
        "--writer-variant",
        action="append",
        default=[],
        metavar="NAME:K=V,...",
        help="ab: an arm per round: the writer with these settings (nohold:REGISTRY_HISTORY_YIELD_CPU=1)",
    )
    ap.add_argument("--replay-events", type=int, default=100000, help="events the replay job sends")
    ap.add_argument("--job-rate", type=float, default=1000, help="REGISTRY_HISTORY_JOB_RATE for the replay")
    ap.add_argument("--replay-max-s", type=float, default=300, help="stop measuring the job after this")
    ap.add_argument("--rate", type=int, default=500, help="live events/s during the replay scenario")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one latency window")
    ap.add_argument("--gap", type=float, default=0.0, help="pause between latency windows during the job")
    ap.add_argument("--api-requests", type=int, default=100, help="rounds of list/detail requests")
    ap.add_argument("--store-records", type=int, default=1_000_000, help="store: deliveries prefilled")
    ap.add_argument("--store-webhooks", type=int, default=1000, help="store: webhooks they belong to")
    ap.add_argument("--store-days", type=int, default=7, help="store: days they spread over")
    ap.add_argument(
        "--store-prefill-order",
        choices=("time", "random"),
        default="time",
        help="store: records inserted oldest first (as a store fills) or in random order",
    )
    ap.add_argument(
        "--store-rate", type=int, default=3000, help="store: deliveries/s inserted meanwhile (0: no inserter)"
    )
    ap.add_argument("--store-seconds", type=float, default=30.0, help="store: length of the query phase")
    ap.add_argument(
        "--store-clients", type=int, default=10, help="store: API clients of a closed-loop window"
    )
    ap.add_argument(
        "--store-query-rates",
        default="0",
        help="store: one window per entry, comma-separated: list-page visits/s on a Poisson schedule, 0 for"
        " --store-clients back to back",
    )
    ap.add_argument(
        "--store-prune",
        action="store_true",
        help="store: the store's retention removes the oldest hours during each window",
    )
    ap.add_argument("--mongo", default="127.0.0.1:27017", help="host:port of the MongoDB-protocol store")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results/<date>-history.json)")
    args = ap.parse_args()
    out = args.out or ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d}-history.json"
    save(asyncio.run(run(args, out)), out)
    log(f"results: {out}")


if __name__ == "__main__":
    main()
