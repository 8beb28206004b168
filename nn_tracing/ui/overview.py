"""The Overview page: run summary, training curves, the brain scan and neuron health.

Everything drawn here comes from cached frames (:mod:`nn_tracing.ui.cache`) keyed by the
trace's digest; a click on a neuron cell (or a row of the flagged-neuron table) opens the
Neurons page on it through a deep link.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import viz
from ..analysis.health import FLAG_TITLES, FLAGS
from ..trace import METRICS
from . import cache, state
from .app import require_shell
from .charts import neuron_table, show_chart
from .links import open_picked
from .text import fmt_duration, guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active
from .widgets import epoch_picker

__all__ = ["render_overview"]

DEFAULT_METRIC = "act_mean"


# -- sections -----------------------------------------------------------------------------------
def _summary(active: ActiveTrace) -> None:
    trace = active.trace
    meta = trace.meta
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else {}
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    st.title("Overview")
    st.caption(md_escape(active.label, max_length=300))
    status = trace.status
    message = str(meta.get("status_message") or "")
    if active.live:
        st.info("Training now: this page updates as epochs are recorded.", icon="⏳")
    elif status == "stopped":
        st.warning(
            f"Stopped before the end: {md_escape(message or 'by the user')}",
            icon=":material/stop_circle:",
        )
    elif status == "diverged":
        st.warning(
            f"Diverged: {md_escape(message or 'non-finite loss')}", icon=":material/warning:"
        )

    hidden = [info for info in trace.layers if info.kind != "input" and info.name != "output"]
    planned = config.get("epochs") or meta.get("num_epochs")
    history = trace.history
    val_acc = history["val_acc"].dropna() if "val_acc" in history else pd.Series(dtype=float)
    seconds = (
        (meta.get("timings") or {}).get("train_seconds")
        if isinstance(meta.get("timings"), dict)
        else None
    )
    columns = st.columns(6)
    columns[0].metric("Parameters", f"{int(model.get('n_parameters', 0)):,}")
    columns[1].metric(
        "Hidden neurons",
        f"{sum(i.n_neurons for i in hidden):,}",
        help=f"{trace.n_neurons:,} neurons in all, with inputs and outputs",
    )
    columns[2].metric(
        "Recorded epochs",
        f"{len(trace.epochs)}",
        help=f"of {planned} epochs; E_0 is the untrained network" if planned else None,
    )
    columns[3].metric("Validation accuracy", f"{val_acc.iloc[-1]:.3f}" if len(val_acc) else "–")
    columns[4].metric("Status", "training" if active.live else status)
    columns[5].metric(
        "Training time",
        fmt_duration(float(seconds)) if isinstance(seconds, (int, float)) else "–",
    )
    with st.expander("Run details: configuration, dataset, layers"):
        left, right = st.columns(2)
        with left:
            st.markdown("**Neurons per layer**")
            st.dataframe(
                pd.DataFrame(
                    {
                        "layer": [i.name for i in trace.layers],
                        "kind": [i.kind for i in trace.layers],
                        "neurons": [i.n_neurons for i in trace.layers],
                        "ids": [f"n_{i.first_id} … n_{i.last_id}" for i in trace.layers],
                        "activation": [i.activation or "—" for i in trace.layers],
                        "fan-in": [i.fan_in for i in trace.layers],
                    }
                ),
                hide_index=True,
            )
            st.markdown("**Dataset**")
            st.json(
                {k: v for k, v in dataset.items() if k not in ("feature_mean", "feature_scale")},
                expanded=False,
            )
            st.markdown("**Recorded epochs**")
            st.text(", ".join(f"E_{e}" for e in trace.epochs))
        with right:
            st.markdown("**Configuration**")
            st.json(config or {"note": "this trace carries no TrainConfig"}, expanded=True)
            st.markdown("**Model, status, versions, timings**")
            st.json(
                {
                    "model": model,
                    "status": status,
                    "status_message": message,
                    "created": meta.get("created"),
                    "statistics_source": meta.get("statistics_source"),
                    "timings": meta.get("timings"),
                    "versions": meta.get("versions"),
                },
                expanded=False,
            )


def _curves(active: ActiveTrace) -> None:
    frame = cache.curves(active.key, active.trace)
    if frame.empty:
        st.info("This trace has no training history.")
        return
    columns = st.columns(2)
    for column, quantity in zip(columns, ("loss", "accuracy"), strict=True):
        if (frame["quantity"] == quantity).any():
            with column:
                show_chart(
                    cache.chart(
                        "curves",
                        active.key,
                        (quantity,),
                        lambda q=quantity: viz.training_curves_chart(frame, q),
                    )
                )


def _controls(active: ActiveTrace) -> tuple[str, int, str, bool]:
    trace = active.trace
    if state.get(state.OVERVIEW_METRIC) not in METRICS:
        state.put(state.OVERVIEW_METRIC, DEFAULT_METRIC)
    if state.get(state.OVERVIEW_ORDER) not in ("id", "value"):
        state.put(state.OVERVIEW_ORDER, "id")
    left, middle, right = st.columns([2, 4, 2])
    with left:
        metric = st.selectbox(
            "Metric",
            METRICS,
            key=state.OVERVIEW_METRIC,
            format_func=viz.metric_title,
            help="What the colour shows. See the Neurons page for every metric of one neuron.",
        )
    with middle:
        epoch = epoch_picker(
            "Epoch",
            trace.epochs,
            state.epoch_key(state.OVERVIEW_EPOCH, active.ref),
            follow_latest=active.live,
        )
    with right:
        order = st.radio(
            "Order neurons by", ("id", "value"), key=state.OVERVIEW_ORDER, horizontal=True
        )
        percentile = st.toggle(
            "Percentile colours",
            key=state.OVERVIEW_PERCENTILE,
            help="Colour each neuron by the percentile of its value within its layer, so layers "
            "whose values differ by orders of magnitude stay readable.",
        )
    return metric, epoch, order, bool(percentile)


def _brain_scan(active: ActiveTrace, metric: str, epoch: int, order: str, percentile: bool) -> None:
    chart = cache.chart(
        "brain_scan",
        active.key,
        (epoch, metric, order, percentile),
        lambda: viz.brain_scan_chart(
            cache.brain_scan(active.key, epoch, metric, order, percentile, active.trace)
        ),
    )
    event = show_chart(chart, select=viz.PICK, key=state.OVERVIEW_SCAN_CHART)
    st.caption(
        "Each strip is a layer; each cell a neuron (hover for its signature, click to open it "
        "on the Neurons page)."
    )
    open_picked(active, event)


def _over_time(active: ActiveTrace, metric: str, epoch: int, order: str) -> None:
    trace = active.trace
    show_chart(
        cache.chart(
            "layer_epoch",
            active.key,
            (metric, epoch),
            lambda: viz.layer_epoch_chart(
                cache.layer_epoch(active.key, metric, trace), metric, trace.layer_names(), epoch
            ),
        )
    )
    layers = [info.name for info in trace.layers if info.kind != "input"] or trace.layer_names()
    if state.get(state.OVERVIEW_DETAIL_LAYER) not in layers:
        state.put(state.OVERVIEW_DETAIL_LAYER, layers[0])
    layer = st.selectbox(
        "Every neuron of one layer over training", layers, key=state.OVERVIEW_DETAIL_LAYER
    )
    chart = cache.chart(
        "neuron_epoch",
        active.key,
        (layer, metric, order),
        lambda: viz.neuron_epoch_chart(
            cache.neuron_epoch(active.key, layer, metric, order, trace), metric
        ),
    )
    event = show_chart(chart, select=viz.PICK, key=state.OVERVIEW_DETAIL_CHART)
    open_picked(active, event)


def _health(active: ActiveTrace, epoch: int) -> None:
    trace = active.trace
    health = cache.health(active.key, trace)
    counts = cache.health_counts(active.key, trace)
    defined = [flag for flag in FLAGS if health.applies[flag].any()]
    totals = health.totals(epoch)
    baseline = health.totals(trace.epochs[0])
    columns = st.columns(len(FLAGS))
    for column, flag in zip(columns, FLAGS, strict=True):
        if flag in defined:
            column.metric(
                f"{FLAG_TITLES[flag].capitalize()} at E_{epoch}",
                f"{totals[flag]} of {int(health.applies[flag].sum())}",
                delta=f"{totals[flag] - baseline[flag]:+d} vs E_{trace.epochs[0]}",
                delta_color="inverse" if totals[flag] != baseline[flag] else "off",
            )
        else:
            column.metric(
                f"{FLAG_TITLES[flag].capitalize()}",
                "n/a",
                help="Not defined for this network's activations.",
            )
    chart = cache.chart(
        "health",
        active.key,
        (epoch,),
        lambda: viz.health_chart(counts, trace.layer_names(), epoch),
    )
    if chart is not None:
        show_chart(chart, width="content")
    described = health.thresholds.describe()
    st.caption(
        " · ".join(f"**{FLAG_TITLES[flag]}**: {md_escape(described[flag], 400)}" for flag in FLAGS)
    )
    flagged = health.flagged(epoch)
    if flagged.empty:
        st.caption(f"No neuron is flagged at E_{epoch}.")
        return
    flagged.insert(0, "signature", [trace.signature(epoch, int(n)) for n in flagged["neuron"]])
    st.markdown(f"**Flagged at E_{epoch}** — select a row to open the neuron")
    neuron_table(
        active.name,
        flagged.drop(columns=["neuron"]),
        list(flagged["signature"]),
        key=state.OVERVIEW_FLAGGED_TABLE,
        max_height=300,
    )


def render_overview() -> None:
    """Draw the Overview page."""
    require_shell()
    if "neuron" in st.query_params:
        del st.query_params["neuron"]
    active, _ = resolve_active()
    if active is None:
        st.title("Overview")
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    with guarded("drawing the run summary"):
        _summary(active)
    st.header("Training curves")
    with guarded("drawing the training curves"):
        _curves(active)
    _at_epoch(active)


@st.fragment
def _at_epoch(active: ActiveTrace) -> None:
    """Everything that follows the epoch slider: a fragment, so that moving the slider (or
    changing the metric) redraws only this part of the page."""
    st.header("Brain scan")
    controls = None
    with guarded("reading the brain scan's settings"):
        controls = _controls(active)
    if controls is None:
        return
    metric, epoch, order, percentile = controls
    with guarded("drawing the brain scan"):
        _brain_scan(active, metric, epoch, order, percentile)
    st.subheader("Over training")
    with guarded("drawing the metric over training"):
        _over_time(active, metric, epoch, order)
    st.header("Neuron health")
    with guarded("computing neuron health"):
        _health(active, epoch)
