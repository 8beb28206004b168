"""Forward hooks that feed every traced layer's activations into its own accumulator.

Shared by the probe measurement, the streaming over training batches and the ``E_0``
measurement without a probe. The hooks are returned as ``(module, hook)`` pairs for
:func:`~nn_tracing.tracer._hooks.hooks`; this module registers nothing itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ._discovery import TracedLayer, by_source_module
from ._hooks import ForwardHook, Measuring
from ._stats import Accumulator, as_positions

__all__ = ["ActivationCapture"]


class ActivationCapture:
    """One :class:`Accumulator` per traced layer and the forward hooks that fill them.

    A layer's activation is the output of its ``source_module`` at the ``source_call``-th call
    within one forward (a shared activation module runs once per layer), so the hooks count
    calls: call :meth:`new_forward` before every forward of the model.

    Parameters
    ----------
    module
        The model (its submodules get the hooks).
    layers
        The traced layers; ``accumulators[i]`` belongs to ``layers[i]``.
    keep_pooled
        Keep each sample's activations (mean over positions), as the probe does.
    training_only
        ``None`` takes every forward. A :class:`Measuring` flag takes only forwards in training
        mode while the flag is off: the training batches, not the tracer's own passes.
    """

    def __init__(
        self,
        module: nn.Module,
        layers: Sequence[TracedLayer],
        *,
        keep_pooled: bool,
        training_only: Measuring | None = None,
    ) -> None:
        self.accumulators = [Accumulator() for _ in layers]
        self.calls: dict[str, int] = defaultdict(int)
        self._module = module
        self._layers = layers
        self._keep_pooled = keep_pooled
        self._training_only = training_only

    def new_forward(self) -> None:
        """A forward of the model starts: count module calls from zero."""
        self.calls.clear()

    def forward_hooks(self) -> list[tuple[nn.Module, ForwardHook]]:
        """One ``(module, hook)`` pair per module whose output is some layer's activation."""
        modules = dict(self._module.named_modules())
        grouped = by_source_module(self._layers).items()
        return [(modules[name], self._hook(name, targets)) for name, targets in grouped]

    def _hook(self, name: str, targets: list[tuple[int, TracedLayer]]) -> ForwardHook:
        calls, accumulators, keep_pooled = self.calls, self.accumulators, self._keep_pooled
        measuring = self._training_only

        def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
            call = calls[name]
            calls[name] += 1
            if measuring is not None and (not mod.training or measuring.active):
                return
            for index, layer in targets:
                if layer.source_call == call and isinstance(output, torch.Tensor):
                    values = as_positions(output, layer.feature_dim)
                    accumulators[index].add(values, keep_pooled)

        return hook
