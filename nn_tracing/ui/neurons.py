"""The Neurons page: one neuron's life over the recorded epochs, and the health of them all.

The neuron is named by the ``neuron=`` query parameter (``E_30/L_hidden_1/n_20``), which the
page keeps in sync with its epoch slider and its searchable neuron picker; every other control
(the open tab, the top samples' number and end, the health table's filters) is a field of
:class:`Settings`, in the address bar too (:data:`URL`). So the URL in the address bar always
reopens the same view — in another browser too. A click on a neuron in any chart of the page
(a source or target of its weights, an input pixel) and a row selected in the health table
open that neuron through the same deep link as the Overview's.

Every computation is :mod:`nn_tracing.analysis.profiles`' or :mod:`nn_tracing.analysis.health`':
the fast ones cached here with ``st.cache_data`` by the trace's digest and the parameters, the
slow ones (the selectivity test against shuffled labels, the activation field, the incoming
weights over every epoch) run on the analysis worker with a progress bar
(:func:`nn_tracing.ui.compute.run_analysis`); every chart is :mod:`nn_tracing.viz`', and what
the page computes itself to show them (which epoch's weights, the neuron against its layer,
captions, the health table's rows) is :mod:`nn_tracing.views.neurons`' and
:mod:`nn_tracing.views.health`'. This module keeps the widgets and the layout; the health
line and the health tab are :mod:`nn_tracing.ui.neurons_health`'s. An analysis
that cannot run on this trace (no probe set, no weights at this epoch, a custom model, inputs
that are not 2-D) says why in its place, and the rest of the page keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from .. import viz
from ..analysis import profiles
from ..analysis.health import FLAGS, NeuronHealth
from ..analysis.profiles import ActivationField, ProfileUnavailable
from ..timeaxis import time_key, time_title
from ..trace import NetworkTrace, format_signature
from ..views import health as health_view
from ..views import neurons as views
from ..views.neurons import TOP_ORDERS, resolve_neuron
from ..viz import profile as profile_viz
from . import cache, state, url
from .app import require_shell
from .charts import BLANK, blank_missing, load_charting, show_chart
from .compute import run_analysis
from .follow import follow
from .links import open_picked
from .neurons_channels import (
    channel_map_section,
    channel_responses,
    input_channel_section,
    kernel_section,
)
from .neurons_fourier import fourier_section
from .neurons_health import health_line_of, health_table
from .text import guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active
from .widgets import epoch_picker

__all__ = ["SECTIONS", "URL", "Settings", "render_neurons", "resolve_neuron"]

#: Label permutations of the selectivity null, and the most epochs it is computed at.
N_PERMUTATIONS = 200
MAX_NULL_EPOCHS = 30
#: Grid of the activation field (cells per side): 60² = 3600 cells, within the mark budget.
FIELD_RESOLUTION = 60
#: The page's tabs, in order.
SECTIONS: tuple[str, ...] = (
    "Over training",
    "Inputs and outputs",
    "What it responds to",
    "Health of every neuron",
    "Its data",
)
#: How many top-activating probe samples the slider offers.
TOP_KS: tuple[int, ...] = tuple(range(4, 49, 4))


# -- settings ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every control of the page. The neuron and its epoch travel in ``neuron=`` (the app
    shell's deep link, kept by the pickers); the rest is what the URL carries for this page
    (see :data:`URL`), each field naming its query parameter and its widget's key."""

    neuron: int
    epoch: int
    layer: str
    #: The open tab.
    section: str = url.param("tab", state.NEURON_TAB, default=SECTIONS[0], choices=SECTIONS)
    #: Top-activating probe samples: how many, and from which end.
    top_k: int = url.param("top", state.NEURON_TOP_K, default=12, choices=TOP_KS)
    top_order: str = url.param(
        "top_order", state.NEURON_TOP_ORDER, default=TOP_ORDERS[0], choices=TOP_ORDERS
    )
    #: The health table's filters: layers, and flags (a neuron must carry one of them).
    health_layers: tuple[str, ...] = url.param(
        "layers", state.NEURON_HEALTH_LAYERS, default=(), max_length=4000
    )
    health_flags: tuple[str, ...] = url.param(
        "flags", state.NEURON_HEALTH_FLAGS, default=(), choices=FLAGS
    )
    #: The probe sample whose activation map a channel neuron shows.
    map_sample: int = url.param("map_sample", state.NEURON_MAP_SAMPLE, default=0, low=0)


