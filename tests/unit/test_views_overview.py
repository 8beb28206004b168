"""The Overview page's builders (nn_tracing.views.overview) on a tiny trace made by real
training: the summary figures against the configuration, the status notices, the details."""

from __future__ import annotations

from pathlib import Path

import pytest

import nn_tracing as nt
from nn_tracing.views.overview import (
    detail_layers,
    layers_table,
    run_details,
    status_notice,
    summary_tiles,
)


@pytest.fixture
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    """A fresh copy per test (some tests change its meta)."""
    return nt.load_trace(tiny_trace_file)


def test_the_summary_figures_follow_from_the_configuration(trace: nt.NetworkTrace) -> None:
    tiles = {tile.label: tile for tile in summary_tiles(trace, live=False)}
    assert list(tiles) == [
        "Parameters",
        "Hidden neurons",
        "Recorded epochs",
        "Validation accuracy",
        "Status",
        "Training time",
    ]
    # moons: 2 inputs, hidden (8, 8), 2 classes: weights and biases of three Linear layers
    assert tiles["Parameters"].value == f"{2 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2:,}"
    assert tiles["Hidden neurons"].value == "16"
    assert tiles["Hidden neurons"].help == "20 neurons in all, with inputs and outputs"
    assert tiles["Recorded epochs"].value == "5"
    assert tiles["Recorded epochs"].help == "of 4 epochs; E_0 is the untrained network"
    assert tiles["Validation accuracy"].value == f"{trace.history['val_acc'].iloc[-1]:.3f}"
    assert tiles["Status"].value == "complete"
    assert summary_tiles(trace, live=True)[4].value == "training"
    trace.meta["timings"] = {"train_seconds": 125.4}
    assert summary_tiles(trace, live=False)[5].value == "2:05"
    trace.meta["timings"] = "not a dict"
    assert summary_tiles(trace, live=False)[5].value == "–"


def test_a_stopped_or_diverged_run_gets_a_warning_with_its_message_escaped(
    trace: nt.NetworkTrace,
) -> None:
    assert status_notice(trace, live=False) is None
    live = status_notice(trace, live=True)
    assert live is not None and live.kind == "info" and live.text.startswith("Training now")
    trace.meta.update(status="stopped", status_message="")
    stopped = status_notice(trace, live=False)
    assert stopped is not None and stopped.kind == "warning"
    assert stopped.text == "Stopped before the end: by the user"
    trace.meta.update(status="diverged", status_message="loss **nan** at E_3")
    diverged = status_notice(trace, live=False)
    assert diverged is not None and diverged.icon == ":material/warning:"
    assert diverged.text == r"Diverged: loss \*\*nan\*\* at E\_3"
    trace.meta.update(status="interrupted", status_message="the last complete epoch is E_2")
    interrupted = status_notice(trace, live=False)
    assert interrupted is not None and interrupted.kind == "warning"
    assert interrupted.text == r"Interrupted: the last complete epoch is E\_2"


def test_the_details_list_layers_dataset_and_meta(trace: nt.NetworkTrace) -> None:
    table = layers_table(trace)
    assert table["layer"].tolist() == ["input", "hidden_1", "hidden_2", "output"]
    assert table["neurons"].tolist() == [2, 8, 8, 2]
    assert table["ids"].tolist() == ["n_0 … n_1", "n_2 … n_9", "n_10 … n_17", "n_18 … n_19"]
    details = run_details(trace)
    assert "feature_mean" not in details.dataset and "feature_scale" not in details.dataset
    assert details.dataset["name"] == "moons"
    assert details.epochs == "E_0, E_1, E_2, E_3, E_4"
    assert details.config["hidden_sizes"] in ([8, 8], (8, 8))
    assert details.meta["status"] == "complete" and details.meta["model"]["class"] == "MLP"
    trace.meta["config"] = None
    assert run_details(trace).config == {"note": "this trace carries no TrainConfig"}


def test_the_layers_over_training_are_every_layer_but_the_inputs(trace: nt.NetworkTrace) -> None:
    assert detail_layers(trace) == ["hidden_1", "hidden_2", "output"]
