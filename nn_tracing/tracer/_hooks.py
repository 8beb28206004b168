"""How the tracer touches a model for a while and leaves it as it was.

Every forward hook and gradient hook the tracer puts on a model lives inside :func:`hooks`, a
context manager in the manner of TransformerLens's ``HookedRootModule.hooks``: it registers the
hooks on entry and removes every handle in ``finally``, whatever happens in between. Nothing else
in the tracer removes a hook handle, except the gradient hooks that FSDP2's gathered weights get
during a forward (:class:`~._distributed.GatheredGradientHooks`, closed with their owner). Hooks
that outlive one call — streaming over the batches of an epoch, per-step statistics over a whole
run — are held open by their owner in a :class:`contextlib.ExitStack` and end when it closes.

:func:`preserved_state` puts the model in eval mode with a forked RNG for one of the tracer's own
passes, and :class:`Measuring` tells hooks that watch training batches to ignore those passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["ForwardHook", "GradientHook", "Measuring", "hooks", "preserved_state"]

ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], None]
"""``hook(module, inputs, output)``, as :meth:`torch.nn.Module.register_forward_hook` calls it."""

GradientHook = Callable[[torch.Tensor], None]
"""``hook(grad)``, as :meth:`torch.Tensor.register_hook` calls it; returns nothing."""


@contextlib.contextmanager
def hooks(
    forward: Iterable[tuple[nn.Module, ForwardHook]] = (),
    gradient: Iterable[tuple[torch.Tensor, GradientHook]] = (),
    forward_pre: Iterable[tuple[nn.Module, Callable[[nn.Module, Any], None]]] = (),
) -> Iterator[None]:
    """Register hooks for the body of a ``with`` block; remove every one of them on exit.

    Parameters
    ----------
    forward
        ``(module, hook)`` pairs: forward hooks, registered in this order (so they run in it).
    gradient
        ``(tensor, hook)`` pairs: gradient hooks on tensors (a layer's weight), registered after
        the forward hooks.
    forward_pre
        ``(module, hook)`` pairs: forward pre-hooks, ``hook(module, inputs)``, registered last.

    Examples
    --------
    >>> from torch import nn
    >>> layer, seen = nn.Linear(2, 3), []
    >>> with hooks([(layer, lambda mod, inputs, output: seen.append(output.shape))]):
    ...     _ = layer(torch.zeros(4, 2))
    >>> _ = layer(torch.zeros(1, 2))  # the hook is gone
    >>> seen, len(layer._forward_hooks)
    ([torch.Size([4, 3])], 0)
    """
    handles: list[RemovableHandle] = []
    try:
        for module, forward_hook in forward:
            handles.append(module.register_forward_hook(forward_hook))
        for tensor, gradient_hook in gradient:
            handles.append(tensor.register_hook(gradient_hook))
        for module, pre_hook in forward_pre:
            handles.append(module.register_forward_pre_hook(pre_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def preserved_state(module: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode and a forked RNG for a measurement; restore both afterwards.

    Every submodule's ``training`` flag is put back as it was (not merely ``train()``), and the
    CPU RNG — and ``device``'s, if it is a GPU — continue as if the measurement never ran.
    """
    modes = [(m, m.training) for m in module.modules()]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=True):
        module.eval()
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode


class Measuring:
    """Whether the tracer is running the model itself (probe, ``E_0``, :meth:`activations`).

    Hooks that watch the training batches read :attr:`active` and skip the tracer's own passes,
    including the gradient hooks that ``torch.autograd.grad`` on the probe loss would trigger.
    """

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = False

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        """Set :attr:`active` for the body of a ``with`` block."""
        self.active = True
        try:
            yield
        finally:
            self.active = False