#: The page's settings in the address bar (besides ``neuron=``), bound to the widgets' keys;
#: left out at their defaults, so a link to a neuron is ``trace=`` and ``neuron=`` alone.
URL = url.PageURL(Settings, page="neurons")


def _ensure_settings(trace: NetworkTrace, health: NeuronHealth | None) -> None:
    """Put a valid value in every widget key the URL or the session left invalid (the flags:
    those this network can have, when its health is known)."""
    defaults = {state.NEURON_TAB: SECTIONS[0], state.NEURON_TOP_ORDER: TOP_ORDERS[0]}
    for key, options in ((state.NEURON_TAB, SECTIONS), (state.NEURON_TOP_ORDER, TOP_ORDERS)):
        if state.get(key) not in options:
            state.put(key, defaults[key])
    if state.get(state.NEURON_TOP_K) not in TOP_KS:
        state.put(state.NEURON_TOP_K, 12)
    flags = health_view.defined_flags(health) if health is not None else list(FLAGS)
    for key, options in (
        (state.NEURON_HEALTH_LAYERS, trace.layer_names()),
        (state.NEURON_HEALTH_FLAGS, flags),
    ):
        chosen = state.get(key)
        if not isinstance(chosen, list) or not set(chosen) <= set(options):
            state.put(key, [])


def _settings(
    active: ActiveTrace, neuron: int, epoch: int, layer: str, health: NeuronHealth | None
) -> Settings:
    """The page's settings: the pickers' neuron and epoch, and the (valid) widget keys."""
    _ensure_settings(active.trace, health)
    return Settings(
        neuron=neuron,
        epoch=epoch,
        layer=layer,
        section=str(state.get(state.NEURON_TAB)),
        top_k=int(state.get(state.NEURON_TOP_K)),
        top_order=str(state.get(state.NEURON_TOP_ORDER)),
        health_layers=tuple(state.get(state.NEURON_HEALTH_LAYERS)),
        health_flags=tuple(state.get(state.NEURON_HEALTH_FLAGS)),
        map_sample=_map_sample(active.trace),
    )


def _map_sample(trace: NetworkTrace) -> int:
    """The probe sample of a channel's activation map: the widget's, if it exists, else 0."""
    value = state.get(state.NEURON_MAP_SAMPLE)
    n_probe = len(trace.probe[1]) if trace.probe is not None else 0
    if not isinstance(value, int) or not 0 <= value < max(n_probe, 1):
        state.put(state.NEURON_MAP_SAMPLE, 0)
        return 0
    return value


# -- the neuron and epoch ----------------------------------------------------------------------
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
    requested = st.query_params.get("neuron")
    first, why = cache.first_neuron(active.key, trace) if not requested else (None, None)
    epoch, neuron, notice = resolve_neuron(trace, requested, first)
    if why:
        state.put(state.NEURON_FIRST, (active.key, neuron, why))
    layer = trace.layer_of(neuron).name
    signature = format_signature(epoch, layer, neuron)
    if requested != signature:
        _set_neuron_param(signature)
    if notice:
        st.warning(md_escape(notice, max_length=600))
    chosen = state.get(state.NEURON_FIRST)
    if isinstance(chosen, tuple) and chosen[:2] == (active.key, neuron):
        st.caption(chosen[2])  # why the page opened on this neuron, while it stays open
    epoch_key = state.epoch_key(state.NEURON_EPOCH, active.ref)
    state.put(epoch_key, epoch)
    state.put(state.NEURON_PICK, signature)
    left, right = st.columns([3, 2])
    with left:
        options, note = views.picker_options(trace, epoch, neuron)
        st.selectbox(
            "Neuron",
            options,
            key=state.NEURON_PICK,
            on_change=_neuron_changed,
            help="Type to search: a layer (L_hidden_2), an id (n_20) or a whole signature. "
            "A click on a neuron in any chart, or a row of the health table below, opens it too.",
        )
        if note:
            st.caption(note)
    with right:
        if len(trace.epochs) > 1:
            st.select_slider(
                time_title(),
                options=trace.epochs,
                key=epoch_key,
                format_func=time_key,
                on_change=_epoch_changed,
                args=(active.ref, neuron, layer),
            )
        else:
            epoch_picker(time_title(), trace.epochs, epoch_key)
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
def _top(
    key: str, neuron: int, epoch: int, k: int, largest: bool, _trace: NetworkTrace
) -> tuple[pd.DataFrame, pd.DataFrame]:
    top = profiles.top_activating(_trace, neuron, epoch, k, largest=largest)
    return top, profiles.class_enrichment(_trace, top)


