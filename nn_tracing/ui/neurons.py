"""The Neurons page: one neuron's life over the recorded epochs, and the health of them all.

The neuron is named by the ``neuron=`` query parameter (``E_30/L_hidden_1/n_20``), which the
page keeps in sync with its epoch slider and its searchable neuron picker, so the URL in the
address bar always reopens the same view — in another browser too. A click on a neuron in any
chart of the page (a source or target of its weights, an input pixel) and a row selected in the
health table open that neuron through the same deep link as the Overview's.

Every computation is :mod:`nn_tracing.analysis.profiles`' or :mod:`nn_tracing.analysis.health`'
(cached here by the trace's digest and the parameters); every chart is
:mod:`nn_tracing.viz`'. An analysis that cannot run on this trace (no probe set, no weights at
this epoch, a custom model, inputs that are not 2-D) says why in its place, and the rest of the
page keeps working.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st

from .. import viz
from ..analysis import profiles
from ..analysis.health import FLAG_TITLES, FLAGS, NeuronHealth
from ..analysis.profiles import ActivationField, ProfileUnavailable
from ..trace import METRICS, NetworkTrace, format_signature, parse_signature, signature_column
from ..viz import profile as profile_viz
from . import cache, state
from .app import require_shell
from .charts import neuron_table, show_chart
from .overview import (
    epoch_picker,
    open_picked,  # the Overview's click-to-open, shared
)
from .text import guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active

__all__ = ["render_neurons", "resolve_neuron"]

#: Label permutations of the selectivity null, and the most epochs it is computed at.
N_PERMUTATIONS = 200
MAX_NULL_EPOCHS = 30
#: Grid of the activation field (cells per side): 60² = 3600 cells, within the mark budget.
FIELD_RESOLUTION = 60
TOP_ORDERS = ("most active", "least active")


# -- the neuron and epoch ----------------------------------------------------------------------
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
    _set_neuron_param(format_signature(epoch, layer, neuron))


def _neuron_changed() -> None:
    signature = state.get(state.NEURON_PICK)
    if signature:
        _set_neuron_param(signature)


def _link(active: ActiveTrace, signature: str) -> str:
    params = {"trace": active.name, "neuron": signature} if active.name else {"neuron": signature}
    query = urlencode(params, safe="/")
    base = (st.context.url or "").split("?", 1)[0]
    return f"{base}?{query}" if base else f"neurons?{query}"


def _pickers(active: ActiveTrace) -> tuple[int, int, str]:
    trace = active.trace
    epoch, neuron, notice = resolve_neuron(trace, st.query_params.get("neuron"))
    layer = trace.layer_of(neuron).name
    signature = format_signature(epoch, layer, neuron)
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
            help="Type to search: a layer (L_hidden_2), an id (n_20) or a whole signature. "
            "A click on a neuron in any chart, or a row of the health table below, opens it too.",
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


@contextmanager
def _section(what: str) -> Iterator[None]:
    """A part of the page: an analysis this trace cannot support says why, in place; any
    other error becomes a message (see :func:`~nn_tracing.ui.text.guarded`)."""
    with guarded(what):
        try:
            yield
        except ProfileUnavailable as exc:
            st.info(f"Not available here: {md_escape(exc, max_length=500)}.")


def _chart_key(base: str, neuron: int, epoch: int) -> str:
    """A clickable chart's key: a new one per neuron and epoch, so a click never outlives the
    view it was made in (the selection would otherwise reopen the same neuron)."""
    return f"{base}:{neuron}:{epoch}"


# -- cached computations (keyed by the trace's digest; the trace itself is not hashed) --------
_ENTRIES = 64


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _incoming(key: str, neuron: int, epoch: int, _trace: NetworkTrace) -> pd.DataFrame:
    return profiles.incoming_weights(_trace, neuron, epoch)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _incoming_history(key: str, neuron: int, _trace: NetworkTrace) -> pd.DataFrame:
    return profiles.incoming_weight_history(_trace, neuron)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _connections(key: str, neuron: int, epoch: int, _trace: NetworkTrace) -> pd.DataFrame:
    return profiles.strongest_connections(_trace, neuron, epoch, k=5)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _responses(
    key: str, neuron: int, epoch: int, _trace: NetworkTrace
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        profiles.class_distributions(_trace, neuron, epoch),
        profiles.probe_responses(_trace, neuron, epoch),
    )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _selectivity(key: str, neuron: int, _trace: NetworkTrace) -> pd.DataFrame:
    return profiles.selectivity_over_epochs(
        _trace, neuron, n_permutations=N_PERMUTATIONS, max_epochs=MAX_NULL_EPOCHS
    )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _top(
    key: str, neuron: int, epoch: int, k: int, largest: bool, _trace: NetworkTrace
) -> tuple[pd.DataFrame, pd.DataFrame]:
    top = profiles.top_activating(_trace, neuron, epoch, k, largest=largest)
    return top, profiles.class_enrichment(_trace, top)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _field(key: str, neuron: int, epoch: int, _trace: NetworkTrace) -> ActivationField:
    return profiles.activation_field(_trace, neuron, epoch, resolution=FIELD_RESOLUTION)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _health_rows(key: str, epoch: int, _health: NeuronHealth) -> pd.DataFrame:
    return _health.table(epoch)


# -- sections ----------------------------------------------------------------------------------
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
    st.markdown(f"**Health at E_{epoch}** — " + " · ".join(parts))
    described = health.thresholds.describe()
    st.caption(
        " · ".join(f"**{FLAG_TITLES[flag]}**: {md_escape(described[flag], 400)}" for flag in FLAGS)
    )


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


def _over_training(active: ActiveTrace, neuron: int, epoch: int, layer: str) -> None:
    trace = active.trace
    with _section("drawing the neuron's metrics over training"):
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
            f"neurons of L_{md_escape(layer)}; shaded: their interquartile range. Red: E_{epoch}. "
            "Hover a point for the neuron's percentile within its layer."
        )
    with _section("summarising the neuron at this epoch"):
        st.markdown(f"**At E_{epoch}, against its layer**")
        st.dataframe(
            _at_epoch(trace, epoch, neuron),
            hide_index=True,
            column_config={
                "value": st.column_config.NumberColumn(format="%.4g"),
                "layer median": st.column_config.NumberColumn(format="%.4g"),
                "percentile in layer": st.column_config.NumberColumn(format="%.0f"),
            },
        )


def _weights_epoch(trace: NetworkTrace, epoch: int) -> int:
    """The epoch whose weights the page shows: ``epoch`` when the trace holds them there,
    else the nearest epoch that has them (the final one for a run without kept weights)."""
    kept = trace.epochs_with_weights
    if not kept:
        raise ProfileUnavailable("this trace holds no weights")
    if epoch in kept:
        return epoch
    nearest = min(kept, key=lambda e: (abs(e - epoch), e))
    st.info(
        f"This run kept its weights only at E_{nearest}: the weights below are E_{nearest}'s, "
        f"not E_{epoch}'s. Train with keep_weights (--keep-weights) to see them at every "
        "recorded epoch."
    )
    return nearest


def _image_section(active: ActiveTrace, neuron: int, epoch: int, weights_epoch: int) -> None:
    trace = active.trace
    try:
        image = profiles.incoming_weight_image(trace, neuron, weights_epoch)
    except ProfileUnavailable:
        return  # not an image dataset, or not a first-layer neuron: nothing to draw
    # a click on a pixel opens that input at the page's epoch
    panels = [profile_viz.weight_image_frame(image, panel=f"E_{weights_epoch}", epoch=epoch)]
    first = trace.epochs[0]
    if first != weights_epoch and first in trace.epochs_with_weights:
        initial = profiles.incoming_weight_image(trace, neuron, first)
        panels.insert(
            0, profile_viz.weight_image_frame(initial, panel=f"E_{first} (untrained)", epoch=epoch)
        )
    frame = pd.concat(panels, ignore_index=True)
    signature = trace.signature(weights_epoch, neuron)
    chart = cache.chart(
        "weight_image",
        active.key,
        (neuron, epoch, weights_epoch),
        lambda: profile_viz.weight_image_chart(
            frame,
            title="Incoming weights as an image",
            subtitle=[
                f"{signature}: the weight from each pixel (orange +, blue −); click a pixel "
                "to open that input"
            ],
        ),
    )
    event = show_chart(
        chart,
        select=viz.PICK,
        key=_chart_key(state.NEURON_IMAGE_CHART, neuron, epoch),
        width="content",
    )
    open_picked(active, event)


def _inputs_outputs(active: ActiveTrace, neuron: int, epoch: int, layer: str) -> None:
    trace = active.trace
    info = trace.layer_of(neuron)
    if info.kind == "input":
        st.info(
            f"n_{neuron} is an input feature: it has no incoming weights. Its outgoing weights "
            "are among the strongest connections below."
        )
    weights_epoch: int | None = None
    with _section("finding the weights to show"):
        weights_epoch = _weights_epoch(trace, epoch)
    if weights_epoch is None:
        return
    left, right = st.columns([3, 2])
    with left:
        if info.kind != "input":
            with _section("drawing the incoming weights"):
                frame = _incoming(active.key, neuron, weights_epoch, trace).copy()
                frame["epoch"] = epoch  # a click opens the source at the page's epoch
                signature = trace.signature(weights_epoch, neuron)
                chart = cache.chart(
                    "incoming_weights",
                    active.key,
                    (neuron, epoch, weights_epoch),
                    lambda: profile_viz.incoming_weights_chart(frame, neuron_signature=signature),
                )
                event = show_chart(
                    chart,
                    select=viz.PICK,
                    key=_chart_key(state.NEURON_WEIGHTS_CHART, neuron, epoch),
                )
                open_picked(active, event)
                source = profiles.source_layer(trace, layer)
                st.caption(
                    f"Sources: the neurons of L_{md_escape(source.name)} (its width equals "
                    f"this layer's fan-in, {info.fan_in}); click a bar to open one."
                    if source is not None
                    else "The sources of these weights are not known neurons (the previous "
                    "traced layer's width differs from the fan-in): listed by position."
                )
            with _section("drawing the incoming weights as an image"):
                _image_section(active, neuron, epoch, weights_epoch)
    with right, _section("finding the strongest connections"):
        connections = _connections(active.key, neuron, weights_epoch, trace)
        if connections.empty:
            st.info("No connection of this neuron to another traced neuron is known.")
        else:
            signature = trace.signature(weights_epoch, neuron)
            shown = connections.copy()
            shown["epoch"] = epoch
            chart = cache.chart(
                "connections",
                active.key,
                (neuron, epoch, weights_epoch),
                lambda: profile_viz.connections_chart(shown, neuron_signature=signature),
            )
            event = show_chart(
                chart,
                select=viz.PICK,
                key=_chart_key(state.NEURON_CONNECTIONS_CHART, neuron, epoch),
            )
            open_picked(active, event)
            table = connections.assign(
                link=[_link(active, trace.signature(epoch, int(n))) for n in connections["neuron"]]
            )[["direction", "link", "weight", "matrix_percentile", "weight_e0"]]
            st.dataframe(
                table,
                hide_index=True,
                column_config={
                    "link": st.column_config.LinkColumn(
                        "neuron", display_text=r"neuron=(E_\d+/L_.+/n_\d+)"
                    ),
                    "weight": st.column_config.NumberColumn(format="%.4g"),
                    "matrix_percentile": st.column_config.NumberColumn(
                        "|w| percentile in its matrix", format="percent"
                    ),
                    "weight_e0": st.column_config.NumberColumn("at E_0", format="%.4g"),
                },
            )
            st.caption(
                "A strong connection stands out from its weight matrix: the percentile is where "
                "its magnitude ranks among all weights of the same layer's matrix."
            )
    if info.kind != "input" and len(trace.epochs_with_weights) > 1:
        with _section("drawing the incoming weights over training"):
            history = _incoming_history(active.key, neuron, trace)
            signature = trace.signature(epoch, neuron)
            chart = cache.chart(
                "incoming_history",
                active.key,
                (neuron, epoch),
                lambda: profile_viz.incoming_weight_heatmap(
                    history, neuron_signature=signature, selected_epoch=epoch
                ),
            )
            show_chart(chart)


def _responses_section(active: ActiveTrace, neuron: int, epoch: int, layer: str) -> None:
    trace = active.trace
    signature = trace.signature(epoch, neuron)
    left, right = st.columns(2)
    with left, _section("drawing the activations by class"):
        summary, samples = _responses(active.key, neuron, epoch, trace)
        chart = cache.chart(
            "class_distribution",
            active.key,
            (neuron, epoch),
            lambda: profile_viz.class_distribution_chart(
                summary, samples, neuron_signature=signature
            ),
        )
        show_chart(chart)
    with right, _section("testing the class selectivity against shuffled labels"):
        n_tested = min(len(trace.epochs), MAX_NULL_EPOCHS)
        with st.spinner(
            f"Class selectivity: {N_PERMUTATIONS} label shuffles at {n_tested} recorded epochs "
            "(reads each epoch's probe activations)…"
        ):
            selectivity = _selectivity(active.key, neuron, trace)
        chart = cache.chart(
            "selectivity",
            active.key,
            (neuron, epoch),
            lambda: profile_viz.selectivity_chart(
                selectivity, layer=layer, neuron_id=neuron, selected_epoch=epoch
            ),
        )
        show_chart(chart)
        row = selectivity.loc[selectivity["epoch"] == epoch].iloc[0]
        if bool(row["tested"]) and np.isfinite(row["p_value"]):
            verdict = "above" if row["p_value"] < 0.05 else "within"
            st.caption(
                f"At E_{epoch}: index {row['selectivity']:.3f}, preferring class "
                f"{md_escape(row['preferred_class'])}; with shuffled labels the index reaches "
                f"{row['null_median']:.3f} (median), {row['null_p95']:.3f} (95th percentile): "
                f"{verdict} chance (p = {row['p_value']:.3g}, {N_PERMUTATIONS} shuffles)."
            )
        skipped = int((~selectivity["tested"]).sum())
        if skipped:
            st.caption(
                f"The null was computed at {len(selectivity) - skipped} of "
                f"{len(selectivity)} recorded epochs, spread evenly."
            )

    _top_section(active, neuron, epoch, layer)
    _field_section(active, neuron, epoch, layer)


def _top_section(active: ActiveTrace, neuron: int, epoch: int, layer: str) -> None:
    trace = active.trace
    signature = trace.signature(epoch, neuron)
    st.markdown("**Top-activating probe samples**")
    if state.get(state.NEURON_TOP_ORDER) not in TOP_ORDERS:
        state.put(state.NEURON_TOP_ORDER, TOP_ORDERS[0])
    if not isinstance(state.get(state.NEURON_TOP_K), int):
        state.put(state.NEURON_TOP_K, 12)
    left, right = st.columns([3, 2])
    with left:
        k = int(st.slider("Samples", 4, 48, key=state.NEURON_TOP_K, step=4))
    with right:
        order = st.radio("Show the", TOP_ORDERS, key=state.NEURON_TOP_ORDER, horizontal=True)
    with _section("finding the top-activating samples"):
        top, enrichment = _top(active.key, neuron, epoch, k, order == TOP_ORDERS[0], trace)
        if top.empty:
            st.info("No probe sample has a finite activation.")
            return
        dataset = trace.meta.get("dataset") if isinstance(trace.meta.get("dataset"), dict) else {}
        shape = dataset.get("image_shape")
        n_inputs = trace.layers[0].n_neurons
        feature_columns = [c for c in top.columns if c not in profiles.TOP_COLUMNS]
        is_image = (
            isinstance(shape, list)
            and len(shape) == 2
            and int(np.prod(shape)) == n_inputs == len(feature_columns)
        )
        if is_image:
            image_shape = (int(shape[0]), int(shape[1]))
            chart = cache.chart(
                "top_images",
                active.key,
                (neuron, epoch, k, order),
                lambda: profile_viz.sample_images_chart(
                    profile_viz.sample_images_frame(top, feature_columns, image_shape, signature),
                    title=f"The {len(top)} {order} probe samples of {signature}",
                ),
            )
            show_chart(chart, width="content")
        else:
            st.dataframe(
                top,
                hide_index=True,
                column_config={"activation": st.column_config.NumberColumn(format="%.4g")},
            )
        _enrichment_caption(enrichment, len(top), order)


def _enrichment_caption(enrichment: pd.DataFrame, n_top: int, order: str) -> None:
    if enrichment.empty:
        return
    best = enrichment.iloc[0]
    n_classes = len(enrichment)
    verdict = (
        "more than chance explains" if best["p_adjusted"] < 0.05 else "within what chance explains"
    )
    st.caption(
        f"{int(best['in_top'])} of these {n_top} {order} samples are class "
        f"{md_escape(best['class'])}, where a random draw of {n_top} probe samples holds "
        f"{best['expected']:.1f} on average: {verdict} (hypergeometric p = {best['p_value']:.3g}, "
        f"{best['p_adjusted']:.3g} after Bonferroni over {n_classes} classes). Feature values "
        "are in the dataset's own units."
    )


def _field_section(active: ActiveTrace, neuron: int, epoch: int, layer: str) -> None:
    trace = active.trace
    if trace.layers[0].n_neurons != 2:
        return  # the field is for 2-D inputs only
    with _section("computing the activation field"):
        available = profiles.field_epochs(trace)
        if not available:
            raise ProfileUnavailable("this trace holds no weights to rebuild its model from")
        field_epoch = epoch
        if epoch not in available:
            field_epoch = min(available, key=lambda e: (abs(e - epoch), e))
            st.info(
                f"The field needs the model's weights: this run kept them only at "
                f"E_{field_epoch}, so the field below is E_{field_epoch}'s, not E_{epoch}'s. "
                "Train with keep_weights (--keep-weights) to see it at every recorded epoch."
            )
        with st.spinner(
            f"Running the traced model at E_{field_epoch} over a {FIELD_RESOLUTION} × "
            f"{FIELD_RESOLUTION} grid of the input plane…"
        ):
            field = _field(active.key, neuron, field_epoch, trace)
        highlight: list[int] = []
        try:
            top, _ = _top(active.key, neuron, field_epoch, 12, True, trace)
            highlight = [int(i) for i in top["probe_index"]]
        except ProfileUnavailable:
            pass
        chart = cache.chart(
            "field",
            active.key,
            (neuron, field_epoch),
            lambda: profile_viz.activation_field_chart(field, layer=layer, highlight=highlight),
        )
        show_chart(chart, width="content")
        check = (
            " Check: at the probe points, the rebuilt model's activations differ from the "
            f"recorded ones by at most {field.max_probe_error:.2g}."
            if np.isfinite(field.max_probe_error)
            else ""
        )
        st.caption(
            f"n_{neuron}'s activation at every point of the input plane at E_{field_epoch} "
            "(the way TensorFlow Playground draws a neuron), with the probe samples on top. "
            f"Available at every recorded epoch when the run kept its weights, otherwise at the "
            f"final epoch only.{check}"
        )


def _filters_digest(*values: object) -> str:
    return hashlib.sha1(repr(values).encode()).hexdigest()[:10]


def _health_table(active: ActiveTrace, neuron: int, epoch: int) -> None:
    trace = active.trace
    health = cache.health(active.key, trace)
    table = _health_rows(active.key, epoch, health)
    layers = [info.name for info in trace.layers]
    defined = [flag for flag in FLAGS if health.applies[flag].any()]
    for key, options in (
        (state.NEURON_HEALTH_LAYERS, layers),
        (state.NEURON_HEALTH_FLAGS, defined),
    ):
        chosen = state.get(key)
        if not isinstance(chosen, list) or not set(chosen) <= set(options):
            state.put(key, [])
    left, right = st.columns(2)
    with left:
        chosen_layers = st.multiselect(
            "Layers", layers, key=state.NEURON_HEALTH_LAYERS, placeholder="every layer"
        )
    with right:
        chosen_flags = st.multiselect(
            "Flagged as (any of)",
            defined,
            key=state.NEURON_HEALTH_FLAGS,
            format_func=lambda f: FLAG_TITLES[f],
            placeholder="every neuron, flagged or not",
        )
    view = table
    if chosen_layers:
        view = view[view["layer"].isin(chosen_layers)]
    if chosen_flags:
        view = view[view[chosen_flags].fillna(False).any(axis=1)]
    view = view.sort_values(["n_flags", "neuron"], ascending=[False, True], ignore_index=True)
    # columns that say nothing about this network (a flag it cannot have, values all missing)
    empty = [flag for flag in FLAGS if flag not in defined]
    empty += [c for c in ("saturation", "grad_ratio", "w_growth") if table[c].isna().all()]
    view = view.drop(columns=empty)
    counts = {flag: int(table[flag].fillna(False).sum()) for flag in defined}
    st.caption(
        f"At E_{epoch}: "
        + ", ".join(f"{counts[f]} {FLAG_TITLES[f]}" for f in defined)
        + f" of {len(table)} neurons. Showing {len(view)}; click a column to sort, select a row "
        "to open that neuron. Empty flag cells: the flag is not defined for that layer."
    )
    key = f"{state.NEURON_HEALTH_TABLE}:{active.ref}:{neuron}:{epoch}:" + _filters_digest(
        chosen_layers, chosen_flags
    )
    neuron_table(
        active.name,
        view,
        [trace.signature(epoch, int(n)) for n in view["neuron"]],
        key=key,
        max_height=420,
        column_config={
            **{flag: st.column_config.CheckboxColumn(FLAG_TITLES[flag]) for flag in FLAGS},
            "n_flags": st.column_config.NumberColumn("flags"),
            "act_active": st.column_config.NumberColumn("active on probe", format="percent"),
            "saturation": st.column_config.NumberColumn("saturated samples", format="percent"),
            "grad_ratio": st.column_config.NumberColumn(
                "grad / layer median", format="%.3g", help="gradient norm over its layer's median"
            ),
            "w_growth": st.column_config.NumberColumn(
                "weight norm / E_0", format="%.3g", help="incoming-weight norm over its E_0 norm"
            ),
        },
        current=trace.signature(epoch, neuron),
    )


def _data_section(active: ActiveTrace, neuron: int, epoch: int, layer: str) -> None:
    trace = active.trace
    with _section("listing the neuron's rows"):
        rows = trace.frame.xs(neuron, level="neuron").reset_index()
        rows.insert(0, "signature", signature_column(rows["epoch"], layer, neuron))
        stem = f"{active.name or 'trace'}-L_{layer}-n_{neuron}"
        left, right = st.columns(2)
        left.download_button(
            "Its rows (CSV)",
            data=rows.to_csv(index=False).encode(),
            file_name=f"{stem}.csv",
            mime="text/csv",
            key="nnt.download.neuron_rows",
            help="Every metric of this neuron at every recorded epoch.",
        )
        if trace.probe is not None:
            right.download_button(
                f"Its probe activations at E_{epoch} (CSV)",
                data=lambda: _responses_csv(trace, neuron, epoch),
                file_name=f"{stem}-E_{epoch}-probe.csv",
                mime="text/csv",
                key="nnt.download.neuron_probe",
                help="One row per probe sample: activation, label, prediction.",
            )
        st.dataframe(rows.drop(columns=["layer"]), hide_index=True)


def _responses_csv(trace: NetworkTrace, neuron: int, epoch: int) -> bytes:
    return profiles.probe_responses(trace, neuron, epoch).to_csv(index=False).encode()


def render_neurons() -> None:
    """Draw the Neurons page."""
    require_shell()
    st.title("Neurons")
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    epoch, neuron, layer = _pickers(active)
    signature = format_signature(epoch, layer, neuron)
    st.code(signature, language=None)
    st.caption("Link to this view (opens the same neuron in any browser that reaches this app):")
    st.code(_link(active, signature), language=None)
    with guarded("checking the neuron's health"):
        _flags(active, neuron, epoch)

    tabs: Any = st.tabs(
        [
            "Over training",
            "Inputs and outputs",
            "What it responds to",
            "Health of every neuron",
            "Its data",
        ]
    )
    with tabs[0]:
        _over_training(active, neuron, epoch, layer)
    with tabs[1]:
        _inputs_outputs(active, neuron, epoch, layer)
    with tabs[2]:
        _responses_section(active, neuron, epoch, layer)
    with tabs[3], guarded("drawing the health table"):
        _health_table(active, neuron, epoch)
    with tabs[4]:
        _data_section(active, neuron, epoch, layer)
