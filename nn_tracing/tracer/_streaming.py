"""Batch streaming: statistics over the training batches of an epoch, when there is no probe.

During a recorded epoch, forward hooks accumulate every neuron's activation statistics over
the training batches (training mode only, never the tracer's own passes) and gradient hooks on
the weights accumulate each neuron's squared incoming-weight gradient norm, so ``grad_norm`` is
its root-mean-square over the batches. ``E_0``, and an epoch forced without streaming, are
measured on the example input instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ._capture import ActivationCapture
from ._discovery import Layout, first_tensor
from ._distributed import Collective, GatheredGradientHooks, is_dtensor, merge_stream
from ._hooks import GradientHook, Measuring, hooks, preserved_state
from ._stats import Accumulator, WeightColumns

__all__ = ["BatchStream", "measure_example"]


class _GradientSquares:
    """Sum over batches of each neuron's squared incoming-weight gradient norm, on the device."""

    def __init__(self, n_neurons: int, device: torch.device, measuring: Measuring) -> None:
        self.total = torch.zeros(n_neurons, dtype=torch.float64, device=device)
        self.count = 0
        self._measuring = measuring

    def hook(self, grad: torch.Tensor) -> None:
        """Gradient hook on the weight: add this batch's squared row norms."""
        if self._measuring.active:
            return
        rows = grad.detach().reshape(grad.shape[0], -1).to(torch.float64)
        self.total.add_((rows * rows).sum(1))
        self.count += 1

    def rms(self) -> torch.Tensor | None:
        """Root-mean-square gradient norm per neuron, shape (N,); ``None`` before any batch."""
        return (self.total / self.count).sqrt() if self.count else None


class BatchStream:
    """Streams statistics over the training batches of one recorded epoch.

    The hooks are registered at construction and removed by :meth:`close`. Call
    :meth:`before_forward` with the arguments of every forward of the model.

    Parameters
    ----------
    module
        The model being traced.
    layout
        Its traced layers (from discovery).
    measuring
        The tracer's flag: forwards and gradients of its own passes are not training batches.
    """

    def __init__(self, module: nn.Module, layout: Layout, measuring: Measuring) -> None:
        self._module = module
        self._layout = layout
        self.capture = ActivationCapture(
            module, layout.layers, keep_pooled=False, training_only=measuring
        )
        self.inputs = Accumulator()
        self.gradients: dict[int, _GradientSquares] = {}
        gradient_hooks: list[tuple[torch.Tensor, GradientHook]] = []
        gathered: list[tuple[str, GradientHook]] = []  # FSDP2: hooked at each forward
        for index, layer in enumerate(layout.layers):
            weight = layer.weight
            if weight is None or not weight.requires_grad:
                continue
            squares = _GradientSquares(layer.info.n_neurons, weight.device, measuring)
            self.gradients[index] = squares
            if is_dtensor(weight):
                gathered.append((layer.info.module, squares.hook))
            else:
                gradient_hooks.append((weight, squares.hook))
        self._hooks = contextlib.ExitStack()
        forward_pre = []
        if gathered:
            gathered_hooks = GatheredGradientHooks(module, gathered)
            self._hooks.callback(gathered_hooks.close)
            forward_pre = gathered_hooks.pre_hooks()
        self._hooks.enter_context(hooks(self.capture.forward_hooks(), gradient_hooks, forward_pre))

    def before_forward(self, args: Sequence[Any]) -> None:
        """A forward starts: count module calls afresh and take a training batch's inputs."""
        self.capture.new_forward()
        x = first_tensor(args)
        if x is not None and self._module.training:
            self.inputs.add(self._layout.input_positions(x), keep_pooled=False)

    def close(self) -> None:
        """Remove the hooks."""
        self._hooks.close()

    def measure(
        self, weights: WeightColumns, device: torch.device, collective: Collective | None = None
    ) -> np.ndarray:
        """The epoch's metrics: float32 array (n_neurons, n_metrics) in ``METRICS`` order.

        With a ``collective``, merged over its ranks' batches (:mod:`._distributed`).
        """
        accumulators = [self.inputs, *self.capture.accumulators]
        if collective is not None:
            squares = {i: (s.total, s.count) for i, s in self.gradients.items()}
            return _merged(collective, self._layout, accumulators, squares, weights, device)
        grad_norms = []
        for index in range(len(self._layout.layers)):
            squares = self.gradients.get(index)
            grad_norms.append(squares.rms() if squares is not None else None)
        return _metrics(self._layout, accumulators, grad_norms, weights, device)


def measure_example(
    module: nn.Module,
    layout: Layout,
    example_args: tuple[Any, ...],
    weights: WeightColumns,
    device: torch.device,
    collective: Collective | None = None,
) -> np.ndarray:
    """Metrics measured on the example input in inference mode (no gradient): see
    :meth:`BatchStream.measure` (with a ``collective``, over every rank's example input)."""
    capture = ActivationCapture(module, layout.layers, keep_pooled=False)
    with hooks(capture.forward_hooks()), preserved_state(module, device), torch.no_grad():
        capture.new_forward()
        module(*example_args)
    inputs = Accumulator()
    inputs.add(layout.input_positions(first_tensor(example_args)), False)
    if collective is not None:
        return _merged(collective, layout, [inputs, *capture.accumulators], {}, weights, device)
    grad_norms: list[torch.Tensor | None] = [None] * len(layout.layers)
    return _metrics(layout, [inputs, *capture.accumulators], grad_norms, weights, device)


def _merged(
    collective: Collective,
    layout: Layout,
    accumulators: list[Accumulator],
    squares: dict[int, tuple[torch.Tensor, int]],
    weights: WeightColumns,
    device: torch.device,
) -> np.ndarray:
    """:func:`_metrics` of statistics merged over the ranks (:mod:`._distributed`)."""
    merged, grad_norms, block = merge_stream(
        collective, layout, accumulators, squares, weights, device
    )
    return _metrics(layout, merged, grad_norms, weights, device, block)


def _metrics(
    layout: Layout,
    accumulators: list[Accumulator],
    grad_norms: list[torch.Tensor | None],
    weights: WeightColumns,
    device: torch.device,
    weight_block: torch.Tensor | None = None,
) -> np.ndarray:
    """Weight columns, accumulated activation columns (the input's accumulator first) and a
    NaN ``selectivity``, on the host; ``weight_block`` replaces the weight columns."""
    nan_column = torch.full((layout.n_neurons, 1), float("nan"), device=device)
    act_blocks = []
    for info, acc in zip(layout.infos, accumulators, strict=True):
        if acc.count:
            act_blocks.append(acc.block())
        else:
            act_blocks.append(torch.full((info.n_neurons, 5), float("nan"), device=device))
    if weight_block is None:
        weight_block = weights.all(layout, grad_norms, device)
    act_block = torch.cat(act_blocks).to(weight_block.dtype)
    metrics = torch.cat([weight_block, act_block, nan_column.to(weight_block.dtype)], dim=1)
    return metrics.float().cpu().numpy()
