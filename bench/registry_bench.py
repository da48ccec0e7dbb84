"""Registry API under a Studio-like mix: 50 concurrent clients over 5,000 webhooks of 500 entities.

    python bench/registry_bench.py [--registries 2] [--clients 50] [--requests 10000] [--rate 500]
                                   [--label after] [--mongo-url URL] [--code DIR] [--append bench/RESULTS.md]

Seeds the webhooks straight into a fresh database (as the registry stores them, already published), then
starts `--registries` `python -m registry` processes on it, each with its outbox publisher on a private
topic prefix, and sends `--requests` requests from `--clients` keep-alive clients spread over them (get 40%,
list 25%, patch 20%, create 10%, delete 5%): as fast as they are answered (the ceiling), or paced at
`--rate` requests/s in all, latency counted from when each request was due (no coordinated omission).
Reports requests/s, p50/p95/p99 per operation and the CPU per request of the registries, FerretDB and
PostgreSQL (from /proc). `--code DIR` runs another checkout's registry (PYTHONPATH) for a before/after in
one sitting; `--mongo-url` points at another store. Loopback only; bounded by the request count; stops and
deletes what it started.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._host import describe, host_probe
from bench._procs import bench_proc, cpu_seconds, free_port, reaped_cpu_seconds, rss_mb
from bench._report import pct, publish_table, report_parser
from webhooks_common.kafka import delete_topics, ensure_topics
from webhooks_common.tokens import mint_token
from webhooks_common.topics import Topics, topic_specs
from webhooks_devtools.metrics import by_label
from webhooks_devtools.procs import Proc
from webhooks_devtools.services import readyz

ROOT = Path(__file__).resolve().parent.parent
INFRA = Path(os.environ.get("INFRA_DIR", ROOT / ".infra"))
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
JWT = "bench-secret-0123456789abcdef0123456789"
MIX = {"get": 40, "list": 25, "patch": 20, "create": 10, "delete": 5}


def server_of(url: str) -> str:
    return url.split("://", 1)[1].split("/", 1)[0]


def store_pids(ferretdb_pid: int | None = None) -> dict[str, list[int]]:
    """FerretDB's pid and PostgreSQL's (the postmaster and its backends), from tools/infra.py's pid files."""
    if ferretdb_pid is not None:
        return {"ferretdb": [ferretdb_pid]}
    out: dict[str, list[int]] = {}
    for name in ("ferretdb", "postgres"):
        try:
            pid = int((INFRA / "run" / f"{name}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[name] = [pid, *children(pid)]
    return out


def children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def store_cpu(ferretdb_pid: int | None = None) -> dict[str, float]:
    """CPU-s so far of FerretDB and of PostgreSQL (or of the FerretDB process given), each with its children,
    those that have exited included (the parent's reaped children): a sum over live processes alone drops a
    PostgreSQL backend's whole life when its connection closes, and a window's difference can then come out
    below zero."""
    out: dict[str, float] = {}
    for name, (root, *kids) in store_pids(ferretdb_pid).items():
        # reaped first: a backend that exits between the two reads is missed, never counted twice
        reaped = reaped_cpu_seconds(root) or 0.0
        out[name] = (cpu_seconds(root) or 0.0) + reaped + sum(cpu_seconds(k) or 0.0 for k in kids)
    return out


def webhook_doc(
    wid: str, entity: str, encrypted: str, *, name: str, url: str, event_list: list[str], now: datetime
) -> dict[str, Any]:
    """A webhook document as the registry stores it, version 1 and already published."""
    return {
        "_id": wid,
        "entity_id": entity,
        "entity_name": "Bench",
        "name": name,
        "enabled": True,
        "event_url": url,
        "event_list": event_list,
        "user_identifier": "bench",
        "created_at": now,
        "updated_at": now,
        "changed_at_ms": int(now.timestamp() * 1000),
        "version": 1,
        "published_version": 1,
        "pending": False,
        "deleted": False,
        "secrets": [{"encrypted": encrypted, "created_at": now, "expires_at": None}],
    }


def create_body(name: str, entity: str, url: str, event_list: list[str]) -> dict[str, Any]:
    """The body of `POST .../webhook` for an enabled webhook."""
    return {
        "name": name,
        "entity": {"identifier": entity, "name": "Bench"},
        "enabled": True,
        "eventList": event_list,
        "eventUrl": url,
    }


def seed_docs(entities: list[str], per_entity: int, encrypted: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        webhook_doc(
            str(uuid.uuid4()),
            e,
            encrypted,
            name=f"seed {i}",
            url=f"https://hooks.example.com/{e}/{i}",
            event_list=["booking.created"],
            now=now,
        )
        for e in entities
        for i in range(per_entity)
    ]


async def main() -> None:
    parser = report_parser(__doc__, mongo_url=True)
    parser.add_argument("--registries", type=int, default=2)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="requests/s in all, paced (0: as fast as the clients go)"
    )
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--entities", type=int, default=500)
    parser.add_argument("--code", type=Path, help="a checkout whose registry to run (PYTHONPATH)")
    parser.add_argument(
        "--ferretdb-pid",
        type=int,
        help="the FerretDB serving --mongo-url, when tools/infra.py did not start it",
    )
    parser.add_argument("--label", default="", help="names the run in the report")
    args = parser.parse_args()
    probe = await asyncio.to_thread(host_probe)  # before any load of ours: how fast the host is right now
    print(describe(probe))

    from pymongo import AsyncMongoClient

    run = uuid.uuid4().hex[:8]
    database = f"bench_registry_{run}"
    topics = Topics(prefix=f"bench{run}.")
    specs = topic_specs(topics, input_partitions=1, delivery_partitions=1)
    await ensure_topics(KAFKA, specs)
    secrets_key = Fernet.generate_key().decode()
    entities = [f"bench-{run}-{i}" for i in range(args.entities)]
    per_entity = args.webhooks // args.entities
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://{server_of(args.mongo_url)}")
    docs = seed_docs(entities, per_entity, Fernet(secrets_key.encode()).encrypt(b"whsec_bench").decode())
    t_seed = time.perf_counter()
    for i in range(0, len(docs), 1000):
        await mongo[database]["webhooks"].insert_many(docs[i : i + 1000])
    seed_s = time.perf_counter() - t_seed

    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=KAFKA,
        MONGO_URL=f"mongodb://{server_of(args.mongo_url)}/{database}",
        KAFKA_TOPIC_PREFIX=topics.prefix,
        WEBHOOK_SECRETS_KEY=secrets_key,
        AUTH_JWT_SECRET=JWT,
        REGISTRY_HOST="127.0.0.1",
        REGISTRY_COMMANDS_ENABLED="false",
        REGISTRY_MAX_WEBHOOKS_PER_ENTITY="1000",
        LOG_LEVEL="WARNING",
    )
    if args.code:
        env["PYTHONPATH"] = os.pathsep.join(
            str(args.code / p) for p in ("services/registry/src", "libs/common/src")
        )
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"registry-bench-{run}"
    procs: list[Proc] = []
    bases: list[str] = []
    for n in range(args.registries):
        port = free_port()
        argv = [sys.executable, "-m", "registry"]
        procs.append(
            bench_proc(
                f"registry{n}", argv, {**env, "REGISTRY_PORT": str(port)}, workdir, readyz(port)
            ).start()
        )
        bases.append(f"http://127.0.0.1:{port}")
    # One token per entity, as Studio holds for its user (one token naming 500 entities is over 8 KiB).
    auth = {e: {"Authorization": f"Bearer {mint_token(JWT, 'bench', [e])}"} for e in entities}
    by_entity: dict[str, list[str]] = defaultdict(list)
    for doc in docs:
        by_entity[doc["entity_id"]].append(doc["_id"])
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    rng = random.Random(7)
    ops = [op for op, weight in MIX.items() for _ in range(weight)]
    plan = [rng.choice(ops) for _ in range(args.requests)]
    try:
        for proc in procs:
            await proc.wait_ready(60)
        store0 = store_cpu(args.ferretdb_pid)
        cpu0 = {p.name: cpu_seconds(p.pid or 0) or 0.0 for p in procs}
        sessions = [
            aiohttp.ClientSession(base_url=b, connector=aiohttp.TCPConnector(limit=args.clients))
            for b in bases
        ]
        counter = iter(range(args.requests))

        async def one(s: aiohttp.ClientSession, op: str) -> bool:
            entity = rng.choice(entities)
            root = f"/api/managing-entity/{entity}/webhook"
            h = auth[entity]
            if op == "list":
                async with s.get(f"{root}/list", headers=h) as r:
                    await r.read()
                    return r.status == 200
            if op == "create":
                body = create_body(
                    "bench", entity, f"https://hooks.example.com/{entity}/new", ["booking.created"]
                )
                async with s.post(root, json=body, headers=h) as r:
                    created = await r.json() if r.status == 201 else None
                if created:
                    by_entity[entity].append(created["id"])
                return created is not None
            ids = by_entity[entity]
            if not ids:
                return True  # every webhook of this entity was deleted already: nothing to do
            if op == "delete":
                hook = ids.pop(rng.randrange(len(ids)))
                async with s.delete(f"{root}/{hook}", headers=h) as r:
                    await r.read()
                    return r.status == 200
            hook = rng.choice(ids)
            if op == "get":
                async with s.get(f"{root}/{hook}", headers=h) as r:
                    await r.read()
                    return r.status in (200, 404)  # 404: deleted by another client meanwhile
            async with s.patch(f"{root}/{hook}", json={"enabled": rng.random() < 0.5}, headers=h) as r:
                await r.read()
                return r.status in (200, 404)

        started = time.perf_counter()
        interval = args.clients / args.rate if args.rate else 0.0

        async def client(cid: int) -> None:
            s = sessions[cid % len(sessions)]
            due = started + interval * cid / args.clients  # staggered, then one request per interval
            for n in counter:
                op = plan[n]
                if interval:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                # Latency counts from when the request was due, so a slow answer that delays the
                # next request is not hidden (no coordinated omission).
                t0 = due if interval else time.perf_counter()
                try:
                    ok = await one(s, op)
                except aiohttp.ClientError:
                    ok = False
                latencies[op].append((time.perf_counter() - t0) * 1000)
                errors[op] += not ok
                due += interval

        # The outbox's backlog: changes accepted but not yet on Kafka (how late routing sees them).
        changes = mongo[database]["webhook_changes"]
        backlog: list[int] = []

        async def sample_outbox() -> None:
            while True:
                backlog.append(await changes.count_documents({"state": "pending"}))
                await asyncio.sleep(1.0)

        sampler = asyncio.create_task(sample_outbox())
        await asyncio.gather(*(client(c) for c in range(args.clients)))
        elapsed = time.perf_counter() - started
        sampler.cancel()
        drained_s: float | None = None
        while time.perf_counter() - started - elapsed < 60:
            if await changes.count_documents({"state": "pending"}) == 0:
                drained_s = time.perf_counter() - started - elapsed
                break
            await asyncio.sleep(0.1)
        cpu1 = {p.name: cpu_seconds(p.pid or 0) or 0.0 for p in procs}
        store_spent = {k: v - store0.get(k, 0.0) for k, v in store_cpu(args.ferretdb_pid).items()}
        # What each change was computed on (a kept webhook or a read); absent in older checkouts (`--code`).
        change_bases: dict[str, float] = {}
        for s in sessions:
            async with s.get("/metrics") as r:
                for base, count in by_label(await r.text(), "registry_change_bases_total", "base").items():
                    change_bases[base] = change_bases.get(base, 0.0) + count
        for s in sessions:
            await s.close()
        rss = sum(rss_mb(p.pid or 0) or 0.0 for p in procs)
    finally:
        codes = [await p.stop(grace=15) for p in procs]
        await delete_topics(KAFKA, [s.name for s in specs])
        await mongo.drop_database(database)
        await mongo.close()
    print(f"registries exited with {codes}")

    total = sum(len(v) for v in latencies.values())
    reg_cpu = sum(cpu1[p.name] - cpu0[p.name] for p in procs)
    cpu_ms = {k: v / total * 1000 for k, v in store_spent.items()}
    rows = [
        f"| {op} | {len(ms):,} | {statistics.median(ms):.1f} | {pct(ms, 0.95):.1f} | {pct(ms, 0.99):.1f} | "
        f"{errors[op]} |"
        for op in MIX
        if (ms := latencies[op])
    ]
    all_ms = [x for v in latencies.values() for x in v]
    load = os.getloadavg()
    store = "FerretDB on " + ("PostgreSQL" if "postgres" in store0 else "SQLite")
    text = "\n".join(
        [
            f"### Registry mix{': ' + args.label if args.label else ''}",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
            f"{os.cpu_count()} cores, "
            f"load average {load[0]:.1f} at the end; {args.registries} registry process(es) on {store}, "
            f"{args.clients} clients "
            + (f"paced at {args.rate:,.0f} requests/s in all" if args.rate else "as fast as answered")
            + f", {args.webhooks:,} webhooks over {args.entities} entities (seeded in "
            f"{seed_s:.1f} s), {args.requests:,} requests. `bench/registry_bench.py`.",
            "",
            f"**{total / elapsed:,.0f} requests/s** in all; p50 {statistics.median(all_ms):.1f} ms, "
            f"p99 {pct(all_ms, 0.99):.1f} ms. CPU per request: registries {reg_cpu / total * 1000:.2f} ms"
            + "".join(f", {k} {v:.2f} ms" for k, v in cpu_ms.items())
            + f"; registries' RSS {rss:.0f} MB. Outbox: at most {max(backlog, default=0):,} changes pending"
            + " during the run, "
            + (
                f"all on Kafka {drained_s:.1f} s after the last answer."
                if drained_s is not None
                else "still some pending 60 s after the last answer."
            ),
            f"The {describe(probe)} (`bench/_host.py`).",
            *(
                [
                    "Changes computed on a webhook kept from moments ago (`registry/recent.py`): "
                    + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(change_bases.items()))
                    + "."
                ]
                if change_bases
                else []
            ),
            "",
        ]
    )
    publish_table(text, ["operation", "requests", "p50 ms", "p95 ms", "p99 ms", "errors"], rows, args.append)


if __name__ == "__main__":
    asyncio.run(main())