# -- computations on the analysis worker (slow, or with progress: see nn_tracing.ui.compute) --
def _incoming_history(active: ActiveTrace, neuron: int) -> pd.DataFrame:
    trace = active.trace
    return run_analysis(  # type: ignore[return-value]
        "neurons:incoming-history",
        active.key,
        neuron,
        lambda progress: profiles.incoming_weight_history(trace, neuron, progress=progress),
        label=f"Reading n_{neuron}'s incoming weights at every recorded epoch",
        short=True,  # a profile never waits behind a long analysis
    )


def _selectivity(active: ActiveTrace, neuron: int) -> pd.DataFrame:
    trace = active.trace
    n_tested = min(len(trace.epochs), MAX_NULL_EPOCHS)
    return run_analysis(  # type: ignore[return-value]
        "neurons:selectivity",
        active.key,
        [neuron, N_PERMUTATIONS, MAX_NULL_EPOCHS],
        lambda progress: profiles.selectivity_over_epochs(
            trace,
            neuron,
            n_permutations=N_PERMUTATIONS,
            max_epochs=MAX_NULL_EPOCHS,
            progress=progress,
        ),
        label=f"Class selectivity: {N_PERMUTATIONS} label shuffles at {n_tested} recorded "
        "epochs (reads each epoch's probe activations)",
        short=True,  # a profile never waits behind a long analysis
    )


def _field(active: ActiveTrace, neuron: int, epoch: int) -> ActivationField:
    trace = active.trace
    return run_analysis(  # type: ignore[return-value]
        "neurons:field",
        active.key,
        [neuron, epoch, FIELD_RESOLUTION],
        lambda progress: profiles.activation_field(
            trace, neuron, epoch, resolution=FIELD_RESOLUTION
        ),
        label=f"Running the traced model at {time_key(epoch)} over a {FIELD_RESOLUTION} × "
        f"{FIELD_RESOLUTION} grid of the input plane",
        short=True,  # a profile never waits behind a long analysis
    )


# -- sections ----------------------------------------------------------------------------------
def _over_training(active: ActiveTrace, settings: Settings) -> None:
    trace = active.trace
    neuron, epoch, layer = settings.neuron, settings.epoch, settings.layer
    progressive = trace.query is not None and trace.n_neurons > LAZY_NEURONS

    def history_chart(against_layer: bool) -> None:
        # one layout per kind of profile, converted once; each neuron sends only its rows
        data, kind = cache.neuron_history(active.key, neuron, epoch, against_layer, trace)
        layout = cache.chart("neuron_history", "", kind, lambda: viz.neuron_history_layout(*kind))
        show_chart(layout, data={viz.HISTORY_DATA: data}, width="content")

    with _section("drawing the neuron's metrics over training"):
        # on a big run directory, the layer's quartiles (once per layer) and the percentiles
        # in the tooltips are passes over the whole layer at every epoch: the neuron is drawn
        # alone first (one read of its rows), then redrawn in place against its layer
        slot = st.empty()
        with slot:
            history_chart(not progressive)
        st.caption(views.history_caption(trace, neuron, epoch, layer))
    with _section("summarising the neuron at this epoch"):
        st.markdown(f"**At {time_key(epoch)}, against its layer**")
        st.dataframe(
            views.metrics_against_layer(trace, epoch, neuron),
            hide_index=True,
            column_config={
                "value": st.column_config.NumberColumn(format="%.4g"),
                "layer median": st.column_config.NumberColumn(format="%.4g"),
                "percentile in layer": st.column_config.NumberColumn(format="%.0f"),
            },
        )
    if progressive:
        with _section("drawing the neuron's layer behind its metrics"):
            with st.spinner("Adding its layer's median, quartiles and percentiles…"):
                cache.neuron_history(active.key, neuron, epoch, True, trace)
            with slot:
                history_chart(True)


def _image_section(active: ActiveTrace, neuron: int, epoch: int, weights_epoch: int) -> None:
    trace = active.trace
    frame = views.weight_image_frame(trace, neuron, epoch, weights_epoch)
    if frame is None:
        return  # not an image dataset, or not a first-layer neuron: nothing to draw
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
        height="content",  # square pixels
    )
    open_picked(active, event)


