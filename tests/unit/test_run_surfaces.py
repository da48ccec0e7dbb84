"""What a newcomer sees from `make run`: the receiver port they chose, progress during long first steps,
no ERROR for a fresh Kafka's coordinator election, no terminal debris, and a profile on loopback."""

from __future__ import annotations

import asyncio

import pytest

from tools import run
from webhooks_cli import devprofile


def test_the_ready_banner_uses_the_receiver_port_that_is_set() -> None:
    text = run.banner({"REGISTRY_PORT": "18080", "RECEIVER_PORT": "9555"}, 1.0)
    assert "sample receiver on http://127.0.0.1:9555" in text
    assert '"eventUrl":"http://127.0.0.1:9555/hooks"' in text
    assert "RECEIVER_PORT=9555" in text  # the export line for the other terminals
    assert ":9000" not in text
    assert "http://127.0.0.1:18080/ " in text  # where the Webhooks page is
    assert "127.0.0.1:9000/hooks" in run.banner({}, 1.0)


def test_a_fresh_kafkas_coordinator_election_is_not_an_error() -> None:
    line = (
        "2026-11-30 19:57:52,830 deliverer ERROR aiokafka.consumer.group_coordinator: "
        "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"
    )
    shown = run.relevel(line)
    assert " ERROR " not in shown and " INFO " in shown and "harmless" in shown
    as_json = '{"time": "t", "level": "ERROR", "message": "[Error 15] GroupCoordinatorNotAvailableError"}'
    assert '"level": "INFO"' in run.relevel(as_json)
    other = "2026 registry ERROR registry.app: unhandled error"
    assert run.relevel(other) == other


def test_child_lines_carry_no_terminal_debris() -> None:
    assert run.clean_line("\x1b[32mready\x1b[0m on \x1b[1m:8080\x1b[22m") == "ready on :8080"
    assert run.clean_line("progress\r\x1b[2K") == "progress"
    assert run.clean_line("-INT- -INT- -INT-") is None
    assert run.clean_line("   ") is None


async def test_a_long_silent_step_prints_progress(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "PROGRESS_EVERY_S", 0.5)
    sup = run.Supervisor()
    assert await sup.unless_stopped(asyncio.sleep(2.2, result=7), "building things") == 7
    out = capsys.readouterr().out
    assert "still building things" in out
    await sup.unless_stopped(asyncio.sleep(0.3), "quick")
    assert "quick" not in capsys.readouterr().out


def test_the_development_profile_listens_on_loopback_and_mints_page_tokens() -> None:
    fixed = devprofile.FIXED
    hosts = {fixed[n] for n in ("REGISTRY_HOST", "ROUTER_WEB_BIND", "DELIVERER_METRICS_HOST")}
    assert hosts == {"127.0.0.1"}
    assert fixed["REGISTRY_DEV_TOKENS"] == "true"
    resolved = devprofile.resolve({"REGISTRY_HOST": "0.0.0.0"}, {}, fixed)
    assert {s.name: s.value for s in resolved}["REGISTRY_HOST"] == "0.0.0.0"  # the environment still wins
