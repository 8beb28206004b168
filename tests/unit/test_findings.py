"""The pages' findings (nn_tracing.views.findings) against planted truths: a trace written
through the writer with neurons planted dead from known epochs and a planted plateau; real
tests against chance (the Clusters page's null models, the training map's time shuffles, a
trail ablated against random neurons, a neuron's shuffled-label band) on planted structure and
on none. A claim is stated only when its test passed; otherwise it is "not distinguishable from
chance"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nn_tracing import TrainConfig, load_trace, save_trace, train
from nn_tracing.analysis import baselines as bl
from nn_tracing.analysis import embedding as emb
from nn_tracing.analysis.health import neuron_health
from nn_tracing.analysis.hmm import TrainingMap
from nn_tracing.analysis.hmm.features import ModelFeatures
from nn_tracing.analysis.hmm.structure import map_structure
from nn_tracing.analysis.profiles import selectivity_over_epochs
from nn_tracing.synthetic import synthetic_layers
from nn_tracing.trace import HISTORY_COLUMNS, METRICS, NetworkTrace
from nn_tracing.views import breadcrumbs as crumbs
from nn_tracing.views import findings as fd

CHANCE = "not distinguishable from chance"


def plain(text: str) -> str:
    """Markdown's escapes removed (what the reader sees)."""
    return text.replace("\\", "")


# -- a planted trace: dead neurons and a plateau ------------------------------------------------
#: (neuron id, epochs at which it is dead); layers input 3 (n_0-2), hidden_1 6 (n_3-8),
#: hidden_2 6 (n_9-14), output 2
PLANTED_DEAD = {
    9: range(6, 10),  # dead from E_6 on
    10: range(4, 10),  # dead from E_4 on
    11: range(2, 4),  # dead at E_2-E_3, then alive again: not dead at the end
    3: range(8, 10),  # dead from E_8 on, in hidden_1
}
PLATEAU_EPOCH = 6


def planted_trace(directory: Path) -> NetworkTrace:
    """10 recorded epochs of a 3-6-6-2 ReLU MLP; every hidden neuron active (act_max 1) but
    those of :data:`PLANTED_DEAD`; validation accuracy rising to 0.9 at epoch 6, then flat
    within ±0.004. Written with ``save_trace`` and read back."""
    layers = synthetic_layers([3, 6, 6, 2])
    n = sum(info.n_neurons for info in layers)
    column = {name: j for j, name in enumerate(METRICS)}
    metrics = {}
    for epoch in range(10):
        values = np.ones((n, len(METRICS)), dtype=np.float32)
        values[:3, : column["grad_norm"] + 1] = np.nan  # inputs have no weights
        for neuron, epochs in PLANTED_DEAD.items():
            if epoch in epochs:
                values[neuron, column["act_max"]] = 0.0
                values[neuron, column["act_mean"]] = 0.0
                values[neuron, column["act_active"]] = 0.0
        metrics[epoch] = values
    rng = np.random.default_rng(0)
    val_acc = np.concatenate(
        [np.linspace(0.5, 0.9, PLATEAU_EPOCH + 1), 0.9 + rng.uniform(-0.004, 0.004, 3)]
    )
    history = pd.DataFrame({"epoch": np.arange(10)})
    for name in HISTORY_COLUMNS:
        history[name] = val_acc if name in ("val_acc", "train_acc") else 1.0 - val_acc
    history["recorded"] = True
    meta = {"status": "complete", "model": {"name": "mlp"}, "dataset": {"name": "planted"}}
    trace = NetworkTrace(layers, metrics, meta, history=history)
    return load_trace(save_trace(trace, directory / "planted.nntrace"))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> NetworkTrace:
    return planted_trace(tmp_path_factory.mktemp("findings"))


def test_dead_since_and_the_plateau_of_a_planted_trace(planted: NetworkTrace) -> None:
    found = fd.overview_findings(planted, neuron_health(planted))
    dead, plateau = found[0], found[-1]
    # n_9, n_10 (hidden_2) and n_3 (hidden_1) are dead at E_9; n_11 came back
    assert dead.text.startswith("**3 of 12 hidden neurons are dead** at E_9")
    assert "all since E_8 (the first since E_4)" in dead.text
    assert "2 in L_hidden_2, 1 in L_hidden_1" in plain(dead.text)
    assert dead.status == "fact" and dead.page == "overview"
    assert plateau.text.startswith(f"**Validation accuracy plateaued at epoch {PLATEAU_EPOCH}**")


