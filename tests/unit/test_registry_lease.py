"""The outbox lease's decisions, and the publisher publishing only while it holds the lease.

The lease on the real store (racing takers, hand-back, a crashed holder) is in
tests/integration/test_registry_lease.py.
"""

from __future__ import annotations

from typing import cast

from registry.documents import config_record
from registry.lease import SKEW_S, Epoch, claim, send_budget_s
from registry.publisher import BATCH, Publisher, in_chunks, in_version_order
from registry.store import Store
from tests.support.factories import stored_webhook_doc
from tests.support.outbox_fakes import Outbox, Sink, doc


def test_the_first_registry_takes_the_first_epoch() -> None:
    assert claim(None, "me", 100.0, renew_within=12) == 1


def test_a_holder_renews_only_once_its_lease_runs_low() -> None:
    mine = Epoch(7, "me", until=115.0)
    assert claim(mine, "me", 100.0, renew_within=12) is None  # 15 s left
    assert claim(mine, "me", 104.0, renew_within=12) == 8  # 11 s left
    assert claim(mine, "me", 200.0, renew_within=12) == 8  # ended (the store was away): taken again


def test_another_holders_lease_is_taken_only_after_its_end_and_the_clock_skew() -> None:
    theirs = Epoch(7, "other", until=115.0)
    assert claim(theirs, "me", 100.0, renew_within=12) is None
    assert claim(theirs, "me", 115.0 + SKEW_S, renew_within=12) is None
    assert claim(theirs, "me", 115.0 + SKEW_S + 0.01, renew_within=12) == 8
    handed_back = Epoch(8, "other", until=0.0)
    assert claim(handed_back, "me", 100.0, renew_within=12) == 9


def test_a_batch_starts_only_with_time_for_its_sends_to_finish() -> None:
    timeout, least = send_budget_s(15.0)
    # aiokafka waits up to one request timeout for metadata, gives a batch up one timeout after it was made,
    # and one request in flight may take another.
    assert least >= 3 * timeout
    # The holder renews with 12 s left: a batch can always start between renewals.
    assert least < 15.0 * 0.8


def test_each_webhooks_revisions_go_out_oldest_first_whatever_the_store_order() -> None:
    # The store orders by the writers' clocks: b:3 (written by a process whose clock is behind) came first.
    docs = [
        stored_webhook_doc(_id="b", version=3),
        stored_webhook_doc(_id="a", version=1),
        stored_webhook_doc(_id="b", version=2),
        stored_webhook_doc(_id="c", version=5),
        stored_webhook_doc(_id="b", version=4),
    ]
    ordered = [(x["_id"], x["version"]) for x in in_version_order(docs)]
    assert ordered == [("b", 2), ("a", 1), ("b", 3), ("c", 5), ("b", 4)]


class Lease:
    def __init__(self, held: bool) -> None:
        self.held, self.acquired, self.released = held, 0, 0

    async def acquire(self) -> bool:
        self.acquired += 1
        return self.held

    async def release(self) -> None:
        self.released += 1


async def test_a_registry_without_the_lease_publishes_nothing_but_keeps_its_producer() -> None:
    outbox, sink = Outbox([doc("a", 1)]), Sink()
    lease = Lease(held=False)
    publisher = Publisher(cast(Store, outbox), lambda: sink, lease=lease)
    await publisher.round()
    assert (sink.sent, outbox.reads, lease.acquired) == ([], 0, 1)
    assert publisher.kafka_ok  # readiness still says whether Kafka answers

    lease.held = True
    await publisher.round()
    assert sink.sent == [b"a"]
    await publisher.close()
    assert lease.released == 1


async def test_a_lease_ending_before_the_sends_would_stops_the_drain_before_sending() -> None:
    outbox, sink = Outbox([doc("a", 1)]), Sink()

    class Ending(Lease):
        async def acquire(self) -> bool:
            return False  # not renewable any more: taken over, or the store is away

    publisher = Publisher(cast(Store, outbox), lambda: sink, lease=Ending(held=True))
    assert await publisher.drain() == 0
    assert sink.sent == [] and all(m == [] for m in outbox.marks)


async def test_a_long_drain_renews_the_lease_between_batches_instead_of_stopping() -> None:
    # A backlog of several batches takes longer than the lease's margin: the drain asks before each chunk
    # of sends (a renewal when due), rather than stopping until the next poll.
    outbox, sink = Outbox([doc(f"w{i}", 1) for i in range(2 * BATCH + 1)]), Sink()
    lease = Lease(held=True)
    publisher = Publisher(cast(Store, outbox), lambda: sink, lease=lease)
    assert await publisher.drain() == 2 * BATCH + 1
    assert lease.acquired >= 3 and len(sink.sent) == 2 * BATCH + 1


async def test_a_lease_lost_between_chunks_leaves_the_unsent_rest_pending() -> None:
    outbox, sink = Outbox([doc(f"w{i}", 1) for i in range(BATCH)]), Sink()

    class LostAfterOne(Lease):
        async def acquire(self) -> bool:
            self.acquired += 1
            return self.acquired == 1

    publisher = Publisher(cast(Store, outbox), lambda: sink, lease=LostAfterOne(held=True))
    marked = await publisher.drain()
    assert 0 < marked == len(sink.sent) < BATCH  # the first chunk only, and it is marked
    assert len(outbox.docs) == BATCH - marked  # the rest stays pending for the next holder


def test_chunks_stay_under_the_limit_and_keep_the_order() -> None:
    records = [config_record(stored_webhook_doc(_id=f"w{i:03}", version=1)) for i in range(300)]
    size = len(records[0].key) + len(records[0].value or b"")
    chunks = in_chunks(records, 10 * size)
    assert [r for c in chunks for r in c] == records
    assert all(sum(len(r.key) + len(r.value or b"") for r in c) <= 10 * size for c in chunks)
    assert in_chunks(records[:1], 1) == [records[:1]]  # a record over the limit goes alone
