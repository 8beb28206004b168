"""The grokking preset shortened to its memorisation phase (real training): training accuracy
reaches 100 % while validation accuracy stays near chance, and the training map puts a state
boundary near that jump. The full run is ``benchmarks/grokking.py``'s (docs/grokking.md)."""

from __future__ import annotations

import numpy as np
import pytest

import nn_tracing as nt
from nn_tracing.analysis.hmm import TrainingMap, read_phases
from nn_tracing.analysis.hmm.phases import HIGH
from nn_tracing.cli import main
from nn_tracing.presets import PRESETS, log_and_regular, preset_config

EPOCHS = 300


@pytest.fixture(scope="module")
def memorised() -> nt.NetworkTrace:
    config = preset_config(
        "grokking",
        epochs=EPOCHS,
        keep_weights=False,
        epoch_intervals=log_and_regular(EPOCHS, n_log=25, every=10),
    )
    return nt.train(config).trace


def _first(history, column: str, threshold: float) -> int | None:
    rows = history[history[column] >= threshold]
    return int(rows["epoch"].iloc[0]) if len(rows) else None


def test_the_preset_memorises_long_before_it_generalises(memorised: nt.NetworkTrace) -> None:
    history = memorised.history
    memorised_at = _first(history, "train_acc", 1.0)
    assert memorised_at is not None and memorised_at < EPOCHS / 2
    chance = 1 / 59
    # held-out pairs stay at (or below) chance for the whole phase, and after it
    assert history["val_acc"].max() < 3 * chance
    after = history[history["epoch"] >= memorised_at]
    assert (after["train_acc"] >= 0.999).all() and (after["val_acc"] < 3 * chance).all()
    assert history["train_loss"].iloc[-1] < 0.1 * history["train_loss"].iloc[0]


def test_the_training_map_puts_a_boundary_at_the_memorisation_jump(
    memorised: nt.NetworkTrace,
) -> None:
    fitted = TrainingMap(["l2", "train_acc", "val_acc"], n_permutations=0).fit(memorised)
    path = fitted.path_
    states = path["state"].to_numpy()
    boundaries = path["epoch"].to_numpy()[1:][np.diff(states) != 0]
    assert fitted.n_states_ >= 2 and boundaries.size
    jump = _first(memorised.history, "train_acc", 1.0)
    # the boundary nearest the jump is within a factor 2 of it (epochs are log-spaced early on)
    nearest = boundaries[np.argmin(np.abs(np.log(boundaries / jump)))]
    assert jump / 2 <= nearest <= 2 * jump, (jump, boundaries)
    # and the state before it is the one training accuracy rises through
    before = path[path["epoch"] < nearest]
    assert before["state"].nunique() >= 1 and path["epoch"].iloc[-1] == EPOCHS


def test_the_default_map_reads_as_memorisation_then_plateau(memorised: nt.NetworkTrace) -> None:
    """The Dynamics page's default features (Hu et al.'s weight statistics), read as phases."""
    fitted = TrainingMap(n_permutations=0).fit(memorised)
    reading = read_phases(fitted.path_, memorised.history, chance=1 / 59)
    assert reading.phases["phase"].tolist() == ["memorisation", "plateau"]
    assert reading.grokking_like
    # the plateau starts near the first epoch at which training accuracy is ≈ 1
    history = memorised.history
    high = _first(history, "train_acc", HIGH)
    assert high is not None
    plateau = int(reading.phases["first"].iloc[1])
    assert high / 2 <= plateau <= 2 * high, (high, plateau)
    # its boundary sits beside a jump of training accuracy, inside memorisation
    edge = reading.boundaries[reading.boundaries["phase_change"]].iloc[0]
    assert edge["time"] == plateau and edge["jump_curve"] == "train_acc"
    assert edge["jump_time"] < plateau and edge["distance"] <= plateau / 2
    rises = np.diff(history.set_index("epoch")["train_acc"].reindex(fitted.path_["epoch"]))
    assert edge["jump_change"] <= rises.max() + 1e-12  # at most the run's largest rise


def test_the_schedule_is_log_spaced_then_regular() -> None:
    epochs = log_and_regular(6000)
    assert epochs[0] == 1 and epochs[-1] == 6000 and list(epochs) == sorted(set(epochs))
    assert 150 <= len(epochs) <= 400  # a few hundred recorded points
    assert {1, 2, 3, 30, 60, 5970} <= set(epochs)


def test_the_cli_starts_from_the_preset_and_flags_override_it(capsys, tmp_path) -> None:
    assert main(["estimate", "--preset", "grokking", "--epochs", "90", "--modulus", "31"]) == 0
    out = capsys.readouterr().out
    assert "modular_add MLP 256 relu, 90 epochs" in out
    config = preset_config("grokking", epochs=90, modulus=31)
    assert config.epoch_intervals == log_and_regular(90)
    assert set(PRESETS) == {"grokking"}
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("nope")
