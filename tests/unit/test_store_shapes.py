"""Cross-shapes of a trace file (``nn_tracing/store.py``): parts that are each well formed but
disagree with one another, and configs that do not describe the stored model.

Every malformed file below rewrites a valid file made by real training with one lie that stays
self-consistent (the manifest's inventory and row counts follow the rewritten entry), so that
only the cross-shape is wrong. ``load_trace`` must raise :class:`TraceFormatError` naming the
problem — or, for the values of per-epoch tensors (read when first asked for), that read must.
Each of these files loaded before, and then crashed a page. Valid traces of every kind still
load: built-in with and without kept weights, custom modules, convolutions, no probe set, a
single logit with 0/1 labels.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load as safetensors_load
from safetensors.numpy import save as safetensors_save
from torch import nn

import nn_tracing
from nn_tracing import TraceableNN, models
from nn_tracing.analysis import baselines
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.store import TraceFormatError, load_trace, trace_to_bytes
from nn_tracing.trace import NetworkTrace

PROBE = "tensors/probe.safetensors"
FINAL = "tensors/final_weights.safetensors"


def epoch_file(epoch: int) -> str:
    return f"tensors/epoch_{epoch}.safetensors"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny(tiny_trace_file: Path) -> bytes:
    """2 features → 8 → 8 → 2 classes, probe of 64, epochs 0…4 all recorded, final weights."""
    return tiny_trace_file.read_bytes()


@pytest.fixture(scope="module")
def kept() -> bytes:
    """Like ``tiny`` with weights kept at every recorded epoch (0, 2, 4) and per-step rows."""
    run = nn_tracing.train(
        nn_tracing.TrainConfig(
            dataset="moons",
            hidden_sizes=(8, 8),
            epochs=4,
            epoch_intervals=2,
            keep_weights=True,
            drop_batches=False,
            n_samples=300,
            probe_size=64,
        )
    )
    assert run.trace is not None
    return trace_to_bytes(run.trace)


# --------------------------------------------------------------------------- helpers

_ST_DTYPE = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
}


def rewrite(data: bytes, replace: Mapping[str, bytes], drop: Iterable[str] = ()) -> bytes:
    """``data`` with some entries replaced or dropped (order and compression kept)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w") as target,
    ):
        for info in source.infolist():
            if info.filename not in drop:
                target.writestr(info, replace.get(info.filename, source.read(info)))
    return out.getvalue()


