"""The Overview page: run summary, training curves, the brain scan and neuron health.

Every control of the page is a field of :class:`Settings`, in the address bar (:data:`URL`):
a shared link opens the same metric, epoch, order, colours and layer. What the page shows is
built without Streamlit by :mod:`nn_tracing.views.overview` (summary, details),
:mod:`nn_tracing.views.health` (health figures) and :mod:`nn_tracing.viz` (charts, from
frames cached by the trace's digest, :mod:`nn_tracing.ui.cache`); this module keeps the
widgets and the layout. A click on a neuron cell (or a row of the flagged-neuron table) opens
the Neurons page on it through a deep link.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import streamlit as st

from .. import viz
from ..analysis.derived_metrics import COLOUR_METRICS, metric_note
from ..analysis.dormancy import DEFAULT_TAU, DORMANT_TAUS
from ..timeaxis import time_key, time_title, time_word, use_axis
from ..trace import NetworkTrace
from ..views import health as health_view
from ..views.neurons import PICKER_MAX
from ..views.overview import (
    DEFAULT_METRIC,
    ORDERS,
    detail_layers,
    layers_table,
    run_details,
    status_notice,
    summary_tiles,
)
from . import cache, state, url
from .app import require_shell
from .charts import neuron_table, show_chart
from .follow import follow
from .links import open_picked
from .overview_dormancy import dormancy_section
from .text import guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active
from .widgets import epoch_picker, health_definitions

__all__ = ["URL", "Settings", "render_overview"]


# -- settings -----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every control of the page — also what the URL carries (see :data:`URL`). The epoch and
    the layer depend on the trace: the widgets check them against it."""

    metric: str = url.param(
        "metric", state.OVERVIEW_METRIC, default=DEFAULT_METRIC, choices=COLOUR_METRICS
    )
    epoch: int = url.param("epoch", state.OVERVIEW_EPOCH, per_trace=True)
    order: str = url.param("order", state.OVERVIEW_ORDER, default=ORDERS[0], choices=ORDERS)
    percentile: bool = url.param("percentile", state.OVERVIEW_PERCENTILE, default=False)
    #: The layer whose every neuron is drawn over training.
    layer: str = url.param("layer", state.OVERVIEW_DETAIL_LAYER, max_length=300)
    #: The threshold of the τ-dormant headline (Sokar et al. 2023).
    tau: float = url.param(
        "tau", state.OVERVIEW_DORMANT_TAU, default=DEFAULT_TAU, choices=DORMANT_TAUS
    )

    def hidden(self, trace: NetworkTrace) -> set[str]:
        """The settings left out of the URL: those at the page's defaults (the last epoch,
        the first layer), so a link to the page as it opens is the trace alone."""
        hidden = url.at_defaults(self)
        if self.epoch == trace.epochs[-1]:
            hidden.add("epoch")
        if self.layer == detail_layers(trace)[0]:
            hidden.add("layer")
        return hidden


#: The page's settings in the address bar, bound to the widgets' keys.
URL = url.PageURL(Settings, page="overview")


# -- sections -----------------------------------------------------------------------------------
def _summary(active: ActiveTrace) -> None:
    trace = active.trace
    st.caption(md_escape(active.label, max_length=300))
    notice = status_notice(trace, active.live)
    if notice is not None:
        show = st.info if notice.kind == "info" else st.warning
        show(notice.text, icon=notice.icon)
    for column, tile in zip(st.columns(6), summary_tiles(trace, active.live), strict=True):
        column.metric(tile.label, tile.value, help=tile.help)
    with st.expander("Run details: configuration, dataset, layers"):
        _details(trace)


def _details(trace: NetworkTrace) -> None:
    details = run_details(trace)
    left, right = st.columns(2)
    with left:
        st.markdown("**Neurons per layer**")
        st.dataframe(layers_table(trace), hide_index=True)
        st.markdown("**Dataset**")
        st.json(details.dataset, expanded=False)
        st.markdown(f"**Recorded {time_word(plural=True)}**")
        st.text(details.epochs)
    with right:
        st.markdown("**Configuration**")
        st.json(details.config, expanded=True)
        st.markdown("**Model, status, versions, timings**")
        st.json(details.meta, expanded=False)


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


