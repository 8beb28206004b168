"""The Dynamics page's builders (nn_tracing/views/dynamics.py), without Streamlit: the
parameters each analysis runs with, the choice of k, the figures of the neuron-level model,
the neuron tables and decision entropy at one epoch — against references computed here from
the fitted models' own arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nn_tracing import NetworkTrace, load_trace
from nn_tracing.analysis.entropy import DecisionEntropy
from nn_tracing.analysis.hmm import NEURON_FEATURES, NeuronHMM
from nn_tracing.views import dynamics as view


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> NetworkTrace:
    return load_trace(tiny_trace_file)


@pytest.fixture(scope="module")
def model(trace: NetworkTrace) -> NeuronHMM:
    return view.NeuronParams.default(trace).estimator().fit(trace)


@pytest.fixture(scope="module")
def entropy(trace: NetworkTrace) -> DecisionEntropy:
    return view.EntropyParams(n_permutations=20).estimator().fit(trace)


def _layer_of(trace: NetworkTrace, neuron: int) -> str:
    """The layer of a global neuron id, from the inclusive ranges of ``neural_index``."""
    return next(name for name, (a, b) in trace.neural_index.items() if a <= neuron <= b)


def test_the_parameters_make_the_estimators_the_page_runs(trace: NetworkTrace) -> None:
    params = view.NeuronParams.default(trace)
    assert params.layers == ("hidden_1", "hidden_2", "output")  # every layer but the inputs
    assert view.hidden_layers(trace) == list(params.layers)
    assert params.features == NEURON_FEATURES and params.k == "bic"
    assert params.n_neurons(trace) == sum(
        b - a + 1 for a, b in list(trace.neural_index.values())[1:]
    )
    hmm = params.estimator()
    assert (hmm.layers, hmm.standardize, hmm.random_state) == (list(params.layers), "layer", 0)
    assert params.fit_params() == {
        "random_state": 0,
        "features": list(NEURON_FEATURES),
        "layers": ["hidden_1", "hidden_2", "output"],
        "standardize": "layer",
        "max_neurons": 20_000,
    }
    fitted_map = view.MapParams(("loss",), k="aic", restarts=2, n_permutations=49, random_state=4)
    training_map = fitted_map.estimator()
    assert (training_map.features, training_map.n_restarts, training_map.n_permutations) == (
        ["loss"],
        2,
        49,
    )
    assert training_map.random_state == 4 and fitted_map.criterion == "aic"
    assert "k" not in fitted_map.fit_params()  # every k is fitted: k only picks one
    entropy = view.EntropyParams(label="true", alpha=0.1).estimator()
    assert (entropy.label, entropy.alpha, entropy.n_bins) == ("true", 0.1, 8)


def test_a_choice_of_k_is_a_copy_with_that_many_states(model: NeuronHMM) -> None:
    chosen = model.n_states_
    other = next(k for k in model.state_model_.models_ if k != chosen)
    assert model.choose_k("bic") == chosen
    assert model.choose_k(str(other)) == other  # the page's choices are text
    copy = view.with_states(model, other)
    assert copy.n_states_ == other and copy.states_.max() < other
    assert model.n_states_ == chosen  # the stored model is left alone
    assert [view.k_label(c) for c in ("bic", "aic", "3")] == ["by BIC", "by AIC", "3 states"]
    assert "1" in view.K_CHOICES and "1" not in view.NEURON_K_CHOICES


def test_the_neuron_summary_is_the_mean_over_modelled_neurons(model: NeuronHMM) -> None:
    summary = view.neuron_summary(model)
    paths = np.asarray(model.paths_)
    k = model.n_states_
    switches = (np.diff(paths, axis=1) != 0).sum(axis=1)
    shares = np.stack([(paths == j).mean(axis=1) for j in range(k)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropies = -np.where(shares > 0, shares * np.log2(shares), 0.0).sum(axis=1)
    assert summary.n_states == k
    assert summary.switches == pytest.approx(switches.mean())
    assert summary.occupancy_entropy == pytest.approx(entropies.mean())
    assert summary.max_entropy_rate == pytest.approx(np.log2(k))
    assert 0 <= summary.entropy_rate <= summary.max_entropy_rate + 1e-9


def test_neuron_tables_carry_each_rows_signature(trace: NetworkTrace, model: NeuronHMM) -> None:
    last = trace.epochs[-1]
    every = view.every_neuron(trace, model)
    table = model.neuron_table()
    assert list(every.frame.columns) == [
        "signature",
        *[c for c in table.columns if c not in ("neuron", "layer")],
    ]
    assert len(every.signatures) == len(table) == len(model.neuron_ids_)
    for signature, neuron in zip(every.signatures, table["neuron"], strict=True):
        assert signature == f"E_{last}/L_{_layer_of(trace, int(neuron))}/n_{int(neuron)}"
    assert every.frame["signature"].tolist() == every.signatures
    unusual = view.unusual_neurons(trace, model)
    assert "neuron" not in unusual.frame.columns
    assert len(unusual.signatures) == len(model.unusual_neurons())


def test_curves_offer_validation_accuracy_only_where_it_was_recorded() -> None:
    path = pd.DataFrame({"loss": [1.0, 0.5], "val_acc": [np.nan, np.nan]})
    assert list(view.training_curves(path)) == ["loss", "weight_norm"]
    path["val_acc"] = [0.5, 0.9]
    assert view.training_curves(path)["val_acc"] == "validation accuracy"
    assert view.seed_stem("moons-seed3") == "moons" and view.seed_stem(None) == "run"


def test_decision_entropy_at_one_epoch(trace: NetworkTrace, entropy: DecisionEntropy) -> None:
    epoch = trace.epochs[2]
    row = entropy.epochs_.index(epoch)
    table = view.entropy_layer_table(entropy.layer_summary(), entropy.label, epoch)
    assert list(table.columns) == [
        "layer",
        "median H(A)",
        "median H(A | predicted)",
        "median I(A; predicted)",
        "null 95th percentile",
        "significant",
        "neurons",
    ]
    for _, line in table.iterrows():
        in_layer = np.asarray(entropy.layers_) == line["layer"]
        assert line["neurons"] == in_layer.sum()
        assert line["median I(A; predicted)"] == pytest.approx(
            np.median(entropy.mi_predicted_[row, in_layer])
        )
        assert line["significant"] == (entropy.qvalues_[row, in_layer] <= entropy.alpha).sum()
    ranking = view.entropy_ranking(trace, entropy, epoch)
    assert ranking.signatures[0].startswith(f"E_{epoch}/L_")
    assert len(ranking.frame) == len(entropy.neuron_ids_)
    n_significant = int((entropy.qvalues_[row] <= entropy.alpha).sum())
    caption = view.significance_caption(entropy, epoch)
    assert caption.startswith(f"{n_significant} of {len(entropy.neuron_ids_)} neurons")
    assert f"at E_{epoch} (I(A; predicted)" in caption


def test_the_neuron_model_says_what_it_loads(tmp_path):
    from nn_tracing import load_trace
    from nn_tracing.synthetic import write_synthetic_run
    from nn_tracing.views.dynamics import NeuronParams

    trace = load_trace(write_synthetic_run(tmp_path / "run", [4, 300, 200, 3], 5))
    params = NeuronParams(layers=("hidden_1", "hidden_2"), features=("act_mean", "w_norm"))
    mib = 500 * 5 * 2 * 8 / 2**20
    assert params.load_text(trace).startswith(
        f"Loads 500 neurons × 5 epochs × 2 features ({mib:,.1f} MiB as float64)"
    )


@pytest.fixture(scope="module")
def smooth_run() -> NetworkTrace:
    """A real run of 40 epochs: its weight norm grows smoothly, so BIC keeps taking more
    states until the range runs out."""
    from nn_tracing import train
    from tests.conftest import TINY_CONFIG

    run = train(TINY_CONFIG.replace(epochs=40))
    assert run.trace is not None
    return run.trace


def test_bic_at_the_largest_k_tried_says_so_and_offers_the_next_range(
    smooth_run: NetworkTrace,
) -> None:
    features = [view.sequence_features(smooth_run, "epochs")]
    narrow = view.MapParams(("l2",), restarts=2, k_max=2)
    assert narrow.estimator().k_range == (1, 2) and narrow.fit_params()["k_max"] == 2
    fitted = narrow.fit(features, ["smooth"])
    selection = fitted.selection_
    # the reference: BIC's own minimum over the fitted k is the largest k tried
    assert int(selection.loc[selection["bic"].idxmin(), "k"]) == 2 == fitted.n_states_
    boundary = view.k_boundary(selection, "bic", narrow.k_max)
    assert boundary is not None and boundary.k == 2 and boundary.next_k_max == 4
    assert boundary.sentence.startswith(
        "BIC chose k = 2, the largest k tried (1–2): the choice sits at the boundary"
    )
    assert boundary.sentence.endswith("Fit k up to 4 to see whether BIC turns back up.")
    # the next range: BIC turns back up inside it, and nothing is said
    wider = view.MapParams(("l2",), restarts=2, k_max=boundary.next_k_max)
    refit = wider.fit(features, ["smooth"])
    chosen = int(refit.selection_.loc[refit.selection_["bic"].idxmin(), "k"])
    assert chosen < 4 and view.k_boundary(refit.selection_, "bic", 4) is None
    assert "k_max" not in view.MapParams(("l2",)).fit_params()  # the default keeps old keys


def test_no_further_range_at_the_ceiling_or_when_larger_k_were_skipped() -> None:
    selection = pd.DataFrame(
        {
            "k": [1, 2, 3, 4],
            "restarts": [2, 2, 2, 0],
            "bic": [10.0, 8.0, 5.0, np.nan],
            "aic": [10.0, 8.0, 5.0, np.nan],
        }
    )
    skipped = view.k_boundary(selection, "bic", 4)
    assert skipped is not None and skipped.next_k_max is None
    assert "Larger k (4–4) need more data." in skipped.sentence
    ks = np.arange(1, view.MAX_K + 1)
    every = pd.DataFrame({"k": ks, "restarts": 2, "bic": -ks * 1.0, "aic": -ks * 1.0})
    ceiling = view.k_boundary(every, "aic", view.MAX_K)
    assert ceiling is not None and ceiling.next_k_max is None
    assert ceiling.sentence.startswith(f"AIC chose k = {view.MAX_K}")
    assert f"The page fits at most k = {view.MAX_K}." in ceiling.sentence
    inside = selection.assign(bic=[10.0, 4.0, 5.0, np.nan])
    assert view.k_boundary(inside, "bic", 4) is None


def test_the_phase_boundaries_table_names_each_change_and_its_jump() -> None:
    from nn_tracing.analysis.hmm import read_phases
    from nn_tracing.viz.dynamics import phase_strip_chart

    epochs = [0, 10, 20, 30, 40, 50]
    path = pd.DataFrame({"epoch": epochs, "state": [0, 0, 1, 1, 2, 2], "weight_norm": 1.0})
    curves = pd.DataFrame(
        {
            "epoch": epochs,
            "train_acc": [0.1, 0.8, 1.0, 1.0, 1.0, 1.0],
            "val_acc": [0.1, 0.1, 0.1, 0.1, 0.3, 0.7],
        }
    )
    reading = read_phases(path, curves, chance=0.1)
    table = view.phase_boundary_table(reading)
    # memorisation E_0-10 | plateau E_20-30 | transition E_40-50; the jumps by hand: training
    # +0.70 at E_10 (over E_0-30), validation +0.40 at E_50 (over E_20-50)
    assert table.to_dict("list") == {
        "from": ["E_10", "E_30"],
        "to": ["E_20", "E_40"],
        "phases": ["memorisation → plateau", "plateau → transition"],
        "nearest jump": ["training accuracy +0.700 at E_10", "validation accuracy +0.400 at E_50"],
        "epochs away": [10, 10],
    }
    strip = phase_strip_chart(reading.phases).to_dict()
    rows = strip["datasets"][next(iter(strip["datasets"]))]
    assert [(r["phase"], r["first"], r["end"]) for r in rows] == [
        ("memorisation", 0, 20),
        ("plateau", 20, 40),
        ("transition", 40, 50),
    ]
