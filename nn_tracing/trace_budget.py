"""The trace budget of a run (``TrainConfig.max_trace_bytes``): refuse, or adapt, before it starts.

Before :func:`nn_tracing.train` trains, :func:`plan_budget` compares the estimated ``.nntrace``
size (:func:`nn_tracing.estimate.estimate_run`) with the budget:

* within it, the run goes ahead unchanged;
* over it with ``on_budget="refuse"`` (the default), :class:`TraceBudgetExceeded` is raised: its
  message names the knobs and what each one alone would bring the trace to;
* over it with ``on_budget="adapt"``, the run's knobs are lowered in this order until the
  estimate fits, and ``meta["budget"]["adapted"]`` lists what was changed:

  1. ``activation_dtype="float16"`` — halves the stored activations and logits, and keeps every
     sample (about three significant digits: what a chart or a clustering resolves);
  2. ``activation_samples`` — fewer probe samples keep their activations, down to
     :data:`MIN_KEPT_SAMPLES` (the statistics still use the whole probe);
  3. ``epoch_intervals`` — fewer recorded epochs: every n-th epoch and the last, with the
     smallest ``n`` that fits (``E_0`` and the last epoch are always recorded); a step
     schedule (``step_intervals``) is not thinned: it falls to its last step only;
  4. below that, the fewest kept samples that fit (down to 1).

  What cannot fit even then (the neuron table of two epochs, the final weights) is refused.

While training, the tracer checks what it really holds against the same budget and stops
recording before an epoch that would not fit (:class:`nn_tracing.tracer.TraceBudgetWarning`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import TrainConfig
from .estimate import RunEstimate, RunTooLarge, estimate_run, format_bytes

__all__ = [
    "ADAPT_TARGET",
    "MIN_KEPT_SAMPLES",
    "BudgetPlan",
    "TraceBudgetExceeded",
    "budget_options",
    "plan_budget",
]

#: The fewest kept probe samples step 2 of "adapt" goes down to before it records fewer epochs.
MIN_KEPT_SAMPLES = 256
#: The share of the budget that "adapt" aims at (the estimate is within a few per cent).
ADAPT_TARGET = 0.95


class TraceBudgetExceeded(RunTooLarge):
    """A run whose estimated trace is over ``max_trace_bytes`` (and ``on_budget="refuse"``)."""


@dataclass(frozen=True)
class BudgetPlan:
    """The run that will train: its config (adapted or not) and its estimate.

    Attributes
    ----------
    config
        The config to train (the one given when it fits or has no budget).
    estimate
        Its estimate.
    adapted
        ``{field: value}`` of what "adapt" changed (empty when nothing was).
    requested
        The estimate of the config as given.
    kind
        Which size the budget bounds: ``trace_bytes`` or ``rundir_bytes``.
    """

    config: TrainConfig
    estimate: RunEstimate
    adapted: dict[str, Any] = field(default_factory=dict)
    requested: RunEstimate | None = None
    kind: str = "trace_bytes"

    def meta(self) -> dict[str, Any]:
        """What ``meta["budget"]`` of the trace records of the plan (JSON-ready)."""
        if self.config.max_trace_bytes is None:
            return {}
        out: dict[str, Any] = {
            "max_trace_bytes": self.config.max_trace_bytes,
            "on_budget": self.config.on_budget,
            "bounds": "run directory" if self.kind == "rundir_bytes" else ".nntrace file",
            "estimated_bytes": getattr(self.estimate, self.kind),
        }
        if self.adapted:
            requested = self.requested or self.estimate
            out["adapted"] = {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.adapted.items()
            }
            out["requested_bytes"] = getattr(requested, self.kind)
        return out

    def describe(self) -> str:
        """One sentence on what "adapt" changed (empty when nothing was)."""
        if not self.adapted:
            return ""
        changes = ", ".join(f"{k}={_text(v)}" for k, v in self.adapted.items())
        requested = self.requested or self.estimate
        return (
            f"To fit max_trace_bytes ({format_bytes(self.config.max_trace_bytes or 0)}) the run "
            f"was adapted: {changes} (trace about "
            f"{format_bytes(getattr(requested, self.kind))} → "
            f"{format_bytes(getattr(self.estimate, self.kind))})."
        )


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _size(config: TrainConfig, kind: str = "trace_bytes") -> int:
    """The estimated size of what the run writes: ``trace_bytes`` (the ``.nntrace`` file) or
    ``rundir_bytes`` (the run directory)."""
    return int(getattr(estimate_run(config), kind))


def _largest_fitting(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The largest ``n`` in ``[low, high]`` with ``fits(n)`` (``fits`` grows false with n)."""
    if low > high or not fits(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def _fewest_epochs(config: TrainConfig, limit: int, kind: str) -> TrainConfig | None:
    """``config`` recording every n-th epoch, with the smallest ``n`` that fits ``limit``
    (``None`` for a step schedule: this knob thins epoch schedules only)."""
    if config.step_intervals is not None:
        return None
    epochs = config.epochs
    smallest = _largest_fitting(
        -epochs, -1, lambda m: _size(config.replace(epoch_intervals=-m), kind) <= limit
    )
    if smallest is None:
        fits_last = _size(config.replace(epoch_intervals=-1), kind) <= limit
        return config.replace(epoch_intervals=-1) if fits_last else None
    n = -smallest
    return config.replace(epoch_intervals=n if n < epochs else -1)


def _last_only(config: TrainConfig) -> TrainConfig:
    """``config`` recording the last epoch (or step) only."""
    if config.step_intervals is not None:
        return config.replace(step_intervals=-1)
    return config.replace(epoch_intervals=-1)


def _fewest_samples(config: TrainConfig, limit: int, floor: int, kind: str) -> TrainConfig | None:
    """``config`` keeping the most probe samples (at least ``floor``) that fit ``limit``."""
    n_probe = estimate_run(config).n_probe
    kept = _largest_fitting(
        min(floor, n_probe),
        n_probe,
        lambda n: _size(config.replace(activation_samples=n), kind) <= limit,
    )
    return None if kept is None else config.replace(activation_samples=kept)


def _adapt(config: TrainConfig, limit: int, kind: str) -> TrainConfig | None:
    """The least lowered config that fits ``limit`` (the order of the module docstring)."""
    steps: list[Callable[[TrainConfig], TrainConfig | None]] = [
        lambda c: c.replace(activation_dtype="float16"),
        lambda c: (
            _fewest_samples(c, limit, MIN_KEPT_SAMPLES, kind)
            or c.replace(activation_samples=min(MIN_KEPT_SAMPLES, estimate_run(c).n_kept))
        ),
        lambda c: _fewest_epochs(c, limit, kind) or _last_only(c),
        lambda c: _fewest_samples(c, limit, 1, kind),
    ]
    current = config
    for step in steps:
        candidate = step(current)
        if candidate is None:
            return None
        current = candidate
        if _size(current, kind) <= limit:
            return current
    return None


def budget_options(
    config: TrainConfig, limit: int, kind: str = "trace_bytes"
) -> list[tuple[str, int]]:
    """Each knob alone, as ``("field=value", trace bytes)``: what it would bring the trace to
    (the value that fits when one does, else the knob's lowest)."""
    options: list[tuple[str, int]] = []
    if config.activation_dtype != "float16":
        half = config.replace(activation_dtype="float16")
        options.append(("activation_dtype='float16'", _size(half, kind)))
    kept = _fewest_samples(config, limit, 1, kind) or config.replace(activation_samples=1)
    options.append((f"activation_samples={kept.activation_samples}", _size(kept, kind)))
    fewer = _fewest_epochs(config, limit, kind) or _last_only(config)
    if config.step_intervals is not None:
        options.append(("step_intervals=-1", _size(fewer, kind)))
    else:
        options.append((f"epoch_intervals={fewer.epoch_intervals}", _size(fewer, kind)))
    if config.keep_weights:
        options.append(("keep_weights=False", _size(config.replace(keep_weights=False), kind)))
    return options


def _refusal(config: TrainConfig, estimate: RunEstimate, limit: int, kind: str) -> str:
    knobs = "; ".join(
        f"{name} → {format_bytes(size)}{'' if size <= limit else ' (still over)'}"
        for name, size in budget_options(config, limit, kind)
    )
    what = "run directory" if kind == "rundir_bytes" else "trace"
    return (
        f"The {what} of this run would be about {format_bytes(getattr(estimate, kind))}, over "
        f"max_trace_bytes ({format_bytes(limit)}). Each of these alone would bring it to: "
        f"{knobs}. Or set on_budget='adapt' to let the run lower them in that order."
    )


def plan_budget(config: TrainConfig, *, run_directory: bool = False) -> BudgetPlan:
    """The run that fits ``config.max_trace_bytes``: ``config`` itself, or adapted.

    The budget bounds the ``.nntrace`` file (``estimate.trace_bytes``), or with
    ``run_directory=True`` the run directory the run writes (``estimate.rundir_bytes``, a few
    kB per epoch larger). "adapt" aims at :data:`ADAPT_TARGET` of the budget, so that an
    estimate a little short of the real size does not stop the run's last epochs.

    Raises
    ------
    TraceBudgetExceeded
        When the estimate is over the budget and ``on_budget="refuse"``, or nothing fits.
    ValueError
        When the dataset's dimensions cannot be known (an unreadable CSV file).
    """
    kind = "rundir_bytes" if run_directory else "trace_bytes"
    estimate = estimate_run(config)
    limit = config.max_trace_bytes
    if limit is None or getattr(estimate, kind) <= limit:
        return BudgetPlan(config, estimate)
    if config.on_budget == "refuse":
        raise TraceBudgetExceeded(_refusal(config, estimate, limit, kind), estimate)
    adapted = _adapt(config, int(limit * ADAPT_TARGET), kind)
    if adapted is None:
        raise TraceBudgetExceeded(
            f"The trace of this run would be about {format_bytes(getattr(estimate, kind))}, "
            f"and even a run that keeps 1 probe sample in float16 and records only E_0 and its "
            f"last epoch would not fit max_trace_bytes ({format_bytes(limit)}): narrow "
            "hidden_sizes or raise the budget.",
            estimate,
        )
    changed = {
        name: getattr(adapted, name)
        for name in ("activation_dtype", "activation_samples", "epoch_intervals", "step_intervals")
        if getattr(adapted, name) != getattr(config, name)
    }
    return BudgetPlan(adapted, estimate_run(adapted), changed, requested=estimate, kind=kind)
