"""Fourier structure of neurons on modular arithmetic, against NumPy brute force: the power
spectrum is the explicit DFT sum, a planted cosine has its own frequency, and a traced network's
responses are its rebuilt model's (or its probe's) activations on every pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from modular_support import P, modular_config

import nn_tracing as nt
from nn_tracing.analysis.fourier import (
    dominant_frequency,
    layer_frequencies,
    modular_response,
    modular_setup,
    power_spectrum,
)
from nn_tracing.analysis.profiles import ProfileUnavailable
from nn_tracing.data_modular import modular_dataset_arrays
from nn_tracing.models import model_from_trace


def _brute_power(values: np.ndarray) -> np.ndarray:
    """|Σ_a x(a) e^{-2πi k a / p}|² summed over k and p - k, for k = 0 … p // 2."""
    p = len(values)
    a = np.arange(p)
    full = np.array([abs(np.sum(values * np.exp(-2j * np.pi * k * a / p))) ** 2 for k in a])
    return np.array(
        [full[0]] + [full[k] + (full[p - k] if p - k != k else 0) for k in range(1, p // 2 + 1)]
    )


@pytest.mark.parametrize("p", [12, 13])
def test_power_spectrum_is_the_explicit_dft(p: int) -> None:
    values = np.random.default_rng(p).normal(size=p)
    assert np.allclose(power_spectrum(values), _brute_power(values))
    # Parseval: the non-zero frequencies hold p · Σ (x - mean)²
    assert power_spectrum(values)[1:].sum() == pytest.approx(
        p * ((values - values.mean()) ** 2).sum()
    )


@pytest.mark.parametrize("k", [1, 4, 6])
def test_a_planted_cosine_has_its_own_frequency(k: int) -> None:
    a = np.arange(P)
    frequency, share = dominant_frequency(3.0 * np.cos(2 * np.pi * k * a / P + 0.7) + 5.0)
    assert (int(frequency), float(share)) == (k, pytest.approx(1.0))
    mixed = np.cos(2 * np.pi * k * a / P) + 0.5 * np.cos(2 * np.pi * (k % 6 + 1) * a / P)
    frequency, share = dominant_frequency(mixed)
    assert int(frequency) == k and float(share) == pytest.approx(1 / 1.25)
    frequency, share = dominant_frequency(np.full(P, 2.0))
    assert int(frequency) == 0 and np.isnan(share)


@pytest.fixture(scope="module")
def modular_trace() -> nt.NetworkTrace:
    config = modular_config(keep_weights=True, epoch_intervals=(2, 3))
    return nt.train(config).trace


def test_responses_are_the_rebuilt_models_activations_on_every_pair(
    modular_trace: nt.NetworkTrace,
) -> None:
    trace = modular_trace
    neuron = trace.neural_index["hidden_1"][0] + 3
    response = modular_response(trace, neuron, 2)
    assert response.source == "model" and response.coverage == 1.0
    # brute force: the hidden layer of the model rebuilt at E_2 on every pair, by hand
    model = model_from_trace(trace, 2)
    X, _ = modular_dataset_arrays("modular_add", P)
    with torch.no_grad():
        hidden = torch.relu(model.hidden_1(torch.from_numpy(X))).numpy()
    column = hidden[:, 3].reshape(P, P)
    assert np.allclose(response.grid, column, atol=1e-5)
    assert np.allclose(response.over_a, column.mean(axis=1), atol=1e-5)
    assert np.allclose(response.over_b, column.mean(axis=0), atol=1e-5)
    spectrum = _brute_power(column.mean(axis=1))
    assert response.frequency_a == int(np.argmax(spectrum[1:]) + 1)
    assert response.share_a == pytest.approx(spectrum[1:].max() / spectrum[1:].sum(), rel=1e-4)
    # the probe pairs in the grid are the recorded activations there
    rows = response.grid_frame()
    assert len(rows) == P * P and set(rows.columns) == {"a", "b", "activation"}
    frame = layer_frequencies(trace, 2)
    row = frame[frame["neuron"] == neuron].iloc[0]
    assert (row["layer"], row["frequency_a"]) == ("hidden_1", response.frequency_a)
    assert row["share_a"] == pytest.approx(response.share_a, rel=1e-6)


def test_without_weights_the_probe_pairs_are_used(modular_trace: nt.NetworkTrace) -> None:
    config = nt.TrainConfig.from_dict(modular_trace.meta["config"]).replace(keep_weights=False)
    trace = nt.train(config).trace
    assert 2 not in trace.epochs_with_weights
    neuron = trace.neural_index["hidden_1"][0]
    response = modular_response(trace, neuron, 2)
    assert response.source == "probe"
    acts = trace.probe_activations(2)[:, neuron]
    X = np.asarray(trace.probe[0])
    a, b = X[:, :P].argmax(1), X[:, P:].argmax(1)
    assert np.allclose(response.grid[a, b], acts)
    assert response.coverage == pytest.approx(len(a) / P**2)
    # the averages are over the pairs present (brute force, residue by residue)
    for residue in range(P):
        present = acts[a == residue]
        if present.size:
            assert response.over_a[residue] == pytest.approx(present.mean())


def test_other_datasets_are_refused(tiny_trace_file) -> None:
    trace = nt.load_trace(tiny_trace_file)
    with pytest.raises(ProfileUnavailable, match="modular arithmetic"):
        modular_setup(trace)


def test_the_clusters_colouring_names_strong_frequencies_and_mixed_neurons() -> None:
    import pandas as pd

    from nn_tracing.views.clusters import FREQUENCY_SHARE, frequency_coloring

    frame = pd.DataFrame(
        {
            "neuron": [0, 1, 2, 3],
            "frequency": [5, 2, 5, 7],
            "share": [0.9, FREQUENCY_SHARE, 0.6, FREQUENCY_SHARE - 0.01],
        }
    )
    coloring = frequency_coloring(frame, np.array([3, 2, 1, 0]), 40)
    assert coloring.values.tolist() == ["mixed", "k=5", "k=2", "k=5"]
    assert coloring.domain == ["k=2", "k=5", "mixed"] and coloring.kind == "N"
    assert coloring.title == "dominant frequency at E_40"
