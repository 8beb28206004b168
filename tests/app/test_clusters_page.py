"""The Clusters page through the real entrypoint, on a tiny trace made by real training."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing.ui import state

PAGE = "pages/clusters.py"
#: Few null versions keep the page quick; the test itself is checked in tests/unit.
FAST = {"perms": "5"}


def _open(app: Callable[[], AppTest], **params: str) -> AppTest:
    at = app()
    at.query_params["trace"] = "tiny"
    for key, value in {**FAST, **params}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(PAGE).run()
    return at


def _verdict(at: AppTest) -> str:
    boxes = " ".join(texts(box) for box in (at.main.success, at.main.warning, at.main.info))
    return boxes


def _titles(at: AppTest) -> list[str]:
    """The titles of the charts on the page."""
    titles = []
    for chart in shown_charts(at):
        title = json.loads(chart.proto.spec).get("title")
        titles.append(title if isinstance(title, str) else (title or {}).get("text", ""))
    return titles


@pytest.mark.parametrize(
    "features", ["trajectory", "metrics", "response", "activations", "weights"]
)
def test_every_feature_set_draws_a_map_clusters_and_a_verdict(
    app: Callable[[], AppTest], features: str
) -> None:
    at = _open(app, features=features)
    assert_healthy(at)
    assert at.selectbox(key=state.CLUSTERS_FEATURES).value == features
    titles = _titles(at)
    assert any(t.startswith("PCA of ") for t in titles), titles  # the map
    assert "Mean feature profile per cluster" in titles and "Layers in each cluster" in titles
    assert "Against chance:" in _verdict(at)
    assert at.query_params["features"] == features
    labels = [b.label for b in at.get("download_button")]
    assert "Cluster labels (CSV)" in labels


@pytest.mark.parametrize("projector", ["pca", "tsne", "umap"])
def test_every_projector_draws_the_map(app: Callable[[], AppTest], projector: str) -> None:
    at = _open(app, features="activations", proj=projector)
    assert_healthy(at)
    assert at.radio(key=state.CLUSTERS_PROJECTOR).value == projector
    asked = [b for b in at.button if b.key == f"{state.CLUSTERS_RUN}:projection"]
    if asked:  # UMAP before its warm-up: the estimate includes its compilation
        asked[0].click().run()
        assert_healthy(at)
    name = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}[projector]
    assert any(t.startswith(f"{name} of 18 neurons") for t in _titles(at)), _titles(at)
    assert at.query_params["proj"] == projector


def test_a_selection_in_session_state_lists_the_neurons(app: Callable[[], AppTest]) -> None:
    at = _open(app, features="activations")
    at.session_state[state.CLUSTERS_SELECTION] = [3, 12]
    at.run()
    assert_healthy(at)
    tables = [t.value for t in at.dataframe]
    listed = next(t for t in tables if "signature" in t and "cluster" in t and "act_mean" in t)
    assert sorted(listed["neuron"]) == [3, 12]
    assert set(listed["signature"]) == {"E_4/L_hidden_1/n_3", "E_4/L_hidden_2/n_12"}
    assert at.query_params["sel"] == "3,12"


def test_the_url_restores_the_settings_and_the_selection(app: Callable[[], AppTest]) -> None:
    at = _open(
        app,
        features="metrics",
        metrics="act_mean,act_std,w_norm",
        epoch="2",
        cluster="agglomerative",
        k="3",
        linkage="average",
        color="layer",
        sel="5",
    )
    assert_healthy(at)
    assert at.multiselect(key=state.CLUSTERS_METRICS).value == ["act_mean", "act_std", "w_norm"]
    assert at.select_slider(key=state.epoch_key(state.CLUSTERS_EPOCH, "run:tiny")).value == 2
    assert at.radio(key=state.CLUSTERS_METHOD).value == "agglomerative"
    assert at.number_input(key=state.CLUSTERS_K).value == 3
    assert at.selectbox(key=state.CLUSTERS_LINKAGE).value == "average"
    assert at.session_state[state.CLUSTERS_SELECTION] == [5]
    assert "E_2/L_hidden_1/n_5" in texts(at.main.caption) or any(
        "E_2/L_hidden_1/n_5" in set(t.value.get("signature", [])) for t in at.dataframe
    )


def test_changing_a_setting_updates_the_url(app: Callable[[], AppTest]) -> None:
    at = _open(app, features="response")
    at.radio(key=state.CLUSTERS_METHOD).set_value("hdbscan").run()
    assert_healthy(at)
    assert at.query_params["cluster"] == "hdbscan"
    assert "k" not in at.query_params and at.query_params["min_size"] == "0"


def test_a_feature_set_the_trace_cannot_give_says_why_in_place(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app, features="weights", epoch="2")
    assert not at.exception
    assert not at.main.error
    assert "no weights at E_2" in texts(at.main.warning)
    assert at.title[0].value == "Clusters"


def test_long_work_waits_for_a_click_with_an_estimate(
    app: Callable[[], AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nn_tracing import work
    from nn_tracing.ui import clusters

    monkeypatch.setattr(work.WORKER, "store", work.ResultStore())  # nothing computed yet
    monkeypatch.setattr(clusters, "estimate_seconds", lambda *args, **kwargs: 125.0)
    at = _open(app, features="activations", proj="tsne")
    assert_healthy(at)
    assert "t-SNE of 18 neurons will take about 2:05" in texts(at.main.info)
    button = at.button(key=f"{state.CLUSTERS_RUN}:projection")
    assert button.label == "Compute the t-SNE map (2:05)"
    assert not shown_charts(at)  # no map until asked
    button.click().run()
    assert_healthy(at)
    assert shown_charts(at)


def _map_colours(at: AppTest) -> dict[str, str]:
    """Signature → colour value of every point on the map."""
    rows = chart_rows(shown_charts(at)[0])
    return {row["signature"]: row["color"] for row in rows if "signature" in row and "color" in row}


def test_hmm_states_from_the_dynamics_model_colour_the_map(
    app: Callable[[], AppTest], tiny_trace_file
) -> None:
    from nn_tracing import load_trace
    from nn_tracing.analysis.hmm import NeuronHMM
    from nn_tracing.ui.dynamics import NEURON_FEATURES

    at = _open(app, features="activations")
    at.selectbox(key=state.CLUSTERS_COLOR).set_value("hmm").run()
    assert_healthy(at)
    colours = _map_colours(at)
    assert colours
    trace = load_trace(tiny_trace_file)
    hidden = [layer.name for layer in trace.layers if layer.kind != "input"]
    model = NeuronHMM(list(NEURON_FEATURES), layers=hidden, standardize="layer", random_state=0)
    states = model.fit(trace).states_
    column = trace.epochs.index(trace.epochs[-1])
    for signature, colour in colours.items():
        neuron = int(signature.rsplit("n_", 1)[1])
        assert colour == f"state {states[neuron, column]}", signature


def test_a_failing_hmm_is_said_in_place_and_its_colour_option_goes(
    app: Callable[[], AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nn_tracing.analysis.hmm import NeuronHMM

    def fail(self, trace, **kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("too few epochs for an HMM")

    from nn_tracing import work

    monkeypatch.setattr(work.WORKER, "store", work.ResultStore())  # no HMM fitted yet
    monkeypatch.setattr(NeuronHMM, "fit", fail)
    at = _open(app, features="response")
    at.selectbox(key=state.CLUSTERS_COLOR).set_value("hmm").run()
    assert not at.exception
    assert "HMM states cannot colour this trace" in texts(at.main.warning)
    assert "too few epochs" in texts(at.main.warning)
    at.run()
    assert "HMM state at an epoch (Dynamics)" not in at.selectbox(key=state.CLUSTERS_COLOR).options


# -- the round trip: widgets → address bar → a new session ---------------------------------------
REF = "run:tiny"


def _reopen(app: Callable[[], AppTest], at: AppTest) -> AppTest:
    """A new session of the app opened with ``at``'s address bar."""
    fresh = app()
    for key, value in at.query_params.items():
        fresh.query_params[key] = value
    fresh.run()
    fresh.switch_page(PAGE).run()
    return fresh


