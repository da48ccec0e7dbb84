"""Writes planned records to Kafka and returns only once Kafka acknowledged all of them (acks=all)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Protocol

from aiokafka import AIOKafkaProducer

from router import metrics
from router.errors import retry_delay, send_error_action
from router.faust_adapter import default_partition, producer_partitions
from router.routing import Outgoing

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 70
MEMO_LIMIT = 100_000


class RecordSink(Protocol):
    async def write_all(self, records: list[Outgoing]) -> None: ...


class KafkaSink:
    """An idempotent acks=all producer of our own: faust's producer reports failed sends only in logs."""

    def __init__(self, producer: AIOKafkaProducer, memo_topics: frozenset[str] = frozenset()) -> None:
        self._producer = producer
        # (topic, partition count, key) -> partition. aiokafka hashes every key with a pure-Python murmur2,
        # which costs more than the rest of a task; URLs repeat, so the answer is remembered. Only for
        # `memo_topics` (deliveries): invalid-record keys are unique, remembering them only grows memory.
        self._memo_topics = memo_topics
        self._partition_memo: dict[tuple[str, int, bytes], int] = {}

    async def write_all(self, records: list[Outgoing]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._send(records)
                return
            except Exception as exc:
                if send_error_action(exc) == "crash":
                    # Exiting without acknowledging the batch keeps its input offsets uncommitted, so another
                    # worker (or this one restarted) routes it again: nothing is lost.
                    log.critical("cannot write tasks (%r); exiting so the batch is routed again", exc)
                    logging.shutdown()
                    os._exit(CRASH_EXIT_CODE)
                metrics.SEND_RETRIES.inc()
                delay = retry_delay(attempt)
                log.warning("writing tasks failed (%r); re-sending the batch in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _send(self, records: list[Outgoing]) -> None:
        send = self._producer.send
        partition = self._partition
        futures = [await send(r.topic, value=r.value, key=r.key, partition=partition(r)) for r in records]
        if futures:
            await asyncio.gather(*futures)

    def _partition(self, record: Outgoing) -> int | None:
        """The partition aiokafka's partitioner picks for the key (None: let aiokafka pick it itself)."""
        if record.topic not in self._memo_topics:
            return None
        partitions = producer_partitions(self._producer, record.topic)
        if not partitions:
            return None
        memo_key = (record.topic, len(partitions), record.key)
        found = self._partition_memo.get(memo_key)
        if found is None:
            if len(self._partition_memo) > MEMO_LIMIT:
                self._partition_memo.clear()
            found = self._partition_memo[memo_key] = default_partition(
                self._producer, record.key, list(partitions)
            )
        return found
