"""Every place the router reaches past the public, typed API of faust-streaming (and of aiokafka under it).

Written against faust-streaming 0.15.3 and aiokafka 0.14.0. `tests/unit/test_router_faust_adapter.py` checks
that what each function relies on is still there in the installed versions, so an upgrade that moves it
fails a unit test instead of the router at run time. Everything else the router uses is public: `faust.App`
and its settings, `app.topic`, `app.agent`, `app.task`, `app.page` views, `app.consumer.assignment()`,
`stream.ack(event)`, `event.message`, `faust.Worker`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from faust.types import EventT, StreamT


def noack_batches(stream: StreamT[bytes], max_: int, within_s: float) -> AsyncIterator[Sequence[EventT]]:
    """Batches of up to `max_` events (waiting at most `within_s` to fill one) that faust never acks itself.

    Why: `Stream.noack_take` is the only batching read in faust that leaves acking to the caller (it turns
    the stream's `enable_acks` off); `take`/`take_events` ack their buffer in a `finally`, also when the
    body raises or is cancelled, which would commit events whose tasks never reached Kafka. It is a method
    of `faust.Stream` but not of the `StreamT` interface agents are typed with, and it yields events, not
    the values its annotation says: hence the casts.
    """
    return cast(AsyncIterator[Sequence[EventT]], cast(Any, stream).noack_take(max_, within=within_s))


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
