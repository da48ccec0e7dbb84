"""MongoDB adapter (FerretDB v1 locally, MongoDB in production): atomic single-document inserts are the only
primitive it relies on; no transactions, change streams or atomic conditional updates."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from registry.documents import Doc

log = logging.getLogger(__name__)

CHANGES = "webhook_changes"
LEASES = "outbox_lease"
PENDING, PUBLISHED, SET_ASIDE = "pending", "published", "set_aside"
# A revision still pending this long after it was written, with the document behind it, lost its writer.
REPAIR_AFTER_S = 30.0
# Published revisions are kept this long: far beyond any in-flight write that could still try to insert
# one of them again (a deleted revision would let a writer that read a days-old version win again).
CHANGE_RETENTION_DAYS = 2
PRUNE_EVERY_S = 3600.0


def change_id(webhook_id: str, version: int) -> str:
    return f"{webhook_id}:{version}"


def change_record(doc: Doc, now: float) -> Doc:
    """The revision of one change: unique per (webhook, version), with the whole new document."""
    return {
        "_id": change_id(doc["_id"], doc["version"]),
        "webhook_id": doc["_id"],
        "version": doc["version"],
        "state": PENDING,
        "at_ms": int(now * 1000),
        "day": _day(now),
        "doc": doc,
    }


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class Store(Protocol):
    async def insert(self, doc: Doc) -> None: ...
    async def count_live(self, entity_id: str) -> int: ...
    def entity_lock(self, entity_id: str) -> AbstractAsyncContextManager[None]: ...
    async def get(self, entity_id: str, webhook_id: str) -> Doc | None: ...
    async def get_any(self, webhook_id: str) -> Doc | None: ...
    async def list_entity(self, entity_id: str) -> list[Doc]: ...
    async def update_if_version(self, current: Doc, fields: Doc) -> Doc | None: ...
    async def pending(self, limit: int) -> list[Doc]: ...
    async def mark_published(self, webhook_id: str, version: int) -> bool: ...
    async def mark_all_published(self, changes: Sequence[tuple[str, int]]) -> int: ...
    async def set_aside(self, webhook_id: str, version: int, reason: str) -> bool: ...
    async def remove_deleted(self, webhook_id: str, version: int) -> bool: ...
    async def ping(self) -> None: ...


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class MongoStore:
    """Webhook documents plus a change log that is both the compare-and-set and the outbox.

    Neither FerretDB backend applies a conditional update atomically: it reads, filters in Go, then writes
    the whole document back by `_id` (two `find_one_and_update({"version": v})` racing on one document can
    both succeed; measured, see README). An insert under a unique `_id` is atomic everywhere, so every
    change first inserts its revision `{webhook_id}:{version}` into `webhook_changes`: of writers racing
    from one version exactly one wins, whichever registry process it runs in. Only the winner then writes
    the webhook document. The revision also carries the whole new document and a `state`, so the
    publisher sends pending revisions to Kafka and marks them there, never writing the webhook document
    (a lost update between a publisher and an API writer is impossible by construction). With real
    MongoDB the same code runs on the same collections and indexes.
    """

    def __init__(self, url: str, database: str, timeout_ms: int) -> None:
        # Short selection/connect timeouts so a request fails fast (503) while MongoDB is down; the
        # client reconnects by itself once it is back. tz_aware: datetimes come back in UTC.
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 5, 10000),
            tz_aware=True,
        )
        db = self.client[database]
        self.col = db["webhooks"]
        self.changes = db[CHANGES]
        self.leases = db[LEASES]  # the outbox lease (`lease.py`)
        self.entity_locks = KeyedLocks()  # the per-entity cap check and the insert go together
        self._pruned_at = 0.0

    async def ensure_indexes(self) -> None:
        await self.col.create_index([("entity_id", ASCENDING), ("created_at", ASCENDING)])
        await self.changes.create_index([("state", ASCENDING), ("day", ASCENDING)])

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def insert(self, doc: Doc) -> None:
        # The revision first: a crash between the two writes leaves a change the publisher completes
        # (`_repair`), never a webhook that is stored but would not be published.
        await self.changes.insert_one(change_record(doc, time.time()))
        await self.col.insert_one(doc)

    def entity_lock(self, entity_id: str) -> AbstractAsyncContextManager[None]:
        return self.entity_locks.hold(entity_id)

    async def count_live(self, entity_id: str) -> int:
        return await self.col.count_documents({"entity_id": entity_id, "deleted": False})

    async def get(self, entity_id: str, webhook_id: str) -> Doc | None:
        return await self.col.find_one({"_id": webhook_id, "entity_id": entity_id, "deleted": False})

    async def get_any(self, webhook_id: str) -> Doc | None:
        return await self.col.find_one({"_id": webhook_id})

    async def list_entity(self, entity_id: str) -> list[Doc]:
        cursor = self.col.find({"entity_id": entity_id, "deleted": False}).sort("created_at", ASCENDING)
        return [d async for d in cursor]

    async def update_if_version(self, current: Doc, fields: Doc) -> Doc | None:
        """Compare-and-set from `current` (the document as the caller read it) to `current` + `fields`;
        the updated document, or None when another change won that version first."""
        updated = {**current, **fields}
        if updated["version"] != current["version"] + 1:
            raise ValueError(f"a change must advance the version by one, not to {updated['version']}")
        try:
            await self.changes.insert_one(change_record(updated, time.time()))
        except DuplicateKeyError:
            return None  # another writer, in this process or another, won this version
        await self.col.replace_one({"_id": updated["_id"]}, updated)
        return updated

    async def pending(self, limit: int) -> list[Doc]:
        """The documents of unpublished changes, oldest first (several versions of one webhook in order)."""
        cursor = self.changes.find({"state": PENDING}).sort([("at_ms", ASCENDING), ("version", ASCENDING)])
        changes = [c async for c in cursor.limit(limit)]
        now = time.time()
        for change in changes:
            if now - change["at_ms"] / 1000 > REPAIR_AFTER_S:
                await self._repair(change)
        if now - self._pruned_at > PRUNE_EVERY_S:
            self._pruned_at = now
            await self.prune(now)
        return [change["doc"] for change in changes]

    async def _repair(self, change: Doc) -> None:
        """A revision whose writer died before writing the document: write it forward (idempotent).

        Only revisions older than REPAIR_AFTER_S, far beyond any live write, so a writer still on its
        way is never overtaken."""
        doc = change["doc"]
        current = await self.col.find_one({"_id": doc["_id"]}, {"version": 1})
        if current is None or current["version"] < doc["version"]:
            log.warning(
                "completing a change whose writer stopped half-way",
                extra={"webhook_id": doc["_id"], "version": doc["version"]},
            )
            await self.col.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def revision(self, webhook_id: str, version: int) -> Doc | None:
        """The document as one revision left it (whatever its state), if that revision exists."""
        change = await self.changes.find_one({"_id": change_id(webhook_id, version)}, {"doc": 1})
        return None if change is None else change["doc"]

    async def mark_published(self, webhook_id: str, version: int) -> bool:
        res = await self.changes.update_one(
            {"_id": change_id(webhook_id, version), "state": PENDING}, {"$set": {"state": PUBLISHED}}
        )
        return res.modified_count == 1

    async def mark_all_published(self, changes: Sequence[tuple[str, int]]) -> int:
        """Several revisions published at once (one request instead of one each); how many this call marked.

        The `state` equality narrows the scan to the pending set (small) on every backend; `$in` on `_id`
        picks the revisions among them."""
        if not changes:
            return 0
        res = await self.changes.update_many(
            {"state": PENDING, "_id": {"$in": [change_id(w, v) for w, v in changes]}},
            {"$set": {"state": PUBLISHED}},
        )
        return res.modified_count

    async def set_aside(self, webhook_id: str, version: int, reason: str) -> bool:
        """A change that cannot be published leaves the pending set with its reason (the next change of the
        webhook is judged afresh)."""
        res = await self.changes.update_one(
            {"_id": change_id(webhook_id, version), "state": PENDING},
            {"$set": {"state": SET_ASIDE, "error": reason}},
        )
        return res.modified_count == 1

    async def remove_deleted(self, webhook_id: str, version: int) -> bool:
        """The tombstone is on Kafka: the change is published and the deleted webhook's document goes."""
        marked = await self.mark_published(webhook_id, version)
        # Nobody writes a deleted document again (writers skip it), so this delete races with nothing.
        await self.col.delete_one({"_id": webhook_id, "version": version, "deleted": True})
        return marked

    async def prune(self, now: float) -> int:
        """Published changes older than the retention go, one day at a time (equality filters only)."""
        keep = {_day(now - n * 86400) for n in range(CHANGE_RETENTION_DAYS + 1)}
        removed = 0
        for day in await self.changes.distinct("day", {"state": PUBLISHED}):
            if day not in keep:
                res = await self.changes.delete_many({"state": PUBLISHED, "day": day})
                removed += res.deleted_count
        return removed

    async def all_docs(self) -> AsyncIterator[Doc]:
        async for doc in self.col.find({}).sort("_id", ASCENDING):
            yield doc
