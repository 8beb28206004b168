"""The metrics pages colour neurons by: the recorded ones (:data:`nn_tracing.trace.METRICS`)
and those derived from a trace on demand (:data:`DERIVED`) — one list, :data:`COLOUR_METRICS`,
and one way to read any of them (:func:`metric_at`, :func:`metric_over_time`).

Derived now: ``utility``, the contribution utility of Dohare et al. (Nature 2024),
:func:`nn_tracing.analysis.dormancy.contribution_utility` (the weights of each epoch where the
run kept them, else its final weights). Recorded metrics are read as the trace stores them
(a run directory's through DuckDB); a derived one is computed epoch by epoch.
"""

from __future__ import annotations

import numpy as np

from ..trace import METRIC_DESCRIPTIONS, METRICS, NetworkTrace
from .dormancy import contribution_utility

__all__ = [
    "COLOUR_METRICS",
    "DERIVED",
    "metric_at",
    "metric_description",
    "metric_note",
    "metric_over_time",
]

#: Derived metrics and what each measures.
DERIVED: dict[str, str] = {
    "utility": "contribution utility (Dohare et al. 2024): mean |activation| × Σ |outgoing "
    "weights| (final weights where the run kept none at the epoch)",
}
#: Every metric a page can colour neurons by, recorded ones first.
COLOUR_METRICS: tuple[str, ...] = (*METRICS, *DERIVED)


def metric_description(name: str) -> str | None:
    """What ``name`` measures (``None`` for an unknown name)."""
    return METRIC_DESCRIPTIONS.get(name) or DERIVED.get(name)


def _check(name: str) -> None:
    if name not in COLOUR_METRICS:
        raise KeyError(f"no metric {name!r}; metrics: {', '.join(COLOUR_METRICS)}")


def metric_at(trace: NetworkTrace, epoch: int, name: str) -> np.ndarray:
    """``name`` of every neuron at ``epoch``: float64 array of shape (n_neurons,)."""
    _check(name)
    if name == "utility":
        return contribution_utility(trace, epoch).values
    return trace.metrics_at(epoch)[:, METRICS.index(name)].astype(np.float64)


def metric_note(trace: NetworkTrace, epoch: int, name: str) -> str | None:
    """What a reader of ``name`` at ``epoch`` should know (utility without the epoch's own
    weights: the final weights stood in), or ``None``."""
    _check(name)
    if name == "utility" and epoch not in trace.epochs_with_weights:
        return "Contribution utility: " + contribution_utility(trace, epoch).note + "."
    return None


def metric_over_time(trace: NetworkTrace, name: str, layer: str | None = None) -> np.ndarray:
    """``name`` of every neuron (of ``layer``, if given) at every recorded epoch: float64
    array of shape (n_epochs, n_neurons)."""
    _check(name)
    if name in METRICS:
        values = trace.metric(name) if layer is None else trace.layer_metric(name, layer)
        return values.astype(np.float64)
    ids = (
        slice(None)
        if layer is None
        else slice(trace.layer(layer).first_id, trace.layer(layer).last_id + 1)
    )
    rows = [metric_at(trace, epoch, name)[ids] for epoch in trace.epochs]
    width = trace.n_neurons if layer is None else trace.layer(layer).n_neurons
    return np.stack(rows) if rows else np.zeros((0, width))
