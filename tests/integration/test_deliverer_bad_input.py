"""Bad input and failing jobs in the deliverer: set aside with a reason, the rest keeps flowing.

Real Kafka, a real deliverer in this process, a loopback HTTP receiver.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import TopicPartition

from deliverer import signing
from deliverer.app import Deliverer
from tests.conftest import eventually
from tests.integration.test_deliverer_helpers import deliverer_settings, make_hook, make_task, publish
from tests.servers import Servers
from tests.support.kafka import produce, read_topic
from tests.support.receiver import Receiver
from webhooks_common.kafka import admin_client
from webhooks_common.models import InvalidEvent
from webhooks_common.topics import Topics

BAD_FIELDS: list[dict[str, Any]] = [
    {"due_at_ms": "soon"},
    {"attempt": "two"},
    {"webhook_version": "latest"},
    {"entered_at_ms": "yesterday"},
]


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    async with admin_client(bootstrap) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    meta = offsets.get(tp)
    return meta.offset if meta is not None else -1


async def _invalid(servers: Servers, topics: Topics, want: int) -> list[InvalidEvent] | None:
    recs = await read_topic(servers.kafka, topics.invalid, until=lambda r: len(r) >= want, timeout=1)
    got = [InvalidEvent.from_bytes(r.value) for r in recs]
    return got if len(got) >= want else None


async def test_tasks_with_bad_fields_are_set_aside_and_the_good_ones_delivered(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    hook = make_hook(secrets_key, receiver.url("/mixed"))
    good = [make_task(hook, n) for n in range(6)]
    values: list[tuple[str, bytes]] = []
    for i, task in enumerate(good):
        values.append((task.task_id, task.to_bytes()))
        if i < len(BAD_FIELDS):
            bad = {**orjson.loads(make_task(hook, 100 + i).to_bytes()), **BAD_FIELDS[i]}
            values.append(("bad", orjson.dumps(bad)))
    await publish(servers.kafka, topics, configs=[hook.config])
    # one partition, so that the bad records sit between good ones in the offsets that get committed
    await produce(servers.kafka, topics.deliveries, [(hook.config.event_url.encode(), v) for _, v in values])

    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key)
    async with Deliverer(settings) as d:
        await eventually(
            lambda: {r.webhook_id for r in receiver.requests("/mixed")} >= {t.task_id for t in good},
            what="every good task delivered",
        )
        invalid = await eventually(
            lambda: _invalid(servers, topics, len(BAD_FIELDS)), what="bad tasks set aside"
        )
        assert d.failed is None and d.checks["consumer"]()  # still running, still ready
        parts = {r.partition for r in await read_topic(servers.kafka, topics.deliveries, idle=0.5)}
        assert len(parts) == 1
        tp = TopicPartition(topics.deliveries, parts.pop())
        group = settings.consumer_group(settings.group_id)
        await eventually(
            lambda: _at(servers.kafka, group, tp, len(values)), what="the commit past every record"
        )
        later = make_task(hook, 99)
        await publish(servers.kafka, topics, tasks=[later])
        await eventually(lambda: any(r.webhook_id == later.task_id for r in receiver.requests("/mixed")))

    assert len(receiver.requests("/mixed")) == len(good) + 1  # nothing bad reached the receiver
    assert all(e.reason == "undecodable" and e.source_topic == topics.deliveries for e in invalid)
    details = " ".join(e.detail for e in invalid)
    for bad in BAD_FIELDS:
        assert f"$.{next(iter(bad))}" in details, details  # the reason names the field
    original = {orjson.loads(_b64(e.value_b64))["task_id"] for e in invalid}
    assert len(original) == len(BAD_FIELDS)  # the original bytes travel with the reason


async def _at(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> bool:
    return await _committed(bootstrap, group, tp) >= offset


def _b64(text: str | None) -> bytes:
    import base64

    assert text is not None
    return base64.b64decode(text)


async def test_a_job_that_raises_frees_its_slot_and_its_offset(
    servers: Servers,
    topics: Topics,
    group_id: str,
    secrets_key: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = make_hook(secrets_key, receiver.url("/raise"))
    doomed = make_task(hook, 0)
    real_headers = signing.headers

    def headers(keys: list[bytes], msg_id: str, *args: Any) -> dict[str, str]:
        if msg_id == doomed.task_id:
            raise RuntimeError("a bug inside the attempt")
        return real_headers(keys, msg_id, *args)

    monkeypatch.setattr(signing, "headers", headers)
    tasks = [doomed, *(make_task(hook, n) for n in range(1, 5))]
    await publish(servers.kafka, topics, configs=[hook.config], tasks=tasks, partition=0)
    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key, max_pending=3)
    group = settings.consumer_group(settings.group_id)
    async with Deliverer(settings) as d:
        await eventually(
            lambda: {r.webhook_id for r in receiver.requests("/raise")} >= {t.task_id for t in tasks[1:]},
            what="the later tasks delivered",
        )
        invalid = await eventually(lambda: _invalid(servers, topics, 1), what="the failed task set aside")
        tp = TopicPartition(topics.deliveries, 0)
        await eventually(lambda: _at(servers.kafka, group, tp, len(tasks)), what="the commit past it")
        await eventually(lambda: sum(c.pending for c in d._consumers) == 0, what="no slot leaked")
        more = [make_task(hook, n) for n in range(5, 9)]  # more than max_pending: needs every slot back
        await publish(servers.kafka, topics, tasks=more, partition=0)
        await eventually(
            lambda: {r.webhook_id for r in receiver.requests("/raise")} >= {t.task_id for t in more},
            what="tasks after the failure delivered",
        )
        assert d.failed is None
    assert invalid[0].reason == "unprocessable" and "a bug inside the attempt" in invalid[0].detail
    assert (invalid[0].source_topic, invalid[0].partition, invalid[0].offset) == (topics.deliveries, 0, 0)


async def test_readyz_says_whether_the_consumer_runs(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str
) -> None:
    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key)
    async with Deliverer(settings) as d, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{d.metrics_port}"

        async def status(path: str) -> int:
            async with http.get(base + path) as resp:
                return resp.status

        await eventually(lambda: _is(status("/readyz"), 200), what="ready once it joined its group")
        assert await status("/healthz") == 200
        fresh, _retries = d._consumers  # fresh deliveries, the retry topics

        async def broken(*_a: Any, **_k: Any) -> Any:
            raise RuntimeError("the consumer loop dies")

        fresh._consumer.getmany = broken
        await eventually(lambda: _is(status("/readyz"), 503), what="not ready once the loop died")
        assert isinstance(d.failed, RuntimeError)
        assert await status("/healthz") == 200


async def _is(got: Any, want: int) -> bool:
    return bool(await got == want)
