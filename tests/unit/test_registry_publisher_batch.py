"""The outbox publisher's round trips to the store per drain: one read and one mark for a short batch.

Under the registry's 500 requests/s mix the publisher marked every change with a request of its own and read
the outbox twice per wake-up; it fell behind (1,883 changes pending after 32 s, so configs reached routing
seconds late). The store behind these fakes is the real one in tests/integration/test_registry_outbox.py.
"""

from __future__ import annotations

import asyncio
from typing import cast

from registry.publisher import BATCH, Publisher
from registry.store import Store
from tests.conftest import eventually
from tests.support.outbox_fakes import Outbox, Sink, doc


async def test_a_short_batch_is_read_once_and_marked_in_one_request() -> None:
    outbox = Outbox([doc("a", 1), doc("b", 1), doc("a", 2), doc("c", 3, deleted=True)])
    sink = Sink()
    published: list[str] = []
    publisher = Publisher(
        cast(Store, outbox), lambda: sink, on_published=lambda r: published.append(r.webhook_id)
    )
    assert await publisher.drain() == 4
    assert outbox.reads == 1
    assert outbox.marks == [[("a", 1), ("b", 1), ("a", 2)]]
    assert outbox.removed == [("c", 3)]  # a tombstone also removes its document: on its own
    assert sink.sent == [b"a", b"b", b"a", b"c"]
    assert published == ["a", "b", "a", "c"]


async def test_a_full_batch_is_followed_by_another_read() -> None:
    outbox = Outbox([doc(f"w{i}", 1) for i in range(BATCH + 3)])
    publisher = Publisher(cast(Store, outbox), Sink)
    assert await publisher.drain() == BATCH + 3
    assert outbox.reads == 2 and [len(m) for m in outbox.marks] == [BATCH, 3]


async def test_changes_woken_within_the_gather_time_go_out_in_one_drain() -> None:
    outbox = Outbox([])
    sink = Sink()
    publisher = Publisher(cast(Store, outbox), lambda: sink, poll_seconds=30, gather_s=0.2)
    task = asyncio.create_task(publisher.run())
    try:
        await eventually(lambda: outbox.reads == 1, what="the first (empty) drain")
        for n in range(3):  # three requests' changes, a moment apart
            outbox.docs.append(doc(f"w{n}", 1))
            publisher.wake()
            await asyncio.sleep(0)
        # The mark follows the sends' acks: wait for it too, or a slow moment finds it not made yet.
        await eventually(lambda: len(sink.sent) == 3 and outbox.marks, what="the three changes sent, marked")
        assert outbox.reads == 2 and len(outbox.marks) == 1 and len(outbox.marks[0]) == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
