"""The Clusters page's settings: one frozen dataclass in the address bar, and its widgets.

:class:`Settings` holds every control of the page (:mod:`nn_tracing.ui.clusters`); each field
names its query parameter and its widget's key (:mod:`nn_tracing.ui.url`), so the address bar
reopens the same view in another browser. :func:`controls` draws the widgets (the URL's values
first) and returns the settings; :func:`publish_url` writes them into the address bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

from ..analysis.baselines import DEFAULT_NULLS, NULLS
from ..analysis.derived_metrics import COLOUR_METRICS
from ..analysis.embedding import (
    CLUSTERERS,
    DEFAULT_METRICS,
    FEATURE_SETS,
    PROJECTORS,
    SCALES,
    TIME_MAPS,
    FeatureSpec,
    NeuronClusterer,
)
from ..analysis.sampling import DEFAULT_MAX_NEURONS
from ..analysis.standardise import ALIASES
from ..timeaxis import time_key, time_title, time_word
from ..trace import METRICS
from ..views.clusters import CLUSTER_ON, COLORS, DECISION_PERMUTATIONS, DISTANCES, LINKAGES
from . import state, url
from .compute import recall
from .neurons_fourier import is_modular_trace
from .traces import ActiveTrace

__all__ = [
    "HMM_FAILED",
    "URL",
    "Settings",
    "controls",
    "ensure",
    "hmm_problem",
    "publish_url",
    "selected",
]

#: The worker's record that the shared HMM failed on a trace (its colour option then goes).
HMM_FAILED = "hmm-failed"


# -- settings ---------------------------------------------------------------------------------
#: The largest sample the page takes (the number input's top).
MAX_NEURONS = 10_000_000

#: Every distance some projector offers (the projector's own list is checked on the page).
_ALL_DISTANCES = tuple(sorted({d for options in DISTANCES.values() for d in options}))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the user chose on the page — also what the URL carries (see :data:`URL`):
    each field names its query parameter and its widget's key. The checks here are the ones a
    URL can fail without the trace; the widgets check the rest (layers, epochs) against it."""

    kind: str = url.param("features", state.CLUSTERS_FEATURES, choices=FEATURE_SETS)
    layers: tuple[str, ...] = url.param("layers", state.CLUSTERS_LAYERS, per_trace=True)
    epoch: int | None = url.param("epoch", state.CLUSTERS_EPOCH, per_trace=True)
    epoch_range: tuple[int, int] | None = url.param(
        "range", state.CLUSTERS_RANGE, per_trace=True, sep="-"
    )
    metric: str = url.param("metric", state.CLUSTERS_METRIC, choices=METRICS)
    metrics: tuple[str, ...] = url.param("metrics", state.CLUSTERS_METRICS, choices=METRICS)
    scale: str = url.param(  # old links say "column" for "global"
        "scale", state.CLUSTERS_SCALE, choices=("auto", *SCALES), aliases=ALIASES
    )
    #: Above this many neurons, a seeded sample of this many is described and mapped.
    max_neurons: int = url.param(
        "max_neurons",
        state.CLUSTERS_MAX_NEURONS,
        default=DEFAULT_MAX_NEURONS,
        low=100,
        high=MAX_NEURONS,
    )
    projector: str = url.param("proj", state.CLUSTERS_PROJECTOR, choices=PROJECTORS)
    perplexity: float = url.param("perplexity", state.CLUSTERS_PERPLEXITY, low=2, high=200)
    n_neighbors: int = url.param("neighbors", state.CLUSTERS_NEIGHBORS, low=2, high=500)
    min_dist: float = url.param("min_dist", state.CLUSTERS_MIN_DIST, low=0, high=0.99)
    distance: str = url.param("distance", state.CLUSTERS_DISTANCE, choices=_ALL_DISTANCES)
    seed: int = url.param("seed", state.CLUSTERS_SEED, low=0)
    reproducible: bool = url.param("reproducible", state.CLUSTERS_REPRODUCIBLE)
    method: str = url.param("cluster", state.CLUSTERS_METHOD, choices=CLUSTERERS)
    k: int = url.param("k", state.CLUSTERS_K, low=2, high=50)
    min_size: int = url.param("min_size", state.CLUSTERS_MIN_SIZE, low=0, high=10000)
    linkage: str = url.param("linkage", state.CLUSTERS_LINKAGE, choices=LINKAGES)
    on: str = url.param("on", state.CLUSTERS_ON, choices=CLUSTER_ON)
    color: str = url.param("color", state.CLUSTERS_COLOR, choices=COLORS)
    color_metric: str = url.param(
        "color_metric", state.CLUSTERS_COLOR_METRIC, choices=COLOUR_METRICS
    )
    color_epoch: int = url.param("color_epoch", state.CLUSTERS_COLOR_EPOCH, per_trace=True)
    permutations: int = url.param("perms", state.CLUSTERS_PERMUTATIONS, low=5, high=1000)
    nulls: tuple[str, ...] = url.param(
        "nulls", state.CLUSTERS_NULLS, default=DEFAULT_NULLS, choices=NULLS
    )
    #: The epoch of the joint map "through training".
    time_epoch: int | None = url.param(
        "time", state.CLUSTERS_TIME_EPOCH, default=None, per_trace=True
    )
    #: The method of the map "through training" (:data:`~nn_tracing.analysis.embedding.TIME_MAPS`).
    time_method: str = url.param(
        "time_map", state.CLUSTERS_TIME_METHOD, default="pca", choices=tuple(TIME_MAPS)
    )
    #: The neurons selected on the map (global ids).
    selection: tuple[int, ...] = url.param(
        "sel", state.CLUSTERS_SELECTION, default=(), low=0, max_items=100_000, max_length=800_000
    )

    def hidden(self) -> set[str]:
        """The settings that do not apply to these choices (left out of the URL)."""
        hidden = set()
        if self.kind != "trajectory":
            hidden.add("metric")
        if self.kind != "metrics":
            hidden.add("metrics")
        if self.projector != "tsne":
            hidden.add("perplexity")
        if self.projector != "umap":
            hidden |= {"n_neighbors", "min_dist", "reproducible"}
        if self.projector == "pca":
            hidden.add("distance")
        hidden.add("k" if self.method == "hdbscan" else "min_size")
        if self.method != "agglomerative":
            hidden.add("linkage")
        if self.color != "metric":
            hidden.add("color_metric")
        if self.color in ("cluster", "layer"):
            hidden.add("color_epoch")
        if self.kind == "trajectory":
            hidden |= {"time_epoch", "time_method"}
        return hidden

    def spec(self) -> FeatureSpec:
        return FeatureSpec(
            kind=self.kind,
            layers=self.layers,
            epoch=self.epoch,
            metric=self.metric,
            epoch_range=self.epoch_range,
            metrics=self.metrics,
            scale=self.scale,
            max_neurons=self.max_neurons,
        )

    def projector_params(self) -> dict[str, Any]:
        return {
            "method": self.projector,
            "perplexity": self.perplexity,
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "metric": self.distance if self.projector != "pca" else "euclidean",
            "random_state": (self.seed if self.projector != "umap" or self.reproducible else None),
        }

    def clusterer(self) -> NeuronClusterer:
        return NeuronClusterer(
            self.method,
            n_clusters=self.k,
            min_cluster_size=self.min_size or None,
            linkage=self.linkage,
            random_state=self.seed,
        )

    def clusterer_params(self) -> dict[str, Any]:
        params = self.clusterer().get_params()
        params["on"] = self.on
        if self.on == "map":
            params["projection"] = self.projector_params()
        return params