def manifest_of(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return json.loads(zf.read("manifest.json"))


def edit_manifest(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    manifest = manifest_of(data)
    edit(manifest)
    return rewrite(data, {"manifest.json": json.dumps(manifest).encode()})


def tensors_of(data: bytes, entry: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return dict(safetensors_load(zf.read(entry)))


def with_tensors(data: bytes, entry: str, arrays: Mapping[str, np.ndarray]) -> bytes:
    """``entry`` replaced by ``arrays``, the manifest's inventory following it."""
    arrays = {key: np.ascontiguousarray(value) for key, value in arrays.items()}
    data = rewrite(data, {entry: safetensors_save(arrays)})

    def sync(manifest: dict[str, Any]) -> None:
        manifest["tensors"][entry] = {
            key: {"dtype": _ST_DTYPE[value.dtype], "shape": list(value.shape)}
            for key, value in arrays.items()
        }

    return edit_manifest(data, sync)


def edit_tensor(data: bytes, entry: str, key: str, edit: Callable[[np.ndarray], Any]) -> bytes:
    arrays = tensors_of(data, entry)
    arrays[key] = np.asarray(edit(arrays[key].copy()))
    return with_tensors(data, entry, arrays)


def table_of(data: bytes, name: str) -> pd.DataFrame:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return pq.read_table(io.BytesIO(zf.read(f"tables/{name}.parquet"))).to_pandas()


def with_table(data: bytes, name: str, frame: pd.DataFrame) -> bytes:
    """Table ``name`` replaced by ``frame``, the manifest's row count following it."""
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    data = rewrite(data, {f"tables/{name}.parquet": buffer.getvalue()})
    return edit_manifest(data, lambda m: m["tables"][name].update(rows=len(frame)))


def without_probe(data: bytes) -> bytes:
    data = rewrite(data, {}, drop=[PROBE])
    return edit_manifest(data, lambda m: m["tensors"].pop(PROBE))


def with_meta(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    return edit_manifest(data, lambda m: edit(m["meta"]))


# --------------------------------------------------------------------------- the probe set


def test_activation_rows_differ_from_probe_rows(tiny: bytes) -> None:
    # the page that crashed: IndexError in embedding._raw_at
    probe = tensors_of(tiny, PROBE)
    data = with_tensors(tiny, PROBE, {key: value[:60] for key, value in probe.items()})
    with pytest.raises(
        TraceFormatError,
        match=r"tensors/epoch_0\.safetensors: activations have 64 rows but the probe set "
        r"has 60 samples",
    ):
        load_trace(data)


def test_probe_width_differs_from_input_layer(tiny: bytes) -> None:
    # the page that crashed: a torch RuntimeError in Breadcrumbs
    data = edit_tensor(tiny, PROBE, "x", lambda x: np.concatenate([x, x[:, :1]], axis=1))
    with pytest.raises(
        TraceFormatError,
        match=r"the probe inputs have 3 features per sample but the input layer has 2 neurons",
    ):
        load_trace(data)


def test_epochs_of_other_sample_counts_without_a_probe_set(tiny: bytes) -> None:
    # without a probe set, every epoch's tensors must still describe the same samples
    data = without_probe(tiny)
    arrays = tensors_of(data, epoch_file(2))
    data = with_tensors(data, epoch_file(2), {key: value[:60] for key, value in arrays.items()})
    with pytest.raises(
        TraceFormatError,
        match=r"tensors/epoch_2\.safetensors: activations have 60 rows but "
        r"tensors/epoch_0\.safetensors's activations have 64",
    ):
        load_trace(data)


def test_epoch_tensors_without_a_probe_set_still_load(tiny: bytes) -> None:
    # a trace whose probe was removed by hand (tests/app do so) keeps its epoch tensors
    loaded = load_trace(without_probe(tiny))
    assert loaded.probe is None
    assert loaded.probe_activations(2).shape == (64, 20)


@pytest.mark.parametrize("label", [2, -1])
def test_labels_outside_the_classes(tiny: bytes, label: int) -> None:
    def lie(y: np.ndarray) -> np.ndarray:
        y[3] = label
        return y

    with pytest.raises(
        TraceFormatError, match=rf"the probe labels must be classes 0 … 1; found {label}"
    ):
        load_trace(edit_tensor(tiny, PROBE, "y", lie))


# --------------------------------------------------------------------------- epoch tensors


def test_logits_columns_differ_from_the_number_of_classes(tiny: bytes) -> None:
    data = tiny
    for epoch in manifest_of(tiny)["epochs"]:
        data = edit_tensor(
            data, epoch_file(epoch), "logits", lambda z: np.concatenate([z, z[:, :1]], 1)
        )
    with pytest.raises(
        TraceFormatError,
        match=r"tensors/epoch_0\.safetensors: logits have 3 columns but the trace has 2 "
        r"classes \(meta\.dataset\.n_classes\)",
    ):
        load_trace(data)


def test_logits_width_changes_between_epochs_of_a_custom_model() -> None:
    data = trace_to_bytes(custom_trace())
    data = edit_tensor(data, epoch_file(2), "logits", lambda z: np.concatenate([z, z], 1))
    with pytest.raises(
        TraceFormatError,
        match=r"tensors/epoch_2\.safetensors: logits have 6 columns but the trace has 3 "
        r"classes \(the width of its logits at E_0\)",
    ):
        load_trace(data)


@pytest.mark.parametrize("prediction", [2, 7, -1])
def test_predictions_outside_the_classes_fail_when_read(tiny: bytes, prediction: int) -> None:
    def lie(p: np.ndarray) -> np.ndarray:
        p[5] = prediction
        return p

    loaded = load_trace(edit_tensor(tiny, epoch_file(2), "predictions", lie))
    loaded.epoch_tensors(1)  # the other epochs stay readable
    with pytest.raises(
        TraceFormatError,
        match=rf"tensors/epoch_2\.safetensors: predictions must be classes 0 … 1; "
        rf"found {prediction}",
    ):
        loaded.epoch_tensors(2)


@pytest.mark.parametrize(
    ("key", "edit", "message"),
    [
        ("predictions", lambda p: p[:63], r"predictions have 63 rows but the probe set has 64"),
        ("predictions", lambda p: p.reshape(32, 2), r"predictions must have shape \(64,\)"),
        ("predictions", lambda p: p.astype(np.float32), r"predictions must be integers"),
        ("logits", lambda z: z[:63], r"logits have 63 rows but the probe set has 64"),
        ("logits", lambda z: z.astype(np.int64), r"logits must be floating point"),
        ("activations", lambda a: a.astype(np.int32), r"activations must be floating point"),
    ],
)
def test_epoch_tensors_that_disagree_with_the_probe(
    tiny: bytes, key: str, edit: Callable[[np.ndarray], Any], message: str
) -> None:
    with pytest.raises(TraceFormatError, match=r"tensors/epoch_3\.safetensors: " + message):
        load_trace(edit_tensor(tiny, epoch_file(3), key, edit))


# --------------------------------------------------------------------------- weights


@pytest.mark.parametrize(
    ("entry", "key", "shape", "message"),
    [
        (FINAL, "hidden_2.weight", (8, 7), r"layer 'hidden_2' has 8 neurons of 8 inputs each"),
        (FINAL, "output.weight", (3, 8), r"layer 'output' has 2 neurons of 8 inputs each"),
        (FINAL, "output.bias", (3,), r"layer 'output' has 2 neurons \(one bias each\)"),
        (
            epoch_file(2),
            "weights/hidden_1.weight",
            (8, 3),
            r"layer 'hidden_1' has 8 neurons of 2 inputs each",
        ),
    ],
)
def test_weight_shapes_that_disagree_with_the_layers(
    kept: bytes, entry: str, key: str, shape: tuple[int, ...], message: str
) -> None:
    data = edit_tensor(kept, entry, key, lambda w: np.zeros(shape, w.dtype))
    with pytest.raises(
        TraceFormatError,
        match=rf"{entry}: {key} has shape \({', '.join(map(str, shape))},?\), but " + message,
    ):
        load_trace(data)


def test_kept_weights_that_disagree_with_the_final_weights() -> None:
    # a custom model's BatchNorm buffer is no layer's weight, but its shape cannot change
    data = trace_to_bytes(custom_trace(keep_weights=True))
    data = edit_tensor(data, epoch_file(1), "weights/norm.running_mean", lambda v: v[:2])
    with pytest.raises(
        TraceFormatError,
        match=r"tensors/epoch_1\.safetensors: weights/norm\.running_mean has shape \(2,\), but "
        r"the final weights' norm\.running_mean has shape \(5,\)",
    ):
        load_trace(data)


# --------------------------------------------------------------------------- tables


def test_history_lists_an_epoch_twice(tiny: bytes) -> None:
    # analysis.hmm.features reindexes the history by epoch: duplicates made it raise
    history = table_of(tiny, "history")
    data = with_table(tiny, "history", pd.concat([history, history.iloc[[1]]]))
    with pytest.raises(TraceFormatError, match=r"the history table lists epoch 1 twice"):
        load_trace(data)


def test_history_lists_a_negative_epoch(tiny: bytes) -> None:
    history = table_of(tiny, "history")
    history.loc[1, ["epoch", "recorded"]] = [-1, False]
    with pytest.raises(TraceFormatError, match=r"the history table lists epoch -1"):
        load_trace(with_table(tiny, "history", history))


def test_history_marks_an_unrecorded_epoch_as_recorded(kept: bytes) -> None:
    history = table_of(kept, "history")
    assert history["epoch"].tolist() == [0, 1, 2, 3, 4]
    history.loc[history["epoch"] == 1, "recorded"] = True
    with pytest.raises(
        TraceFormatError,
        match=r"the history table marks epoch 1 as recorded, but the trace records epochs "
        r"0, 2, 4",
    ):
        load_trace(with_table(kept, "history", history))


def test_steps_name_a_layer_the_trace_does_not_have(kept: bytes) -> None:
    steps = table_of(kept, "steps")
    steps["layer"] = steps["layer"].astype(str).replace("hidden_2", "hidden_9")
    with pytest.raises(
        TraceFormatError,
        match=r"the steps table names layer 'hidden_9', which is not a traced layer "
        r"\(hidden_1, hidden_2, output\)",
    ):
        load_trace(with_table(kept, "steps", steps))


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("edit", "described"),
    [
        (lambda meta: meta["config"].update(hidden_sizes=[16, 16]), "2-16-16-2"),
        (lambda meta: meta["config"].update(hidden_sizes=[8]), "2-8-2"),
        (lambda meta: meta["dataset"].update(n_features=3), "3-8-8-2"),
        (lambda meta: meta["dataset"].update(n_classes=10), "2-8-8-10"),
    ],
)
def test_config_that_describes_other_layers(
    tiny: bytes, edit: Callable[[dict[str, Any]], Any], described: str
) -> None:
    with pytest.raises(
        TraceFormatError,
        match=rf"the trace's config describes an MLP {described}, but its stored layers are "
        r"2-8-8-2",
    ):
        load_trace(with_meta(tiny, edit))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: meta["config"].update(hidden_sizes="8,8"), "hidden_sizes"),
        (lambda meta: meta["config"].update(hidden_sizes=[8, 0]), "hidden_sizes"),
        (lambda meta: meta["config"].update(hidden_sizes=[8, True]), "hidden_sizes"),
        (lambda meta: meta["dataset"].update(n_classes="2"), "n_classes"),
        (lambda meta: meta["dataset"].update(n_features=10**400), "n_features"),
    ],
)
def test_config_with_malformed_sizes(
    tiny: bytes, edit: Callable[[dict[str, Any]], Any], message: str
) -> None:
    with pytest.raises(TraceFormatError, match=rf"the trace's config .*{message}"):
        load_trace(with_meta(tiny, edit))


