"""Every place the router reaches past the public, typed API of faust-streaming (and of aiokafka under it).

Written against faust-streaming 0.15.3 and aiokafka 0.14.0. `tests/unit/test_router_faust_adapter.py` checks
that what each function relies on is still there in the installed versions, so an upgrade that moves it
fails a unit test instead of the router at run time. Everything else the router uses is public: `faust.App`
and its settings, `app.topic`, `app.agent`, `app.task`, `app.page` views, `app.consumer.assignment()`,
`stream.ack(event)`, `event.message`, `faust.Worker`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT

Acker = Callable[[EventT], Awaitable[bool]]


def manual_ack_events(stream: StreamT[bytes]) -> tuple[AsyncIterator[EventT], Acker]:
    """The stream's events as they arrive, which faust never acks itself, and the function that acks one.

    Why: `Stream.noack()` (a clone with `enable_acks` off) is how faust leaves acking to the caller, so an
    event is committed only once its tasks are on Kafka; iterating a stream that acks would ack an event
    as soon as the next one is asked for. `noack` is a method of `faust.Stream` but not of the `StreamT`
    interface agents are typed with: hence the cast.
    """
    manual = cast(StreamT[bytes], cast(Any, stream).noack())
    return manual.events(), manual.ack


def producer_partitions(producer: AIOKafkaProducer, topic: str) -> set[int] | None:
    """The topic's partitions in the producer's cached metadata (None: not known yet).

    Why: `AIOKafkaProducer.partitions_for()` is public but awaits a metadata round trip when the topic is
    unknown; the router needs a synchronous answer per task (it only memoises where it has one).
    """
    found: set[int] | None = producer.client.cluster.partitions_for_topic(topic)
    return found


def default_partition(producer: AIOKafkaProducer, key: bytes, partitions: list[int]) -> int:
    """The partition aiokafka's own partitioner gives `key` (murmur2, the Java client's default).

    Why: aiokafka hashes every key in pure Python, which costs more than building a task; the router
    remembers the answer per URL (`sink.KafkaSink`) and must give the same partition aiokafka would, so it
    calls the producer's partitioner (`_partitioner`, private) instead of re-implementing murmur2.
    """
    return int(producer._partitioner(key, partitions, partitions))
