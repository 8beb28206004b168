"""The Neurons page's views of a convolution channel as an image neuron.

For a channel of a ``conv2d`` layer whose inputs are images: its kernel as small images over
the recorded epochs with kept weights ("Inputs and outputs"), and ("What it responds to") its
top-activating probe images with the receptive-field box of each image's peak, and its
activation map on a probe sample chosen by number. What they show is
:mod:`nn_tracing.views.channels`'; this module keeps the widgets and the layout. The top images
and the map run the network (a forward pass over the probe, cached per trace, epoch and
neuron); a trace whose model cannot be rebuilt says why in their place.
"""

from __future__ import annotations

import streamlit as st

from ..analysis.profiles import ProfileUnavailable
from ..trace import NetworkTrace
from ..views import channels as views
from ..views.neurons import weights_epoch
from . import cache, state
from .charts import show_chart
from .traces import ActiveTrace

__all__ = ["channel_map_section", "channel_responses", "kernel_section"]


@st.cache_data(max_entries=32, show_spinner=False)
def _model_problem(key: str, epoch: int, _trace: NetworkTrace) -> str | None:
    """Why the network at ``epoch`` cannot be rebuilt, or ``None``. (The model itself is
    built inside each chart's builder, for that chart alone: a model runs hooks that count
    calls, so two sessions must not share one.)"""
    try:
        views.live_model(_trace, epoch)
    except ProfileUnavailable as exc:
        return str(exc)
    return None


def _model_epoch(active: ActiveTrace, epoch: int) -> int:
    """The kept epoch nearest ``epoch`` (a notice when it differs); :class:`ProfileUnavailable`
    when the network cannot be rebuilt there."""
    kept, notice = weights_epoch(active.trace, epoch)
    if notice:
        st.caption(notice)
    problem = _model_problem(active.key, kept, active.trace)
    if problem is not None:
        raise ProfileUnavailable(problem)
    return kept


def kernel_section(active: ActiveTrace, neuron: int) -> None:
    """The channel's kernel at the epochs with kept weights (nothing for other neurons)."""
    trace = active.trace
    if views.channel_layer(trace, neuron) is None or not trace.epochs_with_weights:
        return
    chart = cache.chart(
        "channel_kernels", active.key, (neuron,), lambda: views.kernel_chart(trace, neuron)
    )
    show_chart(chart, width="content")
    if len(trace.epochs_with_weights) < 2:
        st.caption(
            "This run kept only its final weights: train with keep_weights=True "
            "(--keep-weights) to watch the kernel form over training."
        )


def channel_responses(active: ActiveTrace, neuron: int, epoch: int, k: int, largest: bool) -> bool:
    """The top images of a channel neuron with the receptive field of each peak; ``False``
    (nothing drawn) when ``neuron`` is not a channel of an image network."""
    trace = active.trace
    if views.channel_layer(trace, neuron) is None:
        return False
    try:
        kept = _model_epoch(active, epoch)
    except ProfileUnavailable as exc:
        st.info(f"Not available here: {exc}.")
        return True
    chart = cache.chart(
        "channel_top",
        active.key,
        (neuron, kept, k, largest),
        lambda: views.top_images_chart(
            trace, views.live_model(trace, kept), neuron, kept, k, largest
        )[0],
    )
    show_chart(chart, width="content")
    return True


def channel_map_section(active: ActiveTrace, neuron: int, epoch: int) -> None:
    """The channel's activation map on a probe sample chosen by number (nothing for other
    neurons, or when the model cannot be rebuilt: :func:`channel_responses` said why)."""
    trace = active.trace
    if views.channel_layer(trace, neuron) is None:
        return
    try:
        kept, _ = weights_epoch(trace, epoch)
    except ProfileUnavailable:
        return
    if _model_problem(active.key, kept, trace) is None:
        _activation_map(active, neuron, kept)


def _activation_map(active: ActiveTrace, neuron: int, epoch: int) -> None:
    trace = active.trace
    n_probe = len(trace.probe[1]) if trace.probe is not None else 1  # the page checked the key
    st.markdown("**Its activation map on one probe sample**")
    sample = int(
        st.number_input(
            "Probe sample",
            0,
            n_probe - 1,
            key=state.NEURON_MAP_SAMPLE,
            help="Any probe sample by its index (the top images' captions name theirs).",
        )
    )
    chart = cache.chart(
        "channel_map",
        active.key,
        (neuron, epoch, sample),
        lambda: views.activation_map_chart(
            trace, views.live_model(trace, epoch), neuron, epoch, sample
        ),
    )
    show_chart(chart, width="content")
