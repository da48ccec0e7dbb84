"""Bad input never stops anything (reduced `make soak`): 4,000 malformed records of every kind on the input
topics and 2,000 on the internal ones (deliveries, every retry tier, config, commands, attempts) among 400
valid events. Every valid event is delivered; every malformed record is set aside by its consumer (on
`webhooks.invalid` with a reason, or in the config views' skip metric) and the consumer goes on; no
service restarts or exits, and memory stays flat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import Servers
from tools.chaos.bad_records import INPUT_KINDS, INTERNAL_WEIGHTS, internal_kinds
from tools.chaos.report import soak_verdict
from tools.chaos.soak import SoakConfig, run_soak
from webhooks_common.topics import RETRY_TIERS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def test_malformed_records_are_set_aside_and_valid_ones_are_delivered(
    servers: Servers, tmp_path: Path
) -> None:
    cfg = SoakConfig(
        bad=4_000,
        internal=2_000,
        valid=400,
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
    print(json.dumps({k: v for k, v in r.items() if k != "config"}, indent=1))  # shown on failure

    assert r["valid_sent"] == 400 and r["valid_delivered"] == 400
    assert r["bad_sent"] == 4_000 and r["internal_sent"] == 2_000
    assert r["bad_seen"] == 4_000 and r["bad_missing"] == 0
    assert r["unexpected_invalid"] == 0  # no valid event or task was called invalid
    # the generator really sent every kind, and the router named every reason it knows
    assert set(r["bad_by_kind"]) == set(INPUT_KINDS)
    assert set(r["invalid_by_reason"]) == {
        "not_json",
        "bad_shape",
        "unknown_type",
        "key_mismatch",
        "too_large",
        "undecodable",  # the shared consumer runtime: the deliverer and the registry's commands consumer
    }
    # every internal topic got malformed records, and each consumer set all of its own aside
    topics = r["by_topic"]
    internal = {"webhooks.deliveries", "webhooks.config", "webhooks.commands", "webhooks.attempts"}
    assert internal | {f"webhooks.retry.{tier}" for tier, _ in RETRY_TIERS} <= set(topics)
    for topic, row in topics.items():
        assert row["sent"] > 0
        if row["set_aside_by"] == "invalid":
            assert row["on_invalid"] == row["sent"], topic
    assert topics["webhooks.attempts"]["on_invalid"] == 0  # nobody consumes it (yet)
    assert r["valid_command_applied"] is True  # the registry's commands consumer went on after them all
    for family in INTERNAL_WEIGHTS:
        heavy = {k for k, (w, _) in internal_kinds(family).items() if w >= 5}  # the rare huge one may miss
        assert heavy <= set(r["internal_by_kind"][family]), family
    # every config view (2 routers, 2 deliverers) skipped every malformed config record, for its reason
    assert set(r["config_skipped"]) == {"router0", "router1", "deliverer0", "deliverer1"}
    assert set(r["config_bad_expected"]) == {"undecodable", "bad_key", "key_mismatch"}
    assert all(got == r["config_bad_expected"] for got in r["config_skipped"].values())
    assert r["restarts"] == {} and r["unplanned_exits"] == {}
    assert set(r["rss"]) == {"registry0", "router0", "router1", "deliverer0", "deliverer1"}
    assert soak_verdict(r) == []
