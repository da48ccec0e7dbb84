"""The shared consumer runtime on real Kafka: retry later in order, set aside, commit past both."""

from __future__ import annotations

from aiokafka import TopicPartition

from tests.conftest import eventually
from tests.servers import Servers
from tests.support.kafka import produce, read_topic
from webhooks_common.consumer import (
    BaseHandler,
    ConsumerRuntime,
    Inbound,
    RuntimeSettings,
    Transient,
    Undecodable,
)
from webhooks_common.kafka import admin_client
from webhooks_common.models import InvalidEvent
from webhooks_common.topics import Topics


def decode(raw: bytes | None) -> str:
    if raw is None or not raw.startswith(b"ok"):
        raise Undecodable("not ok")
    return raw.decode()


class Flaky(BaseHandler[str]):
    """Fails `ok-1` twice with a transient error, `ok-3` once with a bug; records what it handled."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.handled: list[str] = []

    async def handle(self, rec: Inbound[str]) -> None:
        self.seen.append(rec.value)
        if rec.value == "ok-1" and self.seen.count("ok-1") <= 2:
            raise Transient("store down")
        if rec.value == "ok-3":
            raise RuntimeError("a bug")
        self.handled.append(rec.value)
        rec.done()


async def test_retry_in_order_set_aside_and_commit(servers: Servers, topics: Topics, group_id: str) -> None:
    topic = topics.commands  # any one-partition topic of this test
    values = [b"ok-0", b"ok-1", b"junk", b"ok-2", b"ok-3", b"ok-4"]
    await produce(servers.kafka, topic, [(b"k", v) for v in values])
    handler = Flaky()
    settings = RuntimeSettings(
        bootstrap=servers.kafka,
        group_id=group_id,
        invalid_topic=topics.invalid,
        max_pending=1,
        commit_interval_s=0.1,
        retry_first_s=0.05,
    )
    runtime: ConsumerRuntime[str] = ConsumerRuntime(settings, {topic: decode}, handler)
    await runtime.start()
    try:
        await eventually(lambda: len(handler.handled) == 4, what="the good records handled")
        invalid = await eventually(
            lambda: read_topic(servers.kafka, topics.invalid, until=lambda r: len(r) >= 2, timeout=1),
            what="two records set aside",
        )

        async def committed() -> bool:
            async with admin_client(servers.kafka) as admin:
                offsets = await admin.list_consumer_group_offsets(group_id)
            meta = offsets.get(TopicPartition(topic, 0))
            return meta is not None and meta.offset == len(values)

        await eventually(committed, what="the commit past every record")
        assert runtime.ready and runtime.pending == 0
    finally:
        await runtime.stop()
    # one at a time: the retried record held the ones after it, so the order is kept
    assert handler.handled == ["ok-0", "ok-1", "ok-2", "ok-4"]
    assert handler.seen.count("ok-1") == 3
    got = sorted((e.offset, e.reason) for e in (InvalidEvent.from_bytes(r.value) for r in invalid))
    assert got == [(2, "undecodable"), (4, "unprocessable")]
