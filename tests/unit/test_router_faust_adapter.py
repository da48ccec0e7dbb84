"""What `router.faust_adapter` relies on still exists in the installed faust-streaming and aiokafka.

Each test names the assumption of one adapter function; when an upgrade breaks it, fix the adapter (and
its docstring), not the rest of the router.
"""

from __future__ import annotations

import inspect

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from router.faust_adapter import default_partition, producer_partitions


def test_noack_gives_a_stream_that_leaves_acking_to_the_caller() -> None:
    # The router acks an event only once its tasks are on Kafka: the clone `noack()` returns must have acks
    # off, and be the stream the events come from (`events()`) and the acks go to (`ack(event)`).
    assert "enable_acks" in inspect.signature(faust.Stream.__init__).parameters
    code = [
        line.strip()
        for line in inspect.getsource(inspect.unwrap(faust.Stream.noack)).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "enable_acks=False," in code, code
    assert inspect.isasyncgenfunction(inspect.unwrap(faust.Stream.events))
    assert inspect.iscoroutinefunction(inspect.unwrap(faust.Stream.ack))
    assert list(inspect.signature(faust.Stream.ack).parameters) == ["self", "event"]


def test_a_stream_with_acks_off_does_not_ack_while_iterating() -> None:
    # faust's iterator acks the previous event when the next is asked for, unless `enable_acks` is off.
    source = inspect.getsource(faust.Stream._py_aiter)
    assert "do_ack = self.enable_acks" in source


async def test_aiokafka_producer_internals_used_by_the_sink() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")  # never started: no connection made
    try:
        assert producer_partitions(producer, "no-such-topic") is None
        parts = [0, 1, 2, 3, 4, 5]
        for key in (b"https://a.example.com/x", b"", b"\xff" * 40):
            assert default_partition(producer, key, parts) == DefaultPartitioner()(key, parts, parts)
    finally:
        await producer.stop()
