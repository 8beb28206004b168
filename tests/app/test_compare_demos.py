"""The Compare page in the demo folder: with nothing chosen it opens on the two moons seeds
(the moons demo and its second seed) and compares them, instead of asking for two runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from apptest_support import assert_healthy, new_app, shown_charts, texts

from nn_tracing.demos import make_demo


def test_compare_opens_on_the_two_moons_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "runs"
    for key in ("digits", "moons-seed1", "moons"):
        make_demo(key, folder)
    newest = (folder / "demo-moons.nntrace").stat().st_mtime
    for older, name in enumerate(("demo-digits", "demo-moons-seed1"), start=1):
        os.utime(folder / f"{name}.nntrace", (newest - 2 * older, newest - 2 * older))
    monkeypatch.setenv("NN_TRACING_RUNS_DIR", str(folder))
    monkeypatch.setenv("NN_TRACING_UPLOAD_DIR", str(tmp_path / "uploads"))
    at = new_app().run()
    at.switch_page("pages/compare.py").run()
    assert_healthy(at)
    assert "needs two runs" not in texts(at.main.info)
    picker = next(m for m in at.multiselect if m.label.startswith("Compare demo-moons"))
    assert picker.value == ["run:demo-moons-seed1"]
    assert "Runs side by side" in [h.value for h in at.header]
    assert shown_charts(at)  # the runs' curves, drawn
