"""The Neurons page: one neuron's life over the recorded epochs.

The neuron is named by the ``neuron=`` query parameter (``E_30/L_hidden_1/n_20``), which the
page keeps in sync with its epoch slider and its searchable neuron picker, so the URL in the
address bar always reopens the same view — in another browser too.
"""

from __future__ import annotations

from urllib.parse import urlencode

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from .. import viz
from ..analysis.health import FLAG_TITLES, FLAGS
from ..trace import METRICS, NetworkTrace, parse_signature
from . import cache, state
from .app import require_shell
from .charts import show_chart
from .overview import epoch_picker
from .text import guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active

__all__ = ["render_neurons", "resolve_neuron"]


def _default_neuron(trace: NetworkTrace) -> int:
    hidden = [info for info in trace.layers if info.kind != "input"]
    return (hidden[0] if hidden else trace.layers[0]).first_id


def resolve_neuron(trace: NetworkTrace, requested: str | None) -> tuple[int, int, str | None]:
    """``(epoch, neuron id, notice)`` for a ``neuron=`` parameter.

    A signature that does not fit this trace falls back (to the nearest recorded epoch, or
    to the first hidden neuron) with a notice that says what happened.
    """
    epochs = trace.epochs
    if not requested:
        return epochs[-1], _default_neuron(trace), None
    try:
        epoch, layer, neuron = parse_signature(requested)
    except KeyError as exc:
        return epochs[-1], _default_neuron(trace), str(exc.args[0])
    notice = None
    if not 0 <= neuron < trace.n_neurons or trace.layer_of(neuron).name != layer:
        notice = (
            f"{requested} is not a neuron of this trace (its layers: "
            f"{', '.join(f'L_{n} n_{a}…n_{b}' for n, (a, b) in trace.neural_index.items())}); "
            "showing the first hidden neuron instead."
        )
        neuron = _default_neuron(trace)
    if epoch not in epochs:
        nearest = min(epochs, key=lambda e: (abs(e - epoch), e))
        notice = (notice + " " if notice else "") + (
            f"E_{epoch} was not recorded; showing the nearest recorded epoch, E_{nearest}."
        )
        epoch = nearest
    return epoch, neuron, notice


def _set_neuron_param(signature: str) -> None:
    st.query_params["neuron"] = signature


def _epoch_changed(trace_ref: str, neuron: int, layer: str) -> None:
    epoch = state.get(state.epoch_key(state.NEURON_EPOCH, trace_ref))
    _set_neuron_param(f"E_{epoch}/L_{layer}/n_{neuron}")


def _neuron_changed() -> None:
    signature = state.get(state.NEURON_PICK)
    if signature:
        _set_neuron_param(signature)


def _link(active: ActiveTrace, signature: str) -> str:
    params = {"trace": active.name, "neuron": signature} if active.name else {"neuron": signature}
    query = urlencode(params, safe="/")
    base = (st.context.url or "").split("?", 1)[0]
    return f"{base}?{query}" if base else f"neurons?{query}"


def _at_epoch(trace: NetworkTrace, epoch: int, neuron: int) -> pd.DataFrame:
    info = trace.layer_of(neuron)
    block = trace.metrics_at(epoch)[info.first_id : info.last_id + 1].astype(np.float64)
    own = block[neuron - info.first_id]
    rows = []
    for m, name in enumerate(METRICS):
        column = block[:, m]
        finite = column[np.isfinite(column)]
        value = own[m]
        if not np.isfinite(value) or finite.size == 0:
            rows.append((name, value, np.nan, np.nan))
            continue
        percentile = (np.sum(finite < value) + 0.5 * np.sum(finite == value)) / finite.size
        rows.append((name, value, float(np.median(finite)), 100 * percentile))
    return pd.DataFrame(rows, columns=["metric", "value", "layer median", "percentile in layer"])


