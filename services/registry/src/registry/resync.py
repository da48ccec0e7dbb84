"""Republish every stored webhook config (e.g. after the config topic was lost or recreated)."""

from __future__ import annotations

from registry.publisher import KafkaSink, Publisher
from registry.settings import RegistrySettings
from registry.store import MongoStore
from webhooks_common.topics import Topics


async def resync(settings: RegistrySettings) -> int:
    """Flag every document as unpublished and drain the outbox once: the same path (and the same
    conditional marking) as normal publishing, so a registry running meanwhile cannot lose a change."""
    store = MongoStore(settings.mongo_url, settings.database, settings.mongo_timeout_ms)
    topic = Topics(settings.topic_prefix).config
    publisher = Publisher(store, lambda: KafkaSink(settings.kafka_bootstrap_servers, topic))
    try:
        await store.mark_all_pending()
        return await publisher.drain()
    finally:
        await publisher.close()
        await store.close()
