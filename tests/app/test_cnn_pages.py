"""The Neurons and Breadcrumbs pages on a real small CNN (trained for real on the generated
``bars`` images): a channel's kernel over training, its top images with receptive-field boxes,
its activation map, attribution to pixels, channel pruning — each checked against torch run
directly on the trace's weights — and a message, not a traceback, where the model is missing.

The app rebuilds a traced model from its trace: a built-in one from its config, any other only
when it is attached. Until the built-in CNN (``TrainConfig.model="cnn"``) lands, the test
attaches :class:`~cnn_support.SmallCNN` to the traces the app loads from ``cnn.nntrace``
(``attach`` below), which is what the server does for an allowed entry point: the file itself
imports nothing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from apptest_support import assert_healthy, chart_rows, texts
from cnn_support import SmallCNN, train_bars_cnn
from streamlit.testing.v1 import AppTest

import nn_tracing as nt
from nn_tracing.ui import state

LAST = 3  # the last recorded epoch of the CNN trace


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trace = train_bars_cnn()
    return nt.save_trace(trace, tmp_path_factory.mktemp("t") / "cnn.nntrace")


@pytest.fixture
def attach(monkeypatch: pytest.MonkeyPatch) -> None:
    """Attach :class:`SmallCNN` to every trace the app loads from a file named ``cnn*``."""
    from nn_tracing.ui import traces

    real = traces.load_trace

    def load(path, *args, **kwargs):
        trace = real(path, *args, **kwargs)
        if Path(str(path)).name.startswith("cnn"):
            nt.attach_model(trace, SmallCNN())
        return trace

    monkeypatch.setattr(traces, "load_trace", load)


def _specs(at: AppTest) -> dict[str, object]:
    charts = {}
    for chart in at.get("vega_lite_chart"):
        title = json.loads(chart.proto.spec).get("title")
        charts[title.get("text", "") if isinstance(title, dict) else str(title)] = chart
    return charts


def _maps(trace: nt.NetworkTrace, x: np.ndarray, epoch: int) -> np.ndarray:
    """conv_1's activation maps, by torch functions on the stored weights (not the model)."""
    w = trace.weights(epoch)
    out = F.conv2d(torch.as_tensor(x), torch.as_tensor(w["conv_1.weight"]), padding=1)
    return F.relu(out + torch.as_tensor(w["conv_1.bias"])[None, :, None, None]).numpy()


def _open(app: Callable[[], AppTest], name: str, **params: str) -> AppTest:
    at = app()
    at.query_params["trace"] = name
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_a_channel_shows_its_kernels_top_images_with_boxes_and_its_map(
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path, attach: None
) -> None:
    shutil.copy(cnn_file, runs_dir / "cnn.nntrace")
    trace = nt.load_trace(cnn_file)
    neuron = trace.layer("conv_1").first_id + 2
    at = _open(app, "cnn", neuron=f"E_{LAST}/L_conv_1/n_{neuron}")
    assert_healthy(at)
    charts = _specs(at)
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


def test_breadcrumbs_attribute_to_pixels_and_prune_channels(
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path, attach: None
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
    net = SmallCNN()
    net.load_state_dict({k: torch.as_tensor(v) for k, v in trace.weights(LAST).items()})
    x, y = trace.probe
    images = torch.as_tensor(x[np.asarray(y) == 0]).requires_grad_(True)
    net(images)[:, 0].sum().backward()
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
    handle = net.act_2.register_forward_hook(lambda m, i, out: out.index_fill(1, zeroed, 0.0))
    zeroed = torch.tensor([1, 6])
    with torch.no_grad():
        predicted = net(torch.as_tensor(x)).argmax(1).numpy()
    handle.remove()
    accuracy = float((predicted == np.asarray(y)).mean())
    assert {m.label: m.value for m in at.metric}["Probe accuracy"] == f"{accuracy:.3f}"
    # pruning 3 of conv_2's 8 channels removes 3 filters (6·3·3 + 1) and 3 · 4 · 4 columns of
    # each of the 4 output rows
    at.session_state[state.BREADCRUMBS_TAB] = "Pruning"
    at.run()
    assert_healthy(at)
    at.selectbox(key=state.BREADCRUMBS_CHANNEL_LAYER).set_value("conv_2")
    at.number_input(key=state.BREADCRUMBS_CHANNEL_K).set_value(3)
    at.slider(key=state.BREADCRUMBS_PRUNE_REPEATS).set_value(5)
    at.button(key=state.BREADCRUMBS_PRUNE_BUTTON).click().run()
    assert_healthy(at)
    metrics = {m.label: m for m in at.metric}
    before = sum(p.numel() for p in net.parameters())
    assert metrics["Parameters"].value == f"{before - 3 * (6 * 9 + 1) - 4 * 3 * 16:,}"
    assert metrics["Channels of L_conv_2"].value == "5"
    sentence = texts(at.markdown)
    assert "Removed E_3/L_conv_2/n_" in sentence and "ablated to zero by at most" in sentence
    assert at.query_params["prune_layer"] == "conv_2" and at.query_params["prune_channels"] == "3"


def test_without_the_model_the_pages_say_so_instead_of_failing(
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path
) -> None:
    # other bytes than cnn.nntrace's: the app's caches (by digest) start afresh
    trace = nt.load_trace(cnn_file)
    trace.meta["note"] = "no model attached"
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
    app: Callable[[], AppTest], runs_dir: Path, cnn_file: Path, attach: None, page: str
) -> None:
    shutil.copy(cnn_file, runs_dir / "cnn.nntrace")
    at = _open(app, "cnn")
    at.switch_page(f"pages/{page}.py").run()
    assert_healthy(at)
    assert at.get("vega_lite_chart"), f"{page} draws no chart"
