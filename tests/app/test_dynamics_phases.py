"""The Dynamics page reads the training map's states as grokking's phases (the strip, the
phases' table, each boundary beside its jump) on a real run that memorises modular addition
while held-out accuracy stays at chance, and keeps to one caption on a run that does not."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, shown_charts, texts
from modular_support import modular_config
from streamlit.testing.v1 import AppTest

import nn_tracing as nt

PAGE = "pages/dynamics.py"
MODULUS = 23


@pytest.fixture(scope="module")
def memorising_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """a + b mod 23 on 30 % of the pairs, MLP 64, full-batch AdamW with weight decay: training
    accuracy reaches 1 while validation accuracy stays at 0 (the phases before grokking)."""
    config = modular_config(
        modulus=MODULUS,
        modular_train_fraction=0.3,
        hidden_sizes=(64,),
        epochs=150,
        batch_size=4096,
        lr=3e-3,
        weight_decay=1.0,
        epoch_intervals=5,
        probe_size=64,
    )
    trace = nt.train(config).trace
    history = trace.history
    assert history["train_acc"].iloc[-1] == 1.0 and history["val_acc"].max() < 0.1
    return nt.save_trace(trace, tmp_path_factory.mktemp("t") / "memorising.nntrace")


def _open(app: Callable[[], AppTest], name: str) -> AppTest:
    at = app()
    at.query_params["trace"] = name
    at.run()
    at.switch_page(PAGE).run()
    return at


def test_the_page_shows_the_phases_of_a_memorising_run(
    app: Callable[[], AppTest], runs_dir: Path, memorising_file: Path
) -> None:
    shutil.copy(memorising_file, runs_dir / "memorising.nntrace")
    at = _open(app, "memorising")
    assert_healthy(at)
    tab = at.tabs[0]
    words = texts(tab.markdown)
    assert "**Phases.** Grokking's phases in the training map: memorisation from E_0, plateau " in (
        words
    )
    strips = [
        json.loads(c.proto.spec) for c in shown_charts(at) if "Phases of training" in c.proto.spec
    ]
    assert len(strips) == 1
    phases = at.dataframe[0].value
    assert phases["phase"].tolist() == ["memorisation", "plateau"]
    assert phases["from"].iloc[0] == "E_0"
    plateau = int(phases["from"].iloc[1].removeprefix("E_"))
    # the plateau starts near the first epoch at which training accuracy is ≈ 1
    history = nt.load_trace(memorising_file).history
    high = int(history.loc[history["train_acc"] >= 0.95, "epoch"].iloc[0])
    assert high - 20 <= plateau <= high + 20, (high, plateau)
    boundaries = at.dataframe[1].value
    assert boundaries["phases"].tolist() == ["memorisation → plateau"]
    assert boundaries["nearest jump"].iloc[0].startswith("training accuracy +")
    assert boundaries["epochs away"].iloc[0] <= plateau
    assert "How the states are read as phases" in [e.label for e in tab.expander]


def test_a_run_that_does_not_grok_gets_one_caption(app: Callable[[], AppTest]) -> None:
    at = _open(app, "tiny")
    assert_healthy(at)
    assert not [c for c in shown_charts(at) if "Phases of training" in c.proto.spec]
    assert "Phases: The curves do not go through grokking's phases" in texts(at.caption)