#: The page's settings in the address bar (the selection too), bound to the widgets' keys.
URL = url.PageURL(Settings, page="clusters")


def publish_url(settings: Settings, ref: str) -> None:
    """The settings into the address bar; a ``neuron=`` left from a deep link goes."""
    URL.publish(settings, ref, hidden=settings.hidden())
    if "neuron" in st.query_params:
        del st.query_params["neuron"]


def ensure(key: str, valid: Callable[[Any], bool], default: Any) -> None:
    """Put ``default`` into the widget key ``key`` unless what it holds is ``valid``."""
    if not valid(state.get(key)):
        state.put(key, default)


def hmm_problem(active: ActiveTrace) -> str | None:
    """Why HMM states cannot colour this trace (``None``: they can, as far as is known)."""
    return recall(HMM_FAILED, active.key, None)  # type: ignore[no-any-return]


#: Short names of the scalings (the dropdown is narrow; the long ones are in its help).
_SCALE_SHORT = {"none": "raw", "neuron": "z per neuron", "global": "z per feature"}
#: Short names of the feature sets, the same way (a long one was cut in the dropdown).
_FEATURES_SHORT = {
    "trajectory": "trajectory (one metric)",
    "metrics": "metrics (one epoch)",
    "response": "response per class",
    "activations": "activations per sample",
    "weights": "incoming weights",
}
_FEATURES_HELP = "; ".join(f"{_FEATURES_SHORT[k]}: {v}" for k, v in FEATURE_SETS.items()) + "."


