"""Null versions drawn side by side (``nn_tracing.analysis.parallel_draws`` and
``ChanceTest(n_jobs=…)``) are exactly the versions drawn one by one, counted in the same order;
a test with more versions reuses a smaller test's (``fit(previous=…)``)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from nn_tracing.analysis import baselines as bl
from nn_tracing.analysis import embedding as emb
from nn_tracing.analysis.parallel_draws import draw_nulls
from nn_tracing.analysis.sequential import SequentialCount
from tests.unit.test_baselines import features_of, planted, structureless


def _uneven(seed: int):
    """A draw whose later versions often finish first (index-dependent sleeps), and whose
    value depends on the null and the index alone; records the threads it ran on."""
    threads: set[str] = set()

    def draw(name: str, index: int) -> dict[str, float]:
        threads.add(threading.current_thread().name)
        rng = np.random.default_rng([seed, len(name), index])
        time.sleep(float(rng.uniform(0, 0.004)))
        return {"silhouette": float(rng.random()), "score": float(index)}

    return draw, threads


@pytest.mark.parametrize("seed", range(8))
def test_side_by_side_draws_count_the_same_versions_in_the_same_order(seed):
    observed = 0.7 + 0.04 * seed  # some seeds stop early, some draw every version
    nulls = ["shuffled", "untrained"]
    serial_counts = {name: SequentialCount(19) for name in nulls}
    draw, _ = _uneven(seed)
    serial = draw_nulls(nulls, draw, serial_counts, observed, workers=1)
    for workers in (2, 3):
        counts = {name: SequentialCount(19) for name in nulls}
        draw, threads = _uneven(seed)
        parallel = draw_nulls(nulls, draw, counts, observed, workers=workers)
        assert len(threads) > 1  # really drawn on several threads
        for name in nulls:
            assert parallel[name].scores == serial[name].scores
            assert parallel[name].scores["score"] == list(range(counts[name].drawn))
            assert counts[name].drawn == serial_counts[name].drawn
            assert counts[name].p_value == serial_counts[name].p_value


def test_an_error_ends_only_its_null():
    def draw(name: str, index: int) -> dict[str, float]:
        if name == "untrained" and index == 2:
            raise ValueError("no model")
        return {"silhouette": 0.0}

    counts = {name: SequentialCount(10) for name in ("untrained", "shuffled")}
    draws = draw_nulls(list(counts), draw, counts, 0.5, workers=2, errors=(ValueError,))
    assert isinstance(draws["untrained"].error, ValueError)
    assert draws["shuffled"].error is None and counts["shuffled"].drawn == 10
    with pytest.raises(KeyError):  # not listed in ``errors``: raised
        draw_nulls(["a"], lambda name, i: {}, {"a": SequentialCount(5)}, 0.5, workers=2)


@pytest.mark.parametrize("make, k", [(structureless, 2), (planted, 3)])
def test_the_chance_test_gives_the_same_result_on_one_thread_or_two(make, k):
    for seed in range(3):
        features = features_of(make(seed=seed))
        clusterer = emb.NeuronClusterer("kmeans", n_clusters=k)
        one = bl.ChanceTest(19, nulls=("shuffled", "gaussian"), random_state=seed, n_jobs=1)
        two = bl.ChanceTest(19, nulls=("shuffled", "gaussian"), random_state=seed, n_jobs=2)
        one.fit(features, clusterer)
        two.fit(features, clusterer)
        assert two.sentence_ == one.sentence_
        for name, result in one.results_.items():
            other = two.results_[name]
            np.testing.assert_array_equal(other.scores["silhouette"], result.scores["silhouette"])
            assert other.p_values == result.p_values
            assert other.n_permutations == result.n_permutations


def test_a_larger_test_reuses_the_versions_of_a_smaller_one():
    features = features_of(planted(n_per_group=15, seed=4))
    clusterer = emb.NeuronClusterer("kmeans", n_clusters=3)
    nulls = ("shuffled", "gaussian")
    small = bl.ChanceTest(19, nulls=nulls, random_state=3).fit(features, clusterer)
    fresh = bl.ChanceTest(49, nulls=nulls, random_state=3).fit(features, clusterer)
    more = bl.ChanceTest(49, nulls=nulls, random_state=3).fit(features, clusterer, previous=small)
    assert small.clustered_ and small.reused_ == 0
    assert more.reused_ == 2 * 19 and more.n_drawn_ == fresh.n_drawn_ == 2 * 49
    assert more.sentence_ == fresh.sentence_
    for name, result in fresh.results_.items():
        np.testing.assert_array_equal(
            more.results_[name].scores["silhouette"], result.scores["silhouette"]
        )
        # the smaller test drew exactly the first versions of the larger one
        np.testing.assert_array_equal(
            small.results_[name].scores["silhouette"], result.scores["silhouette"][:19]
        )
        assert more.results_[name].p_values["silhouette"] == pytest.approx(1 / 50)
    assert small.results_["shuffled"].p_values["silhouette"] == pytest.approx(1 / 20)
    other_seed = bl.ChanceTest(49, nulls=nulls, random_state=4)
    with pytest.raises(ValueError, match="cannot be reused"):
        other_seed.fit(features, clusterer, previous=small)
    with pytest.raises(ValueError, match="cannot be reused"):
        more.fit(features, emb.NeuronClusterer("kmeans", n_clusters=4), previous=small)
