"""Channel neurons of convolutional layers as image neurons.

A convolution's channel is one neuron of the trace (its statistics pooled over positions); here
it is also what it is in a CNN: a feature map over the image. Given a
:class:`~nn_tracing.analysis.neuron_model.NeuronModel` (any traced module — the built-in CNN
rebuilt from its trace, or your own ``nn.Module`` with the trace's weights, see
:func:`model_with_weights`) and images of shape (n_samples, channels, height, width):

* :func:`channel_maps` — a conv layer's activation maps, shape (n_samples, C, h, w): what the
  trace's channel neuron passes on, before pooling;
* :func:`receptive_field` — how a position of a conv layer's map maps back to a box of input
  pixels, through the kernel sizes, strides, paddings, dilations and poolings before it
  (:class:`ReceptiveField`);
* :func:`top_channel_images` — a channel's top-activating images (ranked by the trace's pooled
  activation) with the position of the map's maximum and the input box that drove it;
* :func:`kernel_history` — a conv layer's kernels at every recorded epoch with kept weights,
  each kernel a small image;
* :func:`pixel_attributions` — attribution of a class score to every input pixel (Captum's
  ``InputXGradient`` or ``IntegratedGradients``).

Attribution to channels, ablation of channels and the Breadcrumbs trail are
:mod:`nn_tracing.analysis.attribution`'s and :mod:`nn_tracing.analysis.intervention`'s, which
treat a channel as one neuron; pruning channels is
:mod:`nn_tracing.analysis.intervention.channel_pruning`'s. Nothing here imports Streamlit.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..trace import LayerInfo
from .neuron_model import NeuronModel

if TYPE_CHECKING:
    from ..trace import NetworkTrace

__all__ = [
    "PIXEL_METHODS",
    "ReceptiveField",
    "channel_maps",
    "conv_layers",
    "image_inputs",
    "kernel_history",
    "leaf_calls",
    "model_with_weights",
    "pixel_attributions",
    "receptive_field",
    "top_channel_images",
]

#: Pixel attribution methods: name -> what it computes.
PIXEL_METHODS: dict[str, str] = {
    "grad_x_input": "gradient × input (Captum InputXGradient)",
    "integrated_gradients": "integrated gradients from the all-zero image, the training mean "
    "of the standardised pixels (Captum IntegratedGradients)",
}

#: Modules that keep every position where it is (the receptive field passes through them).
_POSITIONWISE = (nn.BatchNorm2d, nn.Dropout, nn.Dropout2d, nn.Identity, nn.GroupNorm)


# -- inputs and models ---------------------------------------------------------------------------
def image_inputs(trace: NetworkTrace) -> np.ndarray | None:
    """The probe inputs when they are images, array (n_samples, channels, height, width), else
    ``None`` (no probe, or inputs that are not 4-D)."""
    if trace.probe is None:
        return None
    x = np.asarray(trace.probe[0])
    return x if x.ndim == 4 else None


def conv_layers(trace: NetworkTrace) -> list[LayerInfo]:
    """The trace's 2-D convolution layers, in order."""
    return [info for info in trace.layers if info.kind == "conv2d"]


