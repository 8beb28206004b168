"""What the Neurons and Breadcrumbs pages show of a convolution channel, built without
Streamlit: its kernels over training, its top images with the receptive-field box of each
peak, its activation map on one sample, and the attribution of a class to every pixel.

The analyses are :mod:`nn_tracing.analysis.channels`' and the charts
:mod:`nn_tracing.viz.channels`'. The live model comes from
:func:`~nn_tracing.analysis.channels.model_with_weights` (a built-in model rebuilt from the
trace, or a module attached to it); where there is none the functions raise
:class:`~nn_tracing.analysis.profiles.ProfileUnavailable` saying why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis import channels, profiles
from ..analysis.attribution import Attribution
from ..analysis.intervention.channel_pruning import ChannelPruningResult, channel_pruning
from ..analysis.neuron_model import NeuronModel
from ..analysis.profiles import ProfileUnavailable
from ..progress import Progress
from ..trace import LayerInfo, NetworkTrace
from ..viz import channels as channel_viz
from ..viz.common import MARK_BUDGET
from .breadcrumbs import Metric
from .text import difference_words, md_escape

__all__ = [
    "MAX_KERNEL_EPOCHS",
    "PrunedChannels",
    "activation_map_chart",
    "channel_layer",
    "channel_pruning_metrics",
    "channel_pruning_sentence",
    "input_channel_note",
    "kernel_chart",
    "kernel_frame",
    "live_model",
    "pixel_attribution_chart",
    "pixel_method",
    "prune_channels",
    "reader_kernels_chart",
    "top_images_chart",
    "top_images_frames",
]

#: The most epochs the kernel images show (spread evenly over the kept ones, first and last
#: always), and the most input channels of each.
MAX_KERNEL_EPOCHS = 8
MAX_KERNEL_INPUTS = 4


def channel_layer(trace: NetworkTrace, neuron: int) -> LayerInfo | None:
    """The conv2d layer of ``neuron`` when the trace's inputs are images, else ``None``."""
    info = trace.layer_of(neuron)
    if info.kind != "conv2d" or channels.image_inputs(trace) is None:
        return None
    return info


def live_model(trace: NetworkTrace, epoch: int | None) -> NeuronModel:
    """The network at ``epoch`` (``None``: final weights), or :class:`ProfileUnavailable`."""
    try:
        return channels.model_with_weights(trace, None, epoch)
    except ValueError as exc:
        raise ProfileUnavailable(
            f"receptive fields and activation maps run the network, and {exc}"
        ) from None


def _field(model: NeuronModel, layer: str, x: np.ndarray) -> channels.ReceptiveField:
    """The layer's receptive field, or :class:`ProfileUnavailable` saying why there is none."""
    try:
        return channels.receptive_field(model, layer, x)
    except ProfileUnavailable:
        raise
    except ValueError as exc:
        raise ProfileUnavailable(str(exc)) from None


