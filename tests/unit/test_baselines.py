"""The null models of ``nn_tracing.analysis.baselines``: permutations, p-values, the untrained
network, and the test's verdict on planted structure and on structureless neurons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

import nn_tracing as nt
from nn_tracing.analysis import baselines as bl
from nn_tracing.analysis import embedding as emb


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    return nt.load_trace(tiny_trace_file)


def features_of(X: np.ndarray, kind: str = "metrics") -> emb.NeuronFeatures:
    """Synthetic neurons wrapped as feature rows (one layer, epoch 1)."""
    n = X.shape[0]
    return emb.NeuronFeatures(
        values=X.astype(np.float32),
        raw=X.astype(np.float32),
        neuron_ids=np.arange(n),
        epochs=np.ones(n, dtype=np.int64),
        layers=np.array(["hidden_1"] * n, dtype=object),
        columns=[f"f{j}" for j in range(X.shape[1])],
        positions=np.arange(X.shape[1], dtype=np.float64),
        excluded=pd.DataFrame(columns=["neuron", "layer", "epoch", "signature", "reason"]),
        spec=emb.FeatureSpec(kind, epoch=1, layers=("hidden_1",)),
    )


def planted(n_per_group: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(3, 6))
    return np.concatenate([c + rng.normal(size=(n_per_group, 6)) for c in centers])


def structureless(n: int = 60, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4))


# -- null data ------------------------------------------------------------------------------------
def test_permuted_columns_keep_each_column_and_lose_the_rows():
    X = planted()
    rng = np.random.default_rng(1)
    null = bl.permute_columns(X, rng)
    for j in range(X.shape[1]):
        np.testing.assert_array_equal(np.sort(null[:, j]), np.sort(X[:, j]))
    # columns are permuted independently: rows are broken up
    assert not any(np.any(np.all(null == row, axis=1)) for row in X[:10])
    within = bl.shuffle_within_rows(X, rng)
    np.testing.assert_array_equal(np.sort(within, axis=1), np.sort(X, axis=1))


def test_the_gaussian_null_has_the_mean_and_covariance_of_the_data():
    rng = np.random.default_rng(0)
    X = planted(n_per_group=2000)
    null = bl.gaussian_like(X, rng)
    np.testing.assert_allclose(null.mean(0), X.mean(0), atol=0.15)
    np.testing.assert_allclose(np.cov(null.T), np.cov(X.T), atol=0.1 * np.abs(np.cov(X.T)).max())


def test_permutation_p_value_counts_null_scores_at_least_as_high():
    null = np.array([0.1, 0.5, np.nan, 0.7, 0.3])
    assert bl.permutation_p_value(0.5, null) == pytest.approx((1 + 2) / 6)
    assert bl.permutation_p_value(0.9, null) == pytest.approx(1 / 6)
    assert np.isnan(bl.permutation_p_value(float("nan"), null))


# -- the test's verdict ---------------------------------------------------------------------------
def test_planted_groups_beat_every_null_with_the_smallest_p_value():
    features = features_of(planted())
    test = bl.ChanceTest(50, nulls=("shuffled", "gaussian"), random_state=0).fit(
        features, emb.NeuronClusterer("kmeans", n_clusters=3)
    )
    assert test.clustered_
    for result in test.results_.values():
        assert result.p_values["silhouette"] == pytest.approx(1 / 51)
        assert result.n_permutations == 50
    assert test.results_["shuffled"].sentence.startswith(
        "Clusters are more separated than in 50 of 50 shuffled versions"
    )
    assert test.sentence_.startswith("The clusters are more separated than chance")
    assert "50 shuffled versions and 50 Gaussian clouds drawn" in test.sentence_


@pytest.mark.parametrize("method", ["kmeans", "hdbscan"])
def test_structureless_neurons_are_not_called_clustered(method):
    features = features_of(structureless(n=80, seed=3))
    test = bl.ChanceTest(30, nulls=("shuffled", "gaussian"), random_state=0).fit(
        features, emb.NeuronClusterer(method, n_clusters=3)
    )
    assert not test.clustered_
    assert "chance" in test.sentence_ or "nothing to test" in test.sentence_


def _null_p_values(n_seeds: int, P: int, *, sequential: bool) -> tuple[np.ndarray, np.ndarray]:
    """p-values and versions drawn of the test on structureless neurons, one per seed."""
    p_values, drawn = [], []
    for seed in range(n_seeds):
        features = features_of(structureless(n=40, seed=seed))
        test = bl.ChanceTest(P, nulls=("shuffled",), random_state=seed, sequential=sequential)
        test.fit(features, emb.NeuronClusterer("kmeans", n_clusters=2))
        p_values.append(test.results_["shuffled"].p_values["silhouette"])
        drawn.append(test.results_["shuffled"].n_permutations)
    return np.array(p_values), np.array(drawn)


def test_the_p_value_is_uniform_ish_under_the_null():
    p_values, _ = _null_p_values(25, 19, sequential=False)
    # 20 possible values 0.05, 0.10, …, 1.0; under the null each has probability 1/20
    assert 0.35 < p_values.mean() < 0.65
    assert np.mean(p_values <= 0.05) <= 0.2
    assert stats.kstest(p_values - 0.025, "uniform").pvalue > 0.01


def test_the_sequential_p_value_stays_calibrated_under_the_null_and_stops_early():
    """Besag–Clifford p-values under the null: P(p ≤ a) ≈ a in bins (a binned chi-square
    against the uniform), no more false alarms than alpha allows, and far fewer versions."""
    P, n_seeds = 50, 60
    p_values, drawn = _null_p_values(n_seeds, P, sequential=True)
    assert np.all((p_values > 0) & (p_values <= 1))
    assert 0.35 < p_values.mean() < 0.65
    assert np.mean(p_values <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / n_seeds)
    counts, _ = np.histogram(p_values, bins=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert stats.chisquare(counts).pvalue > 0.01, counts
    # h = 3 exceedances stop the test: most seeds stop after a handful of the 50 versions
    assert np.median(drawn) <= 12 and drawn.max() <= P
    stopped = drawn < P
    np.testing.assert_allclose(p_values[stopped], 3 / drawn[stopped])


def test_stopping_early_never_changes_the_verdict():
    for seed in range(6):
        for X, k in ((structureless(n=40, seed=seed), 2), (planted(n_per_group=15, seed=seed), 3)):
            features = features_of(X)
            clusterer = emb.NeuronClusterer("kmeans", n_clusters=k)
            full = bl.ChanceTest(30, nulls=("shuffled",), random_state=seed, sequential=False)
            quick = bl.ChanceTest(30, nulls=("shuffled",), random_state=seed)
            full.fit(features, clusterer)
            quick.fit(features, clusterer)
            assert quick.clustered_ == full.clustered_
            assert quick.n_drawn_ <= full.n_drawn_ == 30
            # the same draws, in the same order, up to where the sequential test stopped
            drawn = quick.results_["shuffled"].scores["silhouette"]
            np.testing.assert_array_equal(
                drawn, full.results_["shuffled"].scores["silhouette"][: drawn.size]
            )


def test_a_stopped_test_says_how_many_versions_it_drew():
    features = features_of(structureless(n=60, seed=1))
    test = bl.ChanceTest(50, nulls=("shuffled", "gaussian"), random_state=0).fit(
        features, emb.NeuronClusterer("kmeans", n_clusters=3)
    )
    result = test.results_["shuffled"]
    assert result.stopped_early and result.n_max == 50 and result.n_permutations < 50
    assert result.n_at_least == 3
    assert result.p_values["silhouette"] == pytest.approx(3 / result.n_permutations)
    assert f"3 of {result.n_permutations} shuffled versions drawn" in result.sentence
    assert "the test stopped there (of at most 50" in result.sentence
    assert f"after {result.n_permutations} of 50 shuffled versions" in test.sentence_
    assert test.n_drawn_ == sum(r.n_permutations for r in test.results_.values())


def test_the_p_value_is_small_under_planted_structure_for_every_seed():
    for seed in range(5):
        features = features_of(planted(n_per_group=20, seed=seed))
        test = bl.ChanceTest(19, nulls=("shuffled",), random_state=seed).fit(
            features, emb.NeuronClusterer("kmeans", n_clusters=3)
        )
        assert test.results_["shuffled"].p_values["silhouette"] == pytest.approx(0.05)


def test_every_neuron_is_scored_unless_a_sample_is_asked_for():
    features = features_of(planted(n_per_group=100))
    clusterer = emb.NeuronClusterer("kmeans", n_clusters=3)
    whole = bl.ChanceTest(2, nulls=("shuffled",)).fit(features, clusterer)
    assert whole.n_rows_ == whole.n_rows_total_ == 300
    fitted = clusterer.fit(features.values)
    assert whole.observed_["silhouette"] == pytest.approx(fitted.silhouette_, rel=1e-12)
    test = bl.ChanceTest(5, nulls=("shuffled",), max_neurons=120).fit(features, clusterer)
    assert test.n_rows_ == 120 and test.n_rows_total_ == 300


def test_clusters_found_on_the_map_are_tested_with_the_projection_redone():
    features = features_of(planted())
    test = bl.ChanceTest(5, nulls=("shuffled",)).fit(
        features,
        emb.NeuronClusterer("kmeans", n_clusters=3),
        projector=emb.NeuronProjector("pca"),
    )
    assert test.observed_["silhouette"] > 0.5
    assert test.results_["shuffled"].p_values["silhouette"] == pytest.approx(1 / 6)


# -- the untrained network ------------------------------------------------------------------------
def test_a_fresh_initialisation_with_the_runs_seed_reproduces_the_recorded_e0(trace):
    """The MLP of a trace was initialised from its config's seed: a fresh initialisation from
    that seed through the private generator must give the recorded E_0, feature for feature."""
    seed = trace.meta["config"]["seed"]
    for kind in ("activations", "metrics", "response"):
        recorded = emb.neuron_features(trace, emb.FeatureSpec(kind, epoch=0))
        fresh = bl.untrained_features(trace, recorded, seed=seed)
        np.testing.assert_array_equal(fresh.neuron_ids, recorded.neuron_ids)
        np.testing.assert_allclose(fresh.values, recorded.values, rtol=1e-5, atol=1e-6)
    other = bl.untrained_features(trace, recorded, seed=seed + 1)
    assert other.raw.shape != recorded.raw.shape or not np.allclose(other.raw, recorded.raw)


def test_fresh_initialisations_follow_pytorchs_default_and_leave_the_global_rng(trace):
    state = torch.random.get_rng_state()
    module = bl.fresh_initialisation(trace, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for name, layer in module.named_children():
        if isinstance(layer, nn.Linear):
            bound = 1 / np.sqrt(layer.in_features)
            assert layer.weight.abs().max() <= bound, name
            assert layer.bias.abs().max() <= bound, name
    again = bl.fresh_initialisation(trace, seed=5)
    for a, b in zip(module.parameters(), again.parameters()):
        assert torch.equal(a, b)


def test_the_untrained_null_runs_on_a_real_trace_and_reports_the_recorded_e0(trace):
    features = emb.neuron_features(trace, emb.FeatureSpec("activations"))
    test = bl.ChanceTest(5, random_state=0).fit(
        features, emb.NeuronClusterer("kmeans", n_clusters=3), trace=trace
    )
    result = test.results_["untrained"]
    assert np.isfinite(result.scores["silhouette"]).all()
    assert result.reference is not None and np.isfinite(result.reference["silhouette"])
    assert set(test.results_) == {"shuffled", "untrained"}


def test_trajectories_use_time_shuffling_instead_of_the_untrained_network(trace):
    features = emb.neuron_features(trace, emb.FeatureSpec("trajectory"))
    nulls, unavailable = bl.ChanceTest.plan(features, ("shuffled", "untrained"), trace)
    assert nulls == ["shuffled", "time_shuffled"] and not unavailable


def test_a_custom_model_without_its_module_says_why_there_is_no_untrained_null(trace):
    custom = nt.NetworkTrace(
        trace.layers,
        {e: trace.metrics_at(e) for e in trace.epochs},
        {**trace.meta, "model": {"class": "MyNet", "builtin": False}},
        probe=trace.probe,
        epoch_tensors={e: trace.epoch_tensors(e) for e in trace.epochs},
        final_weights=trace.final_weights,
    )
    problem = bl.reinitialisation_problem(custom)
    assert problem is not None and "attach_model" in problem
    features = emb.neuron_features(custom, emb.FeatureSpec("activations"))
    test = bl.ChanceTest(5).fit(features, emb.NeuronClusterer("kmeans", n_clusters=3), trace=custom)
    assert "untrained" in test.unavailable_ and "shuffled" in test.results_
    nt.attach_model(custom, nt.model_from_trace(trace))
    assert bl.reinitialisation_problem(custom) is None


def test_too_few_versions_to_reach_alpha_say_undecided_not_chance():
    """With P = 5 the smallest p is 1/6: planted groups are 'undecided', not 'chance'."""
    features = features_of(planted(n_per_group=20))
    test = bl.ChanceTest(5, nulls=("shuffled",), random_state=0).fit(
        features, emb.NeuronClusterer("kmeans", n_clusters=3)
    )
    result = test.results_["shuffled"]
    assert result.p_values["silhouette"] == pytest.approx(1 / 6)
    assert not test.clustered_ and test.undecided_
    assert result.sentence.startswith("Too few versions to decide")
    assert "use P ≥ 19" in result.sentence
    assert test.sentence_.startswith("Undecided: with P = 5")


# -- what training added over initialisation ------------------------------------------------------
def test_the_verdict_says_what_training_added_over_the_recorded_e0(trace):
    features = emb.neuron_features(trace, emb.FeatureSpec("activations"))
    clusterer = emb.NeuronClusterer("kmeans", n_clusters=3)
    test = bl.ChanceTest(5, random_state=0).fit(features, clusterer, trace=trace)
    # the reference: the same clusterer, fitted on the recorded E_0's features
    e0 = emb.neuron_features(trace, emb.FeatureSpec("activations", epoch=0))
    initial = clusterer.clone(random_state=0).fit(e0.values).silhouette_
    effect = test.effect_
    assert effect is not None and effect.source == "recorded"
    assert effect.initial == pytest.approx(initial, rel=1e-9)
    assert effect.now == pytest.approx(test.observed_["silhouette"])
    assert effect.added == pytest.approx(test.observed_["silhouette"] - initial)
    assert f"(silhouette {initial:.3f} at E_0, {effect.now:.3f} now)." in test.sentence_
    verb = "added" if effect.added > 0 else "took"
    assert f"Training {verb} {abs(effect.added):.3f}" in test.sentence_
    # the shuffled null alone still gets the effect from the recorded E_0
    alone = bl.ChanceTest(5, nulls=("shuffled",)).fit(features, clusterer, trace=trace)
    assert alone.effect_ is not None and alone.effect_.initial == pytest.approx(initial)


def test_without_a_recorded_e0_the_effect_is_against_the_untrained_networks_mean(trace):
    later = [e for e in trace.epochs if e != 0]
    no_e0 = nt.NetworkTrace(
        trace.layers,
        {e: trace.metrics_at(e) for e in later},
        trace.meta,
        probe=trace.probe,
        epoch_tensors={e: trace.epoch_tensors(e) for e in later},
        final_weights=trace.final_weights,
    )
    features = emb.neuron_features(no_e0, emb.FeatureSpec("activations"))
    test = bl.ChanceTest(6, random_state=0, sequential=False).fit(
        features, emb.NeuronClusterer("kmeans", n_clusters=3), trace=no_e0
    )
    null = test.results_["untrained"].scores["silhouette"]
    assert test.effect_ is not None and test.effect_.source == "untrained"
    assert test.effect_.initial == pytest.approx(float(np.nanmean(null)))
    assert "on average over 6 untrained networks, as this run did not record E_0" in (
        test.sentence_
    )


def test_the_effect_sentence_names_a_separation_already_there():
    effect = bl.TrainingEffect(initial=0.41, now=0.456, source="recorded")
    assert effect.sentence == (
        "Training added 0.046 to a separation already there at initialisation "
        "(silhouette 0.410 at E_0, 0.456 now)."
    )
    assert bl.TrainingEffect(0.05, 0.4, "recorded").sentence.startswith(
        "Training added 0.350 to the separation at initialisation"
    )
    assert bl.TrainingEffect(0.3, 0.2, "recorded").sentence.startswith(
        "Training took 0.100 from the separation at initialisation"
    )
