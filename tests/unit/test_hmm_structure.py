"""The training map's verdict on its own structure (nn_tracing/analysis/hmm/structure.py):
a planted smooth trend is called "little structure", planted phases are not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nn_tracing.analysis.hmm import ModelFeatures, TrainingMap
from nn_tracing.analysis.hmm.structure import map_structure, switch_contrast

N_EPOCHS = 60


def _features(values: np.ndarray) -> ModelFeatures:
    """A run's features as the map takes them: one row per epoch, three features."""
    epochs = pd.Index(np.arange(len(values)), name="epoch")
    names = ["f0", "f1", "f2"]
    frame = pd.DataFrame(values, columns=names, index=epochs)
    loss = np.linspace(1.0, 0.1, len(values))
    descriptors = pd.DataFrame(
        {"weight_norm": 1 + values[:, 0], "loss": loss, "epoch": epochs.to_numpy()}, index=epochs
    )
    return ModelFeatures(frame, names, "planted", [], descriptors)


def _smooth_trend(seed: int = 0) -> np.ndarray:
    """Features that drift smoothly from start to end (no phases), with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, N_EPOCHS)[:, None]
    return np.hstack([t, t**2, np.sqrt(t)]) * 10 + rng.normal(0, 0.05, (N_EPOCHS, 3))


def _phases(seed: int = 0) -> np.ndarray:
    """Three plateaus with sharp jumps between them (epochs 0–19, 20–39, 40–59)."""
    rng = np.random.default_rng(seed)
    levels = np.array([[0.0, 0.0, 0.0], [3.0, -2.0, 1.0], [1.0, 2.0, 4.0]])
    values = np.repeat(levels, N_EPOCHS // 3, axis=0)
    return values + rng.normal(0, 0.15, values.shape)


def _fit(values: np.ndarray, permutations: int = 19) -> TrainingMap:
    return TrainingMap(n_permutations=permutations, n_restarts=2, random_state=0).fit(
        _features(values)
    )


def test_a_smooth_trend_is_called_little_structure_before_the_map() -> None:
    fitted = _fit(_smooth_trend())
    verdict = map_structure(fitted)
    assert fitted.n_states_ > 1  # the HMM still returns states
    assert verdict.little
    assert verdict.contrast < 3.0
    assert any("smooth drift into blocks" in r for r in verdict.reasons)
    assert verdict.headline().startswith("Little structure")


def test_planted_phases_are_phases() -> None:
    fitted = _fit(_phases())
    verdict = map_structure(fitted)
    assert fitted.n_states_ == 3
    # the three planted phases are found, each one block
    path = fitted.path_["state"].to_numpy()
    assert len(set(path[:20])) == len(set(path[20:40])) == len(set(path[40:])) == 1
    assert verdict.contrast > 10
    assert not verdict.little, verdict.reasons
    assert verdict.best_k == 3 < verdict.largest_k
    assert "look like phases" in verdict.headline()


def test_the_switch_contrast_against_a_hand_computed_value() -> None:
    z = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    states = np.array([0, 0, 0, 1, 1, 1])
    # steps 1, 1, 8, 1, 1: at the switch 8, within 1
    assert switch_contrast(z, [6], states) == pytest.approx(8.0)
    # two sequences: the step between them (2 -> 10) is no switch of either
    assert np.isnan(switch_contrast(z, [3, 3], states))
    assert switch_contrast(z, [3, 3], np.array([0, 0, 1, 1, 1, 0])) == pytest.approx(1.0)


def test_noise_and_k_at_the_edge_of_the_range_are_little_structure() -> None:
    rng = np.random.default_rng(3)
    fitted = _fit(rng.normal(0, 1, (N_EPOCHS, 3)))
    verdict = map_structure(fitted)
    assert fitted.time_test_ is not None and fitted.time_test_.p_value > 0.05
    assert verdict.little
    assert "not distinguishable from chance" in verdict.reasons[0]
    if fitted.n_states_ == 1:
        assert "one state" in verdict.reasons[-1]
    # planted phases judged with a failing test instead of their own: said in words
    failing = replace(fitted.time_test_, p_value=0.4)
    phases = _fit(_phases())
    said = map_structure(phases, time_test=failing)
    assert said.little and "not distinguishable from chance" in said.reasons[0]
    narrow = TrainingMap(k_range=(1, 2), n_permutations=0, n_restarts=2).fit(_features(_phases()))
    edge = map_structure(narrow)
    assert edge.best_k == edge.largest_k == 2
    assert any("largest k tried (2)" in r for r in edge.reasons)
