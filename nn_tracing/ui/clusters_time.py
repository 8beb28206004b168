"""The Clusters page's "Through training" section: the neurons followed through the recorded
epochs on one map, by the method the user picks (joint PCA / t-SNE / UMAP, aligned UMAP,
M-PHATE), with how faithful that map is in words beside it, M-PHATE's visualisation entropy,
the clickable map at the epoch of a slider, and a map that scrubs in the browser.

The map runs on the analysis worker (:func:`nn_tracing.ui.compute.run_analysis`); what the
section shows is built by :mod:`nn_tracing.views.through_time` (no Streamlit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import streamlit as st

from ..analysis.embedding import JointEmbedding, NeuronFeatures
from ..timeaxis import time_key, time_title, time_word
from ..views import clusters as views
from ..views import through_time as tviews
from ..views.clusters import Clustering
from ..viz import clusters as cviz
from . import state
from .charts import show_chart
from .clusters_settings import URL, Settings, ensure, publish_url, selected
from .compute import run_analysis
from .links import open_neuron
from .text import fmt_duration, md_escape
from .traces import ActiveTrace

__all__ = ["through_time_section"]

#: ``coloring(active, neuron_ids, layers, cluster_labels, settings, epoch)`` → the points'
#: colour (the page's own, which fetches health flags and HMM states when they colour).
ColoringFn = Callable[[ActiveTrace, np.ndarray, np.ndarray, None, Settings, int], views.Coloring]

_HELP = (
    "joint PCA / t-SNE / UMAP: one projection of every (neuron, time) row (identical rows share "
    "a point); aligned UMAP: one UMAP per time, aligned on the neurons (NeuroMapper); M-PHATE: "
    "a multislice graph (neighbours within a time, each neuron to itself across times) "
    "embedded with PHATE (Gigante et al. 2019). In every method a neuron whose features did "
    "not change since the previous time keeps its point."
)


def _method(active: ActiveTrace) -> str:
    ensure(state.CLUSTERS_TIME_METHOD, lambda v: v in tviews.TIME_MAPS, tviews.DEFAULT_TIME_MAP)
    return str(
        st.radio(
            "Map through time",
            list(tviews.TIME_MAPS),
            key=state.CLUSTERS_TIME_METHOD,
            format_func=tviews.TIME_MAPS.__getitem__,
            horizontal=True,
            help=_HELP,
        )
    )


def _embedding(
    active: ActiveTrace,
    features: NeuronFeatures,
    settings: Settings,
    method: str,
    estimate_fn: Callable[..., float],
) -> JointEmbedding | None:
    """Every (neuron, epoch) of the features' layers placed by ``method``."""
    spec = features.spec
    params = tviews.map_params(method, settings.projector_params())
    rows = views.joint_size(active.trace, spec)
    estimate = tviews.map_seconds(method, rows, features.values.shape[1], estimate_fn)
    name = tviews.TIME_MAPS[method]
    return run_analysis(
        "time_map",
        active.key,
        [spec.to_dict() | {"epoch": None}, method, params],
        lambda progress: tviews.embed_map(active.trace, spec, method, params, progress),
        label=f"{name[0].upper()}{name[1:]} of {rows} (neuron, {time_word()}) points",
        estimate=estimate,
        button=f"Compute the {name} ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:joint",
    )


def _time_slider(active: ActiveTrace, joint: JointEmbedding, settings: Settings) -> int:
    """The epoch of the clickable map (into the address bar when it changes)."""
    slider_key = URL.key("time_epoch", active.ref)
    ensure(slider_key, lambda v: v in joint.epochs, joint.epochs[-1])
    epoch = int(
        st.select_slider(time_title(), options=joint.epochs, key=slider_key, format_func=time_key)
    )
    if epoch != settings.time_epoch:  # the map above may have changed the selection
        publish_url(replace(settings, time_epoch=epoch, selection=tuple(selected())), active.ref)
    return epoch


def _clickable_map(
    active: ActiveTrace,
    joint: JointEmbedding,
    features: NeuronFeatures,
    clustering: Clustering | None,
    settings: Settings,
    coloring: ColoringFn,
) -> None:
    epoch = _time_slider(active, joint, settings)
    labels = clustering.labels if clustering is not None else None
    points = views.joint_points(active.trace, joint, epoch, features, labels)
    if settings.color == "cluster":
        colors = views.joint_cluster_coloring(points, features.spec.epoch)
    else:
        neurons, layers = points["neuron"].to_numpy(), points["layer"].to_numpy()
        colors = coloring(active, neurons, layers, None, settings, epoch)
    drawn = tviews.time_map(joint, points, colors, epoch, selected())
    event = show_chart(
        drawn.chart, select=cviz.CLICK, key=f"{state.CLUSTERS_TIME_CHART}:{active.key}:{epoch}"
    )
    st.caption(f"Click a neuron to open its profile at this {time_word()}.")
    selection = getattr(event, "selection", None) or {}
    signature = views.clicked_signature(selection, drawn.frame, drawn.cell_of_point)
    if signature is not None:
        open_neuron(active.name, signature)


def through_time_section(
    active: ActiveTrace,
    features: NeuronFeatures,
    clustering: Clustering | None,
    settings: Settings,
    coloring: ColoringFn,
    estimate: Callable[..., float],
) -> None:
    """Draw the "Through training" section (its heading included); ``coloring`` and
    ``estimate`` (the projectors' time estimate) are the page's."""
    st.header("Through training")
    problem = views.through_time_problem(active.trace, features.spec)
    if problem is not None:
        st.info(problem)
        return
    method = _method(active)
    joint = _embedding(active, features, settings, method, estimate)
    if joint is None:
        return
    st.info(md_escape(tviews.faithfulness_caption(joint), 900))
    if method == "mphate":
        st.caption(md_escape(tviews.entropy_caption(joint), 900))
    _clickable_map(active, joint, features, clustering, settings, coloring)
    trails = st.toggle(
        "Trails of the selected neurons in the scrubbing map",
        key=state.CLUSTERS_TIME_TRAILS,
        value=True,
    )
    show_chart(
        tviews.scrub_map(joint, selected() if trails else (), active.trace.axis),
        key=f"{state.CLUSTERS_TIME_CHART}:scrub:{active.key}:{method}",
    )
    if not joint.excluded.empty:
        st.caption(
            f"{len(joint.excluded)} (neuron, {time_word()}) point(s) cannot be placed (constant or "
            "undefined features) and are not drawn."
        )
