"""The runs folder (nn_tracing.runs): listing from manifests, names, the demo trace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nn_tracing import load_trace
from nn_tracing.runs import (
    find_run,
    import_trace_file,
    list_runs,
    new_run_path,
    runs_dir,
    safe_stem,
)


def test_runs_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NN_TRACING_RUNS_DIR", str(tmp_path))
    assert runs_dir() == tmp_path
    monkeypatch.delenv("NN_TRACING_RUNS_DIR")
    assert runs_dir() == (Path.cwd() / "runs").resolve()


def test_listing_describes_each_trace_from_its_manifest(runs_dir: Path) -> None:
    (runs_dir / "junk.nntrace").write_bytes(b"junk")
    entries = {e.name: e for e in list_runs(runs_dir)}
    tiny = entries["tiny"]
    assert (tiny.dataset, tiny.architecture, tiny.epochs, tiny.n_recorded, tiny.status) == (
        "moons",
        "MLP 8-8 relu",
        4,
        5,
        "complete",
    )
    assert "moons · MLP 8-8 relu · 4 ep (5 recorded) · complete" in tiny.describe()
    assert not entries["junk"].readable and "zip" in (entries["junk"].error or "")


def test_names_resolve_inside_the_runs_folder_only(runs_dir: Path) -> None:
    assert find_run("tiny", runs_dir) == runs_dir / "tiny.nntrace"
    for name in ("../tiny", "/etc/passwd", "tiny.nntrace", "", "ti ny"):
        assert find_run(name, runs_dir) is None
    assert safe_stem("../../x y.nntrace") == "x-y"


def test_new_names_never_overwrite_and_imports_are_complete(runs_dir: Path) -> None:
    assert new_run_path("tiny", runs_dir).name == "tiny-2.nntrace"
    copied = import_trace_file(runs_dir / "tiny.nntrace", "tiny", runs_dir)
    assert copied.name == "tiny-2.nntrace"
    assert load_trace(copied).digest == load_trace(runs_dir / "tiny.nntrace").digest
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".")]


def test_the_demo_is_made_only_when_the_folder_is_empty(tmp_path: Path) -> None:
    from nn_tracing.runs import DEMO_CONFIG, ensure_demo_trace

    path = ensure_demo_trace(tmp_path)
    assert path == tmp_path / "demo-moons.nntrace"
    trace = load_trace(path)
    assert trace.meta["demo"] is True and trace.meta["config"]["epochs"] == DEMO_CONFIG.epochs
    assert ensure_demo_trace(tmp_path) is None
    shutil.rmtree(tmp_path)