def test_dormancy_plugs_in_like_a_health_flag(planted: NetworkTrace) -> None:
    dormant = np.zeros((10, planted.n_neurons), dtype=bool)
    dormant[5:, 12] = True
    found = fd.overview_findings(
        planted, None, dormant=dormant, dormant_definition="Dormant: τ-dormant."
    )
    text = plain(found[0].text)
    assert text.startswith("**1 of 14 hidden and output neurons is dormant** at E_9, since E_5")
    assert text.endswith("; all in L_hidden_2. Dormant: τ-dormant.")


def test_counts_say_of_what() -> None:
    layers = synthetic_layers([3, 6, 6, 2])
    trace = NetworkTrace(layers, {0: np.zeros((17, len(METRICS)), np.float32)}, {})
    hidden = np.zeros(17, dtype=bool)
    hidden[3:15] = True
    assert fd.neuron_population(trace, hidden) == "hidden neurons"
    hidden[15:] = True
    assert fd.neuron_population(trace, hidden) == "hidden and output neurons"
    only = np.zeros(17, dtype=bool)
    only[9:15] = True
    assert plain(fd.neuron_population(trace, only)) == "neurons of L_hidden_2"


# -- Clusters: the test against chance ---------------------------------------------------------
def features_of(X: np.ndarray) -> emb.NeuronFeatures:
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
        spec=emb.FeatureSpec("metrics", epoch=1, layers=("hidden_1",)),
    )


def _chance_test(X: np.ndarray) -> bl.ChanceTest:
    return bl.ChanceTest(19, nulls=("shuffled", "gaussian"), random_state=0).fit(
        features_of(X), emb.NeuronClusterer("kmeans", n_clusters=3)
    )


def test_planted_clusters_are_a_finding_and_noise_is_chance() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5.0, size=(3, 6))
    groups = np.concatenate([c + rng.normal(size=(30, 6)) for c in centres])
    (passed,) = fd.clusters_findings(_chance_test(groups))
    assert passed.status == "passed" and passed.text.startswith("**Clusters beyond chance.**")
    assert passed.p_value == pytest.approx(1 / 20)
    noise = np.random.default_rng(3).normal(size=(80, 4))
    (chance,) = fd.clusters_findings(_chance_test(noise))
    assert chance.status == "chance" and CHANCE in chance.text
    (untested,) = fd.clusters_findings(None)
    assert untested.status == "untested" and "to know" in untested.text


# -- Dynamics: the training map's time shuffles -----------------------------------------------
def model_features(values: np.ndarray) -> ModelFeatures:
    """Planted model-level features of one run, one row per epoch."""
    epochs = pd.Index(np.arange(len(values)), name="epoch")
    frame = pd.DataFrame(values, columns=["a", "b"], index=epochs)
    descriptors = pd.DataFrame(
        {"weight_norm": np.linspace(1, 2, len(values)), "loss": np.linspace(1, 0.1, len(values))},
        index=epochs,
    )
    return ModelFeatures(frame, ["a", "b"], "planted", [], descriptors)


def _fit_map(values: np.ndarray) -> TrainingMap:
    return TrainingMap(k_range=(1, 4), n_restarts=2, n_permutations=19, random_state=0).fit(
        model_features(values)
    )


def test_planted_phases_are_a_finding_and_shuffled_noise_is_chance(planted) -> None:
    rng = np.random.default_rng(0)
    phases = np.repeat([[0.0, 0.0], [4.0, 0.0], [4.0, 4.0]], 20, axis=0)
    fitted = _fit_map(phases + 0.3 * rng.normal(size=phases.shape))
    found, untested = fd.dynamics_findings(planted, fitted, None)
    assert fitted.time_test_.p_value <= 0.05
    assert found.status == "passed"
    assert found.text.startswith(f"**Training went through {fitted.states_.shape[0]} phases**")
    assert "temporal structure beyond chance (p = 0.05, 19 time shuffles)" in found.text
    assert untested.status == "untested" and "to know" in untested.text
    noise = _fit_map(np.random.default_rng(5).normal(size=(60, 2)))
    found, _ = fd.dynamics_findings(planted, noise, None)
    assert noise.time_test_.p_value > 0.05
    assert found.status == "chance" and CHANCE in found.text


def test_order_beyond_chance_on_a_smooth_drift_is_not_called_phases(planted) -> None:
    """A smooth drift beats shuffled time (its order matters) but its states only slice it
    into blocks: the finding must agree with the page's "little structure" verdict."""
    drift = np.linspace(0, 4, 60)[:, None] * np.array([[1.0, 0.5]])
    fitted = _fit_map(drift + 0.05 * np.random.default_rng(1).normal(size=drift.shape))
    structure = map_structure(fitted, alpha=0.05)
    assert fitted.time_test_.p_value <= 0.05 and structure.little
    (found, _) = fd.dynamics_findings(planted, fitted, None)
    assert found.status == "chance"
    assert "phases**" not in found.text and "are not phases" in found.text
    assert all(reason.split(":")[0] in plain(found.text) for reason in structure.reasons)


