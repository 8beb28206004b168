"""The estimator contract every analysis class keeps (scikit-learn's).

Parameters come from ``__init__`` (``get_params`` / ``set_params``), a progress callback is an
argument of ``fit`` and never kept on the estimator, an unfitted estimator says so with
scikit-learn's ``NotFittedError``, and renamed keywords keep working with a warning.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import nn_tracing as nt
from nn_tracing.analysis import embedding as emb
from nn_tracing.analysis.baselines import ChanceTest
from nn_tracing.analysis.entropy import DecisionEntropy
from nn_tracing.analysis.hmm import NeuronHMM, StateModel, TrainingMap, shuffled_time_test
from nn_tracing.analysis.intervention import AblationCurves, Pruning

ESTIMATORS = [
    lambda: emb.NeuronProjector("pca", perplexity=12.0),
    lambda: emb.NeuronClusterer("kmeans", n_clusters=3),
    lambda: ChanceTest(7, nulls=("shuffled",)),
    lambda: StateModel(2, n_restarts=1),
    lambda: TrainingMap(n_restarts=2),
    lambda: NeuronHMM(k_range=(2, 3)),
    lambda: DecisionEntropy(n_bins=4),
    lambda: AblationCurves("hidden_1", n_repeats=3),
    lambda: Pruning(2),
]


@pytest.mark.parametrize("make", ESTIMATORS)
def test_parameters_come_from_init_and_round_trip(make):
    estimator = make()
    names = [
        name
        for name, p in inspect.signature(type(estimator).__init__).parameters.items()
        if name != "self" and p.kind is not p.VAR_KEYWORD
    ]
    params = estimator.get_params()
    assert sorted(params) == sorted(names)
    assert "progress" not in params
    copy = type(estimator)(**params)
    assert copy.get_params() == params
    assert copy.set_params(random_state=5).get_params()["random_state"] == 5


@pytest.mark.parametrize(
    ("make", "use"),
    [
        (lambda: DecisionEntropy(), lambda e: e.ranking(0)),
        (lambda: DecisionEntropy(), lambda e: e.describe()),
        (lambda: StateModel(2), lambda e: e.predict(np.zeros((4, 1)))),
        (lambda: StateModel(2), lambda e: e.select(2)),
        (lambda: NeuronHMM(), lambda e: e.neuron_table()),
        (lambda: NeuronHMM(), lambda e: e.time_test(3)),
        (lambda: TrainingMap(), lambda e: e.n_states_),
        (lambda: TrainingMap(), lambda e: e.select(2)),
        (lambda: Pruning(), lambda e: e.parameters_saved_),
    ],
)
def test_an_unfitted_estimator_raises_not_fitted_error(make, use):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        use(make())


def test_progress_is_an_argument_of_fit_and_is_not_kept(tiny_trace_file: Path):
    trace = nt.load_trace(tiny_trace_file)
    features = emb.neuron_features(trace, emb.FeatureSpec("activations"))
    seen: list[float] = []
    projector = emb.NeuronProjector("pca").fit(
        features.values, progress=lambda f, _: seen.append(f)
    )
    assert seen and seen[-1] == 1.0
    steps: list[float] = []
    test = ChanceTest(3, nulls=("shuffled",)).fit(
        features, emb.NeuronClusterer("kmeans", n_clusters=2), progress=lambda f, _: steps.append(f)
    )
    assert steps == [0.0, 0.25, 0.5, 0.75, 1.0]  # the real fit, 3 null versions, done
    for fitted in (projector, test):
        assert not any(callable(v) for v in vars(fitted).values())
        pickle.loads(pickle.dumps(fitted))


def test_n_shuffles_is_the_deprecated_name_of_n_permutations():
    with pytest.warns(DeprecationWarning, match="use n_permutations"):
        fitted_map = TrainingMap(n_shuffles=7)
    assert fitted_map.n_permutations == 7 and "n_shuffles" not in fitted_map.get_params()
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_shufles'"):
        TrainingMap(n_shufles=7)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 1))
    with pytest.warns(DeprecationWarning, match="use n_permutations"):
        result = shuffled_time_test(X, [10, 10, 10, 10], 2, n_shuffles=2, n_restarts=1)
    assert result.n_permutations == 2 and result.null.shape == (2,)
    with pytest.warns(DeprecationWarning, match="use n_permutations"):
        assert result.n_shuffles == 2
