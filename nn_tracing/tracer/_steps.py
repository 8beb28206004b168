"""Per-step recording (``drop_batches=False``): statistics of every training batch, per layer.

Per layer and step: the sum, root of the sum of squares and count of positive values of the
layer's activation, the weight-gradient norm (a gradient hook) and the weight norm at the start
of the step. A step costs a handful of tensor operations whatever the number of layers: the
activations are copied into a block of steps (one ``_foreach_copy_``) and reduced a block at a
time, the weight norms are one ``_foreach_norm``, and the scalars are stacked once per block and
copied to the host once per epoch (see :class:`StepRecorder`).

Counting is the costly one: ``count_nonzero`` and boolean sums are not vectorised on the CPU
(≈25–40 µs for a 64 × 128 batch against ≈3 µs for a sum), so :func:`positive_count` clamps a
value to ``[0, 2**-126]`` (the smallest normal float32) and sums: ``k · 2**-126`` is exact in
float32 for ``k < 2**24`` and is scaled back to ``k`` on the host.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._discovery import TracedLayer, by_source_module, module_device
from ._hooks import ForwardHook, GradientHook, Measuring, hooks

__all__ = ["StepRecorder", "positive_count"]

#: The unit of :func:`positive_count`: the smallest normal float32 (a power of two).
_UNIT = 2.0**-126
#: Dtypes in which ``k`` units sum exactly (float32 for ``k < 2**24``; float64 beyond).
_UNIT_DTYPES = (torch.float32, torch.float64)


def positive_count(
    values: torch.Tensor, dim: int | None = None, *, in_place: bool = False
) -> torch.Tensor:
    """The number of positive entries of ``values`` (along ``dim``; all of them by default),
    in units of ``2**-126`` (float: multiply by ``2**126`` for the count).

    One clamp and one sum, both vectorised. A positive value below ``2**-126`` (a subnormal)
    counts as its share of one unit; a NaN makes the count NaN. Other dtypes (float16,
    bfloat16, integers) are counted exactly with ``count_nonzero``. ``in_place`` clamps
    ``values`` itself (a buffer of the caller's): a block of steps is megabytes, and a fresh
    tensor of that size costs more in page faults than the clamp.
    """
    if values.dtype in _UNIT_DTYPES:
        clamped = values.clamp_(0.0, _UNIT) if in_place else values.clamp(0.0, _UNIT)
        return clamped.sum() if dim is None else clamped.sum(dim)
    return torch.count_nonzero(values > 0, dim=dim).to(torch.float32) * _UNIT


#: Eager steps' rows are stacked into one tensor this many at a time (bounds the 0-d tensors
#: held); also the most steps a block of outputs holds.
_BLOCK = 256
#: Bytes of traced outputs one block may hold ...
_BLOCK_BYTES = 4 * 2**20
#: ... and the fewest steps worth a block (larger outputs are reduced step by step).
_MIN_BLOCK = 8


class _OutputBlock:
    """The traced outputs of up to ``capacity`` steps whose outputs have the same shapes, one
    buffer per layer: each step is one ``_foreach_copy_`` into its slot, and the block is
    reduced with three operations per layer, however many steps it holds."""

    def __init__(self, outs: list[torch.Tensor], capacity: int) -> None:
        self.shapes = [out.shape for out in outs]
        self.buffers = [
            torch.empty((capacity, *out.shape), dtype=outs[0].dtype, device=outs[0].device)
            for out in outs
        ]
        self.slots = [[buffer[j] for buffer in self.buffers] for j in range(capacity)]
        self.capacity = capacity
        self.used = 0

    @staticmethod
    def capacity_for(outs: list[torch.Tensor | None]) -> int:
        """Steps a block for these outputs would hold; 0: none (reduce step by step)."""
        if not outs or any(out is None for out in outs):
            return 0
        first = outs[0]
        if first.dtype not in _UNIT_DTYPES or any(
            out.dtype != first.dtype or out.device != first.device for out in outs
        ):
            return 0
        per_step = sum(out.numel() for out in outs) * first.element_size()
        capacity = min(_BLOCK, _BLOCK_BYTES // max(per_step, 1))
        return capacity if capacity >= _MIN_BLOCK else 0

    def fits(self, outs: list[torch.Tensor | None]) -> bool:
        """Whether a step's outputs have the block's shapes (a copy casts a dtype exactly
        into the block's, and copies across devices)."""
        return all(out is not None for out in outs) and [out.shape for out in outs] == self.shapes

    def add(self, outs: list[torch.Tensor]) -> None:
        """One step's outputs into the next slot (detached: cheaper than ``no_grad``)."""
        torch._foreach_copy_(self.slots[self.used], [out.detach() for out in outs])
        self.used += 1

    def reduce(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sums, roots of the sums of squares and positive counts (in units of ``2**-126``) of
        the steps held, each (steps, layers); the block is emptied (and its values clamped:
        the count is taken in place, last)."""
        k, self.used = self.used, 0
        sums, norms, counts = [], [], []
        for buffer in self.buffers:
            values = buffer[:k].reshape(k, -1)
            sums.append(values.sum(1))
            norms.append(torch.linalg.vector_norm(values, dim=1))
            counts.append(positive_count(values, 1, in_place=True))
        return torch.stack(sums, 1), torch.stack(norms, 1), torch.stack(counts, 1)


class StepRecorder:
    """Per-step, per-layer statistics of the training batches, into a table per epoch.

    The hooks are registered at construction and removed by :meth:`close`. Call
    :meth:`before_forward` before every forward of the model, :meth:`after_forward` after it,
    :meth:`log_loss` after a step's loss is known and :meth:`flush` at the end of each epoch.

    A training step costs a handful of tensor operations whatever the number of layers: the
    forward hooks only keep each traced output, :meth:`after_forward` copies them all into a
    block of steps (one ``_foreach_copy_``; :class:`_OutputBlock`) that is reduced when full or
    at the end of the epoch, the weight norms are one ``_foreach_norm``, and a step's scalars
    (weight and gradient norms, loss) are stacked once per block. Outputs too large for a block
    (or of changing shapes: the last, smaller batch of an epoch) are reduced at the end of
    their forward, a sum, a norm and a clamp-and-sum each.

    The first training step reduces each output in its hook, at once, and checks that nothing
    in the rest of the forward changed an output in place (its version counter); if something
    does, every later step does the same, and a deferred step whose output was changed records
    NaN for it.

    Parameters
    ----------
    module
        The model being traced.
    layers
        Its traced layers (from discovery).
    measuring
        The tracer's flag: forwards and gradients of its own passes are not steps.
    """

    def __init__(self, module: nn.Module, layers: list[TracedLayer], measuring: Measuring) -> None:
        self.module = module
        self.layers = layers
        self.measuring = measuring
        device = module_device(module)
        self.nan = torch.tensor(float("nan"), device=device)
        self.weights = [layer.weight for layer in layers]
        self.present = [w for w in self.weights if w is not None]
        self.counters: dict[str, int] = defaultdict(int)
        self.segments: list[torch.Tensor] = []  # (steps, 5L + 1) float32 each, in step order
        self.rows: list[list[torch.Tensor]] = []  # eager steps not yet stacked: 5L + 1 each
        self.block: _OutputBlock | None = None
        self.block_scalars: list[list[torch.Tensor]] = []  # the block's steps: 2L + 1 each
        self.numels: list[list[int]] = []
        self.global_step = 0
        self.pending: dict[str, Any] | None = None
        self.deferred: bool | None = None  # None until the first step has been checked
        modules = dict(module.named_modules())
        forward = [
            (modules[name], self._forward_hook(name, targets))
            for name, targets in by_source_module(layers).items()
        ]
        gradient: list[tuple[torch.Tensor, GradientHook]] = [
            (weight, self._grad_hook(index))
            for index, weight in enumerate(self.weights)
            if weight is not None and weight.requires_grad
        ]
        self._hooks = contextlib.ExitStack()
        self._hooks.enter_context(hooks(forward, gradient))

    def _forward_hook(self, name: str, targets: list[tuple[int, TracedLayer]]) -> ForwardHook:
        counters = self.counters

        def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
            call = counters[name]
            counters[name] = call + 1
            pending = self.pending
            if pending is None or not mod.training or self.measuring.active:
                return
            if not isinstance(output, torch.Tensor):
                return
            for index, layer in targets:
                if layer.source_call != call:
                    continue
                pending["numel"][index] = output.numel()
                reduced = pending["reduced"]  # a forward outside the wrapper: at once
                if not reduced:
                    pending["outs"][index] = output
                    pending["versions"][index] = output._version
                if reduced or not self.deferred:
                    with torch.no_grad():
                        _reduce(pending, [index], [output])

        return hook

    def _grad_hook(self, index: int) -> GradientHook:
        def hook(grad: torch.Tensor) -> None:
            if self.pending is not None and not self.measuring.active:
                grad = grad.detach() if grad.requires_grad else grad  # create_graph only
                self.pending["grad"][index] = torch.linalg.vector_norm(grad)

        return hook

    def before_forward(self) -> None:
        """A forward starts: count module calls afresh; a training forward opens a step."""
        self.counters.clear()
        if self.module.training and not self.measuring.active:
            self.begin()

    def after_forward(self) -> None:
        """A forward ended: the open step's traced outputs go to the block, or are reduced."""
        pending = self.pending
        if pending is None or pending["reduced"]:
            return
        pending["reduced"] = True
        outs, versions = pending["outs"], pending["versions"]
        pending["outs"] = pending["versions"] = None  # the outputs are not kept
        changed = [
            i for i, out in enumerate(outs) if out is not None and out._version != versions[i]
        ]
        if self.deferred and not changed and self._to_block(outs):
            pending["buffered"] = True
        elif self.deferred:
            indices = [i for i, out in enumerate(outs) if out is not None and i not in changed]
            with torch.no_grad():
                _reduce(pending, indices, [outs[i] for i in indices])
        self.deferred = not changed and self.deferred is not False

    def _to_block(self, outs: list[torch.Tensor | None]) -> bool:
        """Copy a step's outputs into the block (made for the first that fit); False when
        they do not fit one."""
        block = self.block
        if block is None or not block.fits(outs):
            capacity = _OutputBlock.capacity_for(outs)
            if block is not None or not capacity:
                return False  # e.g. an epoch's last, smaller batch
            block = self.block = _OutputBlock(outs, capacity)
        if block.used == block.capacity:
            self._flush_block()
        self._stack_rows()  # the eager steps before this one
        block.add(outs)
        return True

    def begin(self) -> None:
        """A training forward starts: close the previous step, open a new one."""
        self._close()
        n = len(self.layers)
        nan = self.nan
        if self.present:
            norms = iter(torch._foreach_norm([w.detach() for w in self.present]))
            wnorm = [next(norms) if w is not None else nan for w in self.weights]
        else:
            wnorm = [nan] * n
        self.pending = {
            "sum": [nan] * n,
            "sq": [nan] * n,
            "count": [nan] * n,
            "numel": [0] * n,
            "grad": [nan] * n,
            "wnorm": wnorm,
            "loss": nan,
            "outs": [None] * n,
            "versions": [0] * n,
            "reduced": False,
            "buffered": False,
        }

    def log_loss(self, loss: torch.Tensor | float) -> None:
        """The loss of the open step (a scalar tensor stays on the device)."""
        if self.pending is not None:
            value = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(loss)
            if value.dim() or value.device != self.nan.device:
                value = value.to(self.nan.device).reshape(())
            self.pending["loss"] = value  # made float32 when its rows are stacked

    def _close(self) -> None:
        pending = self.pending
        if pending is None:
            return
        self.after_forward()  # a forward that raised
        if pending["buffered"]:
            self.block_scalars.append([*pending["wnorm"], *pending["grad"], pending["loss"]])
        else:
            self._flush_block()  # the buffered steps before this one
            self.rows.append(
                [
                    *pending["sum"],
                    *pending["sq"],
                    *pending["wnorm"],
                    *pending["grad"],
                    *pending["count"],
                    pending["loss"],
                ]
            )
            if len(self.rows) >= _BLOCK:
                self._stack_rows()
        self.numels.append(pending["numel"])
        self.pending = None

    def _stack_rows(self) -> None:
        """The eager steps not yet stacked, as one (steps, 5L + 1) float32 segment."""
        if self.rows:
            width = len(self.rows[0])
            flat = torch.stack([value for row in self.rows for value in row])
            self.segments.append(flat.float().reshape(-1, width))  # stack promotes dtypes
            self.rows = []

    def _flush_block(self) -> None:
        """The block's steps, reduced, as one (steps, 5L + 1) float32 segment."""
        block = self.block
        if block is None or not block.used:
            return
        n = len(self.layers)
        with torch.no_grad():
            sums, norms, counts = block.reduce()
        flat = torch.stack([value for row in self.block_scalars for value in row])
        scalars = flat.float().reshape(-1, 2 * n + 1)  # wnorm, grad, loss
        self.block_scalars = []
        self.segments.append(
            torch.cat(
                [sums.float(), norms.float(), scalars[:, : 2 * n], counts.float(), scalars[:, -1:]],
                dim=1,
            )
        )

    def flush(self, epoch: int) -> pd.DataFrame | None:
        """The steps of ``epoch`` as a table (one row per step and layer)."""
        self._close()
        self._flush_block()
        self._stack_rows()
        if not self.segments:
            return None
        n_layers = len(self.layers)
        rows = torch.cat(self.segments).cpu().numpy().astype(np.float64)  # (n, 5L + 1)
        counts = rows[:, 4 * n_layers : 5 * n_layers] / _UNIT  # exact: a power of two
        numels = np.asarray(self.numels, dtype=np.float64)
        n = rows.shape[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(numels > 0, rows[:, :n_layers] / numels, np.nan)
            sq = np.where(numels > 0, rows[:, n_layers : 2 * n_layers] ** 2 / numels, np.nan)
            active = np.where(numels > 0, counts / numels, np.nan)
        steps = self.global_step + np.arange(1, n + 1)
        table = pd.DataFrame(
            {
                "step": np.repeat(steps, n_layers).astype(np.int64),
                "epoch": np.full(n * n_layers, epoch, dtype=np.int64),
                "layer": np.tile([layer.info.name for layer in self.layers], n),
                "loss": np.repeat(rows[:, -1], n_layers).astype(np.float32),
                "act_mean": mean.reshape(-1).astype(np.float32),
                "act_std": np.sqrt(np.clip(sq - mean * mean, 0, None))
                .reshape(-1)
                .astype(np.float32),
                "act_active": active.reshape(-1).astype(np.float32),
                "grad_norm": rows[:, 3 * n_layers : 4 * n_layers].reshape(-1).astype(np.float32),
                "w_norm": rows[:, 2 * n_layers : 3 * n_layers].reshape(-1).astype(np.float32),
            }
        )
        self.global_step += n
        self.segments, self.numels = [], []
        return table

    def close(self) -> None:
        """Remove the hooks; an open step is dropped."""
        self._hooks.close()
        self.pending = None


def _reduce(pending: dict[str, Any], indices: list[int], outs: list[torch.Tensor]) -> None:
    """Sum, root of the sum of squares and positive count (:func:`positive_count`) of ``outs``
    (the outputs of layers ``indices``) into ``pending``; the roots in one ``_foreach_norm``
    (on the CPU a clamp and a sum per tensor cost a third of the ``_foreach`` clamps)."""
    if not outs:
        return
    norms = torch._foreach_norm(outs)
    for index, out, norm in zip(indices, outs, norms, strict=True):
        pending["sum"][index] = out.sum()  # a sum is cheaper than a mean
        pending["sq"][index] = norm
        pending["count"][index] = positive_count(out)
