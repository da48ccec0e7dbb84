"""Bad input never stops routing (reduced `make soak`): 5,000 malformed records of every kind among 500
valid events on the input topics. Every valid event is delivered, every malformed record lands on
`webhooks.invalid` with a reason, no service restarts, and memory stays flat."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import Servers
from tools.chaos.report import soak_verdict
from tools.chaos.soak import BAD_KINDS, SoakConfig, run_soak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def test_malformed_records_go_to_invalid_and_valid_ones_are_delivered(
    servers: Servers, tmp_path: Path
) -> None:
    cfg = SoakConfig(
        bad=5_000,
        valid=500,
        rate=1_000.0,
        webhooks=10,
        input_partitions=3,
        rss_growth_limit_mb=40.0,
        drain_within_s=120.0,
        kafka=servers.kafka,
        mongo_url=servers.mongo_url,
        workdir=tmp_path,
    )
    r = await run_soak(cfg)

    assert r["valid_sent"] == 500 and r["valid_delivered"] == 500
    assert r["bad_sent"] == 5_000
    assert r["bad_seen"] == 5_000 and r["bad_missing"] == 0
    assert r["unexpected_invalid"] == 0  # no valid event was called invalid
    # the generator really sent every kind, and the router named every reason it knows
    assert set(r["bad_by_kind"]) == set(BAD_KINDS)
    assert set(r["invalid_by_reason"]) == {
        "not_json",
        "bad_shape",
        "unknown_type",
        "key_mismatch",
        "too_large",
    }
    assert r["restarts"] == {}
    assert set(r["rss"]) == {"registry", "router0", "router1", "deliverer0", "deliverer1"}
    assert soak_verdict(r) == []