def _feature_controls(
    active: ActiveTrace,
) -> tuple[str, list[str], int | None, tuple[int, int] | None, str]:
    """What describes a neuron: ``(kind, layers, epoch, epoch range, scale)``."""
    trace = active.trace
    kinds = list(FEATURE_SETS)
    ensure(
        state.CLUSTERS_FEATURES,
        lambda v: v in kinds,
        "activations" if trace.has_probe else "trajectory",
    )
    st.markdown("**What describes a neuron**")
    kind = st.selectbox(
        "Feature set",
        kinds,
        key=state.CLUSTERS_FEATURES,
        format_func=_FEATURES_SHORT.__getitem__,
        help=_FEATURES_HELP,
    )
    chosen = _layer_control(active, kind)
    epoch, epoch_range = _epoch_controls(active, kind)
    if kind == "metrics":
        st.multiselect("Metrics", METRICS, key=state.CLUSTERS_METRICS)
    scales = ["auto", *SCALES]
    ensure(state.CLUSTERS_SCALE, lambda v: v in scales, "auto")
    scale = st.selectbox(
        "Scaling",
        scales,
        key=state.CLUSTERS_SCALE,
        format_func=lambda s: (
            f"auto: {_SCALE_SHORT[FeatureSpec(kind).resolved_scale]}"
            if s == "auto"
            else _SCALE_SHORT[s]
        ),
        help="; ".join(f"{_SCALE_SHORT[k]}: {v}" for k, v in SCALES.items())
        + "; auto: the usual one for this kind of feature.",
    )
    ensure(
        state.CLUSTERS_MAX_NEURONS,
        lambda v: isinstance(v, int) and 100 <= v <= MAX_NEURONS,
        DEFAULT_MAX_NEURONS,
    )
    st.number_input(
        "Most neurons (a seeded sample above)",
        min_value=100,
        max_value=MAX_NEURONS,
        step=1000,
        key=state.CLUSTERS_MAX_NEURONS,
        help="Maps and clusters hold every neuron's features in memory: above this many "
        "neurons, a random sample of this many (seed 0, the same every time) is taken. The "
        "caption under the settings says what is loaded.",
    )
    return kind, chosen, epoch, epoch_range, str(scale)


def _layer_control(active: ActiveTrace, kind: str) -> list[str]:
    """The layers whose neurons are described (one layer for incoming weights)."""
    trace = active.trace
    names = trace.layer_names()
    weighted = [i.name for i in trace.layers if i.weight_key]
    layers_key = URL.key("layers", active.ref)
    if kind == "weights":
        ensure(
            layers_key,
            lambda v: isinstance(v, list) and len(v) == 1 and v[0] in weighted,
            weighted[:1],
        )
    else:
        ensure(
            layers_key,
            lambda v: isinstance(v, list) and v and all(n in names for n in v),
            [n for n in names if n != "input"] or names,
        )
    return st.multiselect(
        "Layers",
        weighted if kind == "weights" else names,
        key=layers_key,
        max_selections=1 if kind == "weights" else None,
        help="Incoming weights compare neurons of one layer only (their lengths differ).",
    )