# -- Breadcrumbs and Neurons: a network trained on two planted features -----------------------
@pytest.fixture(scope="module")
def feature_trace(tmp_path_factory: pytest.TempPathFactory) -> NetworkTrace:
    """A trained MLP on 6 features whose class is sign(x0 + x1): features 2–5 are noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["label"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    path = tmp_path_factory.mktemp("planted-csv") / "planted.csv"
    frame.to_csv(path, index=False)
    config = TrainConfig(
        dataset="csv",
        csv_path=str(path),
        label_column="label",
        hidden_sizes=(8, 8),
        epochs=10,
        probe_size=150,
        seed=0,
    )
    run = train(config)
    assert run.trace is not None
    return run.trace


def test_the_trail_to_the_planted_features_is_a_finding(feature_trace: NetworkTrace) -> None:
    target = crumbs.Target(feature_trace.epochs[-1], 1, None, "grad_x_act", "logit", 2)
    trail = crumbs.trail(feature_trace, target, crumbs.attribution(feature_trace, target))
    table = crumbs.check_trail(feature_trace, target, trail)
    found = fd.breadcrumbs_findings(feature_trace, ([*target.explained(), target.k], table))
    passed = [f for f in found if f.status == "passed"]
    failed = [f for f in found if f.status == "chance"]
    significant = table[table["p_value"] <= 0.05]
    assert "input" in set(significant["layer"])  # the two planted features carry the class
    (finding,) = passed
    assert plain(finding.text).startswith("**The top 2 input features")
    assert "carry class 1**" in finding.text
    worst = significant.loc[significant["accuracy_trail"].idxmin()]
    assert f"to {worst['accuracy_trail']:.2f}" in finding.text
    for layer in table.loc[table["p_value"] > 0.05, "layer"]:
        assert any(f"L_{layer}" in plain(f.text) and CHANCE in f.text for f in failed)


def test_a_trail_no_better_than_random_is_chance(feature_trace: NetworkTrace) -> None:
    table = pd.DataFrame(
        {
            "layer": ["hidden_1"],
            "k": [2],
            "p_value": [0.4],
            "accuracy_trail": [0.9],
            "accuracy_before": [0.95],
            "accuracy_random_mean": [0.9],
        }
    )
    (finding,) = fd.breadcrumbs_findings(
        feature_trace, ([10, 0, None, "grad_x_act", "logit", 2], table)
    )
    assert finding.status == "chance" and CHANCE in finding.text and "p = 0.4" in finding.text
    (untested,) = fd.breadcrumbs_findings(feature_trace, None)
    assert untested.status == "untested"


def test_selectivity_is_stated_only_when_it_beats_shuffled_labels(
    feature_trace: NetworkTrace,
) -> None:
    last = feature_trace.epochs[-1]
    column = feature_trace.frame["selectivity"].xs(last, level="epoch")
    hidden = column[column.index.get_level_values("layer") != "input"].dropna()
    hidden = hidden[hidden.index.get_level_values("layer") != "output"]
    # untested: the most selective hidden neuron, with where to test it
    (untested,) = fd.neurons_findings(feature_trace, None)
    top = int(hidden.idxmax()[1])
    assert untested.status == "untested" and f"n_{top} " in untested.text
    assert untested.neuron == feature_trace.signature(last, top)
    statuses = set()
    for neuron in (top, int(hidden.idxmin()[1])):
        table = selectivity_over_epochs(
            feature_trace, neuron, n_permutations=99, max_epochs=2, random_state=0
        )
        (finding,) = fd.neurons_findings(feature_trace, None, (neuron, table))
        p = float(table[table["tested"]].iloc[-1]["p_value"])
        expected = "passed" if p <= 0.05 else "chance"
        assert finding.status == expected
        assert (CHANCE in finding.text) == (expected == "chance")
        statuses.add(expected)
    assert "passed" in statuses  # the most selective neuron of a trained network beats chance


def test_the_overview_list_puts_tested_findings_first() -> None:
    def make(status: str, p: float | None) -> fd.Finding:
        return fd.Finding("clusters", "s", status, status, p)

    by_page = {
        "overview": [make("fact", None)],
        "clusters": [make("untested", None), make("passed", 0.02), make("passed", 0.001)],
        "dynamics": [make("chance", 0.4)],
    }
    ranked = [(f.status, f.p_value) for f in fd.strongest(by_page, n=4)]
    assert ranked == [("passed", 0.001), ("passed", 0.02), ("chance", 0.4), ("fact", None)]
