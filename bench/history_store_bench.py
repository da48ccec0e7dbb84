"""Is the local store ready for the delivery history? A writer, queries and retention at once.

    python bench/history_store_bench.py [--records 1000000] [--webhooks 1000] [--days 7] [--rate 3000]
                                        [--seconds 30] [--queriers 10] [--append bench/RESULTS.md]

Layout measured (every hot query an equality on indexed fields, as FerretDB serves them from indexes):
one collection per day (`deliveries_YYYYMMDD`), documents `_id = {webhook}:{event}` with `webhook_id`,
`status`, `event_type`, `at_ms`, indexed on (webhook_id, status). A page of one webhook's deliveries, newest
first and optionally of one status, reads day collections newest to oldest until the page is full; retention
drops whole day collections (no scan, no long delete). Prefills `--records` over `--days` days, then for
`--seconds` runs together: a writer inserting `--rate` records/s in batches of 300 into today's collection,
`--queriers` clients reading pages of 50, and retention dropping the oldest day once a quarter into the run.
Reports the writer's achieved rate and worst lag behind its schedule, and query p50/p95/p99 before, during
and after the drop. Loopback only; bounded by time; drops its database at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import pct, publish_table, report_parser

STATUSES = ["succeeded"] * 8 + ["failed", "dead"]
DAY_MS = 86_400_000
PAGE = 50


def day_name(at_ms: int) -> str:
    return "deliveries_" + time.strftime("%Y%m%d", time.gmtime(at_ms / 1000))


def record(webhook: int, at_ms: int, rng: random.Random) -> dict[str, Any]:
    return {
        "_id": f"wh{webhook}:{uuid.uuid4().hex}",
        "webhook_id": f"wh{webhook}",
        "status": rng.choice(STATUSES),
        "event_type": "booking.create",
        "at_ms": at_ms,
        "attempts": 1,
        "last_status_code": 204,
    }


async def main() -> None:
    parser = report_parser(__doc__, mongo_url=True)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rate", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--queriers", type=int, default=10)
    args = parser.parse_args()

    server = args.mongo_url.split("://", 1)[1].split("/", 1)[0]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(f"mongodb://{server}")
    db = client[f"bench_history_{uuid.uuid4().hex[:8]}"]
    rng = random.Random(11)
    now_ms = int(time.time() * 1000)
    days = [now_ms - d * DAY_MS for d in range(args.days)]  # today first
    for d in days:
        await db[day_name(d)].create_index([("webhook_id", ASCENDING), ("status", ASCENDING)])
    t0 = time.perf_counter()
    per_day = args.records // args.days
    for d in days:
        col = db[day_name(d)]
        batch: list[dict[str, Any]] = []
        for _ in range(per_day):
            batch.append(record(rng.randrange(args.webhooks), d - rng.randrange(DAY_MS // 2), rng))
            if len(batch) == 2000:
                await col.insert_many(batch, ordered=False)
                batch = []
        if batch:
            await col.insert_many(batch, ordered=False)
    prefill_s = time.perf_counter() - t0
    print(f"prefilled {per_day * args.days:,} records in {prefill_s:.0f} s", flush=True)

    live = [day_name(d) for d in days]  # newest first; retention removes from the end
    phase = "before"
    latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    written = 0
    worst_lag = 0.0
    drop_s = 0.0
    stop = time.perf_counter() + args.seconds

    async def page(webhook: str, status: str | None) -> int:
        found: list[dict[str, Any]] = []
        for name in list(live):
            query: dict[str, Any] = {"webhook_id": webhook}
            if status:
                query["status"] = status
            docs = await db[name].find(query, {"_id": 1, "at_ms": 1, "status": 1}).to_list()
            found.extend(sorted(docs, key=lambda x: -x["at_ms"]))
            if len(found) >= PAGE:
                break
        return len(found[:PAGE])

    async def querier() -> None:
        qrng = random.Random()
        while time.perf_counter() < stop:
            status = qrng.choice([None, None, "failed", "succeeded"])
            t = time.perf_counter()
            await page(f"wh{qrng.randrange(args.webhooks)}", status)
            latencies[phase].append((time.perf_counter() - t) * 1000)

    async def writer() -> None:
        nonlocal written, worst_lag
        wrng = random.Random(3)
        start = time.perf_counter()
        today = db[live[0]]
        batch_size = 300
        while time.perf_counter() < stop:
            due = start + written / args.rate
            lag = time.perf_counter() - due
            worst_lag = max(worst_lag, lag)
            if lag < 0:
                await asyncio.sleep(-lag)
            docs = [
                record(wrng.randrange(args.webhooks), int(time.time() * 1000), wrng)
                for _ in range(batch_size)
            ]
            await today.insert_many(docs, ordered=False)
            written += batch_size

    async def retention() -> None:
        nonlocal phase, drop_s
        await asyncio.sleep(args.seconds / 4)
        phase = "during"
        oldest = live.pop()  # queries stop reading it first, then it goes
        t = time.perf_counter()
        await db.drop_collection(oldest)
        drop_s = time.perf_counter() - t
        await asyncio.sleep(min(2.0, args.seconds / 10))
        phase = "after"

    started = time.perf_counter()
    await asyncio.gather(writer(), retention(), *(querier() for _ in range(args.queriers)))
    elapsed = time.perf_counter() - started
    await client.drop_database(db.name)
    await client.close()

    everything = [x for v in latencies.values() for x in v]
    rows = [
        f"| {name} | {len(ms):,} | {statistics.median(ms):.1f} | {pct(ms, 0.95):.1f} | {pct(ms, 0.99):.1f} |"
        for name, ms in (*latencies.items(), ("all", everything))
        if ms
    ]
    load = os.getloadavg()
    text = "\n".join(
        [
            "### Delivery-history store: writer, queries and retention together",
            "",
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average "
            f"{load[0]:.1f} at the end; {per_day * args.days:,} records over {args.days} day collections and "
            f"{args.webhooks:,} webhooks (prefill {prefill_s:.0f} s). `bench/history_store_bench.py`.",
            "",
            f"Writer: **{written / elapsed:,.0f} records/s** achieved of {args.rate:,}/s asked "
            "(batches of 300), "
            f"worst lag behind schedule {worst_lag * 1000:.0f} ms. Retention dropped the oldest day "
            f"(~{per_day:,} records) in {drop_s * 1000:.0f} ms.",
            "",
            f"Queries: a page of {PAGE} of one webhook's deliveries, newest first, a quarter each of status "
            f"failed / succeeded, half without a filter; {args.queriers} clients.",
            "",
        ]
    )
    publish_table(text, ["phase", "pages", "p50 ms", "p95 ms", "p99 ms"], rows, args.append)


if __name__ == "__main__":
    asyncio.run(main())
