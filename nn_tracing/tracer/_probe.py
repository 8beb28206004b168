"""Probe measurement: every neuron's statistics on the fixed probe set at a recorded epoch.

The model runs on the probe in eval mode (RNG and BatchNorm statistics untouched), in chunks.
Temporary hooks reduce each layer's output on the device, and ``torch.autograd.grad`` gives the
gradient of the mean probe loss without touching any ``.grad``. The whole metric matrix, the
probe activations, logits and predictions come to the host in one copy each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._capture import ActivationCapture
from ._discovery import Layout, logits_of
from ._hooks import hooks, preserved_state
from ._stats import (
    Accumulator,
    WeightColumns,
    class_onehot,
    mean_std,
    selectivity_index,
    weight_rows,
)

__all__ = [
    "ProbeMeasurement",
    "chunk_rows",
    "pooled_activations",
    "pooled_matrix",
    "probe_tensors",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: At most this many input values per forward of the tracer's own passes: 256 images of
#: 16 × 16, 8192 rows of 8 features. A convolution's outputs are many times its input, and
#: forwards of a whole 1024-image probe at once make tensors of megabytes that the allocator
#: hands back to the system and faults in afresh every time: 256 images at a time run the
#: probe's forward and backward in ≈ 60 % of the time (measured in docs/performance.md).
CHUNK_VALUES = 2**16
#: ... but never fewer rows than this (small forwards cost more per sample in overhead).
MIN_CHUNK_ROWS = 64


def chunk_rows(x: torch.Tensor, chunk_size: int) -> int:
    """Rows of ``x`` per forward: ``chunk_size`` at most, and on the CPU fewer for large
    samples (:data:`CHUNK_VALUES` input values per chunk, at least :data:`MIN_CHUNK_ROWS`
    rows; a GPU's caching allocator keeps its memory, and large forwards suit it)."""
    if x.device.type != "cpu":
        return max(1, chunk_size)
    per_sample = max(1, math.prod(x.shape[1:]))
    return max(1, min(chunk_size, max(MIN_CHUNK_ROWS, CHUNK_VALUES // per_sample)))


def pooled_matrix(
    layout: Layout, accumulators: list[Accumulator], x: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Activations of every neuron, input features first: (n_samples, n_neurons) float32.

    ``accumulators`` were filled with ``keep_pooled`` while the model ran on ``x``; a layer
    that did not run on ``x`` gets NaN.
    """
    n = x.shape[0]
    inputs = layout.input_positions(x).mean(1)
    widths = [inputs.shape[1], *(layer.info.n_neurons for layer in layout.layers)]
    # one (n, n_neurons) matrix filled column block by column block, each layer's chunks
    # released once copied: the activations exist once (plus one layer's chunks), not three
    # times (chunks, their concatenation, the matrix)
    out = torch.empty((n, sum(widths)), dtype=torch.float32, device=device)
    out[:, : widths[0]] = inputs
    column = widths[0]
    for _layer, acc, width in zip(layout.layers, accumulators, widths[1:], strict=True):
        block = out[:, column : column + width]
        if acc.pooled:
            row = 0
            for chunk in acc.pooled:
                block[row : row + chunk.shape[0]] = chunk
                row += chunk.shape[0]
            acc.pooled.clear()
        else:  # the layer did not run on these inputs
            block.fill_(float("nan"))
        column += width
    return out


def pooled_activations(
    module: nn.Module, layout: Layout, x: torch.Tensor, chunk_size: int, device: torch.device
) -> torch.Tensor:
    """Every neuron's activation on ``x`` in inference mode: (n_samples, n_neurons) float32."""
    capture = ActivationCapture(module, layout.layers, keep_pooled=True)
    with hooks(capture.forward_hooks()), preserved_state(module, device), torch.no_grad():
        for start in range(0, x.shape[0], chunk_size):
            capture.new_forward()
            logits_of(module(x[start : start + chunk_size]))
    return pooled_matrix(layout, capture.accumulators, x, device)


def probe_tensors(x: Any, y: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe ``(x, y)`` as tensors on ``device``, checked.

    Returns inputs of shape (n_probe, ...) and labels (n_probe,) or targets (n_probe, ...).

    Raises
    ------
    ValueError
        If ``x`` and ``y`` differ in length or are empty.
    """
    x, y = torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"probe x has {x.shape[0]} samples but y has {y.shape[0]}")
    if x.shape[0] < 1:
        raise ValueError("the probe set is empty")
    return x, y


class ProbeMeasurement:
    """Measures a model on its probe set ``(x, y)`` at the end of a recorded epoch.

    Parameters
    ----------
    module
        The model being traced.
    layout
        Its traced layers (from discovery).
    x, y
        The probe (from :func:`probe_tensors`); it follows the model to its device.
    loss_fn
        ``loss_fn(logits, y) -> scalar`` (mean-reduced); ``None``: cross-entropy for integer
        labels, MSE otherwise.
    chunk_size
        Samples per forward.
    weights
        The tracer's weight columns (they remember the previous epoch for ``w_drift``).
    """

    def __init__(
        self,
        module: nn.Module,
        layout: Layout,
        x: torch.Tensor,
        y: torch.Tensor,
        loss_fn: LossFn | None,
        chunk_size: int,
        weights: WeightColumns,
    ) -> None:
        self.x, self.y = x, y
        self._module = module
        self._layout = layout
        self._loss_fn = loss_fn
        self._chunk_size = chunk_size
        self._weights = weights
        self._onehot: torch.Tensor | None = None
        self._input_stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def measure(
        self, device: torch.device
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
        """The probe's metrics at this epoch.

        Returns
        -------
        metrics
            float32 array (n_neurons, n_metrics), columns in ``METRICS`` order.
        tensors
            ``activations`` (n_probe, n_neurons), ``logits`` (n_probe, n_outputs) and
            ``predictions`` (n_probe,).
        extra
            History values: ``probe_loss``, and ``probe_acc`` for class labels.
        """
        if self.x.device != device:
            self.x, self.y = self.x.to(device), self.y.to(device)
        x, y, n = self.x, self.y, self.x.shape[0]
        layers = self._layout.layers
        params = [layer.weight for layer in layers]
        wanted = [p for p in params if p is not None and p.requires_grad]
        capture = ActivationCapture(self._module, layers, keep_pooled=True)
        with hooks(capture.forward_hooks()):
            logits, loss_total, grads = self._run(capture, wanted, device, x, y, n)
        grad_of = {id(p): g for p, g in zip(wanted, grads) if g is not None}

        acts = pooled_matrix(self._layout, capture.accumulators, x, device)
        act_block = self._activation_block(acts, capture.accumulators)
        grad_norms = []
        for layer in layers:
            grad = grad_of.get(id(layer.weight)) if layer.weight is not None else None
            grad_norms.append(
                torch.linalg.vector_norm(weight_rows(grad), dim=1) if grad is not None else None
            )
        weight_block = self._weights.all(self._layout, grad_norms, device)
        metrics = torch.cat([weight_block, act_block], dim=1)

        predictions = (
            logits.argmax(1).to(torch.int64)
            if logits.dim() == 2
            else torch.zeros(n, dtype=torch.int64)
        )
        extra = {"probe_loss": float(loss_total)}
        if logits.dim() == 2 and not y.dtype.is_floating_point:
            extra["probe_acc"] = float((predictions == y).float().mean())
        tensors = {
            "activations": acts.cpu().numpy(),
            "logits": logits.float().cpu().numpy(),
            "predictions": predictions.cpu().numpy(),
        }
        return metrics.cpu().numpy(), tensors, extra

    def _run(
        self,
        capture: ActivationCapture,
        wanted: list[torch.Tensor],
        device: torch.device,
        x: torch.Tensor,
        y: torch.Tensor,
        n: int,
        n_chunks: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
        """Forward and backward over ``x`` in chunks: logits, loss, weight gradients.

        Each chunk's mean loss is weighted by its share of ``n`` samples: with ``x`` the whole
        probe (``n`` its length) that is the mean probe loss; with one rank's shard of it, the
        rank's part of that mean, which the ranks then sum. ``n_chunks`` fixes the number of
        forwards (the same on every rank); ``None``: chunks of ``chunk_size``.
        """
        grads: list[torch.Tensor | None] = [None] * len(wanted)
        logits_chunks = []
        loss_total = torch.zeros((), device=device)
        if n_chunks is None:
            starts = list(range(0, x.shape[0], chunk_rows(x, self._chunk_size)))
        else:
            starts = [int(s[0]) for s in torch.arange(x.shape[0]).tensor_split(n_chunks)]
        with preserved_state(self._module, device), torch.enable_grad():
            for start, stop in zip(starts, [*starts[1:], x.shape[0]]):
                xc, yc = x[start:stop], y[start:stop]
                capture.new_forward()
                logits = logits_of(self._module(xc))
                loss = self._loss(logits, yc) * (xc.shape[0] / n)
                if wanted and loss.requires_grad:
                    chunk = torch.autograd.grad(loss, wanted, allow_unused=True)
                    grads = [
                        g if total is None else (total if g is None else total + g)
                        for total, g in zip(grads, chunk)
                    ]
                loss_total += loss.detach()
                logits_chunks.append(logits.detach())
        logits = torch.cat(logits_chunks) if len(logits_chunks) > 1 else logits_chunks[0]
        return logits, loss_total, grads

    def _activation_block(
        self, acts: torch.Tensor, accumulators: list[Accumulator]
    ) -> torch.Tensor:
        """``act_mean … selectivity`` of every neuron: tensor (n_neurons, 6) float32.

        Computed for all neurons at once from the pooled activations; conv layers (and conv
        inputs) are then overwritten with their statistics over every position.
        """
        x, layout = self.x, self._layout
        mean, std = mean_std(acts, dim=0)
        low, high = acts.amin(0), acts.amax(0)
        active = (acts > 0).sum(0) / x.shape[0]
        onehot = self._class_onehot()
        if onehot is not None and onehot.shape[1] >= 2:
            selectivity = selectivity_index(acts, onehot, low)
        else:
            selectivity = torch.full_like(mean, float("nan"))
        act_block = torch.stack([mean, std, low, high, active, selectivity], dim=1)
        if x.dim() > 2:
            act_block[: layout.input_info.n_neurons, :5] = self._input_block()
        for layer, acc in zip(layout.layers, accumulators, strict=True):
            if acc.positions > 1:
                act_block[layer.info.ids.start : layer.info.ids.stop, :5] = acc.block()
        return act_block

    def _input_block(self) -> torch.Tensor:
        """The input channels' statistics over every position: the probe's inputs never
        change, so they are reduced once (again only when the probe moved to a device)."""
        cached = self._input_stats
        if cached is None or cached[0] is not self.x:
            accumulator = Accumulator()
            accumulator.add(self._layout.input_positions(self.x), keep_pooled=False)
            cached = self._input_stats = (self.x, accumulator.block())
        return cached[1]

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._loss_fn is not None:
            return self._loss_fn(logits, y)
        if not y.dtype.is_floating_point:
            return F.cross_entropy(logits, y)
        return F.mse_loss(logits, y.reshape(logits.shape).to(logits.dtype))

    def _class_onehot(self) -> torch.Tensor | None:
        """One-hot (n_probe, K) of the probe's classes, cached; ``None`` for non-class labels."""
        y = self.y
        if y.dtype.is_floating_point or y.dim() != 1:
            return None
        if self._onehot is None or self._onehot.device != y.device:
            self._onehot = class_onehot(y)
        return self._onehot
