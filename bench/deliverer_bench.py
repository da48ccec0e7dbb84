"""Deliverer throughput on this machine: deliveries/s end to end, next to a bare aiohttp client.

    .tools/bin/uv run --frozen python bench/deliverer_bench.py [--tasks 20000] [--append bench/RESULTS.md]

Cases (same run, same receiver process answering 204):
  bare      aiohttp client POSTing to the receiver, 100 in flight (our ceiling)
  one       one `python -m deliverer` process: Kafka -> signed POST -> attempt record -> commit
  dead10    the same with 10% of the URLs never answering (rate counts the other 90%)
  two       two deliverer processes in one consumer group
Tasks are produced after the deliverers are ready; the clock runs from the first produced task to the
last delivery counted by the receiver.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import orjson
from _load import Hook, write_configs  # bench/ is the script's folder
from aiohttp import web
from cryptography.fernet import Fernet

from webhooks_devtools.procs import Proc
from webhooks_devtools.services import deliverer_ready, service_argv

ROOT = Path(__file__).resolve().parent.parent
URLS = 100


# --- receiver (own process) --------------------------------------------------------------------------


def run_receiver(port: int) -> None:
    count = {"ok": 0}
    forever = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        if request.path.startswith("/dead"):
            await forever.wait()
        count["ok"] += 1
        return web.Response(status=204)

    async def get_count(_r: web.Request) -> web.Response:
        return web.json_response(count)

    app = web.Application()
    app.router.add_get("/count", get_count)
    app.router.add_post("/{tail:.*}", hook)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=2048)


async def receiver_count(http: aiohttp.ClientSession, port: int) -> int:
    async with http.get(f"http://127.0.0.1:{port}/count") as r:
        return int((await r.json())["ok"])


# --- cases -------------------------------------------------------------------------------------------


def body(n: int) -> str:
    data = {"bookingId": f"B{n:08d}", "amount": {"value": 12345, "currency": "EUR"}, "note": "x" * 300}
    return orjson.dumps(
        {
            "id": f"ev{n}",
            "type": "booking.create",
            "timestamp": "2026-11-27T10:00:00Z",
            "entityId": "e1",
            "data": data,
        }
    ).decode()


async def bare(port: int, n: int) -> float:
    payload = body(0).encode()
    sem = asyncio.Semaphore(100)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:

        async def one(i: int) -> None:
            async with sem, http.post(f"http://127.0.0.1:{port}/u{i % URLS}", data=payload) as r:
                await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0)


async def deliverer_case(port: int, n: int, processes: int, dead_share: float, bootstrap: str) -> float:
    from webhooks_common.kafka import ensure_topics, make_producer
    from webhooks_common.models import DeliveryTask
    from webhooks_common.topics import Topics, topic_specs

    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.")
    await ensure_topics(bootstrap, topic_specs(topics, delivery_partitions=12))
    key = Fernet.generate_key().decode()
    n_dead = int(URLS * dead_share)
    urls = [f"http://127.0.0.1:{port}/{'dead' if i < n_dead else 'u'}{i}" for i in range(URLS)]
    await write_configs(bootstrap, topics, [Hook(f"w{i}", "e1", "", u) for i, u in enumerate(urls)], key)
    producer = make_producer(bootstrap)
    await producer.start()

    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": topics.prefix,
        "WEBHOOK_SECRETS_KEY": key,
        "DELIVERY_ALLOW_PRIVATE_TARGETS": "true",
        "DELIVERER_GROUP_ID": f"bench-{topics.prefix}",
        "DELIVERER_METRICS_PORT": "0",
        "DELIVERER_METRICS_HOST": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
    workdir = Path(tempfile.mkdtemp(prefix="deliverer-bench-"))
    procs = [
        Proc(
            f"deliverer-{i}",
            service_argv("deliverer"),
            env,
            cwd=ROOT,
            log_path=workdir / f"deliverer-{i}.log",
            ready=deliverer_ready(env["DELIVERER_METRICS_PORT"]),
        )
        for i in range(processes)
    ]
    try:
        for p in procs:
            p.start()
        await asyncio.gather(*(p.wait_ready(60) for p in procs))
        await asyncio.sleep(4 if processes > 1 else 1)  # let the group settle
        async with aiohttp.ClientSession() as http:
            base = await receiver_count(http, port)
            good = 0
            t0 = time.perf_counter()
            for i in range(n):
                url = urls[i % URLS]
                good += "/dead" not in url
                task = DeliveryTask(
                    task_id=f"ev{i}:w{i % URLS}",
                    event_id=f"ev{i}",
                    event_type="booking.create",
                    entity_id="e1",
                    webhook_id=f"w{i % URLS}",
                    webhook_version=1,
                    url=url,
                    body=body(i),
                    entered_at_ms=int(time.time() * 1000),
                )
                await producer.send(topics.deliveries, key=url.encode(), value=task.to_bytes())
            await producer.flush()
            while await receiver_count(http, port) - base < good:
                if time.perf_counter() - t0 > 300:
                    raise RuntimeError("deliveries did not complete in 300 s")
                await asyncio.sleep(0.05)
            return good / (time.perf_counter() - t0)
    finally:
        await asyncio.gather(*(p.stop(20) for p in procs))
        await producer.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--append", type=Path, help="append a markdown section to this file")
    ap.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    port = 18000 + os.getpid() % 1000
    rx = Proc(
        "receiver", [sys.executable, __file__, "--receiver", str(port)], os.environ, cwd=ROOT, on_line=print
    )
    rx.start()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    await receiver_count(http, port)
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        rows = [("bare aiohttp client, 100 in flight (ceiling)", await bare(port, args.tasks))]
        print(rows[-1], flush=True)
        rows.append(("one deliverer", await deliverer_case(port, args.tasks, 1, 0.0, bootstrap)))
        print(rows[-1], flush=True)
        rows.append(
            (
                "one deliverer, 10% of URLs never answer (rate of the 90%)",
                await deliverer_case(port, args.tasks, 1, 0.1, bootstrap),
            )
        )
        print(rows[-1], flush=True)
        rows.append(("two deliverer processes", await deliverer_case(port, args.tasks, 2, 0.0, bootstrap)))
        print(rows[-1], flush=True)
    finally:
        rx.kill()  # it holds never-answered requests open; nothing to shut down gracefully
        await rx.wait(10)
    table = "\n".join(f"| {name} | {rate:,.0f}/s |" for name, rate in rows)
    section = (
        f"\n## Deliverer\n\n{time.strftime('%Y-%m-%d %H:%M')} UTC, {args.tasks} tasks per case, {URLS} URLs, "
        f"~520-byte bodies, 12 delivery partitions, receiver in its own process answering 204, loopback; "
        f"`{Path(__file__).name}`.\n\n| case | deliveries/s |\n|---|---|\n{table}\n"
    )
    print(section)
    if args.append:
        with args.append.open("a") as f:
            f.write(section)


if __name__ == "__main__":
    if "--receiver" in sys.argv:
        run_receiver(int(sys.argv[sys.argv.index("--receiver") + 1]))
    else:
        asyncio.run(main())
