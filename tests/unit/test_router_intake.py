"""The router's intake: batches form by themselves, with no fixed wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from router.intake import Intake, run_intake


async def test_a_lone_item_is_taken_at_once() -> None:
    intake: Intake[int] = Intake(500)
    await intake.put(1)
    # no window to wait out: the batch is what has arrived
    assert await asyncio.wait_for(intake.take(), 0.05) == [1]


async def test_take_waits_for_the_first_item_then_takes_everything_waiting() -> None:
    intake: Intake[int] = Intake(500)
    taking = asyncio.create_task(intake.take())
    await asyncio.sleep(0)
    assert not taking.done()
    for i in range(3):
        await intake.put(i)
    assert await asyncio.wait_for(taking, 1) == [0, 1, 2]


async def test_a_batch_holds_at_most_batch_max_and_the_rest_waits_its_turn() -> None:
    intake: Intake[int] = Intake(3, hold=10)
    for i in range(7):
        await intake.put(i)
    assert await intake.take() == [0, 1, 2]
    assert await intake.take() == [3, 4, 5]
    assert await intake.take() == [6]
    assert len(intake) == 0


async def test_put_waits_while_hold_items_wait_and_goes_on_after_a_take() -> None:
    intake: Intake[int] = Intake(2, hold=2)
    await intake.put(0)
    await intake.put(1)
    blocked = asyncio.create_task(intake.put(2))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    assert await intake.take() == [0, 1]
    await asyncio.wait_for(blocked, 1)
    assert await intake.take() == [2]


async def test_linger_waits_for_more_unless_the_batch_is_full() -> None:
    loop = asyncio.get_running_loop()
    intake: Intake[int] = Intake(3, linger_s=0.05)
    await intake.put(0)
    t0 = loop.time()
    assert await intake.take() == [0]
    assert loop.time() - t0 >= 0.04  # waited for more

    for i in range(3):
        await intake.put(i)
    t0 = loop.time()
    assert await intake.take() == [0, 1, 2]
    assert loop.time() - t0 < 0.04  # full: no wait


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_light_traffic_never_waits_and_busy_traffic_waits_for_a_fuller_batch() -> None:
    clock = FakeClock()
    intake: Intake[int] = Intake(100, hold=2000, linger_s=0.05, busy_rate=1000, tau_s=0.1, clock=clock)
    loop = asyncio.get_running_loop()
    # 100 items/s for a second: light
    for i in range(100):
        clock.now += 0.01
        await intake.put(i)
        t0 = loop.time()
        assert await intake.take() == [i]
        assert loop.time() - t0 < 0.04
    assert 90 < intake.rate < 110
    # 5,000 items/s for 0.2 s: busy, so a take waits (here the whole linger: no batch fills)
    for i in range(1000):
        clock.now += 0.0002
        await intake.put(i)
    assert intake.rate > 1000
    got = await intake.take()
    assert len(got) == 100  # a full batch does not wait
    del got
    while len(intake) >= 100:
        await intake.take()
    await intake.put(-1)  # the rest is short of a batch
    t0 = loop.time()
    await intake.take()
    assert loop.time() - t0 >= 0.04
    # quiet again for a second: the rate decays and a lone item goes at once
    clock.now += 1.0
    await intake.put(7)
    t0 = loop.time()
    assert await intake.take() == [7]
    assert loop.time() - t0 < 0.04


async def _nothing(batch: list[int]) -> None:
    return None


async def _items(n: int, gap_s: float = 0.0) -> AsyncIterator[int]:
    for i in range(n):
        if gap_s:
            await asyncio.sleep(gap_s)
        yield i


async def test_batches_grow_while_the_previous_one_is_written() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def route(batch: list[int]) -> None:
        batches.append(batch)
        if len(batches) == 1:
            await release.wait()  # the first batch is "being written" while the rest arrives

    async def source() -> AsyncIterator[int]:
        async for i in _items(50):
            yield i
            await asyncio.sleep(0)
        release.set()

    intake: Intake[int] = Intake(500)
    await run_intake(source(), intake, route, _nothing)
    assert batches[0] == [0]
    assert [i for b in batches for i in b] == list(range(50))
    assert batches[1] == list(range(1, 50))  # everything that came meanwhile, in one batch


async def test_a_routing_error_ends_the_feed_and_is_raised() -> None:
    async def route(batch: list[int]) -> None:
        raise RuntimeError("kafka is gone")

    async def endless() -> AsyncIterator[int]:
        i = 0
        while True:
            yield i
            i += 1
            await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="kafka is gone"):
        await asyncio.wait_for(run_intake(endless(), Intake(10), route, _nothing, in_flight=3), 5)


async def test_when_the_source_ends_what_it_gave_is_routed_first() -> None:
    routed: list[int] = []

    async def write(batch: list[int]) -> None:
        await asyncio.sleep(0.01)  # slower than the source: items are still waiting when it ends

    async def done(batch: list[int]) -> None:
        routed.extend(batch)

    await asyncio.wait_for(run_intake(_items(100), Intake(7), write, done, in_flight=2), 5)
    assert routed == list(range(100))


async def test_batches_are_written_side_by_side_and_finished_in_order() -> None:
    writing = 0
    most = 0
    finished: list[int] = []

    async def write(batch: list[int]) -> None:
        nonlocal writing, most
        writing += 1
        most = max(most, writing)
        # later batches finish writing first: acks must still go in order
        await asyncio.sleep(0.02 if batch[0] % 2 == 0 else 0.001)
        writing -= 1

    async def done(batch: list[int]) -> None:
        finished.extend(batch)

    await asyncio.wait_for(run_intake(_items(40, 0.002), Intake(3), write, done, in_flight=3), 10)
    assert finished == list(range(40))
    assert most == 3  # never more than in_flight at once, and it does use them