def _incoming_section(active: ActiveTrace, neuron: int, epoch: int, weights_epoch: int) -> None:
    trace = active.trace
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
        st.caption(views.sources_caption(trace, neuron))
    with _section("drawing the incoming weights as an image"):
        _image_section(active, neuron, epoch, weights_epoch)
    with _section("drawing the kernel over training"):
        kernel_section(active, neuron)


def _connections_section(active: ActiveTrace, neuron: int, epoch: int, weights_epoch: int) -> None:
    trace = active.trace
    connections = _connections(active.key, neuron, weights_epoch, trace)
    if connections.empty:
        st.info("No connection of this neuron to another traced neuron is known.")
        return
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
    shown, config = blank_missing(
        views.connections_table(connections, trace, epoch, lambda s: _link(active, s)),
        {
            "link": st.column_config.LinkColumn(
                "neuron", display_text=r"neuron=(E_\d+/L_.+/n_\d+)"
            ),
            "weight": st.column_config.NumberColumn(format="%.4g"),
            "matrix_percentile": st.column_config.NumberColumn(
                "|w| pct",
                format="percent",
                width="small",
                help="where |w| ranks among all weights of the same layer's matrix",
            ),
            "weight_e0": st.column_config.NumberColumn(f"at {time_key(0)}", format="%.4g"),
        },
    )
    st.dataframe(shown, hide_index=True, column_config=config, placeholder=BLANK)
    st.caption(
        "A strong connection stands out from its weight matrix: the percentile is where "
        "its magnitude ranks among all weights of the same layer's matrix."
    )


def _weights_history_section(active: ActiveTrace, neuron: int, epoch: int) -> None:
    trace = active.trace
    with _section("drawing the incoming weights over training"):
        history = _incoming_history(active, neuron)
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


def _inputs_outputs(active: ActiveTrace, settings: Settings) -> None:
    trace = active.trace
    neuron, epoch = settings.neuron, settings.epoch
    is_input = trace.layer_of(neuron).kind == "input"
    if input_channel_section(active, neuron, epoch):
        return  # an input channel of images: what the first conv layer's kernels read
    if is_input:
        st.info(
            f"n_{neuron} is an input feature: it has no incoming weights. Its outgoing weights "
            "are among the strongest connections below."
        )
    weights_epoch: int | None = None
    with _section("finding the weights to show"):
        weights_epoch, notice = views.weights_epoch(trace, epoch)
        if notice:
            st.info(notice)
    if weights_epoch is None:
        return
    left, right = st.columns([3, 2])
    with left:
        if not is_input:
            _incoming_section(active, neuron, epoch, weights_epoch)
    with right, _section("finding the strongest connections"):
        _connections_section(active, neuron, epoch, weights_epoch)
    if not is_input and len(trace.epochs_with_weights) > 1:
        _weights_history_section(active, neuron, epoch)


def _responses_section(active: ActiveTrace, settings: Settings) -> None:
    trace = active.trace
    neuron, epoch, layer = settings.neuron, settings.epoch, settings.layer
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
        selectivity = _selectivity(active, neuron)
        chart = cache.chart(
            "selectivity",
            active.key,
            (neuron, epoch),
            lambda: profile_viz.selectivity_chart(
                selectivity, layer=layer, neuron_id=neuron, selected_epoch=epoch
            ),
        )
        show_chart(chart)
        for caption in views.selectivity_captions(selectivity, epoch, N_PERMUTATIONS):
            st.caption(caption)

    fourier_section(active.key, trace, neuron, epoch, layer)  # modular datasets only
    _top_section(active, settings)
    _field_section(active, settings)


def _top_section(active: ActiveTrace, settings: Settings) -> None:
    trace = active.trace
    neuron, epoch = settings.neuron, settings.epoch
    signature = trace.signature(epoch, neuron)
    st.markdown("**Top-activating probe samples**")
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
        images = views.top_image_shape(trace, top)
        if channel_responses(active, neuron, epoch, k, order == TOP_ORDERS[0]):
            pass  # a channel of an image network: its images, receptive fields and map
        elif images is not None:
            image_shape, feature_columns = images
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
        caption = views.enrichment_caption(enrichment, len(top), order)
        if caption is not None:
            st.caption(caption)
    with _section("drawing the channel's activation map"):
        channel_map_section(active, neuron, epoch)


