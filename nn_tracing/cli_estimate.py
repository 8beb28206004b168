"""How ``nn-tracing estimate`` (and ``train --dry-run``) prints a run's estimate: the run, what
each recorded point keeps, the peak memory and the sizes, and the breakdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .estimate import format_bytes

if TYPE_CHECKING:
    from .config import TrainConfig
    from .estimate import RunEstimate

__all__ = ["estimate_text"]


def estimate_text(config: TrainConfig, estimate: RunEstimate) -> str:
    """The lines the command prints for ``config``'s ``estimate``."""
    lines = [
        f"run          {config.dataset} {config.architecture}, {config.epochs} epochs, "
        f"{estimate.n_recorded} recorded, probe {estimate.n_probe}",
        _knobs_line(config, estimate),
        f"peak memory  {format_bytes(estimate.peak_bytes)} (added to a process with torch loaded)",
        f"trace file   {format_bytes(estimate.trace_bytes)}",
        f"run dir      {format_bytes(estimate.rundir_bytes)}",
        "breakdown",
    ]
    width = max(len(name) for name in estimate.breakdown)
    lines += [
        f"  {name:<{width}}  {format_bytes(size):>9}" for name, size in estimate.breakdown.items()
    ]
    lines.append(estimate.describe())
    return "\n".join(lines)


def _knobs_line(config: TrainConfig, estimate: RunEstimate) -> str:
    """What each recorded epoch keeps, and the budget."""
    kept = (
        f"{estimate.n_kept} of {estimate.n_probe}" if estimate.n_kept < estimate.n_probe else "all"
    )
    budget = (
        f", budget {format_bytes(config.max_trace_bytes)} ({config.on_budget})"
        if config.max_trace_bytes is not None
        else ""
    )
    layers = (
        "every layer"
        if config.traced_layers is None
        else "layers " + ", ".join(("input", *config.traced_layers, "output"))
    )
    return (
        f"kept         {layers}, {estimate.n_neurons} neurons; activations of {kept} probe "
        f"samples, {config.activation_dtype}; schedule {_schedule_text(config)}"
        f"{budget}"
    )


def _schedule_text(config: TrainConfig) -> str:
    from .step_schedule import step_schedule_text

    if config.step_intervals is not None:
        return step_schedule_text(config.step_intervals)
    intervals = config.epoch_intervals
    if intervals is None:
        return "every epoch"
    if intervals == -1:
        return "last epoch only"
    if isinstance(intervals, int):
        return f"every {intervals}th epoch and the last"
    return "epochs " + ", ".join(map(str, intervals))