def _image_pixels(
    trace: NetworkTrace, image: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, col, value)`` of a probe image (C, H, W) drawn in grey: the mean over channels
    of its pixels in the dataset's own units. (The model sees them standardised pixel by
    pixel; drawn that way, a border pixel that is almost always 0 outshines the digit.)"""
    image = np.asarray(image, dtype=np.float64)
    raw = profiles.destandardise(trace, image.reshape(1, -1)).reshape(image.shape)
    grey = raw.mean(0)
    rows, cols = np.divmod(np.arange(grey.size), grey.shape[1])
    return rows, cols, grey.reshape(-1)


# -- kernels -------------------------------------------------------------------------------------
def _spread(epochs: list[int], most: int) -> list[int]:
    if len(epochs) <= most:
        return epochs
    picks = np.unique(np.round(np.linspace(0, len(epochs) - 1, most)).astype(int))
    return [epochs[i] for i in picks]


def kernel_frame(trace: NetworkTrace, neuron: int) -> pd.DataFrame:
    """A channel's kernels at up to :data:`MAX_KERNEL_EPOCHS` kept epochs, long form: one row
    per weight with ``panel`` (``E_5``, or ``E_5 · in 2`` with several input channels),
    ``row``, ``col``, ``weight``, ``signature`` (the channel's at that epoch), ``n_epochs``."""
    info = trace.layer_of(neuron)
    kernels = channels.kernel_history(trace, info.name, [neuron - info.first_id])
    shown = _spread(sorted(kernels["epoch"].unique().tolist()), MAX_KERNEL_EPOCHS)
    kernels = kernels[
        kernels["epoch"].isin(shown) & (kernels["in_channel"] < MAX_KERNEL_INPUTS)
    ].copy()
    several = kernels["in_channel"].max() > 0
    kernels["panel"] = [
        f"E_{e} · in {i}" if several else f"E_{e}"
        for e, i in zip(kernels["epoch"], kernels["in_channel"], strict=True)
    ]
    kernels["signature"] = [trace.signature(int(e), neuron) for e in kernels["epoch"]]
    kernels["n_epochs"] = len(shown)
    return kernels.sort_values(["in_channel", "epoch", "row", "col"], ignore_index=True)


def _first_reader(trace: NetworkTrace, neuron: int) -> LayerInfo | None:
    """The first conv2d layer, when ``neuron`` is an input channel of images it reads."""
    info = trace.layer_of(neuron)
    if info.kind != "input" or channels.image_inputs(trace) is None:
        return None
    convs = channels.conv_layers(trace)
    if not convs or convs[0].weight_key is None:
        return None
    return convs[0] if trace.layers.index(convs[0]) == 1 else None


def input_channel_note(trace: NetworkTrace, neuron: int) -> str | None:
    """Markdown for an input neuron of an image network — a channel of the images, not a
    pixel — or ``None`` for other neurons."""
    x = channels.image_inputs(trace)
    info = trace.layer_of(neuron)
    if info.kind != "input" or x is None:
        return None
    reader = _first_reader(trace, neuron)
    reads = (
        f" The kernels of L_{reader.name} read it (below: each channel's kernel on it)."
        if reader is not None
        else ""
    )
    return (
        f"n_{neuron} is channel {neuron - info.first_id} of the {x.shape[2]}×{x.shape[3]} input "
        f"images (they have {x.shape[1]}): its activation is an image's mean standardised "
        f"pixel, and it has no incoming weights.{reads}"
    )


def reader_kernels_frame(trace: NetworkTrace, neuron: int, epoch: int) -> pd.DataFrame | None:
    """The first conv layer's kernels on input channel ``neuron`` at ``epoch`` (kept
    weights), long form like :func:`kernel_frame` with one panel per conv channel (``n_5``);
    ``None`` when ``neuron`` is not an input channel read by a first conv layer."""
    reader = _first_reader(trace, neuron)
    if reader is None or epoch not in trace.epochs_with_weights:
        return None
    kernels = channels.kernel_history(trace, reader.name)
    kernels = kernels[
        (kernels["epoch"] == epoch) & (kernels["in_channel"] == neuron - trace.layers[0].first_id)
    ].copy()
    kernels["panel"] = [f"n_{n}" for n in kernels["neuron"]]
    kernels["signature"] = [trace.signature(epoch, int(n)) for n in kernels["neuron"]]
    kernels["n_epochs"] = min(reader.n_neurons, MAX_KERNEL_EPOCHS)
    return kernels.sort_values(["neuron", "row", "col"], ignore_index=True)


def reader_kernels_chart(trace: NetworkTrace, neuron: int, epoch: int) -> object | None:
    """:func:`reader_kernels_frame` drawn as small images (``None`` when there is none)."""
    frame = reader_kernels_frame(trace, neuron, epoch)
    if frame is None or frame.empty:
        return None
    reader = trace.layer_of(int(frame["neuron"].iloc[0]))
    return channel_viz.kernel_images_chart(
        frame,
        title=f"What L_{reader.name} reads from it at E_{epoch}",
        subtitle=[
            f"the {frame['row'].max() + 1}×{frame['col'].max() + 1} kernel of each of its "
            f"{reader.n_neurons} channels on this input channel (orange +, blue −)"
        ],
    )


def kernel_chart(trace: NetworkTrace, neuron: int) -> object:
    """:func:`kernel_frame` drawn as small images."""
    frame = kernel_frame(trace, neuron)
    info = trace.layer_of(neuron)
    kept = len(trace.epochs_with_weights)
    subtitle = [
        f"n_{neuron} of L_{info.name}: its {frame['row'].max() + 1}×{frame['col'].max() + 1} "
        f"kernel at {frame['n_epochs'].iloc[0]} of {kept} epochs with kept weights "
        "(orange +, blue −)"
    ]
    if frame["in_channel"].max() + 1 < info.fan_in // ((frame["row"].max() + 1) ** 2):
        subtitle.append(f"its first {MAX_KERNEL_INPUTS} input channels")
    return channel_viz.kernel_images_chart(frame, title="Kernel over training", subtitle=subtitle)


# -- top images ----------------------------------------------------------------------------------
def _box_row(caption: str, box: tuple[int, int, int, int], peak: float, where: str, sig: str):
    r0, r1, c0, c1 = box
    return {
        "caption": caption,
        "row": r0,
        "row2": r1 + 1,
        "col": c0,
        "col2": c1 + 1,
        "peak": peak,
        "where": where,
        "signature": sig,
    }


def top_images_frames(
    trace: NetworkTrace, model: NeuronModel, neuron: int, epoch: int, k: int, largest: bool
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(pixels, boxes, top)`` for :func:`nn_tracing.viz.channels.top_images_chart`: the
    channel's ``k`` most (or least) active probe images at ``epoch``, the box each peak sees,
    and :func:`~nn_tracing.analysis.channels.top_channel_images`' table."""
    x = channels.image_inputs(trace)
    assert x is not None and trace.probe is not None
    labels = np.asarray(trace.probe[1]).astype(np.int64)
    top = channels.top_channel_images(model, x, neuron, k, largest=largest, labels=labels)
    signature = trace.signature(epoch, neuron)
    pixel_frames, boxes = [], []
    for row in top.itertuples():
        caption = f"#{row.rank} · {trace.class_name(int(row.label))} · sample {row.probe_index}"
        rows, cols, values = _image_pixels(trace, x[row.probe_index])
        pixel_frames.append(
            pd.DataFrame(
                {
                    "caption": caption,
                    "row": rows,
                    "col": cols,
                    "value": values,
                    "probe_index": row.probe_index,
                    "activation": row.activation,
                    "signature": signature,
                }
            )
        )
        box = (row.row_first, row.row_last, row.col_first, row.col_last)
        where = f"({row.peak_row}, {row.peak_col})"
        boxes.append(_box_row(caption, box, row.peak, where, signature))
    pixels = pd.concat(pixel_frames, ignore_index=True) if pixel_frames else pd.DataFrame()
    return pixels, pd.DataFrame(boxes), top


def top_images_chart(
    trace: NetworkTrace, model: NeuronModel, neuron: int, epoch: int, k: int, largest: bool
) -> tuple[object, pd.DataFrame]:
    """The top images with their boxes as a chart, and the table it was drawn from."""
    x = channels.image_inputs(trace)
    assert x is not None
    field = _field(model, trace.layer_of(neuron).name, x)
    fits = max(1, MARK_BUDGET // (x.shape[2] * x.shape[3]))  # images within the mark budget
    pixels, boxes, top = top_images_frames(trace, model, neuron, epoch, min(k, fits), largest)
    if top.empty:
        raise ProfileUnavailable("no probe image has a finite activation")
    order = "most" if largest else "least"
    budget = (
        [
            f"{k} asked for: the {fits} that fit in {MARK_BUDGET:,} marks "
            f"({x.shape[2]}×{x.shape[3]} pixels each) are shown"
        ]
        if k > fits
        else []
    )
    chart = channel_viz.top_images_chart(
        pixels,
        boxes,
        title=f"The {len(top)} {order} active probe images of {trace.signature(epoch, neuron)}",
        subtitle=[
            "ranked by the channel's mean activation over its map; red: the "
            f"{field.size[0]}×{field.size[1]}-pixel receptive field of the map's maximum "
            "(clipped at the border)",
            "pixels: the probe images in the dataset's own units",
            *budget,
        ],
    )
    return chart, top


# -- activation map ------------------------------------------------------------------------------
def activation_map_chart(
    trace: NetworkTrace, model: NeuronModel, neuron: int, epoch: int, sample: int
) -> object:
    """The channel's map on probe sample ``sample`` beside the sample with the peak's box."""
    x = channels.image_inputs(trace)
    assert x is not None
    if not 0 <= sample < len(x):
        raise ProfileUnavailable(f"probe sample {sample} does not exist; there are {len(x)}")
    info = trace.layer_of(neuron)
    channel = neuron - info.first_id
    values = channels.channel_maps(model, x[sample : sample + 1], info.name, [channel])[0, 0]
    signature = trace.signature(epoch, neuron)
    rows, cols = np.divmod(np.arange(values.size), values.shape[1])
    activation_map = pd.DataFrame(
        {"row": rows, "col": cols, "activation": values.reshape(-1), "signature": signature}
    )
    r, c, grey = _image_pixels(trace, x[sample])
    image = pd.DataFrame({"row": r, "col": c, "value": grey, "signature": signature})
    peak_row, peak_col = divmod(int(np.argmax(values)), values.shape[1])
    field = _field(model, info.name, x)
    box = pd.DataFrame(
        [_box_row("", field.box(peak_row, peak_col), float(values.max()), "", signature)]
    )
    label = int(np.asarray(trace.probe[1])[sample]) if trace.probe is not None else 0
    return channel_viz.activation_map_chart(
        image,
        activation_map,
        box,
        title=f"{signature} on probe sample {sample} ({md_escape(trace.class_name(label))}): "
        f"peak {values.max():.3g} at ({peak_row}, {peak_col}) of its "
        f"{values.shape[0]}×{values.shape[1]} map",
    )


# -- pixel attribution ---------------------------------------------------------------------------
def pixel_method(method: str) -> str:
    """The pixel method that goes with a neuron attribution method: integrated gradients for
    integrated gradients and conductance, gradient × input otherwise."""
    return (
        "integrated_gradients"
        if method in ("integrated_gradients", "conductance")
        else ("grad_x_input")
    )


def pixel_attribution_chart(
    trace: NetworkTrace, model: NeuronModel, explained: Attribution, signature_epoch: int
) -> object:
    """The attribution of ``explained``'s samples and targets to every pixel, averaged over
    the samples, beside their mean image (square pixels)."""
    x = channels.image_inputs(trace)
    assert x is not None
    method = pixel_method(explained.method)
    samples = np.asarray(explained.samples)
    scores = channels.pixel_attributions(model, x[samples], explained.targets, method)
    mean_scores = scores.mean(0).sum(0)  # over samples, then over input channels
    rows, cols = np.divmod(np.arange(mean_scores.size), mean_scores.shape[1])
    signature = f"E_{signature_epoch}/L_{trace.layers[0].name}"
    score_frame = pd.DataFrame(
        {"row": rows, "col": cols, "score": mean_scores.reshape(-1), "signature": signature}
    )
    r, c, grey = _image_pixels(trace, np.asarray(x[samples]).mean(0))
    image = pd.DataFrame({"row": r, "col": c, "value": grey, "signature": signature})
    return channel_viz.pixel_attribution_chart(
        image,
        score_frame,
        title="Pixels",
        subtitle=[
            f"{channels.PIXEL_METHODS[method]}, mean over {samples.size} sample(s); "
            "orange supports the class, blue opposes it"
        ],
    )


# -- channel pruning -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PrunedChannels:
    """A channel pruning and its downloads: the pruned weights (safetensors), config (JSON)
    and trace on the probe (``.nntrace`` bytes) — or, where the pruned model cannot be
    exported (not the built-in CNN), ``refused``, the reason."""

    result: ChannelPruningResult
    weights: bytes | None = None
    config: bytes | None = None
    trace: bytes | None = None
    refused: str | None = None


def prune_channels(
    trace: NetworkTrace,
    epoch: int,
    layer: str,
    k: int,
    n_repeats: int,
    method: str,
    progress: Progress | None = None,
) -> PrunedChannels:
    """The ``k`` least important channels of ``layer`` pruned at the model state ``epoch``
    (:data:`~nn_tracing.views.breadcrumbs.FINAL`: the final weights), on the probe set, and
    the pruned built-in CNN's files (:func:`nn_tracing.export.pruned_channels_config`)."""
    from ..export import pruned_channels_config, pruned_files, pruned_trace
    from ..store import trace_to_bytes
    from . import breadcrumbs

    x, y = breadcrumbs.probe(trace)
    model = breadcrumbs.model_at(trace, epoch)
    result = channel_pruning(
        model, x, y, layer, k, method=method, n_repeats=n_repeats, progress=progress
    )
    try:
        config = pruned_channels_config(
            trace, result, epoch=None if epoch == breadcrumbs.FINAL else epoch
        )
    except ValueError as exc:
        return PrunedChannels(result, refused=str(exc))
    if progress is not None:
        progress(0.97, "tracing the pruned model on the probe set")
    weights, text = pruned_files(result.pruned, config)
    small = pruned_trace(result.pruned, trace, config)
    return PrunedChannels(result, weights, text, trace_to_bytes(small))


def channel_pruning_metrics(result: ChannelPruningResult) -> list[Metric]:
    """Accuracy after, parameters, random pruning, the layer's channels."""
    saved = result.parameters_before - result.parameters_after
    random = result.random_accuracy
    n_before = len(result.importance)
    return [
        Metric(
            "Probe accuracy after",
            f"{result.accuracy_after:.3f}",
            delta=f"{result.accuracy_after - result.accuracy_before:+.3f} "
            f"(from {result.accuracy_before:.3f})",
        ),
        Metric(
            "Parameters",
            f"{result.parameters_after:,}",
            delta=f"-{saved:,} ({saved / max(result.parameters_before, 1):.0%} saved)",
            delta_color="off",
        ),
        Metric(
            "Random channels pruned",
            f"{np.mean(random):.3f}" if len(random) else "–",
            help=f"mean accuracy over {len(random)} random choices of as many channels"
            + (
                f"; 5th–95th percentile {np.percentile(random, 5):.3f}–"
                f"{np.percentile(random, 95):.3f}"
                if len(random)
                else ""
            ),
        ),
        Metric(
            f"Channels of L_{result.layer}",
            f"{n_before - len(result.removed)}",
            help=f"before: {n_before}",
        ),
    ]


def channel_pruning_sentence(trace: NetworkTrace, epoch: int, result: ChannelPruningResult) -> str:
    """What was removed and the check against ablation (Markdown)."""
    from .breadcrumbs import model_state

    state = model_state(trace, epoch)
    removed = ", ".join(trace.signature(state, n) for n in result.removed)
    random = result.random_accuracy
    share = float(np.mean(random >= result.accuracy_after)) if len(random) else float("nan")
    return (
        f"Removed {md_escape(removed, 1500)}: a new, narrower convolution and the next layer "
        f"without their input channels. Random channels do at least as well in {share:.0%} of "
        f"{len(random)} tries. Check: "
        + difference_words(
            result.max_output_difference,
            "the pruned network's outputs",
            "the network's with these channels ablated to zero",
        )
        + f" (float rounding); accuracy with them ablated: {result.ablated_accuracy:.3f}."
    )
