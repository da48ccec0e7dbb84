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


def test_noack_take_exists_with_the_signature_used() -> None:
    fun = inspect.unwrap(faust.Stream.noack_take)
    assert inspect.isasyncgenfunction(fun)
    params = list(inspect.signature(fun).parameters)
    assert params == ["self", "max_", "within"], params


def test_noack_take_leaves_acking_to_the_caller() -> None:
    # The router acks a batch only once its tasks are on Kafka; noack_take must neither ack by itself nor
    # let the stream ack (it turns `enable_acks` off while it runs).
    code = [
        line.strip()
        for line in inspect.getsource(inspect.unwrap(faust.Stream.noack_take)).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert "self.enable_acks = False" in code
    assert not [line for line in code if "self.ack(" in line or "ack_events" in line], code
    assert "enable_acks" in inspect.signature(faust.Stream.__init__).parameters


async def test_aiokafka_producer_internals_used_by_the_sink() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")  # never started: no connection made
    try:
        assert producer_partitions(producer, "no-such-topic") is None
        parts = [0, 1, 2, 3, 4, 5]
        for key in (b"https://a.example.com/x", b"", b"\xff" * 40):
            assert default_partition(producer, key, parts) == DefaultPartitioner()(key, parts, parts)
    finally:
        await producer.stop()
