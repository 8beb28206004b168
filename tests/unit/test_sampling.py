"""A stated, seeded sample of neurons for dense analyses (nn_tracing/analysis/sampling.py), and
the Clusters page's features built from it (nn_tracing/analysis/embedding/features.py)."""

from __future__ import annotations

import numpy as np
import pytest

from nn_tracing import load_trace
from nn_tracing.analysis.embedding import FeatureSpec, neuron_features
from nn_tracing.analysis.sampling import sample_neurons
from nn_tracing.synthetic import write_synthetic_run


def test_a_sample_is_seeded_ordered_and_only_above_the_limit():
    ids = np.arange(500, 10_500)
    sample = sample_neurons(ids, max_neurons=1000)
    again = sample_neurons(ids, max_neurons=1000)
    assert sample.sampled and sample.n_rows == 1000 and sample.n_total == 10_000
    np.testing.assert_array_equal(sample.ids, again.ids)
    np.testing.assert_array_equal(sample.ids, ids[sample.positions])
    assert np.all(np.diff(sample.ids) > 0) and len(set(sample.ids.tolist())) == 1000
    other = sample_neurons(ids, max_neurons=1000, seed=1)
    assert not np.array_equal(other.ids, sample.ids)
    whole = sample_neurons(ids, max_neurons=10_000)
    assert not whole.sampled and np.array_equal(whole.ids, ids)
    assert not sample_neurons(ids, max_neurons=None).sampled
    with pytest.raises(ValueError, match="at least one"):
        sample_neurons(ids, max_neurons=0)


def test_the_description_says_rows_columns_and_mib():
    sample = sample_neurons(np.arange(100_000), max_neurons=20_000)
    text = sample.describe(101)
    mib = 20_000 * 101 * 8 / 2**20
    assert f"Loads 20,000 neurons × 101 features ({mib:,.1f} MiB as float64)" in text
    assert "seed 0" in text and "of the 100,000 neurons" in text and "20,000 neurons;" in text
    assert "every neuron" in sample_neurons(np.arange(10), 20).describe(3)


def test_features_of_a_sample_are_the_same_rows_as_of_every_neuron(tmp_path):
    trace = load_trace(write_synthetic_run(tmp_path / "run", [10, 1500, 900, 10], 6))
    spec = FeatureSpec(kind="trajectory", metric="w_norm", scale="neuron")
    every = neuron_features(trace, spec)
    some = neuron_features(trace, FeatureSpec(kind="trajectory", metric="w_norm", max_neurons=500))
    assert every.sample is not None and not every.sample.sampled
    assert some.sample is not None and some.sample.sampled and some.n_rows == 500
    assert some.spec.to_dict()["max_neurons"] == 500 and "max_neurons" not in spec.to_dict()
    assert set(some.neuron_ids) <= set(every.neuron_ids)
    rows = np.searchsorted(every.neuron_ids, some.neuron_ids)
    np.testing.assert_array_equal(some.values, every.values[rows])
    np.testing.assert_array_equal(some.layers, every.layers[rows])
    again = neuron_features(trace, FeatureSpec(kind="trajectory", metric="w_norm", max_neurons=500))
    np.testing.assert_array_equal(again.neuron_ids, some.neuron_ids)


def test_the_neuron_hmm_models_a_stated_sample_and_leaves_the_others_out(tmp_path):
    from nn_tracing.analysis.hmm import NeuronHMM, neuron_sequences

    trace = load_trace(write_synthetic_run(tmp_path / "run", [10, 400, 300, 10], 5))
    features = ("w_norm", "act_std")
    every = neuron_sequences(trace, features)
    some = neuron_sequences(trace, features, max_neurons=200)
    assert len(every.neuron_ids) == 710 and len(some.neuron_ids) == 200
    assert "a random sample (seed 0) of the 710 neurons" in some.notes[0]
    assert not any("random sample" in note for note in every.notes)
    expected = sample_neurons(np.arange(10, 720), 200).ids
    np.testing.assert_array_equal(some.neuron_ids, expected)
    np.testing.assert_array_equal(
        some.raw, every.raw[np.searchsorted(every.neuron_ids, some.neuron_ids)]
    )
    model = NeuronHMM(features, n_states=2, max_neurons=200, n_iter=10).fit(trace)
    states = np.asarray(model.states_)
    assert states.shape == (trace.n_neurons, len(trace.epochs))
    modelled = np.flatnonzero((states >= 0).all(axis=1))
    np.testing.assert_array_equal(modelled, expected)  # the others: −1, not modelled