def model_with_weights(
    trace: NetworkTrace, module: nn.Module | None = None, epoch: int | None = None
) -> NeuronModel:
    """The trace's network at ``epoch`` (``None``: the final weights) with hook points.

    ``module`` (your own architecture, same ``state_dict`` keys and shapes as the trace's
    weights) is copied and given the trace's weights; without it the model is rebuilt from the
    trace (:func:`nn_tracing.models.model_from_trace`: a built-in model or one attached with
    :func:`~nn_tracing.models.attach_model`).

    Raises
    ------
    ValueError
        No probe, no weights at ``epoch``, or weights that do not fit ``module``.
    """
    if module is None:
        return NeuronModel.from_trace(trace, epoch)
    if trace.probe is None:
        raise ValueError("this trace has no probe set: there are no images to run the model on")
    weights = trace.final_weights if epoch is None else trace.weights(epoch)
    if not weights:
        raise ValueError(f"this trace holds no weights at E_{epoch}")
    module = copy.deepcopy(module)
    state = {key: torch.from_numpy(np.array(value)) for key, value in weights.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the trace's weights do not fit the module: {exc}") from None
    example = torch.as_tensor(np.asarray(trace.probe[0][:2]))
    return NeuronModel(module.eval(), trace.layers, example, copy_module=False)


def _conv_layer(model: NeuronModel, neuron_or_layer: int | str) -> LayerInfo:
    info = (
        model.layer(neuron_or_layer)
        if isinstance(neuron_or_layer, str)
        else model.layer_of(int(neuron_or_layer))
    )
    if info.kind != "conv2d":
        raise ValueError(
            f"L_{info.name} is a {info.kind} layer; activation maps, receptive fields and "
            "kernels belong to 2-D convolution channels"
        )
    return info


# -- maps ----------------------------------------------------------------------------------------
def channel_maps(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    layer: str,
    channels: Sequence[int] | None = None,
    chunk_size: int = 1024,
) -> np.ndarray:
    """A conv layer's activation maps on images ``x``: float32 array (n_samples, C, h, w), or
    (n_samples, len(channels), h, w) for some ``channels`` (indices within the layer; only
    those are kept, chunk by chunk, so a large probe costs one channel's maps).

    The maps are what the layer's channel neurons pass on (after their activation function);
    their mean over positions is the trace's activation of the channel.
    """
    info = _conv_layer(model, layer)
    point = model.point(info.name)
    x = torch.as_tensor(x).to(model.device)
    keep = None if channels is None else torch.as_tensor(list(channels), dtype=torch.long)
    parts: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
        maps = out.detach() if keep is None else out.detach()[:, keep.to(out.device)]
        parts.append(maps.float().cpu())

    handle = point.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], chunk_size):
                model(x[start : start + chunk_size])
    finally:
        handle.remove()
    return torch.cat(parts).numpy()