def _epoch_controls(active: ActiveTrace, kind: str) -> tuple[int | None, tuple[int, int] | None]:
    """The epoch (per-epoch feature sets) or the epoch range and metric (trajectories):
    ``(epoch, epoch range)``."""
    epochs = active.trace.epochs
    ensure(state.CLUSTERS_METRIC, lambda v: v in METRICS, "act_mean")
    ensure(
        state.CLUSTERS_METRICS,
        lambda v: isinstance(v, list) and len(v) >= 2 and all(m in METRICS for m in v),
        list(DEFAULT_METRICS),
    )
    if kind == "trajectory":
        range_key = URL.key("epoch_range", active.ref)
        ensure(
            range_key,
            lambda v: (
                isinstance(v, (list, tuple))
                and len(v) == 2
                and v[0] in epochs
                and v[1] in epochs
                and v[0] < v[1]
            ),
            (epochs[0], epochs[-1]),
        )
        epoch_range: tuple[int, int] | None = None
        if len(epochs) >= 2:
            low, high = st.select_slider(
                "Epoch range",
                options=epochs,
                # a range default makes it a range widget (the key's value wins): without one,
                # Streamlit reads a moved range as one value and the range snaps back
                value=(epochs[0], epochs[-1]),
                key=range_key,
                format_func=time_key,
            )
            epoch_range = (int(low), int(high))
        st.selectbox("Metric", METRICS, key=state.CLUSTERS_METRIC)
        return None, epoch_range
    epoch_key = URL.key("epoch", active.ref)
    ensure(epoch_key, lambda v: v in epochs, epochs[-1])
    if len(epochs) > 1:
        epoch = st.select_slider(time_title(), options=epochs, key=epoch_key, format_func=time_key)
        return int(epoch), None
    st.caption(f"{time_title()}: {time_key(epochs[0])} (the only recorded {time_word()})")
    return epochs[0], None


def _projection_controls() -> str:
    """The projector and its parameters; returns the projector."""
    st.markdown("**Projection**")
    ensure(state.CLUSTERS_PROJECTOR, lambda v: v in PROJECTORS, "pca")
    projector = st.radio(
        "Method",
        list(PROJECTORS),
        key=state.CLUSTERS_PROJECTOR,
        format_func=PROJECTORS.get,
        horizontal=True,
        help="PCA is linear and exact. t-SNE and UMAP keep neighbourhoods but distort "
        "distances and can draw islands in noise: the test against chance below is the "
        "check.",
    )
    ensure(
        state.CLUSTERS_PERPLEXITY,
        lambda v: isinstance(v, (int, float)) and 2 <= v <= 200,
        30.0,
    )
    ensure(state.CLUSTERS_NEIGHBORS, lambda v: isinstance(v, int) and 2 <= v <= 500, 15)
    ensure(
        state.CLUSTERS_MIN_DIST,
        lambda v: isinstance(v, (int, float)) and 0 <= v <= 0.99,
        0.1,
    )
    ensure(state.CLUSTERS_DISTANCE, lambda v: v in DISTANCES[projector], "euclidean")
    ensure(state.CLUSTERS_SEED, lambda v: isinstance(v, int) and v >= 0, 0)
    ensure(state.CLUSTERS_REPRODUCIBLE, lambda v: isinstance(v, bool), False)
    if projector == "tsne":
        st.number_input(
            "Perplexity",
            min_value=2.0,
            max_value=200.0,
            step=5.0,
            key=state.CLUSTERS_PERPLEXITY,
            help="The effective number of neighbours (5–50 is usual); lowered "
            "automatically for few neurons.",
        )
    if projector == "umap":
        st.number_input(
            "n_neighbors",
            min_value=2,
            max_value=500,
            key=state.CLUSTERS_NEIGHBORS,
            help="Larger: more of the global structure; smaller: local detail.",
        )
        st.slider(
            "min_dist",
            min_value=0.0,
            max_value=0.99,
            step=0.05,
            key=state.CLUSTERS_MIN_DIST,
            help="How tightly points may pack.",
        )
    if projector != "pca":
        st.selectbox("Distance", DISTANCES[projector], key=state.CLUSTERS_DISTANCE)
    if projector == "umap":
        st.toggle(
            "Reproducible layout",
            key=state.CLUSTERS_REPRODUCIBLE,
            help="Seeded UMAP runs on one thread: 1.4–1.9× slower, the same map every time.",
        )
    st.number_input(
        "random_state",
        min_value=0,
        step=1,
        key=state.CLUSTERS_SEED,
        help="Seed of the projection (UMAP: when reproducible), of k-means, and of the "
        "test against chance.",
    )
    return str(projector)


