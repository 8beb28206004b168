"""Every page on the built-in CNN (``nt.train`` with ``model="cnn"``, trained for real on the
generated ``bars`` images, weights kept): a channel's kernel over training, its top images with
receptive-field boxes, its activation map, attribution to pixels and channels, ablation and
channel pruning — each checked against torch functions run directly on the trace's stored
weights (``F.conv2d`` and friends, not the model the app rebuilds) — the input channel and the
output neurons as images, the other pages, and a CNN trained from the sidebar.

The app rebuilds the built-in CNN from the trace's config. A CNN traced from Python
(:class:`~cnn_support.SmallCNN`, a user's own module) has no config to rebuild it from: there the
pages that need the model say so instead of failing (the last test).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from cnn_support import train_bars_cnn
from streamlit.testing.v1 import AppTest

import nn_tracing as nt
from nn_tracing import jobs
from nn_tracing.ui import state

LAST = 3  # the last recorded epoch of the CNN trace
CNN_CONFIG = nt.TrainConfig(
    dataset="bars",
    model="cnn",
    model_kwargs={"channels": [6, 8]},
    n_samples=600,
    probe_size=96,
    epochs=LAST,
    batch_size=32,
    lr=5e-3,
    seed=0,
    keep_weights=True,
)


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in CNN (conv_1: 6 channels, conv_2: 8, pool 2 → output) on bars, 3 epochs."""
    run = nt.train(CNN_CONFIG)
    return nt.save_trace(run.trace, tmp_path_factory.mktemp("t") / "cnn.nntrace")


def _specs(at: AppTest) -> dict[str, object]:
    charts = {}
    for chart in shown_charts(at):
        title = json.loads(chart.proto.spec).get("title")
        charts[title.get("text", "") if isinstance(title, dict) else str(title)] = chart
    return charts


def _weights(trace: nt.NetworkTrace, epoch: int) -> dict[str, torch.Tensor]:
    return {key: torch.as_tensor(value) for key, value in trace.weights(epoch).items()}


def _conv(w: dict[str, torch.Tensor], x: torch.Tensor, layer: str) -> torch.Tensor:
    return F.relu(F.conv2d(x, w[f"{layer}.weight"], w[f"{layer}.bias"], padding=1))


def _maps(trace: nt.NetworkTrace, x: np.ndarray, epoch: int) -> np.ndarray:
    """conv_1's activation maps, by torch functions on the stored weights (not the model)."""
    return _conv(_weights(trace, epoch), torch.as_tensor(x), "conv_1").numpy()


def _logits(
    w: dict[str, torch.Tensor], x: torch.Tensor, zeroed: list[int] | None = None
) -> torch.Tensor:
    """The built-in CNN's forward pass written out (conv, relu, conv, relu, average pool to
    2 × 2, flatten, linear), with conv_2's ``zeroed`` channels set to zero."""
    h = _conv(w, _conv(w, x, "conv_1"), "conv_2")
    if zeroed:
        h = h.index_fill(1, torch.tensor(zeroed), 0.0)
    pooled = F.adaptive_avg_pool2d(h, 2).flatten(1)
    return pooled @ w["output.weight"].T + w["output.bias"]


