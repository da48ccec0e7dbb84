"""Kill anything, lose nothing (reduced `make chaos`): the real stack on a private Kafka + FerretDB pair,
2,400 events at a steady 16/s (the load outlasts the ~110 s of faults) while a deliverer and a router are
SIGKILLed, the broker is SIGKILLed and restarted, FerretDB is stopped, the registry that publishes (of
two) is SIGKILLed and 10% of the receivers answer 500 for a while. Every fault once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.chaos.report import PROBLEM_JSON, chaos_verdict
from tools.chaos.scenario import REDUCED_PLAN, ChaosConfig, run_chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


async def test_every_fault_once_loses_nothing_and_recovers_by_itself(tmp_path: Path) -> None:
    cfg = ChaosConfig(
        events=2_400,
        rate=16.0,
        webhooks=20,
        plan=REDUCED_PLAN,
        input_partitions=3,
        delivery_partitions=4,
        ferretdb_down_s=10.0,
        receivers_fail_s=10.0,
        baseline_s=4.0,
        gap_s=2.0,
        session_timeout_s=6.0,
        lease_s=5.0,
        recover_within_s=90.0,
        drain_within_s=120.0,
        workdir=tmp_path,
    )
    r = await run_chaos(cfg)

    # 2,400 events, plus one to each webhook created mid-run: while the broker was down (the outbox
    # published it once Kafka was back), right after the database came back, and through the registry that
    # did not publish right after the one that did was killed.
    assert r["webhooks_created_mid_run"] == 3
    assert r["faults"][2]["detail"]["create_during_broker_outage"] == 201
    assert r["events_expected"] == 2_403, r["producer_errors"]
    assert r["lost"] == 0, r["lost_sample"]
    assert r["delivered_at_least_once"] == 2_403
    assert r["dead_letters"] == 0 and r["invalid"] == 0
    names = [f["name"].split()[0] for f in r["faults"]]
    assert names == ["SIGKILL", "SIGKILL", "Kafka", "FerretDB", "SIGKILL", "10%"]
    for f in r["faults"]:
        assert f["recovered_at"] is not None, f  # back to normal without anyone's help
        assert f["unplanned_exits"] == [], f  # nothing but what we killed had to be restarted
        assert f["under_load"], f
    killed = r["faults"][4]["detail"]["killed"]
    assert r["restarts"]["deliverer0"] == 1 and r["restarts"]["router0"] == 1 and r["restarts"][killed] == 1
    assert sum(r["restarts"].values()) == 3

    ferret = r["faults"][3]["detail"]
    # While the database is down the API answers 503 problem+json, and delivery goes on from Kafka.
    assert ferret["list_during_outage"] == {"status": 503, "content_type": PROBLEM_JSON}
    assert ferret["create_during_outage"] == {"status": 503, "content_type": PROBLEM_JSON}
    assert ferret["readyz_during_outage"] == 503
    assert ferret["delivered_during_outage"] > 0
    assert ferret["create_after_outage"] == 201

    # The publisher killed: the other registry accepted a change and published it once the lease had ended
    # (its event is among those delivered above); the restarted one does not publish beside it.
    holder = r["faults"][4]["detail"]
    assert holder["create_via"] != killed and holder["create_status"] == 201
    assert holder["published_after_s"] < 5.0 + 10.0
    assert holder["restarted_ready"] and len(holder["lease_holders_after"]) == 1
    assert r["answered_500"] > 0  # the integrator outage really refused deliveries (then they were retried)
    assert chaos_verdict(r) == []
