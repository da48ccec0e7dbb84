"""The delivery history in MongoDB (FerretDB on PostgreSQL locally): writes of the history writer, queries
of the API, retention. Every query is an equality on indexed fields or an `_id` lookup (see model.py).

Collections: `deliveries` (one per webhook and event), `delivery_attempts` (one per attempt),
`delivery_hours` (the hours in which a webhook has deliveries: the list walks them newest first),
`webhook_health` (the failure streak of each webhook), `history_meta` (how far retention has removed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

from registry.history.model import (
    BY_STATUS,
    KEYED,
    PENDING,
    UNKEYED,
    Cursor,
    Doc,
    Streak,
    before_cursor,
    bucket_of,
    hour_doc,
    hour_of,
    hour_start_ms,
    layout_of,
    status_bucket_of,
    status_fields,
)

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
RETENTION_META = "retention"
# Single-document updates in flight at once (as many clients would send; no bulk, see write_deliveries).
UPDATE_CONCURRENCY = 8
# Most documents in one insert command of a job: far below the ~50 statements of a write command that
# freeze FerretDB (see write_deliveries); inserts were not seen to, but a job has no need to find out.
JOB_INSERT_SLICE = 25
# `_id`s of one `$in` lookup: the local FerretDB pushes down lists of up to 500 (each an OR term PostgreSQL
# plans), and a writer's batch is a few hundred.
IDS_PER_QUERY = 250
OLD_DELIVERY_INDEXES = {"status_1", "event_type_1"}
WRITER_FIELDS = {"attempt_ids": 1, "last": 1, "payload": 1, "requested_ms": 1, "hour": 1, "bucket": 1}


class HistoryStore:
    def __init__(
        self, url: str, database: str, timeout_ms: int = 5000, listeners: Sequence[Any] = ()
    ) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            event_listeners=list(listeners),
        )
        db = self.client[database]
        self.deliveries = db["deliveries"]
        self.attempts = db["delivery_attempts"]
        self.hours = db["delivery_hours"]
        self.health = db["webhook_health"]
        self.meta = db["history_meta"]
        self.jobs = db["history_jobs"]
        self.job_locks = db["history_job_locks"]  # `_id` = webhook id: one job per webhook at a time

    async def ensure_indexes(self) -> None:
        # Locally each indexed field also gets a GIN twin (tools/localpg.py): equality on any of them is
        # index-served. The compound orders serve MongoDB's sort in production.
        await self.deliveries.create_index([("bucket", ASCENDING), ("created_ms", DESCENDING)])
        await self.deliveries.create_index([("status_bucket", ASCENDING), ("created_ms", DESCENDING)])
        # hours stored before `bucket` existed are read by webhook and hour
        await self.deliveries.create_index(
            [("webhook_id", ASCENDING), ("hour", ASCENDING), ("created_ms", DESCENDING)]
        )
        await self.deliveries.create_index([("hour", ASCENDING)])
        # `status` and `event_type` had indexes of their own until `bucket`: never the best way in on
        # MongoDB, and locally PostgreSQL intersected their twins (100,000 rows for `failed` at 1,000,000
        # records: 16-18 ms) with a bucket's few rows. Dropped where an older version made them.
        existing = set(await self.deliveries.index_information())
        for name in OLD_DELIVERY_INDEXES & existing:
            await self.deliveries.drop_index(name)
        await self.attempts.create_index([("delivery_id", ASCENDING)])
        await self.attempts.create_index([("webhook_id", ASCENDING), ("hour", ASCENDING)])
        await self.attempts.create_index([("hour", ASCENDING)])
        await self.hours.create_index([("webhook_id", ASCENDING)])
        await self.hours.create_index([("hour", ASCENDING)])
        await self.jobs.create_index([("state", ASCENDING)])

    async def close(self) -> None:
        await self.client.close()

    # --- the writer ---------------------------------------------------------------------------------

    async def insert_attempts(self, docs: Sequence[Doc]) -> int:
        """Insert, skipping attempts already stored (a re-consumed record); returns how many were new."""
        if not docs:
            return 0
        try:
            res = await self.attempts.insert_many(list(docs), ordered=False)
            return len(res.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return len(docs) - len(errors)

    async def deliveries_by_id(self, ids: Sequence[str], fields: Doc | None = None) -> dict[str, Doc]:
        """Those that exist, with `fields` (by default what the writer merges): `_id` `$in` a chunk of them
        per query (pushed down by the local FerretDB, infra/ferretdb/patches/query_in.go)."""
        projection = fields or WRITER_FIELDS
        found: dict[str, Doc] = {}
        for i in range(0, len(ids), IDS_PER_QUERY):
            query = {"_id": {"$in": list(ids[i : i + IDS_PER_QUERY])}}
            async for d in self.deliveries.find(query, projection):
                found[d["_id"]] = d
        return found

    async def write_deliveries(
        self, changes: dict[str, Doc], existing: set[str], new_hours: set[tuple[str, str]]
    ) -> set[str]:
        """New deliveries and hour buckets are inserted, known ones get a `$set` of the writer's fields (never
        `requested_ms`, the API's). Returns the new ones that someone else inserted first (merge them again).

        One `update` command per document, never a bulk: FerretDB v1.24 on PostgreSQL freezes (every client,
        every database, until restarted) on an `update` command of about 50 statements or more, ordered or
        not (measured here: 45 pass, 50 hang). `insert_many` is not affected."""
        fresh = [{"_id": i, **f} for i, f in changes.items() if i not in existing]
        raced = await self._insert_new(self.deliveries, fresh)
        sem = asyncio.Semaphore(UPDATE_CONCURRENCY)

        async def update(i: str, fields: Doc) -> None:
            async with sem:
                await self.deliveries.update_one({"_id": i}, {"$set": fields})

        await asyncio.gather(*(update(i, f) for i, f in changes.items() if i in existing))
        await self._insert_new(self.hours, [hour_doc(w, h) for w, h in sorted(new_hours)])
        return raced

    @staticmethod
    async def _insert_new(col: Any, docs: list[Doc]) -> set[str]:
        """Insert; the `_id`s that already existed."""
        if not docs:
            return set()
        try:
            await col.insert_many(docs, ordered=False)
            return set()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return {docs[e["index"]]["_id"] for e in errors}

    async def streak(self, webhook_id: str) -> Doc | None:
        return await self.health.find_one({"_id": webhook_id})

    async def save_streak(self, webhook_id: str, streak: Streak) -> None:
        await self.health.replace_one(
            {"_id": webhook_id},
            {
                "failing_since_ms": streak.failing_since_ms,
                "last_failure_ms": streak.last_failure_ms,
                "disable_requested_ms": streak.disable_requested_ms,
            },
            upsert=True,
        )

    # --- the API ------------------------------------------------------------------------------------

    async def webhook_hours(self, webhook_id: str) -> dict[str, int]:
        """The hours in which the webhook has deliveries, each with its layout (model.layout_of)."""
        found = self.hours.find({"webhook_id": webhook_id}, {"hour": 1, "keyed": 1, "by_status": 1})
        return {d["hour"]: layout_of(d) async for d in found}

    async def deliveries_in_hours(
        self,
        webhook_id: str,
        hours: Sequence[str],
        *,
        status: str | None,
        event_type: str | None,
        cursor: Cursor | None,
        since_ms: int | None,
        until_ms: int | None,
        limit: int,
        layouts: Mapping[str, int] | None = None,
    ) -> list[Doc]:
        """Up to `limit` deliveries of the webhook in these hours, after the cursor, within the window: newest
        hour first, newest first within an hour (the order of a walk over the hours, newest first).

        One query: `bucket` `$in` the hours' buckets, or with a status `status_bucket` `$in` theirs (pushed
        down to PostgreSQL by the local FerretDB, infra/ferretdb/patches/query_in.go; on MongoDB the compound
        indexes serve them). Hours an older version stored (`layouts`, by default all BY_STATUS) are asked
        for as it wrote them, in a query of their own."""

        def of(part: Sequence[str], n: int) -> Awaitable[list[Doc]]:
            """The same question over some of the hours."""
            return self.deliveries_in_hours(
                webhook_id,
                part,
                status=status,
                event_type=event_type,
                cursor=cursor,
                since_ms=since_ms,
                until_ms=until_ms,
                limit=n,
                layouts=layouts,
            )

        bounded = cursor is not None and cursor.created_ms is not None and cursor.hour in hours
        if bounded and len(hours) > 1:
            # the cursor bounds only its own hour: that hour is a query of its own (a page never asks for
            # it with others: it is the first hour of the page, and goes alone)
            assert cursor is not None
            at = list(hours).index(cursor.hour)
            out: list[Doc] = []
            for part in (hours[:at], hours[at : at + 1], hours[at + 1 :]):
                if part and len(out) < limit:
                    out += await of(part, limit - len(out))
            return out
        # without a status, `status_bucket` is no way in: BY_STATUS hours are asked for as KEYED ones
        cap = BY_STATUS if status is not None else KEYED
        forms = {h: min(cap, BY_STATUS if layouts is None else layouts.get(h, BY_STATUS)) for h in hours}
        if len(set(forms.values())) > 1:
            merged: list[Doc] = []
            for form in sorted(set(forms.values())):
                merged += await of([h for h in hours if forms[h] == form], limit)
            merged.sort(key=lambda d: (d["hour"], d["created_ms"], d["_id"]), reverse=True)
            return merged[:limit]
        query = _where(webhook_id, hours, forms[hours[0]], status)
        if event_type is not None:
            query["event_type"] = event_type
        window: Doc = {}
        if since_ms is not None:
            window["$gte"] = since_ms
        if until_ms is not None:
            window["$lt"] = until_ms
        if bounded:
            assert cursor is not None
            window["$lte"] = cursor.created_ms
        if window:
            query["created_ms"] = window
        found = self.deliveries.find(query, {"payload": 0, "attempt_ids": 0})
        found = found.sort([("hour", DESCENDING), ("created_ms", DESCENDING), ("_id", DESCENDING)])
        return [d async for d in found.limit(limit + 1) if before_cursor(d, cursor)][:limit]

    async def delivery(self, webhook_id: str, event_id: str) -> Doc | None:
        return await self.deliveries.find_one({"_id": f"{webhook_id}:{event_id}"})

    async def attempts_of(self, delivery_id: str) -> list[Doc]:
        docs = [d async for d in self.attempts.find({"delivery_id": delivery_id})]
        return sorted(docs, key=lambda d: (d["at_ms"], d["attempt"]))

    async def attempts_in_hours(self, webhook_id: str, hours: Sequence[str]) -> list[Doc]:
        fields = {"at_ms": 1, "outcome": 1, "duration_ms": 1, "status": 1, "error": 1, "event_id": 1}
        query = {"webhook_id": webhook_id, "hour": {"$in": list(hours)}}
        return [d async for d in self.attempts.find(query, fields)]

    async def mark_requested(
        self, delivery_id: str, bucket: str | None, now_ms: int, by: str | None = None
    ) -> None:
        """A resend was asked for: the delivery shows as pending until an attempt newer than this arrives.
        `bucket` is the delivery's (None: stored before it), `by` names the job chunk that asked (a resumed
        job finds what its unsaved chunk marked)."""
        fields: Doc = {"requested_ms": now_ms, **status_fields(bucket, PENDING)}
        if by is not None:
            fields["requested_by"] = by
        await self.deliveries.update_one({"_id": delivery_id}, {"$set": fields})

    async def mark_requested_many(self, docs: Sequence[Doc], now_ms: int, by: str) -> None:
        """`mark_requested` for each delivery (`_id` and `bucket`): single-document updates side by side,
        never one bulk command."""
        sem = asyncio.Semaphore(UPDATE_CONCURRENCY)

        async def one(d: Doc) -> None:
            async with sem:
                await self.mark_requested(d["_id"], d.get("bucket"), now_ms, by)

        await asyncio.gather(*(one(d) for d in docs))

    async def insert_requested_many(self, docs: Sequence[Doc]) -> set[str]:
        """Deliveries a job starts, pending with their payload, in small insert commands, and their hour
        buckets. Returns the `_id`s that someone else (the writer, for a live delivery) inserted first."""
        raced: set[str] = set()
        for i in range(0, len(docs), JOB_INSERT_SLICE):
            raced |= await self._insert_new(self.deliveries, list(docs[i : i + JOB_INSERT_SLICE]))
        hours = sorted({(d["webhook_id"], d["hour"]) for d in docs})
        await self._insert_new(self.hours, [hour_doc(w, h) for w, h in hours])
        return raced

    async def insert_requested(self, doc: Doc) -> None:
        """A delivery the API starts (a test event): pending, with its payload, before any attempt."""
        await self.deliveries.insert_one(doc)
        await self._insert_new(self.hours, [hour_doc(doc["webhook_id"], doc["hour"])])

    # --- retention ----------------------------------------------------------------------------------

    async def prune(self, now_ms: int, retention_days: float, first_run_lookback_days: float = 30) -> int:
        """Remove whole hours older than the retention, each with an equality filter on `hour`; a pointer
        in `history_meta` remembers how far it got, so each run walks only the hours expired since."""
        cutoff = hour_of(now_ms - int(retention_days * 86_400_000))
        meta = await self.meta.find_one({"_id": RETENTION_META})
        if meta is not None:
            start = hour_start_ms(meta["pruned_until"])
        else:
            start = hour_start_ms(cutoff) - int(first_run_lookback_days * 86_400_000)
        removed = 0
        t = start
        end = hour_start_ms(cutoff)
        while t < end:
            hour = hour_of(t)
            removed += (await self.deliveries.delete_many({"hour": hour})).deleted_count
            await self.attempts.delete_many({"hour": hour})
            await self.hours.delete_many({"hour": hour})
            t += 3_600_000
            await self.meta.replace_one({"_id": RETENTION_META}, {"pruned_until": hour_of(t)}, upsert=True)
        return removed

    # --- jobs ---------------------------------------------------------------------------------------

    async def create_job(self, job: Doc) -> Doc | None:
        """Store a queued job unless its webhook has one not finished: then that one (the caller answers 409).

        The lock is an insert with a unique `_id`, the one atomic conditional write FerretDB has."""
        wid = job["webhook_id"]
        for _ in range(3):
            try:
                await self.job_locks.insert_one({"_id": wid, "job_id": job["_id"]})
                break
            except DuplicateKeyError:
                lock = await self.job_locks.find_one({"_id": wid})
                if lock is None:
                    continue  # released meanwhile
                holder = await self.jobs.find_one({"_id": lock["job_id"]})
                if holder is not None and holder["state"] in ("queued", "running"):
                    return holder
                # its job finished (or was never stored: the API died in between): a stale lock
                await self.job_locks.delete_one({"_id": wid, "job_id": lock["job_id"]})
        else:
            raise RuntimeError("could not take the job lock")
        await self.jobs.insert_one(job)
        return None

    async def job(self, webhook_id: str, job_id: str) -> Doc | None:
        return await self.jobs.find_one({"_id": job_id, "webhook_id": webhook_id})

    async def jobs_in(self, state: str) -> list[Doc]:
        return [d async for d in self.jobs.find({"state": state})]

    async def failed_job_ids(self, webhook_id: str) -> frozenset[str]:
        query = {"webhook_id": webhook_id, "state": "failed"}
        return frozenset([d["_id"] async for d in self.jobs.find(query, {"_id": 1})])

    async def update_job(self, job_id: str, fields: Doc) -> None:
        await self.jobs.update_one({"_id": job_id}, {"$set": fields})

    async def release_job(self, webhook_id: str, job_id: str) -> None:
        await self.job_locks.delete_one({"_id": webhook_id, "job_id": job_id})

    async def deliveries_with_status(
        self, webhook_id: str, hour: str, statuses: Sequence[str], layout: int = BY_STATUS
    ) -> list[Doc]:
        query = _where(webhook_id, [hour], layout, statuses)
        return [d async for d in self.deliveries.find(query, {"attempt_ids": 0})]


def _where(webhook_id: str, hours: Sequence[str], layout: int, status: str | Sequence[str] | None) -> Doc:
    """The filter of a webhook's deliveries in these hours (all of one layout) [with this status / one of
    these]. `status` stays in it beside `status_bucket`: a key an older version left behind (it set the
    status alone) lists nothing under a status the delivery no longer has."""
    statuses = [] if status is None else [status] if isinstance(status, str) else list(status)
    if layout == UNKEYED:
        query: Doc = {"webhook_id": webhook_id, "hour": _one_or_in(hours)}
    elif layout == KEYED or not statuses:
        query = {"bucket": _one_or_in([bucket_of(webhook_id, h) for h in hours])}
    else:
        buckets = [bucket_of(webhook_id, h) for h in hours]
        query = {"status_bucket": _one_or_in([status_bucket_of(b, s) for b in buckets for s in statuses])}
    if statuses:
        query["status"] = _one_or_in(statuses)
    return query


def _one_or_in(values: Sequence[str]) -> Any:
    return values[0] if len(values) == 1 else {"$in": list(values)}
