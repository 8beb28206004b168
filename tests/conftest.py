"""Shared fixtures: a tiny trace made by real training (once per test session), a runs folder
per test (``NN_TRACING_RUNS_DIR``), and the app under ``streamlit.testing``'s AppTest."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nn_tracing import TrainConfig, save_trace, train

ROOT = Path(__file__).resolve().parents[1]

#: Small enough to train in about a second on two cores; two hidden layers so that every
#: view has something to show.
TINY_CONFIG = TrainConfig(
    dataset="moons", hidden_sizes=(8, 8), epochs=4, n_samples=300, probe_size=64, seed=0
)


@pytest.fixture(scope="session")
def tiny_trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``.nntrace`` of :data:`TINY_CONFIG` (ReLU), written once per test session."""
    run = train(TINY_CONFIG)
    assert run.trace is not None
    return save_trace(run.trace, tmp_path_factory.mktemp("traces") / "tiny.nntrace")


@pytest.fixture(scope="session")
def tanh_trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tanh network trained hard enough (lr 0.5) that some neurons saturate."""
    config = TINY_CONFIG.replace(activation="tanh", lr=0.5, epochs=6, optimizer="sgd")
    run = train(config)
    assert run.trace is not None
    return save_trace(run.trace, tmp_path_factory.mktemp("traces") / "tanh.nntrace")


@pytest.fixture
def runs_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_trace_file: Path
) -> Iterator[Path]:
    """A fresh runs folder holding ``tiny.nntrace``; uploads go to a folder of their own."""
    directory = tmp_path / "runs"
    directory.mkdir()
    shutil.copy(tiny_trace_file, directory / "tiny.nntrace")
    monkeypatch.setenv("NN_TRACING_RUNS_DIR", str(directory))
    monkeypatch.setenv("NN_TRACING_UPLOAD_DIR", str(tmp_path / "uploads"))
    yield directory