# -- receptive fields ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceptiveField:
    """Where the positions of a conv layer's map look in the input image, per axis (rows,
    columns): position ``i`` sees input pixels ``start + i * jump … start + i * jump + size - 1``
    (clipped to the image: the rest is padding).

    Attributes
    ----------
    jump : (rows, cols) input pixels between neighbouring positions (the product of strides)
    start : (rows, cols) first input pixel of position 0 (negative where padding is)
    size : (rows, cols) side of the box of input pixels one position sees
    input_shape : (height, width) of the input image
    map_shape : (h, w) of the layer's map
    """

    jump: tuple[int, int]
    start: tuple[int, int]
    size: tuple[int, int]
    input_shape: tuple[int, int]
    map_shape: tuple[int, int]

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Input pixels seen by map position ``(row, col)``: ``(row_first, row_last,
        col_first, col_last)``, inclusive, clipped to the image."""
        bounds = []
        for axis, index in enumerate((row, col)):
            first = self.start[axis] + index * self.jump[axis]
            last = first + self.size[axis] - 1
            bounds += [max(first, 0), min(last, self.input_shape[axis] - 1)]
        return bounds[0], bounds[1], bounds[2], bounds[3]


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _geometry(module: nn.Module) -> tuple[tuple[int, int], ...] | None:
    """``(kernel, stride, padding, dilation)`` pairs of a conv or pooling module, ``None`` for
    a module that keeps positions where they are; :class:`ValueError` for any other."""
    if isinstance(module, nn.Conv2d):
        kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
        padding = module.padding
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
        return kernel, _pair(module.stride), _pair(padding), dilation
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride if module.stride is not None else module.kernel_size)
        dilation = _pair(getattr(module, "dilation", 1))
        return kernel, stride, _pair(module.padding), dilation
    from ..tracer import ACTIVATION_TYPES

    if isinstance(module, (*ACTIVATION_TYPES, *_POSITIONWISE)):
        return None
    raise ValueError(
        f"cannot follow positions through {type(module).__name__}: receptive fields are "
        "computed for chains of Conv2d, MaxPool2d / AvgPool2d and element-wise modules"
    )


def leaf_calls(model: NeuronModel, x: torch.Tensor) -> list[tuple[str, nn.Module, Any]]:
    """Every leaf module call of one forward pass on ``x[:1]``, in call order:
    ``(qualified name, module, output)``."""
    calls: list[tuple[str, nn.Module, Any]] = []
    handles = [
        module.register_forward_hook(lambda m, i, o, n=name: calls.append((n, m, o)))
        for name, module in model.model.named_modules()
        if next(module.children(), None) is None
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _spatial_calls(model: NeuronModel, x: torch.Tensor, target: str) -> list[tuple[nn.Module, Any]]:
    """The leaf modules that run on 4-D tensors before and including ``target`` (a module
    name), in call order, with their output shapes."""
    calls: list[tuple[nn.Module, Any]] = []
    for name, module, output in leaf_calls(model, x):
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            calls.append((module, tuple(output.shape[2:])))
        if name == target:
            break
    return calls


def receptive_field(model: NeuronModel, layer: str, x: torch.Tensor | np.ndarray) -> ReceptiveField:
    """The receptive field of ``layer``'s map positions in images like ``x`` (n, C, H, W).

    Follows the modules that run before the layer (in call order) through their kernel sizes,
    strides, paddings and dilations: with ``jump`` ``J``, ``start`` ``S`` and ``size`` ``R``
    before a module of kernel ``k``, stride ``s``, padding ``p``, dilation ``d``, after it
    ``R + (d (k - 1)) J``, ``S - p J`` and ``J s``. The model must be a chain (each spatial
    module reads the previous one's output); the map sizes this predicts are checked against the
    real ones, and a mismatch raises :class:`ValueError`.
    """
    info = _conv_layer(model, layer)
    x = torch.as_tensor(x).to(model.device)
    if x.dim() != 4:
        raise ValueError(
            f"images must have shape (n, channels, height, width); got {tuple(x.shape)}"
        )
    height, width = int(x.shape[2]), int(x.shape[3])
    jump, start, size, shape = [1, 1], [0, 0], [1, 1], [height, width]
    for module, out_shape in _spatial_calls(model, x, info.module):
        geometry = _geometry(module)
        if geometry is None:
            continue
        kernel, stride, padding, dilation = geometry
        for a in range(2):
            span = dilation[a] * (kernel[a] - 1)
            size[a] += span * jump[a]
            start[a] -= padding[a] * jump[a]
            jump[a] *= stride[a]
            shape[a] = (shape[a] + 2 * padding[a] - span - 1) // stride[a] + 1
        if tuple(shape) != tuple(out_shape):
            raise ValueError(
                f"{type(module).__name__} gives maps of {tuple(out_shape)}, not the "
                f"{tuple(shape)} a chain of layers would: the receptive field of L_{info.name} "
                "cannot be followed through this model"
            )
    return ReceptiveField(
        tuple(jump), tuple(start), tuple(size), (height, width), (shape[0], shape[1])
    )  # type: ignore[arg-type]


# -- top images ----------------------------------------------------------------------------------
def top_channel_images(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    neuron: int,
    k: int = 12,
    *,
    largest: bool = True,
    labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """A channel's ``k`` most (or least) active images and the patch that drove each.

    Images are ranked by the channel's pooled activation (the mean of its map, the trace's
    definition; ties by index). For each, the map's maximum (the first in row-major order on a
    tie) and the input box that position sees (:meth:`ReceptiveField.box`).

    Returns
    -------
    DataFrame, strongest first: ``rank``, ``probe_index``, ``activation`` (pooled), ``label``
    (when ``labels`` is given), ``peak`` (the map's maximum), ``peak_row``, ``peak_col``,
    ``row_first``, ``row_last``, ``col_first``, ``col_last`` (inclusive input pixels).
    """
    info = _conv_layer(model, neuron)
    channel = int(neuron) - info.first_id
    maps = channel_maps(model, x, info.name, [channel])[:, 0]  # (n, h, w)
    pooled = maps.reshape(len(maps), -1).mean(1).astype(np.float64)
    keep = np.flatnonzero(np.isfinite(pooled))
    key = -pooled[keep] if largest else pooled[keep]
    order = keep[np.lexsort((keep, key))][: max(int(k), 0)]
    field = receptive_field(model, info.name, x)
    rows = []
    for rank, index in enumerate(order, start=1):
        flat = maps[index].reshape(-1)
        peak_row, peak_col = divmod(int(np.argmax(flat)), maps.shape[2])
        box = field.box(peak_row, peak_col)
        rows.append((rank, int(index), pooled[index], float(flat.max()), peak_row, peak_col, *box))
    frame = pd.DataFrame(
        rows,
        columns=[
            "rank",
            "probe_index",
            "activation",
            "peak",
            "peak_row",
            "peak_col",
            "row_first",
            "row_last",
            "col_first",
            "col_last",
        ],
    )
    if labels is not None:
        frame.insert(3, "label", np.asarray(labels)[order].astype(np.int64))
    return frame


# -- kernels -------------------------------------------------------------------------------------
def kernel_history(
    trace: NetworkTrace, layer: str, channels: Sequence[int] | None = None
) -> pd.DataFrame:
    """The kernels of a conv layer at every recorded epoch whose weights were kept.

    Parameters
    ----------
    layer
        A conv2d layer of the trace.
    channels
        Output channels (indices within the layer, default: all).

    Returns
    -------
    Long DataFrame: ``epoch``, ``channel`` (index within the layer), ``neuron`` (global id),
    ``in_channel``, ``row``, ``col``, ``weight`` — one row per weight.
    """
    info = trace.layer(layer)
    if info.kind != "conv2d" or info.weight_key is None:
        raise ValueError(f"L_{info.name} is not a 2-D convolution with weights")
    wanted = list(range(info.n_neurons)) if channels is None else [int(c) for c in channels]
    if any(not 0 <= c < info.n_neurons for c in wanted):
        raise ValueError(f"L_{info.name} has channels 0 … {info.n_neurons - 1}")
    frames = []
    for epoch in trace.epochs_with_weights:
        weights = trace.weights(epoch) or {}
        kernel = np.asarray(weights[info.weight_key], dtype=np.float64)[wanted]  # (c, in, kh, kw)
        c, i, r, q = np.indices(kernel.shape).reshape(4, -1)
        frames.append(
            pd.DataFrame(
                {
                    "epoch": epoch,
                    "channel": np.asarray(wanted)[c],
                    "neuron": info.first_id + np.asarray(wanted)[c],
                    "in_channel": i,
                    "row": r,
                    "col": q,
                    "weight": kernel.reshape(-1),
                }
            )
        )
    if not frames:
        raise ValueError("this trace holds no weights")
    return pd.concat(frames, ignore_index=True)


# -- pixel attribution ---------------------------------------------------------------------------
def pixel_attributions(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    target: int | Sequence[int] | np.ndarray,
    method: str = "grad_x_input",
    *,
    n_steps: int = 32,
    max_rows: int = 4096,
) -> np.ndarray:
    """Attribution of the target class's score (``model.objective``) to every input pixel.

    Parameters
    ----------
    x
        Images, shape (n_samples, channels, height, width) (any input shape works).
    target
        One class, or one per sample.
    method
        One of :data:`PIXEL_METHODS`.
    n_steps, max_rows
        Integration steps of integrated gradients, and the most images one forward pass
        holds (steps × samples are split into passes of at most ``max_rows``).

    Returns
    -------
    float64 array of the shape of ``x``.
    """
    from captum.attr import InputXGradient, IntegratedGradients

    if method not in PIXEL_METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(PIXEL_METHODS)}")
    x = torch.as_tensor(x).to(model.device).float()
    if isinstance(target, int | np.integer):
        goal: Any = int(target)
    else:
        goal = torch.as_tensor(np.asarray(target), dtype=torch.long, device=model.device)
    if method == "grad_x_input":
        values = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=goal)
    else:
        values = IntegratedGradients(model).attribute(
            x,
            baselines=torch.zeros_like(x),
            target=goal,
            n_steps=n_steps,
            internal_batch_size=max(1, min(x.shape[0] * n_steps, max_rows)),
        )
    return values.detach().cpu().numpy().astype(np.float64)
