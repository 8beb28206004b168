"""One vocabulary and one code for standardising features (nn_tracing.analysis.standardise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nn_tracing as nt
from nn_tracing.analysis import embedding as emb
from nn_tracing.analysis.hmm import neuron_sequences
from nn_tracing.analysis.standardise import (
    ALIASES,
    MODES,
    canonical_mode,
    constant_columns,
    constant_rows,
    zscore,
)


def test_old_names_are_aliases_of_the_modes():
    assert set(ALIASES.values()) <= set(MODES)
    assert canonical_mode("pooled", ("global", "run"), "standardize") == "global"
    assert canonical_mode("column", ("none", "neuron", "global"), "scale") == "global"
    with pytest.raises(ValueError, match=r"standardize='pool': use 'global' or 'run'"):
        canonical_mode("pool", ("global", "run"), "standardize")


def test_zscore_per_group_equals_numpy_and_leaves_a_flat_feature_centred():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=(10, 3))
    values[:, 2] = 5.0  # no spread
    groups = [slice(0, 4), slice(4, 10)]
    z = zscore(values, axis=0, groups=groups)
    for rows in groups:
        block = values[rows, :2]
        np.testing.assert_allclose(z[rows, :2], (block - block.mean(0)) / block.std(0))
    assert (z[:, 2] == 0.0).all()
    rows_z = zscore(values, axis=1)
    np.testing.assert_allclose(rows_z.mean(axis=1), 0.0, atol=1e-12)


def test_constant_columns_and_rows():
    values = np.array([[1.0, 2.0, 0.0], [1.0, 3.0, 0.0], [1.0, np.nan, 0.0]])
    rows = np.array([True, True, False])
    assert constant_columns(values, rows=rows).tolist() == [True, False, True]
    assert constant_rows(np.array([[2.0, 2.0], [0.0, 1.0], [0.0, 0.0]])).tolist() == [
        True,
        False,
        True,
    ]


def test_the_old_scale_name_column_still_builds_the_same_features(tiny_trace_file: Path):
    trace = nt.load_trace(tiny_trace_file)
    spec = emb.FeatureSpec("metrics", scale="column")
    assert spec.scale == "global" and spec == emb.FeatureSpec("metrics", scale="global")
    assert emb.FeatureSpec("metrics").resolved_scale == "global"
    old = emb.neuron_features(trace, spec)
    new = emb.neuron_features(trace, emb.FeatureSpec("metrics", scale="global"))
    assert np.array_equal(old.values, new.values)
    with pytest.raises(emb.FeatureError, match="scale 'columns'"):
        emb.FeatureSpec("metrics", scale="columns")


def test_neuron_sequences_take_the_shared_vocabulary(tiny_trace_file: Path):
    trace = nt.load_trace(tiny_trace_file)
    pooled = neuron_sequences(trace, standardize="pooled").values
    assert np.array_equal(pooled, neuron_sequences(trace, standardize="global").values)
    with pytest.raises(ValueError, match="use 'layer', 'global' or 'neuron'"):
        neuron_sequences(trace, standardize="run")