def test_config_that_claims_huge_layers_is_rejected_at_once(
    tiny: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 56 KB upload claiming 16 layers of 8192 (about 1e9 parameters) got the server
    # OOM-killed when a page rebuilt its model. Nothing may be built; the answer is immediate.
    monkeypatch.setattr(models, "MLP", _no_model)
    data = with_meta(tiny, lambda meta: meta["config"].update(hidden_sizes=[8192] * 16))
    started = time.perf_counter()
    with pytest.raises(TraceFormatError, match=r"config describes an MLP 2-8192-8192-"):
        load_trace(data)
    assert time.perf_counter() - started < 5


def _no_model(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("a model was built from a config that does not fit the stored weights")


def _lying_trace(valid: bytes, hidden: tuple[int, ...]) -> NetworkTrace:
    """A trace in memory (no load_trace to stop it) whose config claims ``hidden`` layers."""
    loaded = load_trace(valid)
    meta = {**loaded.meta, "config": {**loaded.meta["config"], "hidden_sizes": list(hidden)}}
    return NetworkTrace(
        loaded.layers,
        {epoch: loaded.metrics_at(epoch) for epoch in loaded.epochs},
        meta,
        history=loaded.history,
        probe=loaded.probe,
        epoch_tensors=loaded.epoch_tensors,
        final_weights=loaded.final_weights,
    )


BUILDERS: dict[str, Callable[[NetworkTrace], Any]] = {
    "model_from_trace": lambda trace: models.model_from_trace(trace),
    "model_from_trace at an epoch": lambda trace: models.model_from_trace(trace, 2),
    "fresh_initialisation": lambda trace: baselines.fresh_initialisation(trace, 0),
    "NeuronModel.from_trace": lambda trace: NeuronModel.from_trace(trace),
}


@pytest.mark.parametrize("hidden", [(16, 16), (8192,) * 16], ids=["other", "huge"])
@pytest.mark.parametrize("builder", list(BUILDERS))
def test_builders_refuse_a_config_that_does_not_describe_the_stored_weights(
    kept: bytes, monkeypatch: pytest.MonkeyPatch, builder: str, hidden: tuple[int, ...]
) -> None:
    trace = _lying_trace(kept, hidden)
    monkeypatch.setattr(models, "MLP", _no_model)
    started = time.perf_counter()
    with pytest.raises(
        TraceFormatError,
        match=r"the trace's config describes an MLP \S+ of [\d,]+ parameters, but its stored "
        r"weights hold 114 \(hidden_1\.weight: ",
    ):
        BUILDERS[builder](trace)
    assert time.perf_counter() - started < 5


def test_builders_refuse_a_model_over_the_size_limit(
    kept: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = load_trace(kept)
    monkeypatch.setattr(models, "MAX_BUILD_PARAMETERS", 100)
    monkeypatch.setattr(models, "MLP", _no_model)
    for build in BUILDERS.values():
        with pytest.raises(ValueError, match=r"114 parameters, over the limit of 100"):
            build(trace)


def test_check_buildable_passes_a_valid_trace(kept: bytes) -> None:
    trace = load_trace(kept)
    models.check_buildable(trace)
    assert sum(p.numel() for p in models.model_from_trace(trace).parameters()) == 114


# --------------------------------------------------------------------------- valid traces


class Branchy(nn.Module):
    """Two branches from the input, a norm, a head on both: fan-ins that are not the width of
    the layer before."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.norm = nn.BatchNorm1d(5)
        self.b = nn.Linear(4, 3)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([torch.tanh(self.norm(self.a(x))), self.b(x)], 1))


def _trace_of(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    *,
    probe: bool = True,
    **kwargs: Any,
) -> NetworkTrace:
    """Two epochs of full-batch SGD on ``module``, traced (every epoch recorded)."""
    model = TraceableNN(
        module,
        probe=(x, y) if probe else None,
        example_input=None if probe else x[:4],
        num_epochs=2,
        loss_fn=loss,
        **kwargs,
    )
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    for epoch in (1, 2):
        model.start_epoch(epoch)
        value = loss(model(x), y)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        model.end_epoch(epoch, train_loss=value.item())
    return model.finish()


def custom_trace(**kwargs: Any) -> NetworkTrace:
    torch.manual_seed(0)
    return _trace_of(Branchy(), torch.randn(24, 4), torch.arange(24) % 3, **kwargs)


def _conv2d_trace() -> NetworkTrace:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 2))
    return _trace_of(net, torch.randn(6, 2, 4, 4), torch.arange(6) % 2, keep_weights=True)


def _conv1d_trace() -> NetworkTrace:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(3, 4, 3), nn.GELU(), nn.Flatten(), nn.Linear(4 * 6, 2))
    return _trace_of(net, torch.randn(5, 3, 8), torch.arange(5) % 2)


def _linear_over_sequence_trace() -> NetworkTrace:
    # a 3-d input whose features are its last axis (the first layer is Linear, not Conv)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5, 2))
    return _trace_of(net, torch.randn(6, 5, 3), torch.arange(6) % 2)


def _single_logit_trace() -> NetworkTrace:
    # binary classification with one logit: labels 0/1 but a logits width of 1
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out[:, 0], y.float())

    return _trace_of(net, torch.randn(10, 2), torch.arange(10) % 2, loss)


def _streamed_trace() -> NetworkTrace:
    torch.manual_seed(0)
    return _trace_of(Branchy(), torch.randn(24, 4), torch.arange(24) % 3, probe=False)


VALID: dict[str, Callable[[], NetworkTrace]] = {
    "custom": custom_trace,
    "custom, kept weights and steps": lambda: custom_trace(keep_weights=True, drop_batches=False),
    "conv2d": _conv2d_trace,
    "conv1d": _conv1d_trace,
    "linear over a sequence": _linear_over_sequence_trace,
    "single logit": _single_logit_trace,
    "no probe set": _streamed_trace,
    "no probe set, kept weights": lambda: _trace_of(
        nn.Linear(3, 2), torch.randn(8, 3), torch.arange(8) % 2, probe=False, keep_weights=True
    ),
}


@pytest.mark.parametrize("kind", list(VALID))
def test_valid_traces_of_every_kind_still_load(kind: str) -> None:
    trace = VALID[kind]()
    loaded = load_trace(trace_to_bytes(trace))
    for epoch in loaded.epochs:
        assert list(loaded.epoch_tensors(epoch)) == list(trace.epoch_tensors(epoch))
    pd.testing.assert_frame_equal(loaded.frame, trace.frame)


@pytest.mark.parametrize("fixture", ["tiny", "kept"])
def test_valid_built_in_traces_load_and_rebuild(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    loaded = load_trace(request.getfixturevalue(fixture))
    for epoch in loaded.epochs:
        loaded.epoch_tensors(epoch)
    models.check_buildable(loaded)
    for epoch in loaded.epochs_with_weights:
        models.model_from_trace(loaded, epoch)
    baselines.fresh_initialisation(loaded, 0)
