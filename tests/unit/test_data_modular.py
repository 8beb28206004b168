"""The modular arithmetic datasets: labels against brute force, the split the config asks for,
determinism, one-hot and embedded inputs decoded back to their pairs."""

from __future__ import annotations

import numpy as np
import pytest

from nn_tracing import TrainConfig
from nn_tracing.data import dataset_shape, load_dataset, prepare_data
from nn_tracing.data_modular import decode_pairs, modular_dataset_arrays
from nn_tracing.estimate import estimate_run


@pytest.mark.parametrize(("name", "op"), [("modular_add", "+"), ("modular_sub", "-")])
def test_labels_are_the_operation_on_every_pair(name: str, op: str) -> None:
    p = 11
    ds = load_dataset(name, modulus=p)
    assert ds.X.shape == (p * p, 2 * p) and ds.n_classes == p
    assert ds.feature_names[:2] == ("a=0", "a=1") and ds.feature_names[p] == "b=0"
    seen = set()
    for row, label in zip(ds.X, ds.y, strict=True):
        (a,) = np.flatnonzero(row[:p])
        (b,) = np.flatnonzero(row[p:])
        expected = (a + b) % p if op == "+" else (a - b) % p
        assert label == expected
        seen.add((int(a), int(b)))
    assert len(seen) == p * p  # every pair once
    assert not ds.standardise


def test_split_sizes_follow_the_training_fraction_and_the_probe_is_held_out() -> None:
    p = 13
    config = TrainConfig(
        dataset="modular_add", modulus=p, modular_train_fraction=0.3, probe_size=50
    )
    splits = prepare_data(config)
    n_val = round(p * p * 0.7)
    assert splits.info == {"n_train": p * p - n_val, "n_val": n_val, "n_probe": 50}
    assert config.held_out_fraction == pytest.approx(0.7)
    # one-hot codes are not standardised
    assert set(np.unique(splits.X_train)) == {0.0, 1.0}
    assert np.all(splits.mean == 0) and np.all(splits.scale == 1)
    train = {tuple(r) for r in splits.X_train.astype(int)}
    val = {tuple(r) for r in splits.X_val.astype(int)}
    assert not train & val  # no pair in both
    assert {tuple(r) for r in splits.X_probe.astype(int)} <= val
    # the estimate sees the same split: a probe larger than it is capped at n_val
    assert estimate_run(config.replace(probe_size=1000)).n_probe == n_val
    assert dataset_shape(config) == (p * p, 2 * p, p)


def test_split_is_deterministic_and_follows_the_data_seed() -> None:
    config = TrainConfig(dataset="modular_sub", modulus=7, modular_train_fraction=0.5)
    first, again = prepare_data(config), prepare_data(config)
    assert np.array_equal(first.X_train, again.X_train)
    assert np.array_equal(first.y_val, again.y_val)
    other = prepare_data(config.replace(data_seed=1))
    assert not np.array_equal(first.X_train, other.X_train)


def test_embedded_inputs_decode_to_their_pairs() -> None:
    p, dim = 9, 6
    X, y = modular_dataset_arrays("modular_add", p, dim, seed=3)
    assert X.shape == (p * p, 2 * dim)
    a, b = decode_pairs(X, p, dim, seed=3)
    assert np.array_equal(a, np.arange(p * p) // p) and np.array_equal(b, np.arange(p * p) % p)
    assert np.array_equal(y, (a + b) % p)
    ds = load_dataset("modular_add", modulus=p, modular_embedding_dim=dim, seed=3)
    assert ds.feature_names[:2] == ("a_e0", "a_e1") and np.array_equal(ds.X, X)
    with pytest.raises(ValueError, match="not modular inputs"):
        decode_pairs(X, p, dim + 1, seed=3)
    one_hot, _ = modular_dataset_arrays("modular_add", p)
    with pytest.raises(ValueError, match="not modular inputs"):
        decode_pairs(one_hot, p + 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("modulus", 1),
        ("modulus", 201),
        ("modular_train_fraction", 0.99),
        ("modular_embedding_dim", -1),
    ],
)
def test_bad_modular_settings_are_refused_by_name(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(dataset="modular_add", **{field: value})
