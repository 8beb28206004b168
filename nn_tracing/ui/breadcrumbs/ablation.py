"""The Breadcrumbs page's "Ablation" tab: what the network does without some neurons.

Any set of neurons zeroed or mean-replaced (accuracy per class, class logits, confusion
matrices, flipped samples; "Use the trail" takes the trail's hidden neurons), and the ablation
curves of one layer in four orders against the random band, with the selectivity–importance
correlation.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from ... import viz
from ...analysis.intervention import FILLS, AblationResult
from ...views import breadcrumbs as views
from ...views.breadcrumbs import Target
from .. import state
from ..charts import show_chart
from ..links import open_picked
from ..text import guarded
from ..traces import ActiveTrace
from .widgets import (
    DEFAULT_REPEATS,
    asked,
    ensure,
    flipped,
    per_class_table,
    repeats_ok,
    run_button,
    show_metrics,
)
from .work import ablation_of, curves_of, trail_of

__all__ = ["ablation_tab"]


def ablation_tab(active: ActiveTrace, target: Target, chosen: dict[str, Any]) -> None:
    """Draw the tab; its settings (the neurons, fills, the curves' layer and repeats, whether
    the curves show) go into ``chosen``."""
    trace, epoch = active.trace, target.epoch
    options = views.neuron_options(trace, with_inputs=True)
    signatures = {n: views.signature(trace, epoch, n) for n in options}
    key = state.epoch_key(state.BREADCRUMBS_ABLATE, active.ref)
    if state.pop(state.BREADCRUMBS_USE_TRAIL_ASKED):  # the trail's neurons, before drawing
        state.put(key, views.trail_hidden_neurons(trace, trail_of(active, target)))
    state.put(key, [n for n in state.get(key, []) if n in signatures])
    st.markdown(
        "Zero (or mean-replace) any set of neurons and see what the network does without them "
        "on the probe set. One forward pass per set, many sets per pass."
    )
    left, right = st.columns([4, 1])
    picked = left.multiselect(
        "Neurons to ablate",
        options,
        key=key,
        format_func=lambda n: signatures[n],
        placeholder="type a layer (L_hidden_1) or an id (n_12)",
    )
    fill = right.radio(
        "Replace by", list(FILLS), key=state.BREADCRUMBS_ABLATE_FILL, format_func=FILLS.get
    )
    right.button(
        "Use the trail",
        key=state.BREADCRUMBS_USE_TRAIL,
        on_click=state.put,
        args=(state.BREADCRUMBS_USE_TRAIL_ASKED, True),
        help="Ablate the trail's neurons of every hidden layer.",
    )
    chosen.update(ablate=tuple(int(n) for n in picked), ablate_fill=str(fill))
    if picked:
        with guarded("ablating the neurons"):
            neurons = tuple(sorted(int(n) for n in picked))
            _ablation_result(ablation_of(active, epoch, neurons, str(fill)))
    else:
        st.caption("Pick neurons above (or take the trail's) to see what ablating them changes.")
    st.divider()
    with guarded("computing ablation curves"):
        _curves_section(active, target, chosen)


def _ablation_result(result: AblationResult) -> None:
    show_metrics(views.ablation_metrics(result, FILLS[result.fill]), 3)
    st.markdown("**Per class** — accuracy, and the mean class logit on its own and on all samples")
    per_class_table(result)
    chart = views.confusion_chart(result, result.class_names)
    if chart is None:
        st.caption("Too many classes for a confusion chart; the per-class table says it all.")
    else:
        show_chart(chart, width="content")
    flipped(result)


def _curves_section(active: ActiveTrace, target: Target, chosen: dict[str, Any]) -> None:
    st.subheader("Ablation curves")
    st.markdown(
        "Accuracy as more and more neurons of one layer are ablated: most important first (by "
        "mean |attribution| to each sample's class), least important first, most class-"
        "selective first (Morcos et al. 2018), and in random order — the null."
    )
    layers = [info.name for info in views.hidden_layers(active.trace)]
    if not layers:
        st.info("This network has no hidden layer.")
        return
    ensure(state.BREADCRUMBS_CURVES_LAYER, lambda v: v in layers, layers[0])
    ensure(state.BREADCRUMBS_REPEATS, repeats_ok, DEFAULT_REPEATS)
    a, b, c, d = st.columns([2, 2, 2, 1])
    layer = str(a.selectbox("Layer", layers, key=state.BREADCRUMBS_CURVES_LAYER))
    repeats = int(b.slider("Random orders", 5, 200, key=state.BREADCRUMBS_REPEATS))
    fill = c.radio(
        "Replace by",
        list(FILLS),
        key=state.BREADCRUMBS_CURVES_FILL,
        format_func=FILLS.get,
        horizontal=True,
    )
    run_button(d, "Compute", state.BREADCRUMBS_CURVES_BUTTON, active, state.BREADCRUMBS_CURVES_RUN)
    params = (target.epoch, layer, str(fill), repeats, target.method)
    shown = asked(active, state.BREADCRUMBS_LINK_CURVES, state.BREADCRUMBS_CURVES_RUN, params)
    chosen.update(curves_layer=layer, curves_repeats=repeats, curves_fill=str(fill))
    chosen["curves"] = True if shown else None
    if not shown:
        st.caption("Choose a layer and press Compute.")
        return
    curves = curves_of(active, *params)
    chart, effect = views.curves_charts(active.trace, curves, epoch=target.epoch, n_repeats=repeats)
    show_chart(chart)
    st.info(curves.correlation_["sentence"])
    event = show_chart(effect, select=viz.PICK, key=state.BREADCRUMBS_CURVES_CHART)
    open_picked(active, event)
