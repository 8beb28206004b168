"""What the Breadcrumbs page computes, and how it waits for it.

Slow work, or work with progress (attribution, the trail check, since when, ablation curves,
pruning), runs on the analysis worker through :func:`~nn_tracing.ui.compute.run_analysis`,
its result shared by every session; fast pure work (the model check, the trail from an
attribution, one ablation, one intervention: a forward pass or two) is ``st.cache_data``
keyed by the trace's key (see :mod:`nn_tracing.ui.compute` for the rule). The computations
themselves are :mod:`nn_tracing.views.breadcrumbs`'s.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from ...analysis.attribution import METHOD_TITLES, METHODS, Attribution, Trail
from ...analysis.intervention import (
    AblationCurves,
    AblationResult,
    Intervention,
    InterventionResult,
)
from ...trace import NetworkTrace
from ...views import breadcrumbs as views
from ...views.breadcrumbs import Pruned, Target
from ...views.probe_sample import probe_predictions
from ...views.recycling import Recycled, recycle
from ..compute import run_analysis
from ..traces import ActiveTrace

__all__ = [
    "ablation_of",
    "agreement_of",
    "attribution_of",
    "curves_of",
    "intervention_of",
    "model_problem",
    "predictions_of",
    "pruning_of",
    "recycling_of",
    "since_when_of",
    "trail_check_of",
    "trail_of",
]

_ENTRIES = 32


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def predictions_of(key: str, epoch: int, _trace: NetworkTrace) -> np.ndarray:
    """The predicted class of every probe sample at ``epoch`` (one forward pass, cached per
    trace and epoch)."""
    return probe_predictions(_trace, epoch)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def model_problem(key: str, _trace: NetworkTrace) -> str | None:
    """Why the model of this trace cannot be rebuilt, or ``None``."""
    return views.model_problem(_trace)


def attribution_of(active: ActiveTrace, target: Target, method: str | None = None) -> Attribution:
    """The attribution ``target`` asks for (by ``method`` instead of its own, if given)."""
    method = method or target.method
    return run_analysis(  # type: ignore[return-value]
        "breadcrumbs:attribution",
        active.key,
        [target.epoch, target.target_class, target.sample, method, target.objective],
        partial(views.attribution, active.trace, target, method),
        label=f"Attributing with {METHOD_TITLES[method]}",
    )


def agreement_of(active: ActiveTrace, target: Target) -> pd.DataFrame:
    """How far the four methods agree on ``target`` (each attribution on the worker)."""
    return views.agreement_table({m: attribution_of(active, target, m) for m in METHODS})


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _cached_trail(
    key: str, target: Target, _trace: NetworkTrace, _attribution: Attribution
) -> Trail:
    return views.trail(_trace, target, _attribution)


def trail_of(active: ActiveTrace, target: Target) -> Trail:
    """The breadcrumb trail of ``target``'s attribution."""
    return _cached_trail(active.key, target, active.trace, attribution_of(active, target))


def trail_check_of(active: ActiveTrace, target: Target) -> pd.DataFrame:
    """The trail of ``target`` ablated against random neuron sets."""
    return run_analysis(  # type: ignore[return-value]
        "breadcrumbs:trail-check",
        active.key,
        [*target.explained(), target.k],
        partial(views.check_trail, active.trace, target, trail_of(active, target)),
        label="Ablating the trail against random neurons",
    )


def since_when_of(active: ActiveTrace, target: Target, neurons: tuple[int, ...]) -> pd.DataFrame:
    """The scores of ``neurons`` for ``target`` at every recorded epoch."""
    return run_analysis(  # type: ignore[return-value]
        "breadcrumbs:since-when",
        active.key,
        [list(neurons), target.target_class, target.sample, target.method, target.objective],
        partial(views.since_when, active.trace, target, neurons),
        label="Attributing at every recorded epoch",
    )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _ablation(
    key: str, epoch: int, neurons: tuple[int, ...], fill: str, _trace: NetworkTrace
) -> AblationResult:
    return views.ablation(_trace, epoch, neurons, fill)


def ablation_of(
    active: ActiveTrace, epoch: int, neurons: tuple[int, ...], fill: str
) -> AblationResult:
    """The probe set's outputs with ``neurons`` ablated by ``fill``."""
    return _ablation(active.key, epoch, neurons, fill, active.trace)


def curves_of(
    active: ActiveTrace, epoch: int, layer: str, fill: str, n_repeats: int, method: str
) -> AblationCurves:
    """The ablation curves of ``layer``."""
    return run_analysis(  # type: ignore[return-value]
        "breadcrumbs:curves",
        active.key,
        [epoch, layer, fill, n_repeats, method],
        partial(views.ablation_curves, active.trace, epoch, layer, fill, n_repeats, method),
        label=f"Ablation curves of {layer}",
    )


def pruning_of(
    active: ActiveTrace,
    epoch: int,
    k: tuple[tuple[str, int], ...],
    fill: str,
    n_repeats: int,
    method: str,
) -> Pruned:
    """The pruning of ``k`` (``(layer, neurons removed)`` pairs) and its downloads."""
    return run_analysis(  # type: ignore[return-value]
        "breadcrumbs:pruning",
        active.key,
        [epoch, [list(item) for item in k], fill, n_repeats, method],
        partial(views.prune, active.trace, epoch, k, fill, n_repeats, method),
        label="Pruning",
    )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _intervention(
    key: str, epoch: int, change: Intervention, _trace: NetworkTrace
) -> InterventionResult:
    return views.intervention(_trace, epoch, change)


def intervention_of(active: ActiveTrace, epoch: int, change: Intervention) -> InterventionResult:
    """What ``change`` does on the probe set."""
    return _intervention(active.key, epoch, change, active.trace)


@st.cache_data(max_entries=_ENTRIES, show_spinner="Recycling dormant neurons…")
def _recycling(key: str, epoch: int, tau: float, _trace: NetworkTrace) -> Recycled:
    return recycle(_trace, epoch, tau)


def recycling_of(active: ActiveTrace, epoch: int, tau: float) -> Recycled:
    """What recycling the τ-dormant neurons does on the probe set (two forward passes)."""
    return _recycling(active.key, epoch, tau, active.trace)
