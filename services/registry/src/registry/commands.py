"""Consumes `webhooks.commands` (e.g. the deliverer's "disable" after a 410) on the shared consumer runtime
and applies each through the same service path as the API; the offset is committed only after the write.

A record that is not a command (bad JSON, unknown action, missing field) is set aside on `webhooks.invalid`
with its reason by the runtime. What applying a command raised is mapped to commit / retry in ONE place,
`outcome_for`. Commands are applied one at a time, in order: a retried command holds the ones after it.
"""

from __future__ import annotations

import logging

import pymongo.errors

from registry.errors import ConcurrentChange, DomainError
from registry.service import WebhookService
from webhooks_common.consumer import (
    BaseHandler,
    ConsumerRuntime,
    Inbound,
    Outcome,
    RuntimeSettings,
    Undecodable,
    default_outcome,
    run_replacing,
)
from webhooks_common.decoders import decode_command
from webhooks_common.wire import WebhookCommand

log = logging.getLogger(__name__)


def outcome_for(exc: BaseException) -> Outcome:
    """The one place deciding what a failure to apply a command means for its offset."""
    if isinstance(exc, pymongo.errors.PyMongoError):
        return Outcome.RETRY  # the store is down or refused for now: the command must not be lost
    if isinstance(exc, ConcurrentChange):
        return Outcome.RETRY  # lost a race with another writer: a fresh read can win
    if isinstance(exc, DomainError):
        return Outcome.COMMIT  # refused for good (e.g. an unreadable stored document)
    return default_outcome(exc)  # Kafka and I/O errors retry; anything else is set aside with its reason


async def apply_command(service: WebhookService, cmd: WebhookCommand) -> bool:
    """Apply one command; False when there was nothing to do (webhook gone or already disabled)."""
    if cmd.action == "disable":
        return await service.disable(cmd.webhook_id, cmd.entity_id, cmd.reason, cmd.requested_by)
    raise Undecodable(f"unknown command action {cmd.action!r}")  # the decoder lets none through today


class CommandConsumer(BaseHandler[WebhookCommand]):
    def __init__(
        self, service: WebhookService, bootstrap: str, topic: str, group: str, *, invalid_topic: str
    ) -> None:
        self.service, self.bootstrap, self.topic, self.group = service, bootstrap, topic, group
        self.invalid_topic = invalid_topic
        self._runtime: ConsumerRuntime[WebhookCommand] | None = None

    @property
    def ready(self) -> bool:
        return self._runtime is not None and self._runtime.ready

    async def handle(self, rec: Inbound[WebhookCommand]) -> None:
        await apply_command(self.service, rec.value)
        rec.done()

    async def run(self) -> None:
        """Until cancelled; a consumer whose loop dies is replaced after a backoff."""
        await run_replacing(self._make_runtime, "commands consumer")

    def _make_runtime(self) -> ConsumerRuntime[WebhookCommand]:
        self._runtime = ConsumerRuntime(
            RuntimeSettings(
                bootstrap=self.bootstrap,
                group_id=self.group,
                invalid_topic=self.invalid_topic,
                max_poll_records=100,
                max_pending=1,  # one at a time, in order
            ),
            {self.topic: decode_command},
            self,
            policy=outcome_for,
        )
        return self._runtime