def _settings_in(at: AppTest) -> dict[str, object]:
    """What every widget bound to a setting of the page holds (by field)."""
    from nn_tracing.ui.clusters import URL, Settings

    found = {}
    for field in dataclasses.fields(Settings):
        key = URL.key(field.name, REF)
        if key in at.session_state:
            value = at.session_state[key]
            found[field.name] = list(value) if isinstance(value, (list, tuple)) else value
    return found


def _assert_round_trip(app: Callable[[], AppTest], at: AppTest, expected: dict[str, str]) -> None:
    assert_healthy(at)
    params = dict(at.query_params)
    for name, text in expected.items():
        assert params.get(name) == text, (name, params)
    fresh = _reopen(app, at)
    assert_healthy(fresh)
    assert dict(fresh.query_params) == params
    before, after = _settings_in(at), _settings_in(fresh)
    shown = {name for name in before if name in after}
    from nn_tracing.ui.clusters import URL

    carried = {f for f in before if URL._fields[f].spec.name in params}
    assert carried <= shown
    assert {f: after[f] for f in carried} == {f: before[f] for f in carried}


def test_every_setting_changed_on_the_page_survives_a_link_per_epoch_features(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app)
    at.selectbox(key=state.CLUSTERS_FEATURES).set_value("metrics")
    at.radio(key=state.CLUSTERS_PROJECTOR).set_value("tsne")
    at.radio(key=state.CLUSTERS_METHOD).set_value("agglomerative")
    at.radio(key=state.CLUSTERS_ON).set_value("map")
    at.selectbox(key=state.CLUSTERS_COLOR).set_value("metric")
    at.number_input(key=state.CLUSTERS_PERMUTATIONS).set_value(6)
    at.multiselect(key=state.CLUSTERS_NULLS).set_value(["shuffled"])
    at.run()
    assert_healthy(at)
    at.multiselect(key=state.epoch_key(state.CLUSTERS_LAYERS, REF)).set_value(["hidden_2"])
    at.select_slider(key=state.epoch_key(state.CLUSTERS_EPOCH, REF)).set_value(2)
    at.multiselect(key=state.CLUSTERS_METRICS).set_value(["act_mean", "w_norm", "grad_norm"])
    at.selectbox(key=state.CLUSTERS_SCALE).set_value("global")
    at.number_input(key=state.CLUSTERS_PERPLEXITY).set_value(4.0)
    at.selectbox(key=state.CLUSTERS_DISTANCE).set_value("cosine")
    at.number_input(key=state.CLUSTERS_SEED).set_value(3)
    at.number_input(key=state.CLUSTERS_K).set_value(3)
    at.selectbox(key=state.CLUSTERS_LINKAGE).set_value("average")
    at.selectbox(key=state.CLUSTERS_COLOR_METRIC).set_value("w_norm")
    at.select_slider(key=state.epoch_key(state.CLUSTERS_COLOR_EPOCH, REF)).set_value(1)
    at.session_state[state.CLUSTERS_SELECTION] = [10, 12]
    at.run()
    assert_healthy(at)
    at.select_slider(key=state.epoch_key(state.CLUSTERS_TIME_EPOCH, REF)).set_value(3).run()
    _assert_round_trip(
        app,
        at,
        {
            "features": "metrics",
            "layers": "hidden_2",
            "epoch": "2",
            "metrics": "act_mean,w_norm,grad_norm",
            "scale": "global",
            "proj": "tsne",
            "perplexity": "4.0",
            "distance": "cosine",
            "seed": "3",
            "cluster": "agglomerative",
            "k": "3",
            "linkage": "average",
            "on": "map",
            "color": "metric",
            "color_metric": "w_norm",
            "color_epoch": "1",
            "perms": "6",
            "nulls": "shuffled",
            "sel": "10,12",
            "time": "3",
        },
    )


