"""MongoDB (FerretDB v1) adapter: single-document atomic writes only, no transactions or change streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument

from registry.documents import Doc

log = logging.getLogger(__name__)


class Store(Protocol):
    async def insert(self, doc: Doc) -> None: ...
    async def count_live(self, entity_id: str) -> int: ...
    def entity_lock(self, entity_id: str) -> AbstractAsyncContextManager[None]: ...
    async def get(self, entity_id: str, webhook_id: str) -> Doc | None: ...
    async def get_any(self, webhook_id: str) -> Doc | None: ...
    async def list_entity(self, entity_id: str) -> list[Doc]: ...
    async def update_if_version(self, webhook_id: str, version: int, fields: Doc) -> Doc | None: ...
    async def pending(self, limit: int) -> list[Doc]: ...
    async def mark_published(self, webhook_id: str, version: int) -> bool: ...
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
    """Writes to one document are serialized in-process (`_locks`): FerretDB v1 does not apply a conditional
    update atomically (two `find_one_and_update({"version": v})` racing on one document can both succeed;
    measured, see README), so the version compare-and-set is only safe with one writer per document at a
    time. With real MongoDB the filter alone would suffice."""

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
        self.col = self.client[database]["webhooks"]
        self._locks = KeyedLocks()
        self.entity_locks = KeyedLocks()  # the per-entity cap check and the insert go together

    async def ensure_indexes(self) -> None:
        await self.col.create_index([("entity_id", ASCENDING), ("created_at", ASCENDING)])
        await self.col.create_index([("pending", ASCENDING)])

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def insert(self, doc: Doc) -> None:
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

    async def update_if_version(self, webhook_id: str, version: int, fields: Doc) -> Doc | None:
        """Atomic compare-and-set on `version`; the updated document, or None when it changed meanwhile."""
        query: dict[str, Any] = {"_id": webhook_id, "version": version, "deleted": False}
        async with self._locks.hold(webhook_id):
            return await self.col.find_one_and_update(
                query, {"$set": fields}, return_document=ReturnDocument.AFTER
            )

    async def pending(self, limit: int) -> list[Doc]:
        cursor = self.col.find({"pending": True}).sort("updated_at", ASCENDING).limit(limit)
        return [d async for d in cursor]

    async def mark_published(self, webhook_id: str, version: int) -> bool:
        # Conditional on the version we published: a change made meanwhile stays pending and goes out next.
        # Under the document's lock too: FerretDB v1 writes the whole document back, so an unlocked mark
        # racing an API change could revert that change and clear its `pending` flag (seen in e2e).
        async with self._locks.hold(webhook_id):
            res = await self.col.update_one(
                {"_id": webhook_id, "version": version},
                {"$set": {"pending": False, "published_version": version}},
            )
        return res.modified_count == 1

    async def remove_deleted(self, webhook_id: str, version: int) -> bool:
        async with self._locks.hold(webhook_id):
            res = await self.col.delete_one({"_id": webhook_id, "version": version, "deleted": True})
        return res.deleted_count == 1

    async def all_docs(self) -> AsyncIterator[Doc]:
        async for doc in self.col.find({}).sort("_id", ASCENDING):
            yield doc
