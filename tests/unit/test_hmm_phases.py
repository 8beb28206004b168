"""The training map's states read as phases (nn_tracing/analysis/hmm/phases.py): planted phases
on synthetic curves against a hand-computed reading (the real run: tests/unit/test_grokking.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nn_tracing.analysis.hmm import PHASE_RULES, PHASES, read_phases

CHANCE = 0.1

#: Ten recorded epochs, five states; the training map cut the transition in two (S2, S3).
EPOCHS = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
STATES = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
TRAIN = [0.10, 0.80, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00]
VAL = [0.10, 0.12, 0.11, 0.12, 0.20, 0.50, 0.60, 0.85, 0.92, 0.95]
NORM = [1.0, 5.0, 6.0, 6.0, 6.0, 5.5, 5.0, 4.5, 4.0, 3.5]


def _planted(run: str = "a") -> tuple[pd.DataFrame, pd.DataFrame]:
    path = pd.DataFrame({"run": run, "epoch": EPOCHS, "state": STATES, "weight_norm": NORM})
    curves = pd.DataFrame({"epoch": EPOCHS, "train_acc": TRAIN, "val_acc": VAL})
    return path, curves


def test_planted_phases_are_read_against_a_hand_computed_reading() -> None:
    path, curves = _planted()
    reading = read_phases(path, curves, chance=CHANCE)
    # by hand, span by span:
    #   S0 E_0-10  train mean 0.45 < 0.95, gains 0.70, val max 0.12 <= 0.15  -> memorisation
    #   S1 E_20-30 train mean 1, val gains 0.01 < 0.05, ends 0.12 < 0.9      -> plateau
    #   S2 E_40-50 train mean 1, val gains 0.30, starts 0.20 < 0.9           -> transition
    #   S3 E_60-70 train mean 1, val gains 0.25, starts 0.60                 -> transition
    #   S4 E_80-90 train mean 1, val starts 0.92 >= 0.9                      -> clean-up
    spans = reading.spans
    assert spans["label"].tolist() == ["S0", "S1", "S2", "S3", "S4"]
    assert spans["phase"].tolist() == [
        "memorisation",
        "plateau",
        "transition",
        "transition",
        "clean-up",
    ]
    assert spans["train_acc_mean"].tolist() == pytest.approx([0.45, 1, 1, 1, 1])
    phases = reading.phases
    assert phases["phase"].tolist() == ["memorisation", "plateau", "transition", "clean-up"]
    assert phases["first"].tolist() == [0, 20, 40, 80]
    assert phases["last"].tolist() == [10, 30, 70, 90]
    assert phases["states"].tolist() == ["S0", "S1", "S2, S3", "S4"]
    transition = phases.iloc[2]
    assert (transition.val_acc_first, transition.val_acc_last) == (0.20, 0.85)
    assert (transition.weight_norm_first, transition.weight_norm_last) == (6.0, 4.5)
    assert "validation 0.20 → 0.85" in transition.description
    assert reading.grokking_like
    assert reading.headline() == (
        "Grokking's phases in the training map: memorisation from E_0, plateau from E_20, "
        "transition from E_40, clean-up from E_80."
    )


def test_each_boundary_sits_beside_the_largest_jump_around_it() -> None:
    path, curves = _planted()
    reading = read_phases(path, curves, chance=CHANCE)
    # whole run: training accuracy's largest one-interval change is +0.70 (E_0 -> E_10),
    # validation accuracy's +0.30 (E_40 -> E_50)
    jumps = reading.jumps.set_index("curve")
    assert jumps.loc["train_acc", "time"] == 10
    assert jumps.loc["train_acc", "change"] == pytest.approx(0.70)
    assert jumps.loc["val_acc", "time"] == 50
    assert jumps.loc["val_acc", "change"] == pytest.approx(0.30)
    b = reading.boundaries
    assert b["time"].tolist() == [20, 40, 60, 80]
    assert b["before"].tolist() == [10, 30, 50, 70]
    assert b["phase_change"].tolist() == [True, True, False, True]
    # over S0+S1 (E_0-30): train +0.70 at E_10; over S1+S2 (E_20-50): val +0.30 at E_50;
    # over S2+S3 (E_40-70): val +0.30 at E_50; over S3+S4 (E_60-90): val +0.25 at E_70
    assert b["jump_curve"].tolist() == ["train_acc", "val_acc", "val_acc", "val_acc"]
    assert b["jump_time"].tolist() == [10, 50, 50, 70]
    assert b["jump_change"].tolist() == pytest.approx([0.70, 0.30, 0.30, 0.25])
    assert b["distance"].tolist() == [10, 10, 10, 10]


def test_a_run_that_learns_both_curves_together_is_not_called_grokking() -> None:
    epochs = [0, 1, 2, 3, 4, 5]
    path = pd.DataFrame({"epoch": epochs, "state": [0, 0, 0, 1, 1, 1], "weight_norm": 1.0})
    curves = pd.DataFrame(
        {
            "epoch": epochs,
            "train_acc": [0.5, 0.7, 0.8, 0.96, 0.97, 0.97],
            "val_acc": [0.5, 0.68, 0.78, 0.90, 0.92, 0.92],
        }
    )
    reading = read_phases(path, curves, chance=0.5)
    # S0: train mean 0.667, rising, but validation rises too (max 0.78 > 0.55) -> other;
    # S1: train mean 0.967, validation starts at 0.90 -> clean-up
    assert reading.phases["phase"].tolist() == ["other", "clean-up"]
    assert not reading.grokking_like
    assert reading.headline().startswith("The curves do not go through grokking's phases")


def test_one_run_of_a_joint_map_is_read_and_bad_curves_are_refused() -> None:
    first, curves = _planted("a")
    second = first.assign(run="b", state=0)
    joint = pd.concat([first, second], ignore_index=True)
    assert read_phases(joint, curves, chance=CHANCE).phases["first"].tolist() == [0, 20, 40, 80]
    assert read_phases(joint, curves, chance=CHANCE, run="b").phases["phase"].tolist() == ["other"]
    with pytest.raises(ValueError, match="val_acc"):
        read_phases(first, curves.drop(columns=["val_acc"]), chance=CHANCE)
    empty = curves.assign(val_acc=np.nan)
    with pytest.raises(ValueError, match="two or more"):
        read_phases(first, empty, chance=CHANCE)


def test_every_phase_has_a_rule_in_words() -> None:
    assert tuple(PHASE_RULES) == PHASES
