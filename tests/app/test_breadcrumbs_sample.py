"""One-sample attribution on the Breadcrumbs page shows the sample — its image for digits, its
inputs in the dataset's units otherwise — with its true and predicted class, and starts at a
sample the network gets wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import TrainConfig, load_trace, save_trace, train
from nn_tracing.ui import state

PAGE = "pages/breadcrumbs.py"


def _one_sample(app: Callable[[], AppTest], trace: str) -> AppTest:
    at = app()
    at.query_params["trace"] = trace
    at.run()
    at.switch_page(PAGE).run()
    at.session_state[state.BREADCRUMBS_MODE] = "one probe sample"
    at.run()
    return at


def _recorded_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predicted classes from the trace's own recorded output activations at the
    last epoch (not from the rebuilt model the page uses)."""
    trace = load_trace(path)
    output = trace.layers[-1]
    logits = trace.probe_activations(trace.epochs[-1])[:, output.first_id : output.last_id + 1]
    return np.asarray(trace.probe[1]).astype(int), logits.argmax(axis=1)


@pytest.fixture
def digits_run(runs_dir: Path) -> Path:
    """A small digits run that still gets some probe samples wrong."""
    config = TrainConfig(
        dataset="digits", hidden_sizes=(16,), epochs=2, probe_size=128, seed=0, lr=0.003
    )
    run = train(config)
    assert run.trace is not None
    return save_trace(run.trace, runs_dir / "digits.nntrace")


def test_one_sample_starts_at_a_misclassified_digit_and_shows_its_image(
    app: Callable[[], AppTest], digits_run: Path
) -> None:
    labels, predicted = _recorded_predictions(digits_run)
    wrong = np.flatnonzero(labels != predicted)
    assert wrong.size, "the fixture run must get some sample wrong"
    at = _one_sample(app, "digits")
    assert_healthy(at)
    assert at.number_input(key=state.BREADCRUMBS_SAMPLE).value == int(wrong[0])
    said = texts(at.warning).replace("**", "")
    assert f"Probe sample {wrong[0]}: true class {labels[wrong[0]]}" in said
    assert f"predicted class {predicted[wrong[0]]}" in said and "misclassified" in said
    assert f"{wrong.size} of {len(labels)} probe samples wrong" in said
    # the image: 8 × 8 pixels of that sample
    images = [
        c
        for c in shown_charts(at)
        if "probe sample" in json.dumps(json.loads(c.proto.spec).get("title", ""))
    ]
    assert len(images) == 1
    rows = chart_rows(images[0])
    assert len(rows) == 64 and {r["row"] for r in rows} == set(range(8))
    # its pixels in the dataset's units (0–16 grey levels), the sample's own
    trace = load_trace(digits_run)
    dataset = trace.meta["dataset"]
    x = np.asarray(trace.probe[0][wrong[0]], dtype=float)
    raw = x * np.asarray(dataset["feature_scale"]) + np.asarray(dataset["feature_mean"])
    shown = sorted(rows, key=lambda r: (r["row"], r["col"]))
    np.testing.assert_allclose([r["value"] for r in shown], raw, atol=1e-4)


def test_one_sample_of_a_tabular_run_lists_its_inputs_in_the_dataset_units(
    app: Callable[[], AppTest], tiny_trace_file: Path
) -> None:
    labels, predicted = _recorded_predictions(tiny_trace_file)
    at = _one_sample(app, "tiny")
    assert_healthy(at)
    index = at.number_input(key=state.BREADCRUMBS_SAMPLE).value
    wrong = np.flatnonzero(labels != predicted)
    assert index == (int(wrong[0]) if wrong.size else 0)
    at.number_input(key=state.BREADCRUMBS_SAMPLE).set_value(3).run()
    said = texts([*at.info, *at.warning]).replace("**", "")
    assert f"Probe sample 3: true class {labels[3]}, predicted class {predicted[3]}" in said
    table = next(d.value for d in at.main.dataframe if "standardised" in d.value.columns)
    trace = load_trace(tiny_trace_file)
    mean = np.asarray(trace.meta["dataset"]["feature_mean"])
    scale = np.asarray(trace.meta["dataset"]["feature_scale"])
    x = np.asarray(trace.probe[0][3], dtype=float)
    np.testing.assert_allclose(table["standardised"], x, rtol=1e-6)
    np.testing.assert_allclose(table["value"], x * scale + mean, rtol=1e-5)