def test_a_link_made_before_the_scales_were_renamed_still_opens(
    app: Callable[[], AppTest],
) -> None:
    """``scale=column`` (the old name of ``global``) restores ``global`` and the address bar
    then says ``global``."""
    at = _open(app, features="metrics", scale="column")
    assert_healthy(at)
    assert at.selectbox(key=state.CLUSTERS_SCALE).value == "global"
    assert at.query_params["scale"] == "global"


def test_every_setting_changed_on_the_page_survives_a_link_trajectories(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app)
    at.selectbox(key=state.CLUSTERS_FEATURES).set_value("trajectory")
    at.radio(key=state.CLUSTERS_PROJECTOR).set_value("umap")
    at.radio(key=state.CLUSTERS_METHOD).set_value("hdbscan")
    at.selectbox(key=state.CLUSTERS_COLOR).set_value("health")
    at.run()
    assert_healthy(at)
    at.select_slider(key=state.epoch_key(state.CLUSTERS_RANGE, REF)).set_range(1, 4)
    at.selectbox(key=state.CLUSTERS_METRIC).set_value("w_norm")
    at.number_input(key=state.CLUSTERS_NEIGHBORS).set_value(6)
    at.slider(key=state.CLUSTERS_MIN_DIST).set_value(0.3)
    at.selectbox(key=state.CLUSTERS_DISTANCE).set_value("manhattan")
    at.toggle(key=state.CLUSTERS_REPRODUCIBLE).set_value(True)
    at.number_input(key=state.CLUSTERS_MIN_SIZE).set_value(5)
    at.select_slider(key=state.epoch_key(state.CLUSTERS_COLOR_EPOCH, REF)).set_value(2)
    at.run()
    _assert_round_trip(
        app,
        at,
        {
            "features": "trajectory",
            "range": "1-4",
            "metric": "w_norm",
            "proj": "umap",
            "neighbors": "6",
            "min_dist": "0.3",
            "distance": "manhattan",
            "reproducible": "1",
            "cluster": "hdbscan",
            "min_size": "5",
            "color": "health",
            "color_epoch": "2",
        },
    )
    assert "time" not in at.query_params  # no joint map for trajectories


def test_the_verdict_says_what_training_added_over_e0_and_how_many_versions_it_drew(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app, features="activations")
    assert_healthy(at)
    verdict = _verdict(at)
    assert "Against chance:" in verdict
    assert " at E_0, " in verdict and " now)." in verdict  # the effect against the run's E_0
    assert "Training added" in verdict or "Training took" in verdict
    assert "drawn" in verdict  # how many null versions were drawn
    assert "null versions in" in texts(at.caption)