def _clustering_controls() -> str:
    """The clusterer and its parameters; returns the method."""
    st.markdown("**Clustering**")
    ensure(state.CLUSTERS_METHOD, lambda v: v in CLUSTERERS, "kmeans")
    method = st.radio(
        "Method",
        list(CLUSTERERS),
        key=state.CLUSTERS_METHOD,
        format_func=CLUSTERERS.get,
        horizontal=True,
    )
    ensure(state.CLUSTERS_K, lambda v: isinstance(v, int) and 2 <= v <= 50, 4)
    ensure(state.CLUSTERS_MIN_SIZE, lambda v: isinstance(v, int) and 0 <= v <= 10000, 0)
    ensure(state.CLUSTERS_LINKAGE, lambda v: v in LINKAGES, "ward")
    ensure(state.CLUSTERS_ON, lambda v: v in CLUSTER_ON, "features")
    if method in ("kmeans", "agglomerative"):
        st.number_input("k (clusters)", min_value=2, max_value=50, key=state.CLUSTERS_K)
    if method == "hdbscan":
        st.number_input(
            "Smallest cluster (0: automatic)",
            min_value=0,
            max_value=10000,
            key=state.CLUSTERS_MIN_SIZE,
            help="Automatic: 5 neurons, or 1 % of them if more.",
        )
    if method == "agglomerative":
        st.selectbox("Linkage", LINKAGES, key=state.CLUSTERS_LINKAGE)
    st.radio(
        "Cluster on",
        list(CLUSTER_ON),
        key=state.CLUSTERS_ON,
        format_func=CLUSTER_ON.get,
        horizontal=True,
        help="On the features (recommended): the map is only a picture. On the 2-D map: "
        "what you see is what is clustered; the test then projects every null version "
        "too.",
    )
    return str(method)


def _color_and_test_controls(active: ActiveTrace, analysis_epoch: int) -> str:
    """The colour of the points and the test's parameters; returns the colour."""
    epochs = active.trace.epochs
    color_options = [
        c
        for c in COLORS
        if (c != "hmm" or hmm_problem(active) is None)
        and (c != "frequency" or is_modular_trace(active.trace))
    ]
    color_epoch_key = URL.key("color_epoch", active.ref)
    left, middle, right = st.columns([2, 3, 4])
    with left:
        ensure(state.CLUSTERS_COLOR, lambda v: v in color_options, "cluster")
        color = st.selectbox(
            "Colour by", color_options, key=state.CLUSTERS_COLOR, format_func=COLORS.get
        )
        ensure(state.CLUSTERS_COLOR_METRIC, lambda v: v in COLOUR_METRICS, "act_mean")
        if color == "metric":
            st.selectbox("Colour metric", COLOUR_METRICS, key=state.CLUSTERS_COLOR_METRIC)
    with middle:
        ensure(color_epoch_key, lambda v: v in epochs, analysis_epoch)
        if color not in ("cluster", "layer") and len(epochs) > 1:
            st.select_slider(
                "Colour at epoch",
                options=epochs,
                key=color_epoch_key,
                format_func=time_key,
            )
    with right:
        ensure(
            state.CLUSTERS_PERMUTATIONS,
            lambda v: isinstance(v, int) and 5 <= v <= 1000,
            DECISION_PERMUTATIONS,
        )
        ensure(
            state.CLUSTERS_NULLS,
            lambda v: isinstance(v, list) and all(n in NULLS for n in v),
            list(DEFAULT_NULLS),
        )
        inner = st.columns([1, 2])
        inner[0].number_input(
            "Null versions (P)",
            min_value=5,
            max_value=1000,
            key=state.CLUSTERS_PERMUTATIONS,
            help="The most shuffled versions / untrained networks each null draws. 19 decides "
            "at p = 0.05 (the smallest p is 1 / (P + 1)); more give a finer p-value.",
        )
        inner[1].multiselect(
            "Null models",
            list(NULLS),
            key=state.CLUSTERS_NULLS,
            help="; ".join(f"{k}: {v}" for k, v in NULLS.items()),
        )
    return str(color)


