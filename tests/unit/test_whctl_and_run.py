"""Pure decisions of whctl (webhooks_cli) and of the `make run` supervisor (tools/run.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tools import run
from webhooks_cli import devprofile
from webhooks_cli.dlq import Selection, latest_per_task, redrive_task
from webhooks_cli.events import sample_event, topic_for
from webhooks_cli.receiver import verify
from webhooks_cli.settings_doc import all_rows, markdown
from webhooks_common.models import DeadLetter, DeliveryTask
from webhooks_common.secrets import generate_secret
from webhooks_common.topics import Topics
from webhooks_devtools.supervise import Supervised

# --- development profile ----------------------------------------------------------------------------


def test_environment_wins_over_dotenv_which_wins_over_the_profile() -> None:
    profile = {"A": "profile", "B": "profile", "C": "profile"}
    resolved = devprofile.resolve({"A": "env"}, {"A": "dotenv", "B": "dotenv"}, profile)
    assert [(s.name, s.value, s.origin) for s in resolved] == [
        ("A", "env", devprofile.ENVIRONMENT),
        ("B", "dotenv", devprofile.DOTENV),
        ("C", "profile", devprofile.PROFILE),
    ]
    # Only the profile's own values are added; .env is left for the services to read themselves.
    assert devprofile.child_env({"A": "env", "X": "1"}, resolved) == {"A": "env", "X": "1", "C": "profile"}


def test_dev_keys_are_generated_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / ".infra" / "dev.env"
    first = devprofile.load_or_create_dev_keys(path)
    assert set(first) == set(devprofile.GENERATED)
    assert devprofile.load_or_create_dev_keys(path) == first
    assert path.stat().st_mode & 0o777 == 0o600


def test_profile_does_not_create_the_key_file_when_both_keys_are_set(tmp_path: Path) -> None:
    values = devprofile.profile(tmp_path, {"AUTH_JWT_SECRET": "x", "WEBHOOK_SECRETS_KEY": "y"}, {})
    assert not (tmp_path / devprofile.DEV_ENV).exists()
    assert values["REGISTRY_ALLOW_HTTP"] == "true"
    assert values["DELIVERY_ALLOW_PRIVATE_TARGETS"] == "true"


# --- sample events ----------------------------------------------------------------------------------


def test_events_go_to_their_products_topic_by_the_catalogue() -> None:
    t = Topics("p.")
    assert topic_for(t, "booking.create") == "p.wink.events"
    assert topic_for(t, "booking.created") == "p.wink.events"  # the alias
    assert topic_for(t, "internal.payment.succeeded") == "p.trippay.events"
    with pytest.raises(ValueError, match="not an event type"):
        topic_for(t, "no.such.type")


def test_sample_event_keeps_given_data_and_type() -> None:
    ev = sample_event("booking.created", "ent-1", data={"x": 1}, event_id="e1")
    assert (ev.id, ev.type, ev.entity_id, ev.data) == ("e1", "booking.created", "ent-1", {"x": 1})
    assert sample_event("internal.payment.succeeded", "ent-1").data["currency"] == "USD"


# --- dead letters -----------------------------------------------------------------------------------


def _dead(task_id: str, webhook: str = "w1", dead_at: int = 1000, attempt: int = 8) -> DeadLetter:
    task = DeliveryTask(
        task_id=task_id,
        event_id=task_id.split(":")[0],
        event_type="booking.create",
        entity_id="ent-1",
        webhook_id=webhook,
        webhook_version=3,
        url="https://example.com/h",
        body="{}",
        attempt=attempt,
        entered_at_ms=1,
        due_at_ms=999,
    )
    return DeadLetter(task=task, reason="exhausted", dead_at_ms=dead_at)


def test_redrive_resets_the_attempt_and_keeps_the_identity() -> None:
    task = redrive_task(_dead("e1:w1"), now_ms=5000)
    assert (task.attempt, task.due_at_ms, task.entered_at_ms) == (1, 0, 5000)
    assert (task.task_id, task.url, task.body, task.webhook_version) == (
        "e1:w1",
        "https://example.com/h",
        "{}",
        3,
    )


def test_selection_needs_a_criterion_and_all_must_hold() -> None:
    assert Selection().empty
    assert Selection(everything=True).matches(_dead("e1:w1"))
    sel = Selection(webhook_id="w1", since_ms=2000)
    assert not sel.matches(_dead("e1:w1", dead_at=1000))
    assert sel.matches(_dead("e1:w1", dead_at=3000))
    assert not sel.matches(_dead("e1:w2", webhook="w2", dead_at=3000))


def test_a_task_dead_twice_is_listed_once() -> None:
    letters = [_dead("e1:w1", dead_at=1), _dead("e2:w1"), _dead("e1:w1", dead_at=9)]
    assert [(d.task.task_id, d.dead_at_ms) for d in latest_per_task(letters)] == [
        ("e1:w1", 9),
        ("e2:w1", 1000),
    ]


# --- sample receiver --------------------------------------------------------------------------------


def _signed(secret: str, body: bytes) -> dict[str, str]:
    from datetime import UTC, datetime

    ts = datetime.now(UTC)
    sig = Webhook(secret).sign("msg_1", ts, body.decode())
    return {"webhook-id": "msg_1", "webhook-timestamp": str(int(ts.timestamp())), "webhook-signature": sig}


def test_receiver_verifies_with_any_of_its_secrets() -> None:
    old, new, body = generate_secret(), generate_secret(), b'{"id":"e1"}'
    headers = _signed(new, body)
    assert verify([old, new], body, headers) == (True, None)
    ok, why = verify([old], body, headers)
    assert ok is False and why
    assert verify([new], body + b" ", headers)[0] is False
    assert verify([], body, headers) == (None, None)
    assert verify([new], body, {"webhook-id": "x"}) == (
        False,
        "missing headers: webhook-timestamp, webhook-signature",
    )


# --- configuration table ----------------------------------------------------------------------------


def test_settings_table_lists_every_service_once_per_variable() -> None:
    rows = all_rows()
    names = [r.variable for r in rows]
    assert len(names) == len(set(names))
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "AUTH_JWT_SECRET", "ROUTER_WEB_PORT", "DELIVERER_METRICS_PORT"):
        assert var in names
    assert all(r.description for r in rows), [r.variable for r in rows if not r.description]
    assert markdown(rows).splitlines()[0] == "| Variable | Default | Read by | Description |"


def test_readme_configuration_table_is_the_generated_one() -> None:
    """README's Configuration section says it is `whctl settings --markdown`: a setting added or changed
    without regenerating it fails here (the history writer's settings were once missing from it)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = markdown(all_rows()).strip("\n")
    assert table in readme, "README.md's settings table is stale: paste `.venv/bin/whctl settings --markdown`"


# --- supervisor -------------------------------------------------------------------------------------


def test_restart_backoff_doubles_to_a_ceiling_and_starts_over_after_a_stable_run() -> None:
    assert [run.BACKOFF.delay(n) for n in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    assert run.BACKOFF.crashes_after_exit(3, uptime_s=5) == 4
    assert run.BACKOFF.crashes_after_exit(3, uptime_s=120) == 1


def test_ports_keep_the_setting_else_the_default_else_auto() -> None:
    assert run.port_choice("7000", 6066, False, "0") == ("7000", "set")
    assert run.port_choice(None, 6066, True, "0") == ("6066", "default")
    assert run.port_choice(None, 9100, False, "0") == ("0", "9100 is busy")


def test_derived_settings_follow_topics_unless_set() -> None:
    assert run.derived_env({"TOPICS_INPUT_PARTITIONS": "3"}) == {"ROUTER_INPUT_PARTITIONS": "3"}
    assert run.derived_env({"ROUTER_INPUT_PARTITIONS": "6", "KAFKA_TOPIC_PREFIX": "dev."}) == {}


def test_banner_tells_another_terminal_the_settings_it_needs() -> None:
    text = run.banner({"REGISTRY_PORT": "18080", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092"}, 1.0)
    assert "http://127.0.0.1:18080" in text
    assert "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 REGISTRY_PORT=18080" in text
    assert "make receiver" in text and "whctl token" in text and "whctl send" in text


def test_the_echo_of_one_ctrl_c_is_not_a_second_one() -> None:
    # Under `make run` the terminal's SIGINT arrives directly and once more forwarded by `uv run`.
    assert not run.is_repeated_signal(100.0, 100.05)
    assert run.is_repeated_signal(100.0, 102.0)


# --- the runner's output and stop (defects: a long log line, WEBHOOKS_DEV_ENV outside the repository) ---

# Prints a 200 KiB line, then keeps printing (more than a pipe holds) and ignores SIGTERM.
NOISY_CHILD = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.stdout.write("x" * 200_000 + "\\n")
for i in range(300):
    print(f"after {i} " + "y" * 1000, flush=True)
print("done", flush=True)
time.sleep(600)
"""


class Lines:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def line(self, name: str, text: str) -> None:
        self.seen.append((name, text))


async def test_a_long_output_line_is_cut_and_the_runner_keeps_reading_and_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = Lines()
    monkeypatch.setattr(run, "OUT", out)
    monkeypatch.setattr(run, "STOP_GRACE_S", 1.0)
    noisy = run.child("registry", [sys.executable, "-c", NOISY_CHILD], {}, ready=False)
    sup = run.Supervisor()
    running = asyncio.create_task(sup.run([Supervised(noisy, run.BACKOFF, run.say)]))
    deadline = time.monotonic() + 30
    while ("registry", "done") not in out.seen:
        assert time.monotonic() < deadline, f"the reader stopped: last lines {out.seen[-3:]}"
        await asyncio.sleep(0.05)
    long = [t for n, t in out.seen if n == "registry" and t.startswith("xxx")]
    assert len(long) == 1 and "line cut at" in long[0] and len(long[0]) < 20_000
    sup.stopping.set()  # what SIGINT/SIGTERM do; the child ignores SIGTERM: SIGKILL after the grace
    await asyncio.wait_for(running, 15)
    assert not noisy.alive()
    assert ("run", "all stopped") in out.seen


def test_the_profile_may_keep_its_keys_outside_the_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "elsewhere" / "dev.env"
    monkeypatch.setenv("WEBHOOKS_DEV_ENV", str(outside))
    caller = {k: v for k, v in run.CALLER_ENV.items() if k not in devprofile.GENERATED}
    monkeypatch.setattr(run, "CALLER_ENV", caller)
    env = run.build_env(describe=True)
    assert set(devprofile.GENERATED) <= set(env)
    assert outside.exists()
    assert f"kept in {outside}" in capsys.readouterr().out
    assert run.shown_path(run.ROOT / ".infra" / "dev.env", run.ROOT) == ".infra/dev.env"


async def test_a_signal_while_the_runner_is_still_starting_stops_that_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = Lines()
    monkeypatch.setattr(run, "OUT", out)
    slow = run.child("infra", [sys.executable, "-c", "import time; time.sleep(60)"], {}, ready=False)
    sup = run.Supervisor()
    with sup.signals():
        step = asyncio.create_task(sup.unless_stopped(slow.start().wait()))
        os.kill(os.getpid(), signal.SIGTERM)  # handled by the runner while `with sup.signals()` holds
        assert await asyncio.wait_for(step, 5) is None
    assert (
        sup.stopping.is_set()
        and ("run", "SIGTERM: stopping everything (Ctrl-C again to kill at once)") in out.seen
    )
    await slow.stop(5)
