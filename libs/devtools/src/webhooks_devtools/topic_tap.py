"""A topic read in the background beside the services (group-less: it takes no partitions from them),
each batch of records handed to a callback. For the tests, the benches and the chaos harness.

    async with TopicTap(bootstrap, topic, records.extend):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from webhooks_common.kafka import start_client, stop_client


class TopicTap:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        on_records: Callable[[list[ConsumerRecord]], None],
        *,
        from_beginning: bool = True,
        **consumer_options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.on_records = on_records
        self.options = {
            "group_id": None,
            "auto_offset_reset": "earliest" if from_beginning else "latest",
            "enable_auto_commit": False,
            **consumer_options,
        }
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, **self.options)
        await start_client(consumer)
        self.consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name=f"tap-{self.topic}")

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    self.on_records(records)
        finally:
            await stop_client(consumer)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
