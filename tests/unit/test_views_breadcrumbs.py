"""The Breadcrumbs page's builders (nn_tracing/views/breadcrumbs.py), on a tiny trace made by
real training: names and their fallbacks, what is explained, the trail's table and sentences,
metrics and sentences of ablations, interventions and prunings, and the values the
intervention controls start from — each checked against the trace or the analysis itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from nn_tracing import load_trace
from nn_tracing.analysis.attribution import attribute, breadcrumb_trail
from nn_tracing.analysis.intervention import Intervention, Pruning, ablate, intervene
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.trace import NetworkTrace
from nn_tracing.views import breadcrumbs as views
from nn_tracing.views.breadcrumbs import FINAL, Target


@pytest.fixture
def trace(tiny_trace_file: Path) -> NetworkTrace:
    return load_trace(tiny_trace_file)  # a fresh object: tests may change its meta


def test_names_come_from_the_dataset_or_fall_back(trace: NetworkTrace) -> None:
    trace.meta["dataset"]["class_names"] = ["left", "right"]
    trace.meta["dataset"]["feature_names"] = ["a", "b"]
    assert views.graph_labels(trace) == {0: "a", 1: "b", 18: "class left", 19: "class right"}
    assert views.class_phrase(trace, 1) == "class right"
    trace.meta["dataset"]["class_names"] = ["only one"]  # wrong length: not used
    trace.meta["dataset"]["feature_names"] = None
    assert views.graph_labels(trace) == {0: "x0", 1: "x1", 18: "class 0", 19: "class 1"}
    trace.meta["dataset"] = "not a dict"
    assert views.class_phrase(trace, 0) == "class 0"  # not "class class 0"


def test_neurons_and_signatures_at_a_model_state(trace: NetworkTrace) -> None:
    assert views.model_state(trace, FINAL) == trace.epochs[-1] == 4
    assert views.model_state(trace, 2) == 2
    assert views.signature(trace, FINAL, 12) == "E_4/L_hidden_2/n_12"
    assert views.signature(trace, 1, 3) == "E_1/L_hidden_1/n_3"
    assert views.neuron_options(trace, with_inputs=False) == list(range(2, 18))
    assert views.neuron_options(trace, with_inputs=True) == list(range(0, 18))
    assert [info.name for info in views.hidden_layers(trace)] == ["hidden_1", "hidden_2"]
    assert [info.name for info in views.weight_layers(trace)] == ["hidden_1", "hidden_2", "output"]


def test_chance_is_the_share_of_the_commonest_class() -> None:
    assert views.chance_accuracy(np.array([0, 1, 1, 2, 1])) == pytest.approx(3 / 5)


def test_a_trace_without_probe_or_weights_says_why(trace: NetworkTrace) -> None:
    assert views.model_problem(trace) is None
    trace.final_weights = {}
    assert views.model_problem(trace) == "no-weights"
    trace.probe = None
    assert views.model_problem(trace) == "no-probe"


def test_the_target_says_what_is_explained(trace: NetworkTrace) -> None:
    trace.meta["dataset"]["class_names"] = ["left", "right"]
    by_class = Target(4, 1, None, "grad_x_act", "logit", 4)
    assert by_class.describe(trace, 30) == (
        "Explaining the logit of class right over its 30 probe samples at E_4, "
        "by gradient × activation."
    )
    predicted = Target(FINAL, None, 7, "conductance", "margin", 4)
    assert predicted.describe(trace, 1).startswith(
        "Explaining the logit margin (the logit minus the mean of the other logits) of its "
        "predicted class for probe sample 7 at the final weights, by conductance."
    )
    assert predicted.explained() == [FINAL, None, 7, "conductance", "margin"]


def test_the_trail_table_names_input_features_and_leaves_out_the_output(
    trace: NetworkTrace,
) -> None:
    target = Target(FINAL, 1, None, "grad_x_act", "logit", 3)
    model = NeuronModel.from_trace(trace)
    explained = views.attribution(trace, target)
    reference = attribute(trace, target_class=1, model=model)
    np.testing.assert_allclose(explained.frame()["score"], reference.frame()["score"], rtol=1e-6)
    path = views.trail(trace, target, explained)
    expected = breadcrumb_trail(model, reference, trace.probe[0], k=3).nodes
    pd.testing.assert_frame_equal(path.nodes, expected, rtol=1e-5)
    table = views.trail_table(trace, path)
    assert list(table.columns) == [
        "signature", "layer", "rank", "score", "share", "activation", "name", "value",
    ]  # fmt: skip
    dataset = trace.meta["dataset"]
    assert (table["layer"] == "input").any()
    for row in table[table["layer"] == "input"].itertuples():
        j = int(row.signature.rsplit("_", 1)[-1])  # the input's id is its column
        own = row.activation * dataset["feature_scale"][j] + dataset["feature_mean"][j]
        assert row.value == pytest.approx(own, rel=1e-6, abs=1e-9)
    assert table.loc[table["layer"] != "input", "value"].isna().all()
    assert "output" not in set(table["layer"])
    inputs = table["layer"] == "input"
    assert set(table.loc[inputs, "name"]) <= {"x0", "x1"}
    assert (table.loc[~inputs, "name"] == "").all()
    not_output = expected.loc[expected["layer"] != "output", "neuron"]
    assert views.trail_neurons(path) == tuple(int(n) for n in not_output)
    hidden = expected.loc[expected["layer"].str.startswith("hidden"), "neuron"]
    assert views.trail_hidden_neurons(trace, path) == [int(n) for n in hidden]
    assert len(hidden) == 6  # three of each hidden layer


def test_trail_check_sentences_skip_a_whole_input_layer_and_give_the_verdict(
    trace: NetworkTrace,
) -> None:
    row = {
        "trail_drop": 0.5, "random_drop_mean": 0.1, "random_drop_p95": 0.2, "accuracy_before": 0.9,
        "accuracy_trail": 0.4, "accuracy_random_mean": 0.8,
    }  # fmt: skip
    check = pd.DataFrame(
        [
            {"layer": "hidden_2", "k": 3, "p_value": 0.01, **row},
            {"layer": "hidden_1", "k": 3, "p_value": 0.5, **row},
            {"layer": "input", "k": 2, "p_value": 0.01, **row},  # both inputs: nothing to test
        ]
    )
    lines = views.trail_check_sentences(trace, check)
    assert [layer for layer, _ in lines] == ["hidden_2", "hidden_1"]
    assert lines[0][1].startswith("zeroing its 3 trail neurons lowers the score by 0.5, more than")
    assert "not clearly more than 50 random sets of 3" in lines[1][1]
    assert "p = 0.500" in lines[1][1] and "0.90 → 0.40 (random: 0.80)" in lines[1][1]
    # a negative drop is a rise, said without a double sign
    risen = views.trail_check_sentences(trace, check.assign(trail_drop=-1.39))
    assert "trail neurons raises the score by 1.39," in risen[0][1]
    assert "-1.39" not in risen[0][1] and "by -" not in risen[0][1]


def test_ablation_and_intervention_metrics_say_what_changed(trace: NetworkTrace) -> None:
    x, y = trace.probe
    model = NeuronModel.from_trace(trace)
    result = views.ablation(trace, FINAL, (10, 11, 12), "zero")
    reference = ablate(model, x, y, [10, 11, 12])
    np.testing.assert_allclose(result.logits_after, reference.logits_after)
    predicted_after = reference.logits_after.argmax(1)
    accuracy_after = float((predicted_after == np.asarray(y)).mean())
    accuracy_before = float((reference.logits_before.argmax(1) == np.asarray(y)).mean())
    flips = int((reference.logits_before.argmax(1) != predicted_after).sum())
    metrics = views.ablation_metrics(result, "zero")
    assert [(m.label, m.value) for m in metrics] == [
        ("Probe accuracy", f"{accuracy_after:.3f}"),
        ("Predictions flipped", f"{flips} of {len(y)}"),
        ("Neurons ablated", "3"),
    ]
    assert (
        metrics[0].delta == f"{accuracy_after - accuracy_before:+.3f} (from {accuracy_before:.3f})"
    )
    assert metrics[2].help == "replaced by zero"
    change = Intervention("clamp", 5.0, neuron=12)
    done = views.intervention(trace, FINAL, change, resolution=10)
    assert done.boundary is not None and done.boundary.before.shape == (10 * 10,)
    np.testing.assert_allclose(done.logits_after, intervene(model, x, y, change).logits_after)
    labels = [m.label for m in views.intervention_metrics(done)]
    assert labels == ["Probe accuracy", "Predictions flipped", "Plane whose class changed"]
    _check_boundary_in_dataset_units(trace, done)
    assert views.confusion_chart(done.comparison(["a", "b"]), ["a", "b"]) is not None


def test_pruning_metrics_and_sentence(trace: NetworkTrace) -> None:
    x, y = trace.probe
    pruning = Pruning({"hidden_1": 3, "hidden_2": 2}, n_repeats=8).fit(
        NeuronModel.from_trace(trace), x, y
    )
    metrics = {m.label: m for m in views.pruning_metrics(pruning)}
    parameters = (2 * 5 + 5) + (5 * 6 + 6) + (6 * 2 + 2)
    before = (2 * 8 + 8) + (8 * 8 + 8) + (8 * 2 + 2)
    assert metrics["Parameters"].value == f"{parameters:,}"
    assert (
        metrics["Parameters"].delta
        == f"-{before - parameters:,} ({(before - parameters) / before:.0%} saved)"
    )
    assert metrics["Parameters"].delta_color == "off"
    assert (
        metrics["Hidden widths"].value == "5 · 6"
        and metrics["Hidden widths"].help == "before: 8 · 8"
    )
    random = pruning.random_accuracy_
    assert metrics["Random pruning (same sizes)"].value == f"{sum(random) / len(random):.3f}"
    share = sum(a >= pruning.accuracy_after_ for a in random) / len(random)
    sentence = views.pruning_sentence(pruning)
    assert f"{share:.0%} of 8 random prunings" in sentence
    assert f"keeps **{pruning.accuracy_after_:.3f}** probe accuracy" in sentence
    removed = views.removed_signatures(trace, FINAL, pruning)
    assert len(removed) == 5 and all(s.startswith("E_4/L_hidden_") for s in removed)
    chart = views.pruning_chart(trace, pruning, {"hidden_1": 3, "hidden_2": 2}).to_dict()
    assert len(chart["layer"]) == 4  # no diamond: the layers lost different k
    uniform = Pruning(2, n_repeats=3).fit(NeuronModel.from_trace(trace), x, y)
    assert (
        len(views.pruning_chart(trace, uniform, {"hidden_1": 2, "hidden_2": 2}).to_dict()["layer"])
        == 5
    )
    assert views.default_prune_k(trace.layer("hidden_1")) == 2


def test_intervention_controls_start_from_the_trace(trace: NetworkTrace) -> None:
    act_max = trace.frame.loc[(4, "hidden_2", 12), "act_max"]  # the probe statistics
    default, high, origin = views.clamp_default(trace, FINAL, 12, "clamp")
    assert high == pytest.approx(float(act_max), rel=1e-5)
    # a round value (two significant digits of twice the max), and where it comes from
    assert default == float(f"{2 * high:.2g}")
    assert len(f"{default:g}".replace(".", "").strip("0")) <= 2
    assert origin == (
        f"twice the neuron's largest activation on the probe at E_4 ({high:.3g}), rounded"
    )
    assert views.clamp_default(trace, FINAL, 12, "scale")[:2] == (2.0, high)
    layer = trace.layer("hidden_2")
    weights = torch.as_tensor(trace.final_weights["hidden_2.weight"])
    assert views.weight_value(trace, FINAL, layer, 1, 4) == pytest.approx(float(weights[1, 4]))
    assert views.column_labels(trace, FINAL, layer)[4] == "E_4/L_hidden_1/n_6"
    first = trace.layer("hidden_1")
    assert views.column_labels(trace, FINAL, first) == ["E_4/L_input/n_0", "E_4/L_input/n_1"]


def _check_boundary_in_dataset_units(trace: NetworkTrace, done: Any) -> None:
    """The decision boundary is drawn in the dataset's own units, like the page's other inputs:
    the probe points are ``x * feature_scale + feature_mean`` (the trace's own statistics),
    the plane the same map of the grid, the standardised values on hover."""
    dataset = trace.meta["dataset"]
    mean = np.asarray(dataset["feature_mean"], dtype=np.float64)
    scale = np.asarray(dataset["feature_scale"], dtype=np.float64)
    assert np.any(scale != 1.0)  # the check would be empty on unscaled inputs
    spec = views.boundary_chart(trace, done).to_dict()
    datasets = list(spec["datasets"].values())
    points = next(rows for rows in datasets if rows and "x_std" in rows[0])
    x_std = np.array([[r["x_std"], r["y_std"]] for r in points])
    shown = np.array([[r["x"], r["y"]] for r in points])
    np.testing.assert_allclose(shown, x_std * scale + mean, rtol=1e-5, atol=1e-6)  # float32 probe
    cells = next(rows for rows in datasets if rows and "x2" in rows[0])
    centres = np.array([(r["x"] + r["x2"]) / 2 for r in cells])
    expected = np.asarray(done.boundary.xs, dtype=np.float64) * scale[0] + mean[0]
    np.testing.assert_allclose(np.unique(centres.round(5)), np.unique(expected.round(5)), rtol=1e-5)
    titles = json.dumps(spec)
    assert "(standardised)" in titles  # on hover only
    axis_titles = [p["layer"][0]["encoding"]["x"]["title"] for p in spec["hconcat"]]
    assert all("standardised" not in t for t in axis_titles)
