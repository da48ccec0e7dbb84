"""The judge of the chaos and soak runs (pure): a run that lost, stalled or misanswered must be failed."""

from __future__ import annotations

import copy
from typing import Any

from tools.chaos.report import PROBLEM_JSON, chaos_verdict, render, soak_verdict

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
