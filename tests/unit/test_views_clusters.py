"""The Clusters page's pure builders (``nn_tracing.views.clusters``), without Streamlit.

Values are checked against independent lookups: metrics against ``trace.frame`` row by row,
health words and selections against plain Python loops, null tables against the test's own
results.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import nn_tracing as nt
from nn_tracing.analysis import baselines as bl
from nn_tracing.analysis import embedding as emb
from nn_tracing.analysis.health import FLAG_TITLES, FLAGS, neuron_health
from nn_tracing.views import clusters as views
from nn_tracing.views import through_time
from nn_tracing.viz import clusters as cviz


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    return nt.load_trace(tiny_trace_file)


@pytest.fixture(scope="module")
def features(trace: nt.NetworkTrace) -> emb.NeuronFeatures:
    spec = emb.FeatureSpec("activations", epoch=trace.epochs[-1], layers=("hidden_1", "hidden_2"))
    return emb.neuron_features(trace, spec)


def _frame_value(trace: nt.NetworkTrace, epoch: int, layer: str, neuron: int, metric: str) -> float:
    return float(trace.frame.loc[(epoch, layer, neuron), metric])


# -- point frames and colours ------------------------------------------------------------------
def test_a_point_frame_carries_each_points_signature_and_its_metrics_at_its_own_epoch(trace):
    ids = np.array([2, 3, 12, 2])
    layers = np.array(["hidden_1", "hidden_1", "hidden_2", "hidden_1"], dtype=object)
    epochs = np.array([0, 4, 2, 3])
    coords = np.arange(8, dtype=float).reshape(4, 2)
    frame = views.point_frame(trace, ids, layers, epochs, coords, np.array([0, -1, 1, 0]))
    assert list(frame["signature"]) == [
        "E_0/L_hidden_1/n_2",
        "E_4/L_hidden_1/n_3",
        "E_2/L_hidden_2/n_12",
        "E_3/L_hidden_1/n_2",
    ]
    assert list(frame["cluster"]) == [emb.cluster_name(c) for c in (0, -1, 1, 0)]
    assert list(frame["x"]) == [0, 2, 4, 6] and list(frame["y"]) == [1, 3, 5, 7]
    for metric in cviz.TOOLTIP_METRICS:
        expected = [
            _frame_value(trace, e, lay, i, metric) for e, lay, i in zip(epochs, layers, ids)
        ]
        np.testing.assert_allclose(frame[metric], expected, rtol=1e-6, equal_nan=True)
    without = views.point_frame(trace, ids, layers, epochs, coords, None)
    assert set(without["cluster"]) == {"n/a"}


def test_metric_colours_are_the_metric_at_the_chosen_epoch(trace):
    ids = np.array([2, 5, 11, 17])
    layer_of = {
        i: name
        for name, (first, last) in trace.neural_index.items()
        for i in range(first, last + 1)
    }
    layers = np.array([layer_of[int(i)] for i in ids], dtype=object)
    coloring = views.point_colors(trace, ids, layers, None, "metric", "w_norm", 2)
    expected = [_frame_value(trace, 2, lay, i, "w_norm") for lay, i in zip(layers, ids)]
    np.testing.assert_allclose(coloring.values, expected, rtol=1e-6)
    assert (coloring.title, coloring.kind, coloring.metric) == ("w_norm at E_2", "Q", "w_norm")
    selectivity = views.point_colors(trace, ids, layers, None, "selectivity", "w_norm", 1)
    assert selectivity.metric == "selectivity" and selectivity.title == "selectivity at E_1"


def test_layer_colours_follow_the_traces_layer_order(trace):
    ids = np.array([12, 2, 11])
    layers = np.array(["hidden_2", "hidden_1", "hidden_2"], dtype=object)
    coloring = views.point_colors(trace, ids, layers, None, "layer", "act_mean", 4)
    assert coloring.domain == ["hidden_1", "hidden_2"]
    assert list(coloring.values) == list(layers)


def test_the_first_health_flag_that_holds_names_the_neuron(trace):
    health = neuron_health(trace)
    n = trace.n_neurons
    rng = np.random.default_rng(0)
    flags = {flag: rng.random((len(health.epochs), n)) < 0.4 for flag in FLAGS}
    applies = {flag: rng.random(n) < 0.7 for flag in FLAGS}
    planted = dataclasses.replace(health, flags=flags, applies=applies)
    ids = np.arange(n)
    for epoch in health.epochs:
        row = health.epochs.index(epoch)
        labels = planted.labels(epoch, ids)
        for neuron in ids:
            holding = [f for f in FLAGS if flags[f][row, neuron]]
            if not any(applies[f][neuron] for f in FLAGS):
                expected = "n/a"
            elif holding:
                expected = FLAG_TITLES[holding[0]]
            else:
                expected = "healthy"
            assert labels[neuron] == expected, (epoch, neuron)
    coloring = views.point_colors(trace, ids, ids, None, "health", "act_mean", 0, health=planted)
    assert coloring.domain == [*(FLAG_TITLES[f] for f in FLAGS), "healthy", "n/a"]
    with pytest.raises(ValueError, match="health"):
        views.point_colors(trace, ids, ids, None, "health", "act_mean", 0)


def test_hmm_colours_name_each_state_and_put_unmodelled_neurons_last(trace):
    states = np.array([[-1, -1], [2, 0], [1, 1], [2, 2]])
    coloring = views.hmm_coloring(states, np.array([3, 0, 1, 2]), 1, 7)
    assert list(coloring.values) == ["state 2", "not modelled", "state 0", "state 1"]
    assert coloring.domain == ["state 0", "state 1", "state 2", "not modelled"]
    assert coloring.title == "HMM state at E_7"


def test_without_hmm_states_the_points_are_coloured_by_cluster(trace):
    ids = np.array([2, 3, 4])
    labels = np.array([1, -1, 0])
    coloring = views.point_colors(trace, ids, ids, labels, "hmm", "act_mean", 4, hmm_states=None)
    assert coloring.title == "cluster"
    assert coloring.domain == [emb.cluster_name(0), emb.cluster_name(1), emb.cluster_name(-1)]
    assert views.cluster_coloring(None, 3).domain == ["n/a"]


# -- the map and its selection -----------------------------------------------------------------
def _square() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame(
        {"neuron": [10, 11, 12, 13], "x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0, 3.0]}
    )
    return frame, np.array([0, 1, 1, 2])


def test_a_click_selects_the_neurons_of_its_cells_and_a_box_those_inside():
    frame, cells = _square()
    click = {cviz.CLICK: [{"cell": 1}, {"cell": 2}, {"other": 0}]}
    assert views.points_in_selection(click, frame, cells) == [11, 12, 13]
    box = {cviz.BOX: {"x": [0.5, 2.5], "y": [2.5, 0.5]}}
    inside = [
        int(n)
        for n, x, y in zip(frame["neuron"], frame["x"], frame["y"])
        if 0.5 <= x <= 2.5 and 0.5 <= y <= 2.5
    ]
    assert views.points_in_selection(box, frame, cells) == inside
    both = {cviz.CLICK: [{"cell": 0}], cviz.BOX: {"x": [2.5, 3.5], "y": [2.5, 3.5]}}
    assert views.points_in_selection(both, frame, cells) == [10, 13]
    assert views.points_in_selection({cviz.CLICK: [], cviz.BOX: {}}, frame, cells) is None


def test_a_click_names_the_signature_of_its_point():
    frame = pd.DataFrame({"signature": ["E_1/L_a/n_0", "E_1/L_a/n_1"]})
    cells = np.array([5, 6])
    assert views.clicked_signature({cviz.CLICK: [{"cell": 6}]}, frame, cells) == "E_1/L_a/n_1"
    assert views.clicked_signature({cviz.CLICK: [{"cell": 9}]}, frame, cells) is None
    assert views.clicked_signature({}, frame, cells) is None
    assert views.clicked_signature("not a dict", frame, cells) is None


def test_the_map_outlines_the_selection_and_colours_every_point(trace, features):
    projection = views.project(features.values, {"method": "pca"}, lambda f, m: None)
    assert projection.embedding.shape == (features.n_rows, 2)
    clusterer = emb.NeuronClusterer("kmeans", n_clusters=3, random_state=0)
    clustering = views.cluster(features.values, clusterer, lambda f, m: None)
    assert clustering.labels.shape == (features.n_rows,)
    coloring = views.point_colors(
        trace, features.neuron_ids, features.layers, clustering.labels, "cluster", "act_mean", 4
    )
    chosen = [int(features.neuron_ids[0]), int(features.neuron_ids[3])]
    drawn = views.neuron_map(trace, features, projection, clustering, coloring, chosen, "pca")
    assert list(drawn.frame["neuron"][drawn.frame["selected"]]) == chosen
    assert list(drawn.frame["color"]) == list(drawn.frame["cluster"])
    assert drawn.cell_of_point.shape == (features.n_rows,)
    shown, missing = views.selected_rows(drawn.frame, [*chosen, 999])
    assert list(shown["neuron"]) == chosen and missing == 1
    assert not {"color", "x", "y", "selected"} & set(shown.columns)


def test_the_clusterer_runs_on_the_map_only_when_asked(features):
    projection = views.Projection(np.zeros((features.n_rows, 2)), np.array([]), "x", [], 0.0)
    assert views.clustering_input(features, projection, "map") is projection.embedding
    assert views.clustering_input(features, None, "map") is None
    assert views.clustering_input(features, None, "features") is features.values


def test_the_labels_csv_lists_placed_and_excluded_neurons_under_a_header(features):
    frame = pd.DataFrame(
        {
            "signature": ["E_4/L_hidden_1/n_2"],
            "neuron": [2],
            "layer": ["hidden_1"],
            "epoch": [4],
            "cluster": ["A"],
            "x": [0.5],
            "y": [1.5],
        }
    )
    excluded = pd.DataFrame(
        {
            "neuron": [7],
            "layer": ["hidden_1"],
            "epoch": [4],
            "signature": ["E_4/L_hidden_1/n_7"],
            "reason": ["constant"],
        }
    )
    data = views.labels_csv(
        dataclasses.replace(features, excluded=excluded),
        frame,
        projector="pca",
        method="kmeans",
        on="features",
    ).decode()
    header, body = data.split("\n", 1)
    assert header == (
        f"# features: {features.spec.describe()}; projection: pca; clustering: kmeans on features"
    )
    table = pd.read_csv(io.StringIO(body))
    assert list(table["neuron"]) == [2, 7]
    assert table["excluded_because"].fillna("").tolist() == ["", "constant"]


# -- against chance ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("clustered", "undecided", "kind"),
    [(True, False, "success"), (False, True, "info"), (False, False, "warning")],
)
def test_the_verdict_says_what_the_test_found(clustered, undecided, kind):
    test = SimpleNamespace(
        clustered_=clustered, undecided_=undecided, sentence_="S.", n_rows_=40, n_rows_total_=40
    )
    found = views.verdict(test)  # type: ignore[arg-type]
    assert (found.kind, found.sentence, found.note) == (kind, "S.", "")
    sampled = views.verdict(SimpleNamespace(**{**vars(test), "n_rows_": 30}))  # type: ignore[arg-type]
    assert sampled.note == " (scored on a random sample of 30 of 40 neurons)"


def test_the_null_table_and_chart_show_every_nulls_scores(trace, features):
    clusterer = emb.NeuronClusterer("kmeans", n_clusters=3, random_state=0)
    test = views.fit_chance_test(
        trace,
        features,
        clusterer,
        projector_params=None,
        permutations=5,
        nulls=("shuffled", "gaussian"),
        seed=0,
        progress=lambda f, m: None,
    )
    assert isinstance(test, bl.ChanceTest)
    assert not any(callable(v) for v in vars(test).values())  # the callback is not kept
    table = views.null_table(test)
    assert list(table["null model"]) == [r.name for r in test.results_.values()]
    for row, result in zip(table.to_dict("records"), test.results_.values()):
        assert row["P"] == 5
        assert row["silhouette p"] == result.p_values["silhouette"]
        scores = [s for s in result.scores["silhouette"] if np.isfinite(s)]
        assert row["null median silhouette"] == pytest.approx(float(np.median(scores)))
    assert views.null_chart(test) is not None
    caption = views.chance_caption(test.score_name_, 5, "kmeans", "map")
    assert "after the same projection" in caption and "5 null versions" in caption
    estimate = views.chance_estimate(
        trace, features, clusterer, projector_params=None, permutations=5, nulls=("shuffled",)
    )
    assert estimate > 0


# -- through training --------------------------------------------------------------------------
def test_only_per_epoch_features_of_several_epochs_move_through_training(trace):
    assert "trajectory already spans" in views.through_time_problem(
        trace, emb.FeatureSpec("trajectory", layers=("hidden_1",))
    )
    assert views.through_time_problem(trace, emb.FeatureSpec("metrics", epoch=2)) is None
    spec = emb.FeatureSpec("metrics", epoch=2, layers=("hidden_1", "hidden_2"))
    assert views.joint_size(trace, spec) == 16 * len(trace.epochs)


def test_the_joint_map_keeps_each_neurons_cluster_and_fixed_axes(trace, features):
    spec = features.spec
    joint = through_time.embed_map(trace, spec, "pca", {}, lambda f, m: None)
    epoch = joint.epochs[1]
    labels = np.arange(features.n_rows) % 3
    labels[0] = -1
    points = views.joint_points(trace, joint, epoch, features, labels)
    label_of = dict(zip(features.neuron_ids.tolist(), labels.tolist()))
    for neuron, name in zip(points["neuron"], points["cluster"]):
        assert name == emb.cluster_name(label_of[int(neuron)])
    assert set(points["epoch"]) == {epoch}
    coloring = views.joint_cluster_coloring(points, spec.epoch)
    assert coloring.domain[-1] == emb.cluster_name(-1) and coloring.title.startswith("cluster")
    x0, x1, y0, y1 = views.joint_extent(joint.frame)
    width = joint.frame["x"].max() - joint.frame["x"].min()
    assert x0 == pytest.approx(joint.frame["x"].min() - 0.03 * width)
    assert x1 > joint.frame["x"].max() and y0 < joint.frame["y"].min() < y1
    chosen = [int(points["neuron"].iloc[0])]
    drawn = through_time.time_map(joint, points, coloring, epoch, chosen)
    assert "color" in drawn.frame and "color" not in points
    unlabelled = views.joint_points(trace, joint, epoch, features, None)
    assert set(unlabelled["cluster"]) == {"n/a"}
