"""When the history writer holds a batch for delivery: the decision and the host CPU readings."""

from __future__ import annotations

import asyncio

import pytest

from registry.history.governor import (
    CpuTimes,
    Governor,
    YieldPolicy,
    busy_fraction,
    parse_proc_stat,
    should_wait,
)
from tests.conftest import eventually

POLICY = YieldPolicy(cpu_above=0.8, rate_above=50, max_wait_s=10)

STAT = """cpu  100 5 50 800 20 3 2 0 0 0
cpu0 50 5 25 400 10 1 1 0 0 0
intr 12345
"""


def test_proc_stat_busy_is_everything_but_idle_and_iowait() -> None:
    assert parse_proc_stat(STAT) == CpuTimes(busy=160, total=980)
    assert parse_proc_stat("intr 1\n") is None


def test_busy_fraction_between_two_readings() -> None:
    assert busy_fraction(CpuTimes(100, 1000), CpuTimes(190, 1100)) == pytest.approx(0.9)
    assert busy_fraction(CpuTimes(100, 1000), CpuTimes(100, 1000)) is None  # no time passed


@pytest.mark.parametrize(
    ("busy", "rate", "waited", "expected"),
    [
        (0.95, 3000, 0, True),  # full host, deliveries flowing: delivery first
        (0.95, 3000, 10, False),  # waited its longest: the history advances anyway
        (0.5, 3000, 0, False),  # CPU left over: no reason to wait
        (0.99, 10, 0, False),  # deliveries idle: the history is catching up, at full speed
        (None, 3000, 0, False),  # unknown readings never hold the history back
        (0.95, None, 0, False),
    ],
)
def test_a_batch_waits_only_while_the_host_is_full_and_deliveries_flow(
    busy: float | None, rate: float | None, waited: float, expected: bool
) -> None:
    assert should_wait(POLICY, busy, rate, waited) is expected


def test_a_policy_at_1_never_holds() -> None:
    assert should_wait(YieldPolicy(1.0, 0, 10), 1.0, 10_000, 0) is False


async def test_the_governor_reads_rate_and_busy_and_holds_until_its_longest() -> None:
    counts = iter(range(0, 10_000_000, 1000))
    cpu = iter(CpuTimes(100 * i, 100 * i) for i in range(1000))  # always fully busy

    async def produced() -> int:
        return next(counts)

    gov = Governor(YieldPolicy(0.8, 50, max_wait_s=0.3), produced, lambda: next(cpu))
    sampler = asyncio.create_task(gov.sample_forever())
    try:
        await eventually(lambda: gov.rate is not None, timeout=5, what="two readings")
        assert gov.busy == 1.0 and (gov.rate or 0) > 50
        waited = await gov.wait_turn()
        assert 0.3 <= waited < 1.0
    finally:
        sampler.cancel()


async def test_an_idle_host_asks_the_broker_nothing() -> None:
    asked = 0
    cpu = iter(CpuTimes(0, 100 * i) for i in range(1000))  # never busy

    async def produced() -> int:
        nonlocal asked
        asked += 1
        return 0

    gov = Governor(YieldPolicy(0.8, 50, max_wait_s=0.3), produced, lambda: next(cpu))
    sampler = asyncio.create_task(gov.sample_forever())
    try:
        await eventually(lambda: gov.busy == 0.0, timeout=5, what="an idle reading")
        assert asked == 0 and gov.rate is None
        assert await gov.wait_turn() == 0.0
    finally:
        sampler.cancel()
