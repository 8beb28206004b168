"""The Breadcrumbs page through the real entrypoint with real traces: attribution and the trail,
an ablation, ablation curves, a pruning run with its downloads, an intervention, and the
explanations for traces whose model cannot be rebuilt."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_support import assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest
from torch import nn

from nn_tracing import TraceableNN, TrainConfig, load_trace, save_trace, train
from nn_tracing.analysis.intervention import Pruning, ablate
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.ui import state

PAGE = "pages/breadcrumbs.py"


def _open(app: Callable[[], AppTest], trace: str = "tiny", tab: str | None = None) -> AppTest:
    at = app()
    at.query_params["trace"] = trace
    at.run()
    at.switch_page(PAGE).run()
    if tab is not None:
        at.session_state[state.BREADCRUMBS_TAB] = tab
        at.run()
    return at


def _metric(at: AppTest, label: str) -> str:
    for metric in at.metric:
        if metric.label == label:
            return str(metric.value)
    raise AssertionError(f"no metric {label!r}: {[m.label for m in at.metric]}")


@pytest.fixture
def kept_weights_run(runs_dir: Path) -> Path:
    """A tiny run that kept its weights at every recorded epoch, in the runs folder."""
    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(8, 8),
        epochs=4,
        n_samples=300,
        probe_size=64,
        seed=0,
        keep_weights=True,
    )
    run = train(config)
    assert run.trace is not None
    return save_trace(run.trace, runs_dir / "kept.nntrace")


def test_the_page_attributes_draws_the_trail_and_checks_it(app: Callable[[], AppTest]) -> None:
    at = _open(app)
    assert_healthy(at)
    assert at.title[0].value == "Breadcrumbs"
    assert at.get("graphviz_chart"), "no trail graph"
    assert len(shown_charts(at)) == 1  # attribution per neuron
    shown = texts(at.markdown)
    assert "over its 32 probe samples at E_4, by gradient × activation" in shown
    assert re.search(r"L_hidden_1\*\*: zeroing its 4 trail neurons lowers the score", shown)
    assert "random sets of 4" in shown
    table = at.main.dataframe[0].value
    assert list(table["layer"].unique()) == ["hidden_2", "hidden_1", "input"]
    assert table["signature"].str.match(r"E_4/L_\w+/n_\d+").all()
    # since when needs kept weights, and says so
    assert "kept only the final weights" in texts(at.info)


def test_other_targets_methods_and_scores_redraw(app: Callable[[], AppTest]) -> None:
    at = _open(app)
    at.selectbox(key=state.BREADCRUMBS_METHOD).set_value("integrated_gradients").run()
    at.radio(key=state.BREADCRUMBS_OBJECTIVE).set_value("margin").run()
    at.selectbox(key=state.BREADCRUMBS_CLASS).set_value(1).run()
    assert_healthy(at)
    assert "Explaining the logit margin" in texts(at.markdown)
    assert "of class 1 over its 32 probe samples at E_4, by integrated gradients" in texts(
        at.markdown
    )
    at.session_state[state.BREADCRUMBS_MODE] = "one probe sample"
    at.run()
    at.number_input(key=state.BREADCRUMBS_SAMPLE).set_value(7).run()
    assert_healthy(at)
    assert "for probe sample 7" in texts(at.markdown)
    at.toggle(key=state.BREADCRUMBS_COMPARE).set_value(True).run()
    assert_healthy(at)
    agreement = at.main.dataframe[-1].value
    assert len(agreement) == 3 * 6  # input, hidden_1, hidden_2 × six pairs of methods


def test_an_ablation_shows_what_changes(app: Callable[[], AppTest], runs_dir: Path) -> None:
    at = _open(app, tab="Ablation")
    neurons = [10, 11, 12]  # hidden_2
    at.multiselect(key=state.epoch_key(state.BREADCRUMBS_ABLATE, "run:tiny")).set_value(
        neurons
    ).run()
    assert_healthy(at)
    trace = load_trace(runs_dir / "tiny.nntrace")
    expected = ablate(NeuronModel.from_trace(trace), *trace.probe, neurons)
    assert _metric(at, "Probe accuracy") == f"{expected.accuracy_after:.3f}"
    assert _metric(at, "Predictions flipped") == f"{len(expected.flipped)} of 64"
    per_class = at.main.dataframe[0].value
    np.testing.assert_allclose(
        per_class["accuracy_after"], expected.per_class()["accuracy_after"], atol=1e-9
    )
    assert len(shown_charts(at)) == 1  # the confusion matrices
    # mean replacement is another ablation
    at.radio(key=state.BREADCRUMBS_ABLATE_FILL).set_value("mean").run()
    mean = ablate(NeuronModel.from_trace(trace), *trace.probe, neurons, fill="mean")
    assert _metric(at, "Probe accuracy") == f"{mean.accuracy_after:.3f}"
    # "use the trail" fills the selection with the trail's hidden neurons
    at.button(key=state.BREADCRUMBS_USE_TRAIL).click().run()
    picked = at.multiselect(key=state.epoch_key(state.BREADCRUMBS_ABLATE, "run:tiny")).value
    assert len(picked) == 8 and all(2 <= n <= 17 for n in picked)
    assert_healthy(at)


def test_ablation_curves_say_whether_selectivity_predicts_importance(
    app: Callable[[], AppTest],
) -> None:
    at = _open(app, tab="Ablation")
    at.slider(key=state.BREADCRUMBS_REPEATS).set_value(10)
    at.button(key=state.BREADCRUMBS_CURVES_BUTTON).click().run()
    assert_healthy(at)
    assert "Selectivity" in texts(at.info) and "Spearman" in texts(at.info)
    assert len(shown_charts(at)) == 2  # curves, selectivity against effect


def test_a_pruning_run_reports_and_offers_downloads(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = _open(app, tab="Pruning")
    at.number_input(key=f"{state.BREADCRUMBS_PRUNE_K}:hidden_1").set_value(3)
    at.number_input(key=f"{state.BREADCRUMBS_PRUNE_K}:hidden_2").set_value(2)
    at.slider(key=state.BREADCRUMBS_PRUNE_REPEATS).set_value(10)
    at.button(key=state.BREADCRUMBS_PRUNE_BUTTON).click().run()
    assert_healthy(at)
    trace = load_trace(runs_dir / "tiny.nntrace")
    expected = Pruning({"hidden_1": 3, "hidden_2": 2}, n_repeats=10).fit(
        NeuronModel.from_trace(trace), *trace.probe
    )
    assert _metric(at, "Probe accuracy after") == f"{expected.accuracy_after_:.3f}"
    assert _metric(at, "Parameters") == f"{(2 * 5 + 5) + (5 * 6 + 6) + (6 * 2 + 2):,}"
    assert _metric(at, "Hidden widths") == "5 · 6"
    assert re.search(r"outputs (equal|differ from) the ablated network's", texts(at.markdown))
    assert "at most 0." not in texts(at.markdown)
    labels = [b.label for b in at.get("download_button")]
    assert "Pruned weights (.safetensors)" in labels
    assert "Pruned config (.json)" in labels
    assert "Pruned trace on the probe (.nntrace)" in labels
    assert len(shown_charts(at)) == 1


def test_an_intervention_redraws_the_decision_boundary(app: Callable[[], AppTest]) -> None:
    at = _open(app, tab="Intervention")
    assert_healthy(at)
    neuron = at.selectbox(key=state.BREADCRUMBS_NEURON).value
    at.number_input(key=f"{state.BREADCRUMBS_VALUE}:clamp:{neuron}").set_value(10.0).run()
    assert_healthy(at)
    assert _metric(at, "Probe accuracy")
    assert len(shown_charts(at)) == 1  # decision boundary before and after
    changes = at.main.dataframe[0].value.set_index("layer")
    assert changes.loc["input", "changed"] == 0
    assert changes.loc["output", "changed"] >= 1
    at.session_state[state.BREADCRUMBS_KIND] = "weight"
    at.run()
    assert_healthy(at)
    at.number_input(key=f"{state.BREADCRUMBS_VALUE}:weight:hidden_1:0:0").set_value(5.0).run()
    assert_healthy(at)
    assert at.main.dataframe[0].value.set_index("layer").loc["hidden_1", "changed"] == 1


def test_kept_weights_follow_the_trail_over_training(
    app: Callable[[], AppTest], kept_weights_run: Path
) -> None:
    at = _open(app, trace="kept")
    assert_healthy(at)
    slider = at.select_slider(key=state.epoch_key(state.BREADCRUMBS_EPOCH, "run:kept"))
    assert list(slider.options) == [f"E_{e}" for e in range(5)]
    assert len(shown_charts(at)) == 2  # attribution, since when
    slider.set_value(2).run()
    assert_healthy(at)
    assert "at E_2" in texts(at.markdown)


def test_a_custom_model_trace_explains_how_to_attach_it(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    net = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 2))
    x, y = torch.randn(40, 2), torch.randint(0, 2, (40,))
    trace = TraceableNN(net, probe=(x, y), epoch_intervals=-1, num_epochs=1).finish()
    save_trace(trace, runs_dir / "custom.nntrace")
    at = _open(app, trace="custom")
    assert_healthy(at)
    assert "custom model" in texts(at.warning)
    assert any("nt.attach_model(trace, MyModel())" in c.value for c in at.code)
    assert not at.get("graphviz_chart")


def test_a_trace_without_probe_says_why(app: Callable[[], AppTest], runs_dir: Path) -> None:
    net = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 2))
    tracer = TraceableNN(net, example_input=torch.randn(4, 2), epoch_intervals=-1, num_epochs=1)
    save_trace(tracer.finish(), runs_dir / "streamed.nntrace")
    at = _open(app, trace="streamed")
    assert_healthy(at)
    assert "no probe set" in texts(at.warning)


def test_every_chart_is_valid_vega_lite_and_keeps_the_mark_budget(tiny_trace_file: Path) -> None:
    from nn_tracing.analysis.attribution import attribute, attribution_history, breadcrumb_trail
    from nn_tracing.analysis.intervention import AblationCurves, Intervention, intervene
    from nn_tracing.viz import breadcrumbs as crumbs

    trace = load_trace(tiny_trace_file)
    model = NeuronModel.from_trace(trace)
    x, y = trace.probe
    result = attribute(trace, target_class=1, model=model)
    frame = result.frame()
    crumbs.attribution_chart(frame, title="t").to_dict()  # validates against the schema
    small = crumbs.attribution_chart(frame, title="t", budget=6).to_dict()
    assert "showing the top 2 neurons of each layer by |score| (6 of 18 neurons" in " ".join(
        small["title"]["subtitle"]
    )
    assert [len(rows) for rows in small["datasets"].values()] == [6]
    image = frame[frame["layer"] == "input"]
    crumbs.input_image_chart(image, [1, 2], title="t").to_dict()
    trail = breadcrumb_trail(model, result, x, k=3)
    dot = crumbs.trail_dot(trail.nodes, trail.edges, labels={0: 'x"0'})
    assert dot.startswith("digraph") and dot.count("->") >= 1 and 'x\\"0' in dot
    history = attribution_history(trace, trail.neurons("hidden_2"), epochs=[4], target_class=1)
    crumbs.since_when_chart(history, title="t").to_dict()
    curves = AblationCurves("hidden_1", n_repeats=3).fit(model, x, y)
    crumbs.ablation_curves_chart(curves.curves_, layer="hidden_1", chance=0.5).to_dict()
    crumbs.selectivity_effect_chart(curves.neurons_, layer="hidden_1", epoch=4).to_dict()
    changed = intervene(model, x, y, Intervention("clamp", 5.0, neuron=3))
    comparison = changed.comparison(["a", "b"])
    crumbs.confusion_chart(
        comparison.confusion(after=False), comparison.confusion(after=True), ["a", "b"]
    ).to_dict()
    assert crumbs.confusion_chart(np.zeros((40, 40)), np.zeros((40, 40)), []) is None
    b = changed.boundary
    chart = crumbs.decision_boundary_chart(
        b.xs, b.ys, b.before, b.after, b.confidence_before, b.confidence_after,
        x, y, changed.flipped, ["a", "b"], budget=3300,
    )  # fmt: skip
    spec = chart.to_dict()
    points = [layer for panel in spec["hconcat"] for layer in panel["layer"]]
    assert len(points) == 4
    # 40 × 40 cells per panel leave room for 50 of the 64 probe points within 3300 marks
    shown = max(50, len(changed.flipped))
    assert f"{shown} of 64 probe samples drawn" in " ".join(spec["title"]["subtitle"])
    assert [len(rows) for rows in spec["datasets"].values()].count(1600) == 2
    pruning = Pruning(k=2, n_repeats=3).fit(model, x, y)
    crumbs.pruning_chart(
        pruning.curve_, chosen_k=2, accuracy_after=pruning.accuracy_after_, n_repeats=3, chance=0.5
    ).to_dict()