def _open(app: Callable[[], AppTest], name: str, **params: str) -> AppTest:
    at = app()
    at.query_params["trace"] = name
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_a_channel_shows_its_kernels_top_images_with_boxes_and_its_map(
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path
) -> None:
    shutil.copy(cnn_file, runs_dir / "cnn.nntrace")
    trace = nt.load_trace(cnn_file)
    neuron = trace.layer("conv_1").first_id + 2
    at = _open(app, "cnn", neuron=f"E_{LAST}/L_conv_1/n_{neuron}")
    assert_healthy(at)
    charts = _specs(at)
    assert "its kernel (drawn as images below), flattened" in texts(at.caption)
    # the kernel at every kept epoch, weight for weight
    kernels = chart_rows(charts["Kernel over training"])
    assert {row["panel"] for row in kernels} == {f"E_{e}" for e in range(LAST + 1)}
    for epoch in (0, LAST):
        stored = trace.weights(epoch)["conv_1.weight"][2, 0]
        for row in (r for r in kernels if r["panel"] == f"E_{epoch}"):
            assert row["weight"] == pytest.approx(float(stored[row["row"], row["col"]]))
            assert row["signature"] == f"E_{epoch}/L_conv_1/n_{neuron}"
    # top images: ranked by the recorded pooled activation; each box is the 3×3 patch (clipped)
    # around the maximum of the map computed by torch
    title = f"The 12 most active probe images of E_{LAST}/L_conv_1/n_{neuron}"
    rows = chart_rows(charts[title])
    boxes = [row for row in rows if row["kind"] == "box"]
    pixels = [row for row in rows if row["kind"] == "pixel"]
    pooled = trace.probe_activations(LAST)[:, neuron]
    ranked = np.lexsort((np.arange(len(pooled)), -pooled))[:12]
    shown = list(dict.fromkeys(row["probe_index"] for row in pixels))
    assert shown == ranked.tolist() and len(pixels) == 12 * 256 and len(boxes) == 12
    x = trace.probe[0]
    # drawn in the dataset's own units: the standardised probe pixels times the training
    # split's scale, plus its mean
    dataset = trace.meta["dataset"]
    raw = x[ranked[0], 0] * np.reshape(dataset["feature_scale"], (16, 16)) + np.reshape(
        dataset["feature_mean"], (16, 16)
    )
    first = [row for row in pixels if row["probe_index"] == ranked[0]]
    for row in first:
        assert row["value"] == pytest.approx(raw[row["row"], row["col"]], rel=1e-4, abs=1e-5)
    maps = _maps(trace, x[ranked], LAST)[:, 2]
    for box, image in zip(boxes, maps, strict=True):
        r, c = divmod(int(np.argmax(image)), 16)
        assert (box["row"], box["row2"], box["col"], box["col2"]) == (
            max(r - 1, 0),
            min(r + 1, 15) + 1,
            max(c - 1, 0),
            min(c + 1, 15) + 1,
        )
        assert box["peak"] == pytest.approx(float(image.max()), rel=1e-5)
        assert box["signature"] == f"E_{LAST}/L_conv_1/n_{neuron}"
    # the activation map on a chosen sample
    at.number_input(key=state.NEURON_MAP_SAMPLE).set_value(5).run()
    assert_healthy(at)
    assert at.query_params["map_sample"] == "5"
    chart = next(c for t, c in _specs(at).items() if "on probe sample 5" in t)
    values = [row for row in chart_rows(chart) if "activation" in row]
    expected = _maps(trace, x[5:6], LAST)[0, 2]
    got = np.zeros((16, 16))
    for row in values:
        got[row["row"], row["col"]] = row["activation"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # a link to a sample the probe does not hold opens sample 0, and says so in the URL
    at = _open(app, "cnn", neuron=f"E_{LAST}/L_conv_1/n_{neuron}", map_sample="5000")
    assert_healthy(at)
    assert at.number_input(key=state.NEURON_MAP_SAMPLE).value == 0
    assert "map_sample" not in at.query_params


def test_the_input_channel_and_the_outputs_show_images(
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path
) -> None:
    # a CNN's input layer is one neuron, the images' channel: no pixel of its own, but the
    # kernels that read it, and its top samples as images
    shutil.copy(cnn_file, runs_dir / "cnn.nntrace")
    trace = nt.load_trace(cnn_file)
    at = _open(app, "cnn", neuron=f"E_{LAST}/L_input/n_0")
    assert_healthy(at)
    assert "channel 0 of the 16×16 input images" in texts(at.main.info)
    charts = _specs(at)
    kernels = chart_rows(charts[f"What L_conv_1 reads from it at E_{LAST}"])
    stored = trace.weights(LAST)["conv_1.weight"][:, 0]
    first = trace.layer("conv_1").first_id
    assert len(kernels) == 6 * 9
    for row in kernels:
        channel = int(row["panel"].removeprefix("n_")) - first
        assert row["weight"] == pytest.approx(float(stored[channel, row["row"], row["col"]]))
        assert row["signature"] == f"E_{LAST}/L_conv_1/n_{first + channel}"
    # the top samples by the channel's pooled activation (the image's mean), as images
    pixels = chart_rows(charts[f"The 12 most active probe samples of E_{LAST}/L_input/n_0"])
    x = trace.probe[0]
    ranked = np.lexsort((np.arange(len(x)), -x.mean((1, 2, 3))))[:12]
    assert list(dict.fromkeys(row["probe_index"] for row in pixels)) == ranked.tolist()
    assert len(pixels) == 12 * 256
    # an output neuron's top samples are images too
    output = trace.layer("output").first_id + 1
    at = _open(app, "cnn", neuron=f"E_{LAST}/L_output/n_{output}")
    assert_healthy(at)
    title = f"The 12 most active probe samples of E_{LAST}/L_output/n_{output}"
    assert len(chart_rows(_specs(at)[title])) == 12 * 256


def test_breadcrumbs_attribute_to_pixels_and_prune_channels(
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path
) -> None:
    shutil.copy(cnn_file, runs_dir / "cnn.nntrace")
    trace = nt.load_trace(cnn_file)
    at = app()
    at.query_params["trace"] = "cnn"
    at.run()
    at.switch_page("pages/breadcrumbs.py").run()
    assert_healthy(at)
    charts = _specs(at)
    assert "gradient × activation per neuron" in charts  # the channels' attribution
    channel_rows = chart_rows(charts["gradient × activation per neuron"])
    assert any(
        str(row.get("signature", "")).startswith(f"E_{LAST}/L_conv_2/") for row in channel_rows
    )
    # pixels: gradient × input of class 0's logit, mean over its probe samples, by autograd
    scores = [row for row in chart_rows(charts["Pixels"]) if "score" in row]
    assert len(scores) == 256
    w = _weights(trace, LAST)
    x, y = trace.probe
    images = torch.as_tensor(x[np.asarray(y) == 0]).requires_grad_(True)
    _logits(w, images)[:, 0].sum().backward()
    expected = (images.grad * images).detach().numpy().mean(0).sum(0)
    got = np.zeros((16, 16))
    for row in scores:
        got[row["row"], row["col"]] = row["score"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # ablating two conv_2 channels: accuracy of the torch net with those channels zeroed
    at.session_state[state.BREADCRUMBS_TAB] = "Ablation"
    at.run()
    conv_2 = trace.layer("conv_2")
    channels = [conv_2.first_id + 1, conv_2.first_id + 6]
    at.multiselect(key=state.epoch_key(state.BREADCRUMBS_ABLATE, "run:cnn")).set_value(
        channels
    ).run()
    assert_healthy(at)
    with torch.no_grad():
        predicted = _logits(w, torch.as_tensor(x), zeroed=[1, 6]).argmax(1).numpy()
    accuracy = float((predicted == np.asarray(y)).mean())
    assert {m.label: m.value for m in at.metric}["Probe accuracy"] == f"{accuracy:.3f}"
    # pruning 3 of conv_2's 8 channels removes 3 filters (6·3·3 + 1) and 3 · 2 · 2 columns of
    # each of the 4 output rows (the pool leaves 2 × 2 values per channel)
    at.session_state[state.BREADCRUMBS_TAB] = "Pruning"
    at.run()
    assert_healthy(at)
    at.selectbox(key=state.BREADCRUMBS_CHANNEL_LAYER).set_value("conv_2")
    at.number_input(key=state.BREADCRUMBS_CHANNEL_K).set_value(3)
    at.slider(key=state.BREADCRUMBS_PRUNE_REPEATS).set_value(5)
    at.button(key=state.BREADCRUMBS_PRUNE_BUTTON).click().run()
    assert_healthy(at)
    metrics = {m.label: m for m in at.metric}
    before = sum(v.numel() for v in w.values())
    assert metrics["Parameters"].value == f"{before - 3 * (6 * 9 + 1) - 4 * 3 * 4:,}"
    assert metrics["Channels of L_conv_2"].value == "5"
    sentence = texts(at.markdown)
    assert "Removed E_3/L_conv_2/n_" in sentence
    assert re.search(
        r"ablated to zero (by at most [0-9.e+-]+|exactly) \(float rounding\)", sentence
    )
    assert at.query_params["prune_layer"] == "conv_2" and at.query_params["prune_channels"] == "3"
    # the pruned built-in CNN's weights, config and trace (checked in test_views_channels.py)
    labels = [b.proto.label for b in at.get("download_button")]
    assert [label for label in labels if label.startswith("Pruned")] == [
        "Pruned weights (.safetensors)",
        "Pruned config (.json)",
        "Pruned trace on the probe (.nntrace)",
    ]


def test_a_cnn_traced_from_python_shows_what_needs_no_model_and_says_why_not_the_rest(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    # a user's own module traced from Python: the trace names no model the app could rebuild
    trace = train_bars_cnn(attach=False)
    nt.save_trace(trace, runs_dir / "plain.nntrace")
    at = _open(app, "plain", neuron=f"E_{LAST}/L_conv_2/n_9")
    assert_healthy(at)
    assert "Kernel over training" in _specs(at)  # the kernels need no model
    assert "attach_model" in texts(at.main.info)  # the images and map do
    at.switch_page("pages/breadcrumbs.py").run()
    assert_healthy(at)
    assert "custom model" in texts(at.main.warning)


@pytest.mark.parametrize("page", ["overview", "clusters", "dynamics"])
def test_the_other_pages_open_a_cnn_trace(
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path, page: str
) -> None:
    shutil.copy(cnn_file, runs_dir / "cnn.nntrace")
    at = _open(app, "cnn")
    at.switch_page(f"pages/{page}.py").run()
    assert_healthy(at)
    assert shown_charts(at), f"{page} draws no chart"


def test_the_sidebar_trains_the_built_in_cnn_and_the_pages_open_it(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = app().run()
    field = state.FORM_FIELD
    at.sidebar.selectbox(key=field + "dataset").set_value("bars")
    at.sidebar.selectbox(key=field + "model").set_value("cnn")
    at.sidebar.text_input(key=field + "model_kwargs").set_value('{"channels": [4, 6]}')
    at.sidebar.number_input(key=field + "epochs").set_value(1)
    at.sidebar.number_input(key=field + "n_samples").set_value(400)
    at.sidebar.number_input(key=field + "probe_size").set_value(64)
    at.sidebar.checkbox(key=field + "keep_weights").check()
    next(b for b in at.sidebar.button if b.label == "Run training").click().run()
    assert_healthy(at)
    job = jobs.jobs_of(at.session_state[state.OWNER])[-1]
    assert job.join(300), "the training job did not finish in time"
    snap = job.snapshot()
    assert snap.state == "finished" and snap.status == "complete", snap
    trace = nt.load_trace(runs_dir / str(snap.saved_name))
    assert trace.meta["model"]["name"] == "cnn"
    assert [(i.name, i.n_neurons) for i in trace.layers] == [
        ("input", 1),
        ("conv_1", 4),
        ("conv_2", 6),
        ("output", 4),
    ]
    assert trace.epochs_with_weights == [0, 1]
    name = Path(str(snap.saved_name)).name.removesuffix(".nntrace")
    at = _open(app, name, neuron="E_1/L_conv_1/n_2")
    assert_healthy(at)
    titles = _specs(at)
    assert "Kernel over training" in titles
    assert any(t.startswith("The 12 most active probe images of E_1/L_conv_1/n_2") for t in titles)
