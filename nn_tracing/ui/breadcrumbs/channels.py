"""The Breadcrumbs page for convolutional networks on images: attribution to pixels (under the
attribution per neuron, where the channels already are neurons) and pruning of channels (the
Pruning tab of a network that is not a chain of Linear layers).

What they show is :mod:`nn_tracing.views.channels`'; both run on the analysis worker
(:func:`~nn_tracing.ui.compute.run_analysis`). This module keeps the widgets and the layout.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import streamlit as st

from ...analysis.attribution import Attribution
from ...analysis.channels import conv_layers, image_inputs
from ...views import breadcrumbs as crumbs
from ...views import channels as views
from ...views.breadcrumbs import Target
from .. import state
from ..charts import show_chart
from ..compute import run_analysis
from ..traces import ActiveTrace
from .widgets import DEFAULT_REPEATS, asked, ensure, repeats_ok, run_button, show_metrics

__all__ = ["channel_pruning_tab", "has_channels", "pixel_section"]


def has_channels(active: ActiveTrace) -> bool:
    """Whether the trace's network has conv2d channels over image inputs."""
    return bool(conv_layers(active.trace)) and image_inputs(active.trace) is not None


def pixel_section(active: ActiveTrace, target: Target, explained: Attribution) -> None:
    """The attribution of ``explained``'s class to every pixel (nothing unless the inputs are
    images)."""
    trace = active.trace
    if image_inputs(trace) is None:
        return
    method = views.pixel_method(target.method)
    chart = run_analysis(
        "breadcrumbs:pixels",
        active.key,
        [*target.explained(), method],
        lambda progress: views.pixel_attribution_chart(
            trace,
            crumbs.model_at(trace, target.epoch, target.objective),
            explained,
            crumbs.model_state(trace, target.epoch),
        ),
        label="Attributing to every pixel",
    )
    if chart is not None:
        show_chart(chart, width="content")


def _controls(active: ActiveTrace) -> tuple[str, int, int]:
    """The conv layer, how many of its channels to remove, random prunings."""
    layers = conv_layers(active.trace)
    names = [info.name for info in layers]
    ensure(state.BREADCRUMBS_CHANNEL_LAYER, lambda v: v in names, names[-1])
    left, middle, right = st.columns(3)
    layer = str(left.selectbox("Conv layer", names, key=state.BREADCRUMBS_CHANNEL_LAYER))
    width = active.trace.layer(layer).n_neurons
    high = max(width - 1, 1)
    ensure(
        state.BREADCRUMBS_CHANNEL_K,
        lambda v: isinstance(v, int) and 1 <= v <= high,
        max(1, width // 4),
    )
    k = int(middle.number_input("Channels to remove", 1, high, key=state.BREADCRUMBS_CHANNEL_K))
    ensure(state.BREADCRUMBS_PRUNE_REPEATS, repeats_ok, DEFAULT_REPEATS)
    repeats = int(right.slider("Random prunings", 5, 200, key=state.BREADCRUMBS_PRUNE_REPEATS))
    return layer, k, repeats


def channel_pruning_tab(active: ActiveTrace, target: Target, chosen: dict[str, Any]) -> None:
    """Remove the k least important channels of one conv layer, for real, against k random
    ones; the settings go into ``chosen``."""
    st.markdown(
        "Remove the k least important channels of a convolution (mean |attribution| to each "
        "sample's class) — the layer really gets narrower, and the next layer loses the "
        "matching input channels — and compare with removing k random channels."
    )
    if all(info.n_neurons < 2 for info in conv_layers(active.trace)):
        st.info("Every conv layer has a single channel: there is nothing to remove.")
        return
    layer, k, repeats = _controls(active)
    run_button(st, "Prune", state.BREADCRUMBS_PRUNE_BUTTON, active, state.BREADCRUMBS_PRUNE_RUN)
    params = (target.epoch, layer, k, repeats, target.method)
    shown = asked(active, state.BREADCRUMBS_LINK_PRUNED, state.BREADCRUMBS_PRUNE_RUN, params)
    chosen.update(channel_layer=layer, channel_k=k, prune_repeats=repeats)
    chosen["pruned"] = True if shown else None
    if not shown:
        st.caption("Choose a layer and how many channels to remove, and press Prune.")
        return
    result = run_analysis(
        "breadcrumbs:channel-pruning",
        active.key,
        list(params),
        partial(views.prune_channels, active.trace, target.epoch, layer, k, repeats, target.method),
        label=f"Pruning {k} channels of L_{layer}",
    )
    if result is None:
        return
    show_metrics(views.channel_pruning_metrics(result), 4)
    st.markdown(views.channel_pruning_sentence(active.trace, target.epoch, result))
