"""The deliverer judges a target URL by the registry's rule (webhooks_common.urls): real Kafka, real HTTP."""

from __future__ import annotations

from deliverer.app import Deliverer
from tests.conftest import eventually
from tests.integration.test_deliverer_helpers import deliverer_settings, make_hook, make_task, publish
from tests.servers import Servers
from tests.support.kafka import read_topic
from tests.support.receiver import Receiver, Reply
from webhooks_common.decoders import decode_attempt
from webhooks_common.models import DeadLetter
from webhooks_common.topics import Topics


async def test_scheme_and_host_case_do_not_matter_and_non_canonical_ipv4_is_refused_at_once(
    servers: Servers, topics: Topics, group_id: str, secrets_key: str, receiver: Receiver
) -> None:
    receiver.always("/upper", Reply(200))
    upper = make_hook(secrets_key, f"HTTP://LOCALHOST:{receiver.port}/upper")  # what the registry accepts
    short = make_hook(secrets_key, f"http://127.1:{receiver.port}/short")  # getaddrinfo reads 127.0.0.1
    await publish(
        servers.kafka,
        topics,
        configs=[upper.config, short.config],
        tasks=[make_task(upper), make_task(short)],
    )
    # Private targets allowed (as in development): only the URL rule can stop `127.1`.
    settings = deliverer_settings(servers.kafka, topics, group_id, secrets_key)
    async with Deliverer(settings):
        await eventually(lambda: receiver.requests("/upper"), what="the upper-case URL delivered")
        dlq = await eventually(
            lambda: read_topic(servers.kafka, topics.dlq, until=lambda r: len(r) >= 1, timeout=1),
            what="the short-form URL dead-lettered",
        )
        recs = await eventually(
            lambda: read_topic(servers.kafka, topics.attempts, until=lambda r: len(r) >= 2, timeout=1),
            what="two attempt records",
        )
    attempts = {a.webhook_id: a for a in (decode_attempt(r.value) for r in recs)}
    assert attempts[upper.config.id].outcome == "success"
    assert attempts[short.config.id].outcome == "refused"  # final: not retried for a day
    [dead] = [DeadLetter.from_bytes(r.value) for r in dlq]
    assert "dotted-decimal" in dead.reason, dead.reason
    assert receiver.requests("/short") == []