def _ensure_settings(active: ActiveTrace) -> None:
    """Put a valid value in every widget key the URL or the session left invalid."""
    if state.get(state.OVERVIEW_METRIC) not in COLOUR_METRICS:
        state.put(state.OVERVIEW_METRIC, DEFAULT_METRIC)
    if state.get(state.OVERVIEW_ORDER) not in ORDERS:
        state.put(state.OVERVIEW_ORDER, ORDERS[0])
    if not isinstance(state.get(state.OVERVIEW_PERCENTILE), bool):
        state.put(state.OVERVIEW_PERCENTILE, False)
    layers = detail_layers(active.trace)
    if state.get(state.OVERVIEW_DETAIL_LAYER) not in layers:
        state.put(state.OVERVIEW_DETAIL_LAYER, layers[0])


def _controls(active: ActiveTrace) -> Settings:
    """Draw the brain scan's controls (the URL's values first) and return every setting."""
    trace = active.trace
    URL.restore(active.ref)
    _ensure_settings(active)
    left, middle, right = st.columns([3, 3, 2])  # room for the metric's description
    with left:
        metric = st.selectbox(
            "Metric",
            COLOUR_METRICS,
            key=state.OVERVIEW_METRIC,
            format_func=viz.metric_title,
            help="What the colour shows. See the Neurons page for every metric of one neuron.",
        )
    with middle:
        epoch = epoch_picker(
            time_title(), trace.epochs, URL.key("epoch", active.ref), follow_latest=active.live
        )
    with right:
        order = st.radio("Order neurons by", ORDERS, key=state.OVERVIEW_ORDER, horizontal=True)
        percentile = st.toggle(
            "Percentile colours",
            key=state.OVERVIEW_PERCENTILE,
            help="Colour each neuron by the percentile of its value within its layer, so layers "
            "whose values differ by orders of magnitude stay readable.",
        )
    return Settings(
        metric=str(metric),
        epoch=int(epoch),
        order=str(order),
        percentile=bool(percentile),
        layer=str(state.get(state.OVERVIEW_DETAIL_LAYER)),
    )


def _brain_scan(active: ActiveTrace, settings: Settings) -> None:
    scan = (settings.epoch, settings.metric, settings.order, settings.percentile)
    chart = cache.chart(
        "brain_scan",
        active.key,
        scan,
        lambda: viz.brain_scan_chart(cache.brain_scan(active.key, *scan, active.trace)),
    )
    event = show_chart(chart, select=viz.PICK, key=state.OVERVIEW_SCAN_CHART)
    st.caption(
        "Each strip is a layer; each cell a neuron (hover for its signature, click to open it "
        "on the Neurons page)."
    )
    note = metric_note(active.trace, settings.epoch, settings.metric)
    if note is not None:
        st.caption(md_escape(note, 400))
    open_picked(active, event)