def controls(active: ActiveTrace) -> Settings:
    """Draw every setting of the page (the URL's values first) and return them."""
    URL.restore(active.ref)
    columns = st.columns(3)
    with columns[0].container(border=True):
        kind, chosen, epoch, epoch_range, scale = _feature_controls(active)
    with columns[1].container(border=True):
        projector = _projection_controls()
    with columns[2].container(border=True):
        method = _clustering_controls()
    epochs = active.trace.epochs
    analysis_epoch = epoch if epoch is not None else (epoch_range or (epochs[-1],))[-1]
    color = _color_and_test_controls(active, analysis_epoch)
    color_epoch_key = URL.key("color_epoch", active.ref)
    return Settings(
        kind=kind,
        layers=tuple(chosen),
        epoch=epoch,
        epoch_range=epoch_range,
        metric=str(state.get(state.CLUSTERS_METRIC)),
        metrics=tuple(state.get(state.CLUSTERS_METRICS) or DEFAULT_METRICS),
        scale=str(scale),
        max_neurons=int(state.get(state.CLUSTERS_MAX_NEURONS)),
        projector=str(projector),
        perplexity=float(state.get(state.CLUSTERS_PERPLEXITY)),
        n_neighbors=int(state.get(state.CLUSTERS_NEIGHBORS)),
        min_dist=float(state.get(state.CLUSTERS_MIN_DIST)),
        distance=str(state.get(state.CLUSTERS_DISTANCE)),
        seed=int(state.get(state.CLUSTERS_SEED)),
        reproducible=bool(state.get(state.CLUSTERS_REPRODUCIBLE)),
        method=str(method),
        k=int(state.get(state.CLUSTERS_K)),
        min_size=int(state.get(state.CLUSTERS_MIN_SIZE)),
        linkage=str(state.get(state.CLUSTERS_LINKAGE)),
        on=str(state.get(state.CLUSTERS_ON)),
        color=str(color),
        color_metric=str(state.get(state.CLUSTERS_COLOR_METRIC)),
        color_epoch=int(state.get(color_epoch_key)),
        permutations=int(state.get(state.CLUSTERS_PERMUTATIONS)),
        nulls=tuple(state.get(state.CLUSTERS_NULLS) or ()),
        time_epoch=_time_epoch(active),
        time_method=_time_method(),
        selection=tuple(selected()),
    )


def _time_epoch(active: ActiveTrace) -> int | None:
    """The epoch of the joint map (its slider is drawn further down, when the joint map is
    computed), if it is one of the trace's."""
    value = state.get(URL.key("time_epoch", active.ref))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value) if value in active.trace.epochs else None
    return None


def _time_method() -> str:
    """The method of the map through time (its radio is drawn further down)."""
    value = state.get(state.CLUSTERS_TIME_METHOD)
    return str(value) if value in TIME_MAPS else "pca"


def selected() -> list[int]:
    """The neurons selected on the map (global ids)."""
    value = state.get(state.CLUSTERS_SELECTION) or []
    return [int(v) for v in value if isinstance(v, (int, np.integer))]