def _pickers(active: ActiveTrace) -> tuple[int, int, str]:
    trace = active.trace
    epoch, neuron, notice = resolve_neuron(trace, st.query_params.get("neuron"))
    layer = trace.layer_of(neuron).name
    signature = f"E_{epoch}/L_{layer}/n_{neuron}"
    if st.query_params.get("neuron") != signature:
        _set_neuron_param(signature)
    if notice:
        st.warning(md_escape(notice, max_length=600))
    epoch_key = state.epoch_key(state.NEURON_EPOCH, active.ref)
    state.put(epoch_key, epoch)
    state.put(state.NEURON_PICK, signature)
    left, right = st.columns([3, 2])
    with left:
        options = cache.signatures(active.key, epoch, trace)
        st.selectbox(
            "Neuron",
            options,
            key=state.NEURON_PICK,
            on_change=_neuron_changed,
            help="Type to search: a layer (L_hidden_2), an id (n_20) or a whole signature.",
        )
    with right:
        if len(trace.epochs) > 1:
            st.select_slider(
                "Epoch",
                options=trace.epochs,
                key=epoch_key,
                format_func=lambda e: f"E_{e}",
                on_change=_epoch_changed,
                args=(active.ref, neuron, layer),
            )
        else:
            epoch_picker("Epoch", trace.epochs, epoch_key)
    return epoch, neuron, layer


def _activation_histogram(
    trace: NetworkTrace, epoch: int, neuron: int, signature: str
) -> alt.Chart | None:
    """The neuron's probe activations at ``epoch`` by class (reads that epoch's tensors)."""
    activations = trace.probe_activations(epoch)
    if activations is None or trace.probe is None:
        return None
    dataset = trace.meta.get("dataset") if isinstance(trace.meta.get("dataset"), dict) else {}
    names = dataset.get("class_names") if isinstance(dataset.get("class_names"), list) else None
    frame = viz.activation_histogram_frame(activations[:, neuron], trace.probe[1], names, signature)
    return viz.activation_histogram_chart(frame)


def _flags(active: ActiveTrace, neuron: int, epoch: int) -> None:
    health = cache.health(active.key, active.trace)
    history = health.of_neuron(neuron)
    parts = []
    for flag in FLAGS:
        if not health.applies[flag][neuron]:
            parts.append(f"{FLAG_TITLES[flag]}: n/a")
            continue
        now = bool(history.loc[history["epoch"] == epoch, flag].iloc[0])
        epochs = history.loc[history[flag], "epoch"].tolist()
        when = f" (at {len(epochs)} of {len(history)} recorded epochs)" if epochs else ""
        parts.append(f"{FLAG_TITLES[flag]}: {'**yes**' if now else 'no'}{when}")
    st.markdown(f"At E_{epoch} — " + " · ".join(parts))


def render_neurons() -> None:
    """Draw the Neurons page."""
    require_shell()
    st.title("Neurons")
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    trace = active.trace
    epoch, neuron, layer = _pickers(active)
    signature = f"E_{epoch}/L_{layer}/n_{neuron}"
    st.code(signature, language=None)
    st.caption("Link to this view (opens the same neuron in any browser that reaches this app):")
    st.code(_link(active, signature), language=None)
    with guarded("checking the neuron's health"):
        _flags(active, neuron, epoch)

    with guarded("drawing the neuron's metrics over training"):
        st.subheader("Over training, against its layer")
        chart = cache.chart(
            "neuron_history",
            active.key,
            (neuron, epoch),
            lambda: viz.neuron_history_chart(
                viz.neuron_history_frame(
                    trace, neuron, cache.layer_quantiles(active.key, layer, trace), epoch
                )
            ),
        )
        show_chart(chart, width="content")
        st.caption(
            f"Blue: n_{neuron}. Dashed grey: the median of the {trace.layer(layer).n_neurons} "
            f"neurons of L_{md_escape(layer)}; shaded: their interquartile range. Red: E_{epoch}."
        )

    left, right = st.columns(2)
    with left, guarded("summarising the neuron at this epoch"):
        st.subheader(f"At E_{epoch}")
        st.dataframe(
            _at_epoch(trace, epoch, neuron),
            hide_index=True,
            column_config={
                "value": st.column_config.NumberColumn(format="%.4g"),
                "layer median": st.column_config.NumberColumn(format="%.4g"),
                "percentile in layer": st.column_config.NumberColumn(format="%.0f"),
            },
        )
    with right, guarded("drawing the neuron's activations"):
        st.subheader("Probe activations")
        chart = cache.chart(
            "activation_histogram",
            active.key,
            (neuron, epoch),
            lambda: _activation_histogram(trace, epoch, neuron, signature),
        )
        if chart is None:
            st.info("This trace keeps no probe activations for this epoch.")
        else:
            show_chart(chart)

    with guarded("listing the neuron's rows"):
        st.subheader("Its rows in the neuron frame")
        rows = trace.frame.xs(neuron, level="neuron").reset_index()
        rows.insert(0, "signature", [f"E_{e}/L_{layer}/n_{neuron}" for e in rows["epoch"]])
        st.dataframe(rows.drop(columns=["layer"]), hide_index=True)