def _over_time(active: ActiveTrace, settings: Settings) -> None:
    trace = active.trace
    metric, epoch, order = settings.metric, settings.epoch, settings.order
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
    layer = st.selectbox(
        "Every neuron of one layer over training",
        detail_layers(trace),
        key=state.OVERVIEW_DETAIL_LAYER,
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


def _own_health_asked(trace: NetworkTrace) -> bool:
    """Whether to draw this app's own health flags under the τ-dormant headline: always on a
    trace of up to :data:`~nn_tracing.views.neurons.PICKER_MAX` neurons; on a larger one when
    asked, because they cost seconds there (every neuron at every epoch on the server, and a
    table of thousands of flagged neurons that holds the browser for seconds, before it
    draws the page's first chart)."""
    if trace.n_neurons <= PICKER_MAX:
        return True
    return st.toggle(
        "Show this app's own flags (dead, saturated, gradient-starved, exploding)",
        key=state.OVERVIEW_OWN_HEALTH,
        help=f"They take seconds to compute and draw on a trace of {trace.n_neurons:,} "
        "neurons; the τ-dormant share above is the headline. The Neurons page's health "
        "tab filters them by layer and flag.",
    )


def _health(active: ActiveTrace, epoch: int) -> None:
    trace = active.trace
    health = cache.health(active.key, trace)
    counts = cache.health_counts(active.key, trace)
    tiles = health_view.health_tiles(health, epoch, trace.epochs[0])
    for column, tile in zip(st.columns(len(tiles)), tiles, strict=True):
        column.metric(
            tile.label,
            tile.value,
            delta=tile.delta,
            delta_color=tile.delta_color,
            help=tile.help,
        )
    st.caption(health_view.count_note(health))
    chart = cache.chart(
        "health",
        active.key,
        (epoch,),
        lambda: viz.health_chart(counts, trace.layer_names(), epoch),
    )
    if chart is not None:
        show_chart(chart, width="content")
    health_definitions(health.thresholds)
    flagged, signatures = health_view.flagged_table(health, trace, epoch)
    if flagged.empty:
        st.caption(f"No neuron is flagged at {time_key(epoch)}.")
        return
    st.markdown(f"**Flagged at {time_key(epoch)}** — select a row to open the neuron")
    if len(flagged) > health_view.MAX_TABLE_ROWS:
        st.caption(
            f"The first {health_view.MAX_TABLE_ROWS:,} of {len(flagged):,} flagged neurons; "
            "the Neurons page's health table filters by layer and flag."
        )
        flagged = flagged.head(health_view.MAX_TABLE_ROWS)
        signatures = signatures[: health_view.MAX_TABLE_ROWS]
    neuron_table(
        active.name,
        flagged,
        signatures,
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
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    follow(active, _page)  # a run still being written: redrawn as its epochs arrive


def _page(active: ActiveTrace) -> None:
    """Everything under the title; on a big trace's first look, the sections after the
    training curves one poll later (:func:`first_look`)."""
    later = first_look(active)
    with guarded("drawing the run summary"):
        _summary(active)
    st.header("Training curves")
    with guarded("drawing the training curves"):
        _curves(active)
    if later:
        _draw_later({"shown": False})
    else:
        _at_epoch(active)


#: Seconds after the browser shows a big trace's first Overview before it asks for the rest.
LATER_SECONDS = 1.0


def first_look(active: ActiveTrace) -> bool:
    """Whether this run is the session's first Overview of a trace above
    :data:`~nn_tracing.views.neurons.PICKER_MAX` neurons (not one being followed); it
    records the look, so only one run says so.

    Such a run draws the summary and the training curves and leaves the brain scan, the
    metric over training, neuron health (and the findings, which need them) to a full rerun
    that the browser asks for :data:`LATER_SECONDS` after it has shown the page: their
    seconds of cold queries and thousands of marks would otherwise reach the browser while
    it is still drawing its first chart (measured in docs/performance.md)."""
    looked = state.get(state.OVERVIEW_LOOKED) or frozenset()
    big = active.trace.n_neurons > PICKER_MAX and not active.following
    if not big or active.key in looked:
        state.pop(state.OVERVIEW_DEFERRED)
        return False
    state.put(state.OVERVIEW_LOOKED, looked | {active.key})
    state.put(state.OVERVIEW_DEFERRED, active.key)
    return True


def deferred(active: ActiveTrace) -> bool:
    """Whether this run left ``active``'s sections for later (:func:`first_look`)."""
    return state.get(state.OVERVIEW_DEFERRED) == active.key


@st.fragment(run_every=LATER_SECONDS)
def _draw_later(shown: dict[str, bool]) -> None:
    """In the page's run: a caption in the sections' place. At the browser's first poll (the
    page is shown): a full rerun, which draws them."""
    if shown["shown"]:
        st.rerun()
    shown["shown"] = True
    st.caption(
        "The brain scan, the metric over training and neuron health are drawn next, once "
        "this page is shown (a trace this big takes a few seconds)."
    )


@st.fragment
def _at_epoch(active: ActiveTrace) -> None:
    """Everything that follows the epoch slider: a fragment, so that moving the slider (or
    changing the metric) redraws only this part of the page. Its settings go into the
    address bar last."""
    use_axis(active.trace)  # a fragment's rerun may run in a fresh context
    st.header("Brain scan")
    settings = None
    with guarded("reading the brain scan's settings"):
        settings = _controls(active)
    if settings is None:
        return
    with guarded("drawing the brain scan"):
        _brain_scan(active, settings)
    st.subheader("Over training")
    with guarded("drawing the metric over training"):
        _over_time(active, settings)
    st.header("Neuron health")
    with guarded("finding dormant neurons"):
        settings = replace(settings, tau=dormancy_section(active, settings.epoch))
    if _own_health_asked(active.trace):
        with (
            st.expander("Dead, saturated, gradient-starved, exploding: this app's own thresholds"),
            guarded("computing neuron health"),
        ):
            _health(active, settings.epoch)
    with guarded("writing the settings into the address bar"):
        URL.publish(settings, active.ref, hidden=settings.hidden(active.trace))
