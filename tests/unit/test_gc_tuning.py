"""PYTHON_GC_THRESHOLD: the services' cyclic collector runs less often and skips what start-up allocated;
0 leaves Python's own settings. Run in a child interpreter: the collector's settings are process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from webhooks_common.settings import CommonSettings, load_settings

CHILD = """
import gc, json, sys
from webhooks_common.gc_tuning import tune_gc
keep = [{"i": i} for i in range(1000)]  # what a service holds after start-up
python_default = gc.get_threshold()
tune_gc(int(sys.argv[1]))
tuned = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
print(json.dumps({"default": python_default, **tuned}))
"""


def _tuned(threshold: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(threshold)], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_the_collector_runs_less_often_and_skips_start_up_objects() -> None:
    tuned = _tuned(10_000)
    assert tuned["threshold"] == [10_000, 20, 20]
    assert isinstance(tuned["frozen"], int) and tuned["frozen"] >= 1000


def test_zero_leaves_pythons_own_settings() -> None:
    untouched = _tuned(0)
    assert untouched["threshold"] == untouched["default"] and untouched["frozen"] == 0


def test_the_setting_is_read_from_python_gc_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHON_GC_THRESHOLD", raising=False)
    assert load_settings(CommonSettings).gc_threshold == 10_000
    monkeypatch.setenv("PYTHON_GC_THRESHOLD", "0")
    assert load_settings(CommonSettings).gc_threshold == 0
