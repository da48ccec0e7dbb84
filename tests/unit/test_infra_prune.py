"""`tools/infra.py prune` picks only test and benchmark topics that nobody wrote to for a while."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def infra(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "tools"))  # infra.py runs as a script beside localpg.py
    return importlib.import_module("infra")


def _partition(data: Path, name: str, written_at: float) -> None:
    part = data / name
    part.mkdir()
    seg = part / "00000000000000000000.log"
    seg.write_bytes(b"")
    os.utime(seg, (written_at, written_at))
    (part / "leader-epoch-checkpoint").write_text("0")  # rewritten at every broker start: must not count


def test_prune_picks_idle_prefixed_topics_only(infra: ModuleType, tmp_path: Path) -> None:
    now = 1_000_000.0
    old, fresh = now - 7200, now - 60
    for name, at in {
        "tab12.webhooks.deliveries-0": old,
        "tab12.webhooks.deliveries-1": fresh,  # one partition written recently keeps the whole topic
        "tcd34.wink.events-0": old,
        "tef56.webhooks.config-0": fresh,
        "webhooks.deliveries-0": old,  # what `make run` uses: never
        "__consumer_offsets-0": old,
        "someone.elses.topic-0": old,  # not one of ours
    }.items():
        _partition(tmp_path, name, at)
    (tmp_path / "cleaner-offset-checkpoint").write_text("")
    names = {p.name.rpartition("-")[0] for p in tmp_path.iterdir() if p.is_dir()}

    assert infra.stale_prefixed_topics(names, tmp_path, 3600, now) == ["tcd34.wink.events"]
