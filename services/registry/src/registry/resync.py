"""Republish every stored webhook config (e.g. after the config topic was lost or recreated)."""

from __future__ import annotations

import asyncio
import logging

from registry import documents as d
from registry.documents import config_record
from registry.errors import UnreadableDocument
from registry.publisher import KafkaSink
from registry.settings import RegistrySettings
from registry.store import MongoStore
from webhooks_common.topics import Topics

log = logging.getLogger(__name__)

LOOKUPS_IN_FLIGHT = 8


async def catch_up(store: MongoStore, sink: KafkaSink, sent: list[tuple[str, int]]) -> int:
    """Send each webhook's revisions newer than what was sent (acknowledged) for it; how many were sent.

    A revision inserted after its lookup here found none is published by the lease holder after that
    lookup, so after this send: the topic ends on the newest state either way."""
    gate = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)
    resent = 0

    async def newer(webhook_id: str, version: int) -> d.Doc | None:
        async with gate:
            return await store.revision(webhook_id, version + 1)

    while sent:
        found = [doc for doc in await asyncio.gather(*(newer(w, v) for w, v in sent)) if doc is not None]
        records = []
        for doc in found:
            try:
                records.append(config_record(doc))
            except UnreadableDocument:
                continue  # the outbox sets it aside, with its reason
        await asyncio.gather(*(sink.send(r.key, r.value) for r in records))
        resent += len(records)
        sent = [(r.webhook_id, r.version) for r in records]
    return resent


async def resync(settings: RegistrySettings) -> int:
    """Send every document's current state (a tombstone for a deleted one) and wait for the acks.

    Read-only on MongoDB on purpose: a running registry owns the writes (FerretDB v1 cannot make a
    second writer safe), and its own outbox still publishes anything pending, after this, in order.
    A change made while a document was on its way here may have been published before this older state
    landed: after the acks, each webhook's next revision is looked up (`_id`), and whatever exists is sent
    again until none is newer than what this sent last (`catch_up`).
    """
    store = MongoStore(settings.mongo_url, settings.database, settings.mongo_timeout_ms)
    sink = KafkaSink(settings.kafka_bootstrap_servers, Topics(settings.topic_prefix).config)
    await sink.start()
    try:
        sends = []
        sent: list[tuple[str, int]] = []
        async for doc in store.all_docs():
            try:
                record = config_record(doc)
            except UnreadableDocument as exc:
                log.error(
                    "webhook document cannot be published; skipped",
                    extra={"webhook_id": exc.webhook_id, "error": exc.reason},
                )
                continue
            sends.append(sink.send(record.key, record.value))
            sent.append((record.webhook_id, record.version))
        await asyncio.gather(*sends)
        await catch_up(store, sink, sent)
        return len(sends)
    finally:
        await sink.stop()
        await store.close()
