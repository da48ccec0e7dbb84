"""Registry API under load: create and list at 50 concurrent clients (requests/s, p50/p95/p99).

    python bench/registry_bench.py [--clients 50] [--creates 1000] [--lists 1000] [--append bench/RESULTS.md]

Starts `python -m registry` as a child process on the local servers (tools/infra.py), with its own MongoDB
database and topic prefix, so the outbox publisher and Kafka are part of what is measured, as in production.
Loopback only; bounded by request counts; stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._procs import bench_proc, cpu_seconds, free_port, rss_mb
from registry.auth import mint_token
from webhooks_common.kafka import delete_topics, ensure_topics
from webhooks_common.topics import Topics, topic_specs
from webhooks_devtools.services import readyz

ROOT = Path(__file__).resolve().parent.parent
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
MONGO_HOST = (
    os.environ.get("MONGO_URL", "mongodb://127.0.0.1:27017/webhooks").split("://", 1)[1].split("/")[0]
)
JWT = "bench-secret-0123456789abcdef0123456789"
PER_ENTITY = 90  # below the default cap of 100 webhooks per entity


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    session: aiohttp.ClientSession, clients: int, total: int, request: object
) -> tuple[float, list[float], int]:
    """`total` requests from `clients` concurrent loops; returns (seconds, latencies in ms, errors)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def client(cid: int) -> None:
        nonlocal errors
        for n in counter:
            t0 = time.perf_counter()
            ok = await request(session, cid, n)  # type: ignore[operator]
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += not ok

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return time.perf_counter() - started, latencies, errors


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--lists", type=int, default=1000)
    parser.add_argument("--append", type=Path, help="append a Registry section to this Markdown file")
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    topics = Topics(prefix=f"bench{run}.")
    specs = topic_specs(topics, input_partitions=1, delivery_partitions=1)
    await ensure_topics(KAFKA, specs)
    port = free_port()
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=KAFKA,
        MONGO_URL=f"mongodb://{MONGO_HOST}/bench_registry_{run}",
        KAFKA_TOPIC_PREFIX=topics.prefix,
        WEBHOOK_SECRETS_KEY=Fernet.generate_key().decode(),
        AUTH_JWT_SECRET=JWT,
        REGISTRY_PORT=str(port),
        REGISTRY_HOST="127.0.0.1",
        LOG_LEVEL="WARNING",
    )
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"registry-bench-{run}"
    argv = [sys.executable, "-m", "registry"]
    proc = bench_proc("registry", argv, env, workdir, readyz(port)).start()
    base = f"http://127.0.0.1:{port}"
    entities = [f"bench-{run}-{i}" for i in range(args.creates // PER_ENTITY + args.clients + 1)]
    token = mint_token(JWT, "bench", entities)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        await proc.wait_ready(60)
        cpu0 = cpu_seconds(proc.pid) or 0.0
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(base_url=base, headers=headers, connector=connector) as session:

            async def create(s: aiohttp.ClientSession, _cid: int, n: int) -> bool:
                entity = entities[n // PER_ENTITY]
                body = {
                    "name": f"hook {n}",
                    "entity": {"identifier": entity, "name": "Bench"},
                    "enabled": True,
                    "eventList": ["booking.created"],
                    "eventUrl": f"https://hooks.example.com/{n}",
                }
                async with s.post(f"/api/managing-entity/{entity}/webhook", json=body) as r:
                    await r.read()
                    return r.status == 201

            listed = entities[: max(1, args.creates // PER_ENTITY)]

            async def list_(s: aiohttp.ClientSession, _cid: int, n: int) -> bool:
                async with s.get(f"/api/managing-entity/{listed[n % len(listed)]}/webhook/list") as r:
                    await r.read()
                    return r.status == 200

            create_s, create_ms, create_err = await drive(session, args.clients, args.creates, create)
            cpu1 = cpu_seconds(proc.pid) or 0.0
            list_s, list_ms, list_err = await drive(session, args.clients, args.lists, list_)
            cpu2 = cpu_seconds(proc.pid) or 0.0
        rss = rss_mb(proc.pid)
    finally:
        code = await proc.stop(grace=15)
        await delete_topics(KAFKA, [s.name for s in specs])
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(f"mongodb://{MONGO_HOST}")
        await client.drop_database(f"bench_registry_{run}")
        await client.close()
    print(f"registry exited with {code}")

    rows = []
    for name, secs, ms, err, count, cpu in (
        ("create (POST)", create_s, create_ms, create_err, args.creates, cpu1 - cpu0),
        ("list (GET, 90 webhooks each)", list_s, list_ms, list_err, args.lists, cpu2 - cpu1),
    ):
        rows.append(
            f"| {name} | {count:,} | {count / secs:,.0f} | {statistics.median(ms):.1f} | "
            f"{pct(ms, 0.95):.1f} | {pct(ms, 0.99):.1f} | {err} | {cpu / count * 1000:.2f} |"
        )
    load = os.getloadavg()
    text = "\n".join(
        [
            "## Registry",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {load[0]:.1f} at the end; one `python -m registry` on the local FerretDB (SQLite) "
            f"and Kafka, {args.clients} concurrent keep-alive clients on loopback, outbox publisher running "
            "(every create is also published to the config topic). `bench/registry_bench.py`.",
            "",
            "| operation | requests | requests/s | p50 ms | p95 ms | p99 ms | errors | registry CPU ms/req |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Registry RSS at the end: {rss:.0f} MB." if rss else "",
            "",
        ]
    )
    print(text)
    if args.append:
        with args.append.open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    asyncio.run(main())
