"""Thin aiokafka helpers: the producer every service uses and idempotent topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from webhooks_common.topics import TopicSpec

log = logging.getLogger(__name__)


def make_producer(bootstrap: str, **kwargs: object) -> AIOKafkaProducer:
    """Idempotent producer with acks=all: a send that returns is on every in-sync replica."""
    opts: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30000,
    }
    opts.update(kwargs)
    return AIOKafkaProducer(**opts)


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet (idempotent). Returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            # A concurrent creator may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await asyncio.wait_for(
                    admin.create_topics(
                        [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing]
                    ),
                    timeout,
                )
            await _wait_visible(admin, {s.name for s in missing}, timeout)
        return [s.name for s in missing]
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str], *, timeout: float = 30.0) -> None:
    """Delete topics that exist among `names` (test clean-up and tools); missing ones are ignored."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await asyncio.wait_for(admin.delete_topics(doomed, timeout_ms=int(timeout * 1000)), timeout)
    finally:
        await admin.close()


async def _wait_visible(admin: AIOKafkaAdminClient, names: set[str], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not names <= set(await admin.list_topics()):
        if loop.time() > deadline:
            raise TimeoutError(f"topics not visible after {timeout}s: {sorted(names)}")
        await asyncio.sleep(0.1)
