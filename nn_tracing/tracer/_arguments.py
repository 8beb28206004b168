"""``TraceableNN``'s arguments, checked before anything is hooked: the recording schedule
against ``num_epochs``, the probe as tensors on the model's device, and the example input of
the forward pass that discovers the layers."""

from __future__ import annotations

from typing import Any

import torch

from ..schedule import EpochIntervals, normalize_epoch_intervals
from ._probe import probe_tensors

__all__ = ["checked_probe", "checked_schedule", "example_args"]


def checked_schedule(
    epoch_intervals: EpochIntervals, num_epochs: int | None, *, has_probe: bool
) -> EpochIntervals:
    """The normalised schedule; ``ValueError`` if it cannot work with ``num_epochs``."""
    intervals = normalize_epoch_intervals(epoch_intervals)
    if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
        raise ValueError(f"num_epochs={num_epochs!r} must be a positive integer")
    if isinstance(intervals, tuple) and num_epochs is not None and intervals[-1] > num_epochs:
        raise ValueError(f"epoch_intervals lists epoch {intervals[-1]} but num_epochs={num_epochs}")
    needs_last = intervals == -1 or (isinstance(intervals, int) and intervals > 0)
    if not has_probe and needs_last and num_epochs is None:
        raise ValueError(
            f"epoch_intervals={intervals!r} records the last epoch; without a probe, "
            "TraceableNN needs num_epochs= to know which epoch is the last"
        )
    return intervals


def example_args(
    example_input: Any,
    probe_xy: tuple[torch.Tensor, torch.Tensor] | None,
    device: torch.device,
) -> tuple[Any, ...]:
    """The positional arguments of the forward pass that discovers the layers, on ``device``
    (two probe samples when no ``example_input`` is given)."""
    if example_input is None:
        if probe_xy is None:
            raise ValueError("TraceableNN needs example_input= (or a probe to take it from)")
        example_input = probe_xy[0][:2]
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)


def checked_probe(
    probe: tuple[Any, Any] | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The probe ``(x, y)`` as checked tensors on ``device`` (``None`` without a probe)."""
    if probe is None:
        return None
    px, py = probe
    return probe_tensors(px, py, device)