def _field_section(active: ActiveTrace, settings: Settings) -> None:
    trace = active.trace
    neuron, layer = settings.neuron, settings.layer
    if trace.layers[0].n_neurons != 2:
        return  # the field is for 2-D inputs only
    with _section("computing the activation field"):
        field_epoch, notice = views.field_epoch(trace, settings.epoch)
        if notice:
            st.info(notice)
        field = _field(active, neuron, field_epoch)
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
        st.caption(views.field_caption(field, neuron, field_epoch))


def _data_section(active: ActiveTrace, settings: Settings) -> None:
    trace = active.trace
    neuron, epoch, layer = settings.neuron, settings.epoch, settings.layer
    with _section("listing the neuron's rows"):
        rows = views.neuron_rows(trace, neuron)
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
                f"Its probe activations at {time_key(epoch)} (CSV)",
                data=lambda: views.probe_csv(trace, neuron, epoch),
                file_name=f"{stem}-{time_key(epoch)}-probe.csv",
                mime="text/csv",
                key="nnt.download.neuron_probe",
                help="One row per probe sample: activation, label, prediction.",
            )
        shown, config = blank_missing(rows.drop(columns=["layer"]))
        st.dataframe(shown, hide_index=True, column_config=config, placeholder=BLANK)


def render_neurons() -> None:
    """Draw the Neurons page: the URL's settings first, the page, the settings into the
    address bar last."""
    require_shell()
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    follow(active, _page)  # a run still being written: redrawn as its epochs arrive


def _page(active: ActiveTrace) -> None:
    """Everything under the title: the URL's settings first, the settings into the address
    bar last."""
    URL.restore(active.ref)
    epoch, neuron, layer = _pickers(active)
    signature = format_signature(epoch, layer, neuron)
    # plain monospaced text, selectable to copy: st.code would load the browser's syntax
    # highlighter (1.5 MB of script) ahead of the profile (docs/performance.md)
    st.text(signature)
    st.caption("Link to this view (opens the same neuron in any browser that reaches this app):")
    st.text(_link(active, signature))
    health_line = st.container()  # drawn above the tabs, computed after the open tab
    with health_line:
        load_charting()  # the browser loads its charting library while the profile is computed
    _ensure_settings(active.trace, None)
    tabs = st.tabs(list(SECTIONS), key=state.NEURON_TAB, on_change="rerun")
    drawn = _drawn_tabs(active.trace, tabs)
    health: NeuronHealth | None = None
    if drawn[SECTIONS.index("Health of every neuron")]:
        with guarded("checking every neuron's health"):
            health = cache.health(active.key, active.trace)
    settings = _settings(active, neuron, epoch, layer, health)

    def draw(i: int) -> None:
        with tabs[i], guarded(f"drawing {SECTIONS[i].lower()}"):
            _SECTION_DRAWERS[SECTIONS[i]](active, settings)

    # the open tab, then the health line, then the hidden tabs: what a reader sees is sent
    # first (a followed run's poll redraws it before Streamlit would fade it as stale)
    hidden = [i for i in range(len(tabs)) if drawn[i] and tabs[i].open is False]
    for i in range(len(tabs)):
        if drawn[i] and i not in hidden:
            draw(i)
    with health_line, guarded("checking the neuron's health"):
        health_line_of(active, neuron, epoch)
    for i in hidden:
        draw(i)
    URL.publish(settings, active.ref, hidden=url.at_defaults(settings))


#: Above this many neurons the page draws only the open tab (switching tabs reruns the page):
#: the other tabs' charts and tables cost the browser seconds before the profile shows.
LAZY_NEURONS = views.PICKER_MAX


def _drawn_tabs(trace: NetworkTrace, tabs: Sequence[Any]) -> list[bool]:
    """Which tabs the page draws: every one on a trace of up to :data:`LAZY_NEURONS`
    neurons (switching tabs is then instant), above it only the open one."""
    if trace.n_neurons <= LAZY_NEURONS:
        return [True] * len(tabs)
    return [tab.open is not False for tab in tabs]


#: What draws each tab, by its title.
_SECTION_DRAWERS: dict[str, Callable[[ActiveTrace, Settings], None]] = {
    "Over training": _over_training,
    "Inputs and outputs": _inputs_outputs,
    "What it responds to": _responses_section,
    "Health of every neuron": lambda active, settings: health_table(
        active,
        settings.neuron,
        settings.epoch,
        list(settings.health_layers),
        list(settings.health_flags),
    ),
    "Its data": _data_section,
}
