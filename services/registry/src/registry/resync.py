"""Republish every stored webhook config (e.g. after the config topic was lost or recreated)."""

from __future__ import annotations

import asyncio

from registry.publisher import KafkaSink, record_for
from registry.settings import RegistrySettings
from registry.store import MongoStore
from webhooks_common.topics import Topics


async def resync(settings: RegistrySettings) -> int:
    """Send every document's current state (a tombstone for a deleted one) and wait for the acks.

    Read-only on MongoDB on purpose: a running registry owns the writes (FerretDB v1 cannot make a
    second writer safe), and its own outbox still publishes anything pending, after this, in order.
    """
    store = MongoStore(settings.mongo_url, settings.database, settings.mongo_timeout_ms)
    sink = KafkaSink(settings.kafka_bootstrap_servers, Topics(settings.topic_prefix).config)
    await sink.start()
    try:
        sends = [sink.send(*record_for(doc)) async for doc in store.all_docs()]
        await asyncio.gather(*sends)
        return len(sends)
    finally:
        await sink.stop()
        await store.close()
