"""Thin aiokafka helpers: leak-free start/stop, the producer every service uses, idempotent topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from webhooks_common.topics import TopicSpec

log = logging.getLogger(__name__)

# How long a cancelled start() may still run so that it can be stopped cleanly. Connecting takes milliseconds;
# a consumer's start may also wait up to its request timeout for a topic to appear: not worth waiting for.
START_GRACE_S = 2.0


class KafkaClient(Protocol):
    """What aiokafka's producer and consumer have in common."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


C = TypeVar("C", bound=KafkaClient)


async def start_client(client: KafkaClient, *, grace_s: float = START_GRACE_S) -> None:
    """Start an aiokafka client; if the start fails or is cancelled, stop it before raising.

    aiokafka (0.14) holds the connection it bootstraps through in a local variable: a start() cancelled
    there leaks that socket, which the garbage collector reports later as a ResourceWarning in whichever
    code runs then. So a cancellation lets start() run on (bounded by `grace_s`), then stops the client.
    """
    await _start_guarded(client.start, client.stop, grace_s)


async def stop_client(client: KafkaClient, *, grace_s: float = 10.0) -> None:
    """Stop an aiokafka client; a cancellation of the caller does not cut the closing of its connections."""
    await _uncut(client.stop(), grace_s)


async def _start_guarded(
    start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]], grace_s: float
) -> None:
    try:
        await _uncut(start(), grace_s)
    except BaseException:
        await _uncut(stop(), grace_s)
        raise


async def _uncut(step: Awaitable[None], grace_s: float) -> None:
    """Await `step`; if the caller is cancelled meanwhile, let it run on (up to `grace_s`), then re-raise."""
    task = asyncio.ensure_future(step)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, grace_s)
        raise


@contextlib.asynccontextmanager
async def started(client: C) -> AsyncIterator[C]:
    """`async with started(AIOKafkaConsumer(...)) as consumer:` started on entry, stopped on exit."""
    await start_client(client)
    try:
        yield client
    finally:
        await stop_client(client)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of `topic`, asking the broker again if this consumer's metadata does not know it yet
    (a consumer without a subscription has none). Raises LookupError when the topic does not exist."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise LookupError(f"topic {topic!r} does not exist")
    return set(parts)


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


@contextlib.asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client, closed on exit, with the same guards as `started`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await _start_guarded(admin.start, admin.close, START_GRACE_S)
    try:
        yield admin
    finally:
        await _uncut(admin.close(), START_GRACE_S)


async def ensure_topics(bootstrap: str, specs: list[TopicSpec], *, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet (idempotent). Returns the names it created."""
    async with admin_client(bootstrap) as admin:
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


async def delete_topics(bootstrap: str, names: list[str], *, timeout: float = 30.0) -> None:
    """Delete topics that exist among `names` (test clean-up and tools); missing ones are ignored."""
    async with admin_client(bootstrap) as admin:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await asyncio.wait_for(admin.delete_topics(doomed, timeout_ms=int(timeout * 1000)), timeout)


async def _wait_visible(admin: AIOKafkaAdminClient, names: set[str], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not names <= set(await admin.list_topics()):
        if loop.time() > deadline:
            raise TimeoutError(f"topics not visible after {timeout}s: {sorted(names)}")
        await asyncio.sleep(0.1)
