"""The Neurons page's health: the line above its tabs (the neuron's own flags) and the tab
"Health of every neuron" (a table of every neuron's flags at the epoch, filtered by layer and
flag, whose rows open their neuron). The flags are :mod:`nn_tracing.analysis.health`'s and
:mod:`nn_tracing.analysis.health_neuron`'s, the table's rows and captions
:mod:`nn_tracing.views.health`'."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

from ..analysis.health import FLAG_TITLES, FLAGS, NeuronHealth
from ..analysis.health_neuron import (
    LayerReferences,
    NeuronFlags,
    layer_references,
    neuron_flags,
)
from ..timeaxis import time_key
from ..trace import NetworkTrace
from ..views import health as health_view
from . import cache, state
from .charts import neuron_table
from .traces import ActiveTrace
from .widgets import health_definitions

__all__ = ["health_line_of", "health_table"]

_ENTRIES = 64


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _layer_references(key: str, layer: str, _trace: NetworkTrace) -> LayerReferences:
    return layer_references(_trace, layer)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _neuron_flags(key: str, neuron: int, _trace: NetworkTrace) -> NeuronFlags:
    references = _layer_references(key, _trace.layer_of(neuron).name, _trace)
    return neuron_flags(_trace, neuron, references=references)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _health_rows(key: str, epoch: int, _health: NeuronHealth) -> pd.DataFrame:
    return _health.table(epoch)


def health_line_of(active: ActiveTrace, neuron: int, epoch: int) -> None:
    """The neuron's flags at ``epoch`` (from its own history and its layer's medians, not
    every neuron's health) and the flags' definitions."""
    flags = _neuron_flags(active.key, neuron, active.trace)
    st.markdown(health_view.neuron_health_line(flags, neuron, epoch))
    health_definitions(flags.thresholds)


def _filters_digest(*values: object) -> str:
    return hashlib.sha1(repr(values).encode()).hexdigest()[:10]


def _health_columns() -> dict[str, Any]:
    """How the health table shows its columns."""
    return {
        **{flag: st.column_config.CheckboxColumn(FLAG_TITLES[flag]) for flag in FLAGS},
        "n_flags": st.column_config.NumberColumn("flags"),
        "act_active": st.column_config.NumberColumn("active on probe", format="percent"),
        "saturation": st.column_config.NumberColumn("saturated samples", format="percent"),
        "grad_ratio": st.column_config.NumberColumn(
            "grad / layer median", format="%.3g", help="gradient norm over its layer's median"
        ),
        "w_growth": st.column_config.NumberColumn(
            f"weight norm / {time_key(0)}",
            format="%.3g",
            help=f"incoming-weight norm over its {time_key(0)} norm",
        ),
    }


def health_table(
    active: ActiveTrace, neuron: int, epoch: int, layers: list[str], flags: list[str]
) -> None:
    """Every neuron's flags at ``epoch`` in a table filtered by ``layers`` and ``flags`` (the
    page's settings; the widgets here set them), whose rows open their neuron; ``neuron``,
    the one shown, is marked."""
    trace = active.trace
    health = cache.health(active.key, trace)
    table = _health_rows(active.key, epoch, health)
    left, right = st.columns(2)
    with left:
        st.multiselect(
            "Layers",
            trace.layer_names(),
            key=state.NEURON_HEALTH_LAYERS,
            placeholder="every layer",
        )
    with right:
        st.multiselect(
            "Flagged as (any of)",
            health_view.defined_flags(health),
            key=state.NEURON_HEALTH_FLAGS,
            format_func=lambda f: FLAG_TITLES[f],
            placeholder="every neuron, flagged or not",
        )
    view = health_view.table_view(table, health, layers, flags)
    kept = view.head(health_view.MAX_TABLE_ROWS)
    st.caption(health_view.table_caption(table, health, epoch, len(kept), len(view)))
    view = kept
    key = f"{state.NEURON_HEALTH_TABLE}:{active.ref}:{neuron}:{epoch}:" + _filters_digest(
        layers, flags
    )
    neuron_table(
        active.name,
        view,
        [trace.signature(epoch, int(n)) for n in view["neuron"]],
        key=key,
        max_height=420,
        column_config=_health_columns(),
        current=trace.signature(epoch, neuron),
    )
