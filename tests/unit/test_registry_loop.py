"""The HTTP API's event loop is chosen by REGISTRY_EVENT_LOOP, and a wrong name stops the start-up."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from cryptography.fernet import Fernet

from registry.loop import new_event_loop
from registry.settings import RegistrySettings
from webhooks_common.settings import load_settings


async def _sum_after_sleep() -> int:
    await asyncio.sleep(0.001)
    return 42


@pytest.mark.parametrize(("kind", "is_uvloop"), [("uvloop", True), ("asyncio", False)])
def test_the_chosen_loop_runs_the_api(kind: str, is_uvloop: bool) -> None:
    loop = new_event_loop(kind)  # type: ignore[arg-type]
    try:
        assert isinstance(loop, uvloop.Loop) is is_uvloop
        assert loop.run_until_complete(_sum_after_sleep()) == 42
    finally:
        loop.close()


def test_uvloop_is_the_default_and_a_wrong_name_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRETS_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("AUTH_JWT_SECRET", "a-test-secret-of-thirty-two-bytes-or-more")
    monkeypatch.delenv("REGISTRY_EVENT_LOOP", raising=False)
    assert load_settings(RegistrySettings).event_loop == "uvloop"
    monkeypatch.setenv("REGISTRY_EVENT_LOOP", "tokio")
    with pytest.raises(SystemExit):
        load_settings(RegistrySettings)
    err = capsys.readouterr().err
    assert "event_loop" in err and "'uvloop' or 'asyncio'" in err
