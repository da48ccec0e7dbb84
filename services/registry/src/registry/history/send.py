"""Writing ordinary delivery tasks on `webhooks.deliveries` (resend, test events, recover and replay jobs):
the deliverer sends them like the router's, signed, retried and recorded in the history."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from webhooks_common.kafka import make_producer, start_client, stop_client
from webhooks_common.wire import DeliveryTask, encode

Doc = dict[str, Any]


def delivery_task(
    webhook: Doc, event_id: str, event_type: str, body: str, now_ms: int, source: str = "wink"
) -> DeliveryTask:
    """The task the router would write for this event and the webhook as it is now (current URL, version)."""
    wid = webhook["_id"]
    return DeliveryTask(
        # the router's task id: the receiver sees the same `webhook-id` as the first time
        task_id=f"{event_id}:{wid}",
        event_id=event_id,
        event_type=event_type,
        entity_id=webhook["entity_id"],
        webhook_id=wid,
        webhook_version=int(webhook["version"]),
        url=webhook["event_url"],
        body=body,
        entered_at_ms=now_ms,
        source=source,
    )


class TaskSender:
    """A producer started on first use (the API comes up without Kafka), keyed by URL as the router does."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = make_producer(self.bootstrap)
                await start_client(producer)
                self._producer = producer
            return self._producer

    async def send(self, task: DeliveryTask) -> None:
        await self.send_many([task])

    async def send_many(self, tasks: Sequence[DeliveryTask]) -> None:
        """Hand every task to the producer, then wait for all their acks: they travel in a few batches
        instead of one round trip each. Returns when every one is stored on Kafka; raises if any is not."""
        if not tasks:
            return
        producer = await self._started()
        acks = [await producer.send(self.topic, encode(t), key=t.url.encode()) for t in tasks]
        await asyncio.gather(*acks)

    async def close(self) -> None:
        if self._producer is not None:
            await stop_client(self._producer)
            self._producer = None
