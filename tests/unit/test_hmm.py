"""Hidden-Markov models of training (nn_tracing.analysis.hmm): the vectorised EM against
hmmlearn's, planted regime switches, the shuffled-time null, the collapse of hmmlearn's default
initialisation, model-level features against the weights, and the training map on real runs."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM

from nn_tracing import TrainConfig, load_trace, save_trace, train
from nn_tracing.analysis.entropy import entropy_bits
from nn_tracing.analysis.hmm import (
    CURVE_FEATURES,
    FRAME_FEATURES,
    MODEL_FEATURES,
    NeuronHMM,
    StateModel,
    TrainingMap,
    choose_k,
    convergence_epoch,
    model_features,
    n_free_parameters,
    shuffled_time_test,
    step_features,
)


def planted(
    n: int = 150, t: int = 30, d: int = 3, shift: float = 3.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` trajectories of ``t`` epochs: noise, and from a known epoch on (different for
    each), feature 0 shifted by ``shift`` standard deviations. Returns (X (n, t, d), switch)."""
    rng = np.random.default_rng(seed)
    X = 0.5 * rng.normal(size=(n, t, d))
    switch = rng.integers(t // 4, 3 * t // 4, size=n)
    X[:, :, 0] += shift * (np.arange(t)[None, :] >= switch[:, None])
    return X, switch


def found_switch(states: np.ndarray) -> np.ndarray:
    """The first epoch at which each path changes state."""
    return (np.diff(states, axis=1) != 0).argmax(axis=1) + 1


# -- the engine ----------------------------------------------------------------------------------
def test_vectorised_em_equals_hmmlearns_from_the_same_start() -> None:
    rng = np.random.default_rng(3)
    lengths = np.array([30, 25, 40, 12, 1])  # ragged, and a sequence of one observation
    X = rng.normal(size=(lengths.sum(), 3))
    X[::2] += 1.5
    fits = {
        engine: StateModel(3, engine=engine, n_restarts=2, n_iter=25, tol_per_obs=0.0).fit(
            X, lengths
        )
        for engine in ("numpy", "hmmlearn")
    }
    a, b = fits["numpy"].model_, fits["hmmlearn"].model_
    history = [fits[e].fits_[3]["history"] for e in ("numpy", "hmmlearn")]
    assert len(history[0]) == 25 and np.allclose(history[0], history[1], rtol=0, atol=1e-8)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        assert np.allclose(getattr(a, name), getattr(b, name), atol=1e-8), name
    # the fitted model is a real GaussianHMM: hmmlearn's own inference agrees with ours
    model = fits["numpy"]
    assert isinstance(a, GaussianHMM)
    assert (model.predict(X, lengths) == a.predict(X, lengths)).all()
    assert np.allclose(model.predict_proba(X, lengths), a.predict_proba(X, lengths), atol=1e-10)
    assert model.score(X, lengths) == pytest.approx(a.score(X, lengths), abs=1e-8)
    per_sequence = model.score_sequences(X, lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    assert per_sequence == pytest.approx(
        [a.score(X[s : s + n]) for s, n in zip(starts, lengths)], abs=1e-8
    )


def test_bic_and_the_parameter_count_agree_with_hmmlearn() -> None:
    X, _ = planted(n=40, t=20)
    flat, lengths = X.reshape(-1, 3), np.full(40, 20)
    model = StateModel(k_range=(1, 4), n_restarts=1).fit(flat, lengths)
    for k, fitted in model.models_.items():
        reference = GaussianHMM(k, covariance_type="diag")
        reference.n_features = 3
        assert n_free_parameters(k, 3) == sum(reference._get_n_fit_scalars_per_param().values())
        row = model.selection_.set_index("k").loc[k]
        assert row["bic"] == pytest.approx(fitted.bic(flat, lengths), rel=1e-9)
        assert row["aic"] == pytest.approx(fitted.aic(flat, lengths), rel=1e-9)


# -- planted structure ---------------------------------------------------------------------------
def test_a_planted_regime_switch_is_found_within_one_epoch_and_bic_prefers_two_states() -> None:
    X, switch = planted()
    model = NeuronHMM(k_range=(1, 5)).fit(X)
    assert model.n_states_ >= 2
    bic = model.selection_.set_index("k")["bic"]
    assert bic.loc[2] < bic.loc[1]
    assert model.states_.shape == (150, 30) and model.dominant_state_.shape == (150,)
    assert np.mean(np.abs(found_switch(model.states_) - switch) <= 1) >= 0.98
    # S0 is the state of early training (states are ordered by when they occur)
    assert (model.states_[:, 0] == 0).all() and (model.states_[:, -1] == 1).all()
    assert model.n_switches_.tolist() == [1] * 150
    occupancy = np.stack([(model.states_ == j).mean(axis=1) for j in range(model.n_states_)], 1)
    assert np.allclose(model.occupancy_, occupancy)
    assert np.allclose(model.occupancy_entropy_, entropy_bits(occupancy, axis=1))
    assert (model.dominant_state_ == (switch < 15).astype(int)).mean() > 0.9
    assert model.converged_ and model.state_model_.convergence_note() is None


def test_our_initialisation_recovers_planted_states_where_hmmlearns_default_collapses() -> None:
    """hmmlearn's default initialisation (k-means means, a random near-deterministic transition
    matrix) collapses to identical states for some seeds, and BIC then picks the wrong k; the
    quantile initialisation with a sticky matrix finds the planted states (and k = 2)."""
    X, switch = planted(n=60, shift=3.0, seed=1)
    flat, lengths = X.reshape(-1, 3), np.full(60, 30)
    ours = StateModel(k_range=(1, 5), n_restarts=1).fit(flat, lengths)
    assert ours.n_states_ == 2
    assert ours.model_.means_[:, 0] == pytest.approx([0.0, 3.0], abs=0.2)
    states = ours.predict(flat, lengths).reshape(60, 30)
    assert np.mean(np.abs(found_switch(states) - switch) <= 1) >= 0.98

    collapsed = []
    for seed in range(8):
        default = StateModel(2, init="default", random_state=seed).fit(flat, lengths)
        means = default.model_.means_[:, 0]
        if abs(means[0] - means[1]) < 0.5:  # both states at the average: a collapse
            collapsed.append(seed)
    assert collapsed, "hmmlearn's default initialisation no longer collapses on this data"
    sweep = StateModel(k_range=(1, 5), init="default", random_state=collapsed[0])
    assert sweep.fit(flat, lengths).n_states_ != 2  # … and BIC then chooses the wrong k


def test_the_shuffled_time_test_sees_structure_only_where_there_is_some() -> None:
    X, _ = planted(n=60, t=20)
    n, t, d = X.shape
    structured = shuffled_time_test(X.reshape(-1, d), np.full(n, t), 2, n_permutations=19)
    assert structured.p_value == pytest.approx(1 / 20)  # the real order beats every shuffle
    assert "beyond chance" in structured.describe()
    rng = np.random.default_rng(5)
    noise = rng.normal(size=(n * t, d))
    flat = shuffled_time_test(noise, np.full(n, t), 2, n_permutations=19, random_state=1)
    assert flat.p_value > 0.05
    assert "no evidence" in flat.describe()
    with pytest.raises(ValueError, match="at least 2 states"):
        shuffled_time_test(noise, None, 1)


def test_the_shuffled_time_test_stops_once_p_cannot_reach_alpha() -> None:
    """Besag–Clifford: on structureless sequences the test stops after h = 3 shuffles that fit
    as well as the real order, with p = 3 / drawn; the full test draws all and agrees."""
    rng = np.random.default_rng(5)
    n, t, d = 40, 15, 2
    noise = rng.normal(size=(n * t, d))
    quick = shuffled_time_test(noise, np.full(n, t), 2, n_permutations=39, random_state=1)
    full = shuffled_time_test(
        noise, np.full(n, t), 2, n_permutations=39, random_state=1, sequential=False
    )
    assert full.n_drawn == 39 and quick.n_drawn < 39
    assert int((quick.null >= quick.loglik).sum()) == 3
    assert quick.p_value == pytest.approx(3 / quick.n_drawn)
    np.testing.assert_array_equal(quick.null, full.null[: quick.n_drawn])
    assert (quick.p_value > 0.05) == (full.p_value > 0.05)
    assert f"on {quick.n_drawn} time-shuffled copies (of at most 39" in quick.describe()


# -- convergence and hmmlearn's logging ----------------------------------------------------------
def test_non_convergence_is_reported_and_hmmlearn_logs_nothing_to_the_console(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    X, _ = planted(n=20, t=10)
    flat, lengths = X.reshape(-1, 3), np.full(20, 10)
    caplog.set_level(logging.DEBUG)
    stopped = StateModel(3, n_iter=1, engine="hmmlearn").fit(flat, lengths)
    assert not stopped.converged_
    assert "without converging" in (stopped.convergence_note() or "")
    assert stopped.selection_["note"].iloc[0].startswith("did not converge")
    # a model with more parameters than data: hmmlearn warns, we collect it
    tiny = StateModel(4, engine="hmmlearn").fit(flat[:6])
    assert any("degenerate solution" in m for m in tiny.log_messages_)
    assert capsys.readouterr().err == ""
    assert not [r for r in caplog.records if r.name.startswith("hmmlearn")]
    assert logging.getLogger("hmmlearn").propagate  # restored after the fits


def test_candidates_with_more_parameters_than_data_are_skipped() -> None:
    rng = np.random.default_rng(0)
    # 6 observations of 4 features: k = 2 has 19 free parameters for 24 values, k = 3 has 32
    model = StateModel(k_range=(1, 8), n_restarts=1).fit(rng.normal(size=(6, 4)))
    skipped = model.selection_[model.selection_["restarts"] == 0]
    assert skipped["k"].tolist() == [3, 4, 5, 6, 7, 8]
    assert skipped["note"].str.startswith("skipped").all()
    assert model.n_states_ in (1, 2)
    with pytest.raises(ValueError, match="lengths must"):
        StateModel().fit(np.zeros((5, 2)), [2, 2])
    with pytest.raises(ValueError, match="NaN"):
        StateModel().fit(np.full((5, 2), np.nan))


def test_a_choice_of_k_means_the_criterions_minimum_or_the_nearest_fitted_k() -> None:
    # k = 4 was skipped (no restarts): it is never chosen, even when asked for by number
    selection = pd.DataFrame(
        {
            "k": [1, 2, 3, 4, 5],
            "restarts": [2, 2, 2, 0, 2],
            "bic": [10.0, 4.0, 6.0, float("nan"), 8.0],
            "aic": [9.0, 5.0, 3.0, float("nan"), 7.0],
        }
    )
    assert choose_k(selection, "bic") == 2 and choose_k(selection, "aic") == 3
    assert [choose_k(selection, n) for n in (1, 2, 3, 5, 8)] == [1, 2, 3, 5, 5]
    assert choose_k(selection, 4) == 3  # 3 and 5 are as near: the smaller
    assert choose_k(selection, "4") == 3  # a number's text, as a page holds it
    # the estimator's own choice is the same rule: fit() keeps choose_k(criterion)
    X, _ = planted(n=40, t=20)
    flat, lengths = X.reshape(-1, 3), np.full(40, 20)
    for criterion in ("bic", "aic"):
        model = StateModel(k_range=(1, 4), n_restarts=1, criterion=criterion).fit(flat, lengths)
        fitted = model.selection_.set_index("k")[criterion]
        assert model.n_states_ == int(fitted.idxmin()) == model.choose_k()
        assert model.choose_k(criterion) == model.n_states_
    assert model.choose_k(9) == 4 and model.choose_k("1") == 1
    hmm = NeuronHMM(k_range=(1, 3), n_restarts=1).fit(X)
    assert hmm.choose_k("bic") == hmm.n_states_ and hmm.choose_k(7) == 3


# -- real traces ---------------------------------------------------------------------------------
SMALL = TrainConfig(
    dataset="moons",
    hidden_sizes=(8, 8),
    epochs=10,
    n_samples=300,
    probe_size=64,
    lr=0.03,
    keep_weights=True,
    drop_batches=False,
)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two runs of one configuration, seeds 0 and 1, with kept weights and per-step tables."""
    folder = tmp_path_factory.mktemp("seeds")
    paths = []
    for seed in (0, 1):
        run = train(SMALL.replace(seed=seed))
        assert run.trace is not None
        paths.append(save_trace(run.trace, folder / f"seed{seed}.nntrace"))
    return paths


def test_model_features_from_the_frame_equal_those_from_the_weights(seeds: list[Path]) -> None:
    trace = load_trace(seeds[0])
    kept = model_features(trace)
    assert kept.usable == list(kept.frame.columns) and not kept.notes
    frame_only = model_features(_without_kept_weights(trace))
    # the accuracies come from the history: usable, but not fitted by default
    assert frame_only.usable == [*FRAME_FEATURES, *CURVE_FEATURES]
    assert frame_only.default == list(FRAME_FEATURES)
    assert kept.default == list(MODEL_FEATURES)
    history = trace.history.set_index("epoch").reindex(trace.epochs)
    assert np.array_equal(kept.frame["val_acc"], history["val_acc"])
    assert "keep_weights=True" in frame_only.notes[0]
    assert np.allclose(
        frame_only.frame[list(FRAME_FEATURES)], kept.frame[list(FRAME_FEATURES)], rtol=2e-5
    )
    # spectral statistics exist only where the weights do: the final epoch
    assert frame_only.frame["spectral_norm"].notna().tolist() == [False] * 10 + [True]
    # against numpy on the weights themselves
    weights = trace.weights(trace.epochs[-1])
    mats = [weights[f"{name}.weight"] for name in ("hidden_1", "hidden_2", "output")]
    flat = np.concatenate([m.reshape(-1) for m in mats]).astype(np.float64)
    row = kept.frame.iloc[-1]
    assert row["l1"] == pytest.approx(np.abs(flat).sum(), rel=1e-6)
    assert row["l1_l2"] == pytest.approx(np.abs(flat).sum() / np.linalg.norm(flat), rel=1e-6)
    assert row["spectral_norm"] == pytest.approx(np.mean([np.linalg.norm(m, 2) for m in mats]))
    assert row["w_median"] == pytest.approx(np.median(flat), abs=1e-7)


def _without_kept_weights(trace):  # type: ignore[no-untyped-def]
    """The same trace as if recorded without ``keep_weights``."""
    trace.meta = {**trace.meta, "keep_weights": False}
    return trace


def test_the_training_map_joint_fit_over_two_seeds(seeds: list[Path]) -> None:
    traces = [load_trace(p) for p in seeds]
    steps: list[str] = []
    fitted = TrainingMap(k_range=(1, 4), n_permutations=9).fit(
        traces, names=["seed0", "seed1"], progress=lambda fraction, m: steps.append(m)
    )
    assert fitted.lengths_.tolist() == [11, 11]
    assert set(fitted.path_["run"]) == {"seed0", "seed1"}
    path = fitted.path_
    assert len(path) == 22 and set(fitted.feature_names_) <= set(model_features(traces[0]).usable)
    probabilities = path[[f"p_S{j}" for j in range(fitted.n_states_)]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.allclose(path["entropy"], entropy_bits(probabilities, axis=1))
    # transitions: exactly the moves between different states inside a run
    moves = set()
    for _, run in path.groupby("run"):
        states = run["state"].to_numpy()
        moves |= {(a, b) for a, b in itertools.pairwise(states) if a != b}
    assert set(zip(fitted.transitions_["source"], fitted.transitions_["target"])) == moves
    # detours: visited by one run of two, with the convergence epochs of both sides
    visits = path.groupby("state")["run"].nunique()
    assert sorted(fitted.detours_["state"]) == sorted(visits[visits == 1].index)
    for epoch in fitted.convergence_["convergence_epoch"]:
        assert epoch is None or 0 <= epoch <= 10
    assert len(fitted.descriptions_) == fitted.n_states_
    assert all(":" in text for text in fitted.descriptions_)
    assert fitted.time_test_ is not None and fitted.time_test_.n_permutations == 9
    assert any("model-level features" in m for m in steps)
    other = fitted.selection_[fitted.selection_["restarts"] > 0]["k"].max()
    fitted.select(int(other))
    assert fitted.n_states_ == other and fitted.path_["state"].max() < other


def test_per_step_sequences_come_from_the_step_table(seeds: list[Path]) -> None:
    trace = load_trace(seeds[0])
    features = step_features(trace)
    n_steps = trace.steps["step"].nunique()
    assert len(features.frame) == n_steps
    last = trace.steps[trace.steps["step"] == trace.steps["step"].max()]
    row = features.frame.iloc[-1]
    for _, layer_row in last.iterrows():
        assert row[f"{layer_row['layer']}.w_norm"] == pytest.approx(layer_row["w_norm"])
    fitted = TrainingMap(sequence="steps", k_range=(1, 3), n_restarts=2, n_permutations=0).fit(
        trace
    )
    assert len(fitted.path_) == n_steps and "step" in fitted.path_
    assert fitted.state_model_.engine_ == "hmmlearn"  # one long sequence


def test_a_trace_without_steps_or_long_enough_is_refused_with_a_reason(
    tiny_trace_file: Path,
) -> None:
    trace = load_trace(tiny_trace_file)
    with pytest.raises(ValueError, match="drop_batches=False"):
        TrainingMap(sequence="steps").fit(trace)
    epoch, definition = convergence_epoch(trace)
    assert epoch in trace.history["epoch"].tolist() and "val_acc" in definition


def test_the_neuron_model_on_a_real_trace(seeds: list[Path]) -> None:
    trace = load_trace(seeds[0])
    model = NeuronHMM(k_range=(2, 4)).fit(trace)
    hidden = [i for i in trace.layers if i.kind != "input"]
    # by global id, for every neuron of the trace (the Clusters page colours by these)
    assert model.states_.shape == (trace.n_neurons, len(trace.epochs))
    assert model.dominant_state_.shape == (trace.n_neurons,)
    inputs = np.asarray(trace.layer("input").ids)
    assert (model.states_[inputs] == -1).all() and (model.dominant_state_[inputs] == -1).all()
    assert model.neuron_ids_.tolist() == [i for info in hidden for i in info.ids]
    assert (model.states_[model.neuron_ids_] >= 0).all()
    assert set(model.layers_) == {i.name for i in hidden}
    assert 0 <= model.entropy_rate_ <= np.log2(model.n_states_)
    table = model.neuron_table()
    assert len(table) == len(model.neuron_ids_)
    unusual = model.unusual_neurons()
    assert set(unusual["neuron"]) <= set(model.neuron_ids_.tolist())
    assert len(model.descriptions_) == model.n_states_
    assert any("log scale" in note for note in model.notes_)
