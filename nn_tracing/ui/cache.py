"""Frames derived from a trace, cached with ``st.cache_data`` keyed by the trace's digest.

Every function takes ``key`` (the sha256 digest of the trace file, or ``live:<job>:<version>``
for a run still training) and the trace itself as ``_trace``: the leading underscore tells
Streamlit not to hash it, so the digest alone decides whether a cached result is reused.
Switching pages or moving a slider back to an epoch already seen costs a cache lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from .. import viz
from ..analysis.dormancy import Dormancy, dormancy
from ..analysis.health import NeuronHealth, neuron_health
from ..trace import NetworkTrace

__all__ = [
    "brain_scan",
    "chart",
    "curves",
    "dormancy_counts",
    "dormancy_of",
    "first_neuron",
    "health",
    "health_counts",
    "layer_epoch",
    "layer_quantiles",
    "neuron_epoch",
    "neuron_history",
    "neurons_csv",
    "neurons_parquet",
]

_ENTRIES = 64


@st.cache_resource(max_entries=96, ttl=3600, show_spinner=False)
def chart(
    kind: str, key: str, params: tuple[Hashable, ...], _build: Callable[[], alt.TopLevelMixin]
) -> alt.TopLevelMixin:
    """The Altair chart ``_build()`` makes, kept per (kind, trace key, params).

    Building an Altair chart validates every encoding against the Vega-Lite schema (tens of
    milliseconds per chart); a page switch or a slider move back to a view seen before
    reuses the chart object instead. Charts are not modified after they are built.
    """
    return _build()


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def curves(key: str, _trace: NetworkTrace) -> pd.DataFrame:
    """Loss and accuracy in long form (see :func:`nn_tracing.viz.curves_frame`)."""
    return viz.curves_frame(_trace.history)


@st.cache_resource(
    max_entries=16,
    show_spinner="Checking every recorded epoch for dead, saturated and gradient-starved "
    "neurons (saturation reads each epoch's probe activations once)…",
)
def health(key: str, _trace: NetworkTrace) -> NeuronHealth:
    """Dead / saturated / gradient-starved flags of every neuron at every recorded epoch.

    One object shared by every session (a resource, not pickled per reader: at 100k neurons ×
    100 epochs its arrays take ~400 MiB), its arrays made read-only."""
    result = neuron_health(_trace)
    arrays = [result.saturation, result.grad_ratio, result.w_growth, result.act_active]
    for array in [*arrays, *result.flags.values(), *result.applies.values()]:
        array.flags.writeable = False
    return result


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def health_counts(key: str, _trace: NetworkTrace) -> pd.DataFrame:
    """Flag counts per layer and epoch, with example signatures."""
    return viz.health_frame(health(key, _trace))


@st.cache_resource(
    max_entries=16, show_spinner="Finding τ-dormant neurons at every recorded epoch…"
)
def dormancy_of(key: str, _trace: NetworkTrace) -> Dormancy:
    """Every hidden neuron's τ-dormant score at every recorded epoch
    (:func:`nn_tracing.analysis.dormancy.dormancy`): one object shared by every session, like
    :func:`health`, its arrays made read-only."""
    result = dormancy(_trace)
    for array in [*result.mean_abs.values(), *result.scores.values()]:
        array.flags.writeable = False
    return result


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def first_neuron(key: str, _trace: NetworkTrace) -> tuple[int, str | None]:
    """The neuron the Neurons page opens without a link, and why
    (:func:`nn_tracing.views.neurons.first_neuron`)."""
    from ..views.neurons import first_neuron as choose

    return choose(_trace)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def dormancy_counts(key: str, _trace: NetworkTrace) -> pd.DataFrame:
    """τ-dormant neurons per layer, epoch and τ, with example signatures
    (:func:`nn_tracing.viz.dormancy.dormancy_frame`)."""
    from ..viz.dormancy import dormancy_frame

    return dormancy_frame(dormancy_of(key, _trace))


@st.cache_data(max_entries=_ENTRIES * 4, show_spinner=False)
def brain_scan(
    key: str, epoch: int, metric: str, order: str, percentile: bool, _trace: NetworkTrace
) -> viz.BrainScan:
    """The brain-scan cells of ``metric`` at ``epoch``."""
    return viz.brain_scan_frame(_trace, epoch, metric, order=order, percentile=percentile)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def layer_epoch(key: str, metric: str, _trace: NetworkTrace) -> pd.DataFrame:
    """Layer medians and quartiles of ``metric`` at every recorded epoch."""
    return viz.layer_epoch_frame(_trace, metric)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def neuron_epoch(
    key: str, layer: str, metric: str, order: str, _trace: NetworkTrace
) -> pd.DataFrame:
    """One layer's neurons × recorded epochs."""
    return viz.neuron_epoch_frame(_trace, layer, metric, order=order)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def layer_quantiles(key: str, layer: str, _trace: NetworkTrace) -> np.ndarray:
    """Quartiles of every metric over ``layer`` per epoch, shape (n_metrics, n_epochs, 3)."""
    return viz.layer_quantiles(_trace, layer)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def neuron_history(
    key: str, neuron: int, epoch: int, against_layer: bool, _trace: NetworkTrace
) -> tuple[pd.DataFrame, tuple[tuple[str, ...], bool, bool]]:
    """The rows of ``neuron``'s profile chart (:func:`nn_tracing.viz.neuron_history_data`;
    with ``against_layer`` its layer's quartiles and its percentiles in it) and the key of the
    chart's layout (:func:`nn_tracing.viz.neuron.history_layout_key`)."""
    layer = _trace.layer_of(neuron).name
    quantiles = layer_quantiles(key, layer, _trace) if against_layer else None
    frame = viz.neuron_history_frame(_trace, neuron, quantiles, epoch, percentiles=against_layer)
    return viz.neuron_history_data(frame), viz.history_layout_key(frame)


def _flat_frame(trace: NetworkTrace) -> pd.DataFrame:
    return trace.frame.reset_index()


def neurons_csv(trace: NetworkTrace) -> bytes:
    """The neuron frame as CSV (built when the user clicks download, not on every rerun)."""
    return _flat_frame(trace).to_csv(index=False).encode()


def neurons_parquet(trace: NetworkTrace) -> bytes:
    """The neuron frame as Parquet (zstd)."""
    import io

    buffer = io.BytesIO()
    _flat_frame(trace).to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()
