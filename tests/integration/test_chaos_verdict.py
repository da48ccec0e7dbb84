"""The judge of the chaos and soak runs (pure): a run that lost, stalled or misanswered must be failed."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pytest

from tools.chaos.bad_records import (
    CONFIG_REASON,
    WRONG,
    attempt_record,
    delivery_task,
    internal_kinds,
    webhook_command,
    webhook_config,
)
from tools.chaos.report import PROBLEM_JSON, chaos_verdict, render, soak_verdict
from webhooks_common.config_view import Skip
from webhooks_common.config_view import decode as config_decode
from webhooks_common.decoders import decode_attempt, decode_command, decode_task
from webhooks_common.wire import DeliveryTask, WebhookCommand

FERRET = {
    "list_during_outage": {"status": 503, "content_type": PROBLEM_JSON},
    "create_during_outage": {"status": 503, "content_type": PROBLEM_JSON},
    "readyz_during_outage": 503,
    "delivered_during_outage": 120,
    "registry_ready_after_s": 0.4,
    "create_after_outage": 201,
}


def fault(name: str, **over: Any) -> dict[str, Any]:
    f: dict[str, Any] = {
        "name": name,
        "started_at": 1.0,
        "healed_at": 2.0,
        "recovered_at": 3.0,
        "recovery_s": 2.0,
        "after_heal_s": 1.0,
        "outage_s": 1.0,
        "max_lag_s": 1.5,
        "delivered_during": 50,
        "unplanned_exits": [],
        "detail": copy.deepcopy(FERRET) if name.startswith("FerretDB") else {"process": "deliverer0"},
        "under_load": True,
        "needed_a_hand": False,
    }
    f.update(over)
    return f


def chaos_result(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "started_at": "2026-11-28T00:00:00Z",
        "duration_s": 100.0,
        "config": {
            "rate": 60.0,
            "routers": 2,
            "deliverers": 2,
            "retry_schedule": "0,2",
            "session_timeout_s": 10.0,
            "lag_ok_s": 3.0,
        },
        "webhooks": 200,
        "events_scheduled": 100,
        "events_expected": 100,
        "delivered_at_least_once": 100,
        "lost": 0,
        "duplicates": 3,
        "answered_500": 10,
        "dead_letters": 0,
        "producer_resends": 0,
        "latency_s": {"p50": 0.02},
        "restarts": {"deliverer0": 1},
        "unplanned_exits": {},
        "faults": [fault("SIGKILL deliverer0 (#1)"), fault("FerretDB stopped 30s")],
    }
    r.update(over)
    return r


def test_a_clean_run_passes_and_renders() -> None:
    r = chaos_result()
    assert chaos_verdict(r) == []
    text = render(r, None)
    assert "| **lost** | **0** |" in text and "SIGKILL deliverer0" in text


def test_a_lost_event_a_dead_letter_or_a_stalled_fault_fails_the_run() -> None:
    assert any("1 events lost" in p for p in chaos_verdict(chaos_result(lost=1)))
    assert any("dead-lettered" in p for p in chaos_verdict(chaos_result(dead_letters=2)))
    stalled = chaos_result(faults=[fault("SIGKILL router0 (#1)", recovered_at=None, detail={})])
    assert any("no recovery" in p for p in chaos_verdict(stalled))
    crashed = chaos_result(faults=[fault("Kafka broker", unplanned_exits=["deliverer1 exited by itself"])])
    assert any("deliverer1 exited by itself" in p for p in chaos_verdict(crashed))


def test_the_registry_must_answer_503_problem_json_while_the_database_is_down() -> None:
    r = chaos_result()
    r["faults"][1]["detail"]["list_during_outage"] = {"status": 500, "content_type": "text/plain"}
    r["faults"][1]["detail"]["delivered_during_outage"] = 0
    problems = chaos_verdict(r)
    assert any("list during outage" in p for p in problems)
    assert any("no delivery while the database was down" in p for p in problems)


def test_a_change_refused_after_the_publishing_registry_was_killed_fails_the_run() -> None:
    name = "SIGKILL the registry that publishes (lease holder)"
    ok = {"killed": "registry0", "create_via": "registry1", "create_status": 201, "published_after_s": 16.2}
    assert chaos_verdict(chaos_result(faults=[fault(name, detail=ok)])) == []
    refused = {**ok, "create_status": 503}
    assert any(
        "another registry answered" in p
        for p in chaos_verdict(chaos_result(faults=[fault(name, detail=refused)]))
    )


def test_a_change_never_published_or_a_lease_nobody_holds_fails_the_run() -> None:
    name = "SIGKILL the registry that publishes (lease holder)"
    created = {"killed": "registry0", "create_via": "registry1", "create_status": 201}
    unpublished = {**created, "not_published": "routers hold [5] webhooks, not 6, after 60.0s"}
    assert any(
        "never reached the routers" in p
        for p in chaos_verdict(chaos_result(faults=[fault(name, detail=unpublished)]))
    )
    nobody: dict[str, Any] = {"lease_holders_before": []}
    problems = chaos_verdict(chaos_result(faults=[fault(name, detail=nobody)]))
    assert any("0 registries held the lease" in p for p in problems)


def soak_result(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "started_at": "2026-11-28T00:00:00Z",
        "duration_s": 60.0,
        "config": {"rate": 1500.0, "rss_every_s": 1.0, "rss_growth_limit_mb": 40.0},
        "valid_sent": 10,
        "valid_delivered": 10,
        "valid_lost": 0,
        "bad_sent": 100,
        "bad_seen": 100,
        "bad_missing": 0,
        "unexpected_invalid": 0,
        "bad_by_kind": {"random_bytes": 100},
        "invalid_by_reason": {"not_json": 100},
        "restarts": {},
        "rss": {"router0": {"q1_mb": 80.0, "peak_mb": 82.0, "end_mb": 81.0, "growth_mb": 1.0}},
    }
    r.update(over)
    return r


def test_soak_fails_on_a_missing_invalid_record_a_restart_or_growing_memory() -> None:
    assert soak_verdict(soak_result()) == []
    assert "| router0 | 80.0 | - | - | 82.0 | 81.0 | 1.0 |" in render(None, soak_result())
    assert soak_verdict(soak_result(bad_missing=1, bad_seen=99))
    assert soak_verdict(soak_result(valid_lost=1))
    assert soak_verdict(soak_result(restarts={"router1": 1}))
    grown = soak_result(
        rss={"router0": {"q1_mb": 80.0, "peak_mb": 200.0, "end_mb": 200.0, "growth_mb": 120.0}}
    )
    assert any("RSS grew" in p for p in soak_verdict(grown))


def test_soak_fails_when_an_internal_topic_or_a_config_view_did_not_set_a_record_aside() -> None:
    rows = {
        "webhooks.deliveries": {
            "family": "deliveries",
            "set_aside_by": "invalid",
            "sent": 5,
            "on_invalid": 5,
        },
        "webhooks.attempts": {"family": "attempts", "set_aside_by": "none", "sent": 4, "on_invalid": 0},
    }
    ok = soak_result(
        by_topic=rows,
        internal_sent=9,
        internal_by_kind={"deliveries": {"empty": 5}, "attempts": {"empty": 4}},
        config_bad_expected={"undecodable": 2},
        config_skipped={"router0": {"undecodable": 2}, "deliverer0": {"undecodable": 2}},
    )
    assert soak_verdict(ok) == []
    assert "| webhooks.deliveries | 5 | on webhooks.invalid | 5 |" in render(None, ok)
    lost = copy.deepcopy(ok)
    lost["by_topic"]["webhooks.deliveries"]["on_invalid"] = 4
    assert any("1 of 5 malformed records not on webhooks.invalid" in p for p in soak_verdict(lost))
    some = copy.deepcopy(ok)
    some["by_topic"]["webhooks.attempts"]["on_invalid"] = 2
    assert any("all or none" in p for p in soak_verdict(some))
    blind = copy.deepcopy(ok)
    blind["config_skipped"]["router0"] = {}
    assert any("router0's config view skipped" in p for p in soak_verdict(blind))
    assert soak_verdict(soak_result(unplanned_exits={"deliverer0": ["exit 1"]}))
    assert any("valid command" in p for p in soak_verdict(soak_result(valid_command_applied=False)))


def test_every_internal_malformed_record_is_refused_by_its_consumers_decoder() -> None:
    """The soak's malformed records are really malformed: none decodes into its topic's message (else a
    "bad" delivery task would be attempted, or a "bad" command applied)."""
    rnd = random.Random(1)
    decoders: dict[str, Callable[[bytes | None, bytes | None], object]] = {
        "deliveries": lambda _k, v: decode_task(v),
        "commands": lambda _k, v: decode_command(v),
        "attempts": lambda _k, v: decode_attempt(v),
    }
    for family in ("deliveries", "commands", "attempts"):
        for _weight, make in internal_kinds(family).values():
            for n in range(len(WRONG[family]) + 3):  # every field of the wrong type, at least
                key, value = make(rnd, n)
                with pytest.raises((ValueError, msgspec.DecodeError, msgspec.ValidationError)):
                    decoders[family](key, value)
    for kind, (_, make) in internal_kinds("config").items():
        for n in range(len(WRONG["config"]) + 3):
            key, value = make(rnd, n)
            assert key is not None and value is not None  # compacted topic: no null key, no tombstone
            got = config_decode(key, value)
            assert isinstance(got, Skip), (kind, n, value[:200])
            assert got.reason == CONFIG_REASON.get(kind, "undecodable"), (kind, got)
    # the templates themselves are valid: each wrong field is what makes a record malformed
    assert decode_task(orjson.dumps(delivery_task())).attempt == 1
    assert decode_command(orjson.dumps(webhook_command())).action == "disable"
    decode_attempt(orjson.dumps(attempt_record()))
    cfg = webhook_config()
    assert not isinstance(config_decode(cfg["id"].encode(), orjson.dumps(cfg)), Skip)
    assert set(WRONG["deliveries"]) == set(DeliveryTask.__struct_fields__)
    assert set(WRONG["commands"]) == set(WebhookCommand.__struct_fields__)
