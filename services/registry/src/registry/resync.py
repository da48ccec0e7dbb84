"""Republish every stored webhook config (e.g. after the config topic was lost or recreated)."""

from __future__ import annotations

import asyncio
import logging

from registry.documents import config_record
from registry.errors import UnreadableDocument
from registry.publisher import KafkaSink
from registry.settings import RegistrySettings
from registry.store import MongoStore
from webhooks_common.topics import Topics

log = logging.getLogger(__name__)


async def resync(settings: RegistrySettings) -> int:
    """Send every document's current state (a tombstone for a deleted one) and wait for the acks.

    Read-only on MongoDB on purpose: a running registry owns the writes (FerretDB v1 cannot make a
    second writer safe), and its own outbox still publishes anything pending, after this, in order.
    """
    store = MongoStore(settings.mongo_url, settings.database, settings.mongo_timeout_ms)
    sink = KafkaSink(settings.kafka_bootstrap_servers, Topics(settings.topic_prefix).config)
    await sink.start()
    try:
        sends = []
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
        await asyncio.gather(*sends)
        return len(sends)
    finally:
        await sink.stop()
        await store.close()
