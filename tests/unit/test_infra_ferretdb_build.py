"""The FerretDB build's source rewrites (`tools/infra.py`): applied to the module copy's sources, never to its
tests, and a rule that matches nothing stops the build instead of building the stock code unnoticed. Also the
Go runtime settings FerretDB is started with."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
STOCK = 'import (\n\t"bytes"\n\t"encoding/json"\n)\n'


@pytest.fixture
def infra(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "tools"))  # infra.py runs as a script beside localpg.py
    return importlib.import_module("infra")


def _module(tmp_path: Path, folder: str, files: dict[str, str]) -> Path:
    (tmp_path / folder).mkdir(parents=True, exist_ok=True)  # internal/handler holds internal/handler/sjson
    for name, text in files.items():
        (tmp_path / folder / name).write_text(text)
    return tmp_path


def _stock(infra: ModuleType, tmp_path: Path) -> Path:
    """A module whose every rewritten folder holds a source file and a test file with the rule's old text."""
    for folder, old, _ in infra.FERRET_REWRITES:
        files = {
            "stock.go": f"package x\n{old}",
            "stock_test.go": f"package x\n{old}",
            "other.go": "package x\n",
        }
        _module(tmp_path, folder, files)
    return tmp_path


def test_sjson_sources_import_the_patched_codec_and_its_tests_stay_as_they_are(
    infra: ModuleType, tmp_path: Path
) -> None:
    module = _stock(infra, tmp_path)
    (folder, _, _) = infra.FERRET_REWRITES[0]
    (module / folder / "sjson.go").write_text(STOCK)
    (module / folder / "sjson_test.go").write_text(STOCK)
    infra.rewrite_sources(module)
    codec = "github.com/FerretDB/FerretDB/internal/handler/sjson/json"
    assert (module / folder / "sjson.go").read_text() == f'import (\n\t"bytes"\n\tjson "{codec}"\n)\n'
    assert (module / folder / "sjson_test.go").read_text() == STOCK
    assert (module / folder / "other.go").read_text() == "package x\n"


def test_the_query_builder_sends_in_to_the_patch_before_its_other_operators(
    infra: ModuleType, tmp_path: Path
) -> None:
    module = _stock(infra, tmp_path)
    (folder, old, _) = infra.FERRET_REWRITES[1]
    infra.rewrite_sources(module)
    text = (module / folder / "stock.go").read_text()
    assert text.index('case "$in":') < text.index(old) and "filterIn(p, key, v, keyOperator)" in text
    assert (module / folder / "stock_test.go").read_text() == f"package x\n{old}"
    assert infra.FERRET_PATCHES["query_in.go"].startswith(folder + "/")  # filterIn lives in that package


def test_upstream_deletes_become_the_scan_behind_the_patch_and_the_patch_keeps_its_name(
    infra: ModuleType, tmp_path: Path
) -> None:
    """The rewrite renames msg_delete.go's execDelete, which the patch's execDelete then calls; the patch's
    own signature is written so that the same rule leaves it be (two of one name would not build)."""
    module = _stock(infra, tmp_path)
    target = infra.FERRET_PATCHES["delete_equal_handler.go"]
    (folder, old, _) = infra.FERRET_REWRITES[2]
    assert target.startswith(folder + "/")
    upstream = f"package handler\n\n{old} c backends.Collection, p *common.Delete) (int32, error) {{\n}}\n"
    (module / folder / "msg_delete.go").write_text(upstream)
    patch = (infra.FERRET_SRC / "patches" / "delete_equal_handler.go").read_text()
    (module / target).write_text(patch)
    infra.rewrite_sources(module)
    assert "func (h *Handler) execDeleteScan(ctx" in (module / folder / "msg_delete.go").read_text()
    assert (module / target).read_text() == patch
    assert "func (h *Handler) execDelete(\n" in patch and "h.execDeleteScan(ctx, c, p)" in patch


def test_a_rewrite_that_matches_nothing_stops_the_build(infra: ModuleType, tmp_path: Path) -> None:
    module = _stock(infra, tmp_path)
    (folder, _, _) = infra.FERRET_REWRITES[0]
    (module / folder / "stock.go").write_text('import "fmt"\n')
    with pytest.raises(SystemExit, match="fix the rewrites"):
        infra.rewrite_sources(module)


def test_every_patch_exists_and_the_codec_is_a_package_of_its_own(infra: ModuleType) -> None:
    for name in infra.FERRET_PATCHES:
        assert (infra.FERRET_SRC / "patches" / name).is_file(), name
    codec = infra.FERRET_PATCHES["sjson_json.go"]
    (_, _, new) = infra.FERRET_REWRITES[0]
    assert f'"{infra.FERRET_MODULE}/{Path(codec).parent}"' in new  # what sjson imports is what the patch adds
    assert (infra.FERRET_SRC / "patches" / "sjson_json.go").read_text().count("\npackage json\n") == 1


def test_the_rewrites_are_part_of_the_build_stamp(infra: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    before = infra.ferretdb_source_stamp()
    monkeypatch.setattr(infra, "FERRET_REWRITES", ())
    assert infra.ferretdb_source_stamp() != before  # a changed rule rebuilds FerretDB on the next infra-up


def test_ferretdb_starts_with_a_lazier_collector_unless_the_operator_says_otherwise(
    infra: ModuleType,
) -> None:
    env = infra.ferretdb_env({"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "GOGC": "400", "GOMEMLIMIT": "512MiB"}
    assert infra.ferretdb_env({"GOGC": "100", "GOMEMLIMIT": "2GiB"})["GOGC"] == "100"
    assert infra.ferretdb_env({"GOGC": "100", "GOMEMLIMIT": "2GiB"})["GOMEMLIMIT"] == "2GiB"
