"""The cost models and load sensing of ``nn_tracing.analysis.cost``: one place for every
estimate the app shows before slow work, used by the embedding, the test against chance and
the Clusters page."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

import nn_tracing as nt
from nn_tracing.analysis import baselines, cost
from nn_tracing.analysis import embedding as emb


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    return nt.load_trace(tiny_trace_file)


def test_the_embedding_and_the_chance_test_use_these_estimates():
    assert emb.estimate_seconds is cost.estimate_seconds
    assert emb.silhouette_seconds is cost.silhouette_seconds
    assert emb.available_threads is cost.available_threads
    clusterer = emb.NeuronClusterer("hdbscan")
    for projector in (None, emb.NeuronProjector("tsne")):
        expected = cost.chance_test_seconds(
            3000,
            40,
            "hdbscan",
            projector=None if projector is None else "tsne",
            n_permutations=20,
            n_nulls=3,
            max_neurons=2500,
        )
        seconds = baselines.ChanceTest.estimate_seconds(
            3000,
            40,
            clusterer,
            projector=projector,
            n_permutations=20,
            n_nulls=3,
            max_neurons=2500,
        )
        assert seconds == expected > 0


def test_a_chance_test_is_one_fit_of_the_real_rows_and_one_per_null_version():
    one = cost.estimate_seconds("kmeans", 500, n_features=10) + cost.silhouette_seconds(500, 10)
    seconds = cost.chance_test_seconds(500, 10, "kmeans", n_permutations=9, n_nulls=2)
    assert seconds == pytest.approx(19 * one)


def test_a_large_chance_test_draws_its_versions_two_at_a_time():
    """From CHANCE_PARALLEL_FROM rows on, the null versions are drawn side by side (the real
    fit is not): the estimate divides them by the workers, as ChanceTest does."""
    rows = cost.CHANCE_PARALLEL_FROM
    workers = cost.chance_workers(rows)
    assert workers == min(cost.CHANCE_WORKERS, os.cpu_count() or 1)
    assert cost.chance_workers(rows - 1) == 1 and cost.chance_workers(rows, "tsne") == 1
    one = cost.estimate_seconds("kmeans", rows, n_features=500) + cost.silhouette_seconds(rows, 500)
    seconds = cost.chance_test_seconds(rows, 500, "kmeans", n_permutations=19, n_nulls=2)
    assert seconds == pytest.approx(one + 38 * one / workers)
    # the test itself draws as many at once
    assert baselines.ChanceTest()._workers(rows, None) == workers
    assert baselines.ChanceTest()._workers(rows, emb.NeuronProjector("pca")) == 1
    assert baselines.ChanceTest(n_jobs=3)._workers(10, None) == 3


def test_the_switches_follow_the_methods():
    below = cost.estimate_seconds("tsne", cost.OPENTSNE_FROM - 1)
    above = cost.estimate_seconds("tsne", cost.OPENTSNE_FROM)
    assert below != above  # scikit-learn's and openTSNE's models
    capped = cost.estimate_seconds("agglomerative", cost.AGGLOMERATIVE_MAX)
    assert cost.estimate_seconds("agglomerative", 10 * cost.AGGLOMERATIVE_MAX) == capped
    assert cost.estimate_seconds("hdbscan", 1000, n_features=40) > cost.estimate_seconds(
        "hdbscan", 1000, n_features=8
    )


def test_reinitialisation_grows_with_the_parameters(trace):
    n_parameters = trace.meta["model"]["n_parameters"]
    assert cost.reinitialisation_seconds(trace) == pytest.approx(0.12 + 1.2e-7 * n_parameters)
    # without a parameter count (a trace written elsewhere): 2000 parameters per neuron
    unknown = SimpleNamespace(meta={"model": {"name": "custom"}}, n_neurons=trace.n_neurons)
    expected = 0.12 + 1.2e-7 * 2000.0 * trace.n_neurons
    assert cost.reinitialisation_seconds(unknown) == pytest.approx(expected)  # type: ignore[arg-type]


def test_available_threads_is_between_one_and_the_maximum():
    for most in (1, 2, 8):
        assert 1 <= cost.available_threads(most) <= most
