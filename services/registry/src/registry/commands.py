"""Consumes `webhooks.commands` (e.g. the deliverer's "disable" after a 410) with a consumer group and
applies each through the same service path as the API; the offset is committed only after the write."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

import pydantic
import pymongo.errors
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from registry.errors import ConcurrentChange, DomainError
from registry.service import WebhookService
from webhooks_common.aio import raise_if_cancelled
from webhooks_common.kafka import start_client, stop_client
from webhooks_common.models import WebhookCommand

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    COMMIT = "commit"  # done, or can never be done (bad message): move on
    RETRY = "retry"  # a dependency is down: try the same record again later


def outcome_for(exc: BaseException | None) -> Outcome:
    """The one place deciding what a failed command means for its offset."""
    if exc is None:
        return Outcome.COMMIT
    if isinstance(exc, pydantic.ValidationError | ValueError):
        return Outcome.COMMIT  # malformed or unknown command: retrying cannot help
    if isinstance(exc, ConcurrentChange):
        return Outcome.RETRY  # lost a race with another writer: a fresh read can win
    if isinstance(exc, DomainError):
        return Outcome.COMMIT  # refused for good (e.g. an unreadable stored document)
    if isinstance(exc, pymongo.errors.PyMongoError | KafkaError | OSError | TimeoutError):
        return Outcome.RETRY
    return Outcome.COMMIT


async def apply_command(service: WebhookService, raw: bytes | None) -> bool:
    if raw is None:
        return False
    cmd = WebhookCommand.from_bytes(raw)
    if cmd.action == "disable":
        return await service.disable(cmd.webhook_id, cmd.entity_id, cmd.reason, cmd.requested_by)
    raise ValueError(f"unknown command action {cmd.action!r}")


class CommandConsumer:
    def __init__(self, service: WebhookService, bootstrap: str, topic: str, group: str) -> None:
        self.service, self.bootstrap, self.topic, self.group = service, bootstrap, topic, group

    async def run(self) -> None:
        backoff = 0.5
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await start_client(consumer)
                backoff = 0.5
                await self._consume(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("commands consumer failed; restarting", extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                # Bounded: stopping a consumer that was cancelled while joining its group can hang.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stop_client(consumer), 10)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            raise_if_cancelled()
            batch = await consumer.getmany(timeout_ms=500, max_records=100)
            for tp, records in batch.items():
                for record in records:
                    await self._handle(consumer, tp, record)

    async def _handle(self, consumer: AIOKafkaConsumer, tp: TopicPartition, record: ConsumerRecord) -> None:
        delay = 0.2
        while True:
            raise_if_cancelled()
            error: BaseException | None = None
            try:
                await apply_command(self.service, record.value)
            except Exception as exc:
                error = exc
            if outcome_for(error) is Outcome.COMMIT:
                if error is not None:
                    log.warning("command skipped", extra={"offset": record.offset, "error": repr(error)})
                await consumer.commit({tp: record.offset + 1})
                return
            log.warning("command will be retried", extra={"offset": record.offset, "error": repr(error)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
