"""The outbox lease on the real store: one holder among racing registries, a hand-back, a crashed holder."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from registry.lease import SKEW_S, StoreLease
from registry.store import LEASES
from tests.conftest import eventually


def leases(db: AsyncDatabase[Any], n: int, lease_s: float = 15.0) -> list[StoreLease]:
    return [StoreLease(db[LEASES], lease_s, look_every_s=0.0, owner=f"registry-{i}") for i in range(n)]


async def test_of_eight_registries_taking_the_lease_at_once_exactly_one_holds_it(
    mongo_db: AsyncDatabase[Any],
) -> None:
    takers = leases(mongo_db, 8)
    for _ in range(3):  # also when they all look again while one holds it
        results = await asyncio.gather(*(t.acquire() for t in takers))
        assert sum(results) == 1, results
        assert [t.held for t in takers] == results
    holder = takers[results.index(True)]
    newest = await mongo_db[LEASES].find_one({}, sort=[("_id", -1)])
    assert newest is not None and newest["owner"] == holder.owner


async def test_a_registry_that_stops_hands_the_lease_to_the_next_that_looks(
    mongo_db: AsyncDatabase[Any],
) -> None:
    first, second = leases(mongo_db, 2)
    assert await first.acquire()
    assert not await second.acquire()
    await first.release()
    assert not first.held
    assert await second.acquire()
    assert not await first.acquire()


async def test_a_crashed_holders_lease_is_taken_once_it_has_ended(mongo_db: AsyncDatabase[Any]) -> None:
    lease_s = 4.0
    crashed, survivor = leases(mongo_db, 2, lease_s)
    assert await crashed.acquire()
    started = time.monotonic()
    # The holder stops renewing (it died); the survivor keeps looking and takes over when the lease ends.
    await eventually(survivor.acquire, timeout=lease_s + 5, interval=0.1, what="survivor takes the lease")
    assert time.monotonic() - started >= lease_s - 0.5  # not before the crashed holder's lease ended
    assert not await crashed.acquire()  # were it alive after all, it would know it lost the lease
    assert not crashed.held


async def test_the_holder_renews_its_lease_and_keeps_it(mongo_db: AsyncDatabase[Any]) -> None:
    lease_s = 4.0
    holder, other = leases(mongo_db, 2, lease_s)
    assert await holder.acquire()
    deadline = time.monotonic() + 2 * lease_s + SKEW_S
    while time.monotonic() < deadline:  # the publisher's loop: both look every poll
        assert await holder.acquire()
        assert not await other.acquire()
        await asyncio.sleep(0.2)
    epochs = [doc["owner"] async for doc in mongo_db[LEASES].find({})]
    assert len(epochs) >= 3 and set(epochs) == {holder.owner}
