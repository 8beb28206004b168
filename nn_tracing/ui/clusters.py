"""The Clusters page: a meta-model of the neurons, tested against chance.

The user picks what describes a neuron (a feature set), a projection (PCA, t-SNE, UMAP) and a
clustering (k-means, HDBSCAN, agglomerative); the page draws the map of the neurons, says
prominently whether the clusters are more separated than in null versions of the data
(:mod:`nn_tracing.analysis.baselines`), summarises every cluster, lists the neurons selected
on the map, and — for the per-epoch feature sets — moves the neurons through training in one
joint embedding with an epoch slider.

Every computation is :mod:`nn_tracing.analysis.embedding`'s or ``baselines``'; they run on
the server's analysis worker and their results are shared (:mod:`nn_tracing.ui.work`: one
analysis at a time, a progress bar, an estimate and a button for long work). The settings and
the selection live in the URL (see :data:`URL_KEYS`), so
the address bar reopens the same view in another browser.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from ..analysis import numba_guard
from ..analysis.baselines import DEFAULT_NULLS, NULLS, ChanceTest, reinitialisation_problem
from ..analysis.cost import reinitialisation_seconds
from ..analysis.embedding import (
    CLUSTERERS,
    DEFAULT_METRICS,
    FEATURE_SETS,
    PROJECTORS,
    SCALES,
    ClusterSummary,
    FeatureError,
    FeatureSpec,
    JointEmbedding,
    NeuronClusterer,
    NeuronFeatures,
    NeuronProjector,
    cluster_name,
    cluster_summary,
    estimate_seconds,
    joint_embedding,
    neuron_features,
)
from ..analysis.health import FLAG_TITLES, FLAGS
from ..analysis.standardise import ALIASES
from ..trace import METRICS, signature_column
from ..viz import clusters as cviz
from . import cache, state, work
from .app import open_neuron, require_shell
from .charts import neuron_table, show_chart
from .text import fmt_duration, guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active

__all__ = ["URL_KEYS", "Settings", "render_clusters", "start_warm_up_once"]

#: Work estimated to take longer than this waits for a click on "Compute".
#: Most trails drawn through the joint embedding.
MAX_TRAILS = 50
#: Most points of the joint embedding (neurons × epochs).
MAX_JOINT_POINTS = 20000
DISTANCES: dict[str, tuple[str, ...]] = {
    "pca": ("euclidean",),
    "tsne": ("euclidean", "cosine"),
    "umap": ("euclidean", "cosine", "correlation", "manhattan"),
}
LINKAGES = ("ward", "average", "complete", "single")
CLUSTER_ON = {"features": "the features", "map": "the 2-D map"}
COLORS: dict[str, str] = {
    "cluster": "cluster",
    "layer": "layer",
    "metric": "a metric at an epoch",
    "selectivity": "selectivity at an epoch",
    "health": "health flag at an epoch",
    "hmm": "HMM state at an epoch (Dynamics)",
}


# -- warm-up ----------------------------------------------------------------------------------
def _real_server() -> bool:
    """Whether this runs in a Streamlit server (not AppTest, whose runtime is a mock)."""
    try:
        from streamlit.runtime import Runtime

        return Runtime.exists() and type(Runtime.instance()) is Runtime
    except Exception:
        return False


def start_warm_up_once() -> None:
    """Start UMAP's compilation in the background, once per server process (not in tests);
    ``NN_TRACING_UMAP_WARMUP=0`` switches it off."""
    if _real_server():
        numba_guard.start_warm_up()


# -- settings ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything the user chose on the page (also what the URL carries)."""

    kind: str
    layers: tuple[str, ...]
    epoch: int | None
    epoch_range: tuple[int, int] | None
    metric: str
    metrics: tuple[str, ...]
    scale: str
    projector: str
    perplexity: float
    n_neighbors: int
    min_dist: float
    distance: str
    seed: int
    reproducible: bool
    method: str
    k: int
    min_size: int
    linkage: str
    on: str
    color: str
    color_metric: str
    color_epoch: int
    permutations: int
    nulls: tuple[str, ...] = field(default_factory=lambda: DEFAULT_NULLS)

    def spec(self) -> FeatureSpec:
        return FeatureSpec(
            kind=self.kind,
            layers=self.layers,
            epoch=self.epoch,
            metric=self.metric,
            epoch_range=self.epoch_range,
            metrics=self.metrics,
            scale=self.scale,
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


#: Query parameters of the page, each bound to a widget's session-state key (those that end in
#: ":" take the trace reference).
URL_KEYS: dict[str, str] = {
    "features": state.CLUSTERS_FEATURES,
    "layers": state.CLUSTERS_LAYERS + ":",
    "epoch": state.CLUSTERS_EPOCH + ":",
    "range": state.CLUSTERS_RANGE + ":",
    "metric": state.CLUSTERS_METRIC,
    "metrics": state.CLUSTERS_METRICS,
    "scale": state.CLUSTERS_SCALE,
    "proj": state.CLUSTERS_PROJECTOR,
    "perplexity": state.CLUSTERS_PERPLEXITY,
    "neighbors": state.CLUSTERS_NEIGHBORS,
    "min_dist": state.CLUSTERS_MIN_DIST,
    "distance": state.CLUSTERS_DISTANCE,
    "seed": state.CLUSTERS_SEED,
    "reproducible": state.CLUSTERS_REPRODUCIBLE,
    "cluster": state.CLUSTERS_METHOD,
    "k": state.CLUSTERS_K,
    "min_size": state.CLUSTERS_MIN_SIZE,
    "linkage": state.CLUSTERS_LINKAGE,
    "on": state.CLUSTERS_ON,
    "color": state.CLUSTERS_COLOR,
    "color_metric": state.CLUSTERS_COLOR_METRIC,
    "color_epoch": state.CLUSTERS_COLOR_EPOCH + ":",
    "perms": state.CLUSTERS_PERMUTATIONS,
    "nulls": state.CLUSTERS_NULLS,
    "sel": state.CLUSTERS_SELECTION,
}
_LISTS = {"layers", "metrics", "nulls", "sel"}


def _widget_key(name: str, ref: str) -> str:
    key = URL_KEYS[name]
    return key + ref if key.endswith(":") else key


def _to_url(name: str, value: Any) -> str:
    if name in _LISTS:
        return ",".join(str(v) for v in value)
    if name == "range":
        return f"{value[0]}-{value[1]}"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _from_url(name: str, text: str) -> Any:
    """The widget value a query parameter means (``ValueError`` when it cannot)."""
    if name in _LISTS:
        items = [t for t in text.split(",") if t]
        return [int(t) for t in items] if name == "sel" else items
    if name == "range":
        first, last = text.split("-", 1)
        return (int(first), int(last))
    if name in ("epoch", "color_epoch", "neighbors", "seed", "k", "min_size", "perms"):
        return int(text)
    if name in ("perplexity", "min_dist"):
        return float(text)
    if name == "reproducible":
        return text in ("1", "true", "True")
    if name == "scale":
        return ALIASES.get(text, text)  # links made before the modes were renamed
    return text


def _apply_url(ref: str) -> None:
    """Put the URL's settings into the widgets when the URL is new to this session."""
    params = {k: v for k, v in st.query_params.items() if k in URL_KEYS}
    fingerprint = json.dumps([ref, sorted(params.items())])
    if fingerprint == state.get(state.CLUSTERS_APPLIED_URL):
        return
    state.put(state.CLUSTERS_APPLIED_URL, fingerprint)
    for name, text in params.items():
        try:
            state.put(_widget_key(name, ref), _from_url(name, text))
        except (TypeError, ValueError):
            continue  # a malformed value: the widget's check below restores a valid one


def _publish_url(settings: Settings, ref: str) -> None:
    values: dict[str, Any] = {
        "features": settings.kind,
        "layers": settings.layers,
        "metric": settings.metric if settings.kind == "trajectory" else None,
        "metrics": settings.metrics if settings.kind == "metrics" else None,
        "scale": settings.scale,
        "proj": settings.projector,
        "perplexity": settings.perplexity if settings.projector == "tsne" else None,
        "neighbors": settings.n_neighbors if settings.projector == "umap" else None,
        "min_dist": settings.min_dist if settings.projector == "umap" else None,
        "distance": settings.distance if settings.projector != "pca" else None,
        "seed": settings.seed,
        "reproducible": settings.reproducible if settings.projector == "umap" else None,
        "cluster": settings.method,
        "k": settings.k if settings.method != "hdbscan" else None,
        "min_size": settings.min_size if settings.method == "hdbscan" else None,
        "linkage": settings.linkage if settings.method == "agglomerative" else None,
        "on": settings.on,
        "color": settings.color,
        "color_metric": settings.color_metric if settings.color == "metric" else None,
        "color_epoch": (
            settings.color_epoch if settings.color not in ("cluster", "layer") else None
        ),
        "perms": settings.permutations,
        "nulls": settings.nulls,
        "sel": state.get(state.CLUSTERS_SELECTION) or None,
        "epoch": settings.epoch,
        "range": settings.epoch_range,
    }
    for name, value in values.items():
        text = None if value is None else _to_url(name, value)
        if text is None or text == "":
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != text:
            st.query_params[name] = text
    if "neuron" in st.query_params:
        del st.query_params["neuron"]
    current = {k: v for k, v in st.query_params.items() if k in URL_KEYS}
    state.put(state.CLUSTERS_APPLIED_URL, json.dumps([ref, sorted(current.items())]))


def _ensure(key: str, valid: Callable[[Any], bool], default: Any) -> None:
    if not valid(state.get(key)):
        state.put(key, default)


def _hmm_problem(active: ActiveTrace) -> str | None:
    """Why HMM states cannot colour this trace (``None``: they can, as far as is known)."""
    return work.stored(work.key("hmm-failed", active.key, None))


def _feature_controls(
    active: ActiveTrace,
) -> tuple[str, list[str], int | None, tuple[int, int] | None, str]:
    """What describes a neuron: ``(kind, layers, epoch, epoch range, scale)``."""
    trace = active.trace
    ref = active.ref
    epochs = trace.epochs
    names = trace.layer_names()
    default_layers = [n for n in names if n != "input"] or names
    weighted = [i.name for i in trace.layers if i.weight_key]
    kinds = list(FEATURE_SETS)
    _ensure(
        state.CLUSTERS_FEATURES,
        lambda v: v in kinds,
        "activations" if trace.has_probe else "trajectory",
    )
    layers_key = _widget_key("layers", ref)
    epoch_key = _widget_key("epoch", ref)
    range_key = _widget_key("range", ref)
    st.markdown("**What describes a neuron**")
    kind = st.selectbox(
        "Feature set",
        kinds,
        key=state.CLUSTERS_FEATURES,
        format_func=lambda k: f"{k}: {FEATURE_SETS[k]}",
        help="trajectory: a metric over the epochs; metrics: several metrics at one epoch; "
        "response: the mean activation per class; activations: the activation on every "
        "probe sample; weights: the incoming weights (one layer).",
    )
    if kind == "weights":
        _ensure(
            layers_key,
            lambda v: isinstance(v, list) and len(v) == 1 and v[0] in weighted,
            weighted[:1],
        )
    else:
        _ensure(
            layers_key,
            lambda v: isinstance(v, list) and v and all(n in names for n in v),
            default_layers,
        )
    chosen = st.multiselect(
        "Layers",
        weighted if kind == "weights" else names,
        key=layers_key,
        max_selections=1 if kind == "weights" else None,
        help="Incoming weights compare neurons of one layer only (their lengths differ).",
    )
    epoch: int | None = None
    epoch_range: tuple[int, int] | None = None
    _ensure(state.CLUSTERS_METRIC, lambda v: v in METRICS, "act_mean")
    _ensure(
        state.CLUSTERS_METRICS,
        lambda v: isinstance(v, list) and len(v) >= 2 and all(m in METRICS for m in v),
        list(DEFAULT_METRICS),
    )
    if kind == "trajectory":
        _ensure(
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
        if len(epochs) >= 2:
            low, high = st.select_slider(
                "Epoch range",
                options=epochs,
                key=range_key,
                format_func=lambda e: f"E_{e}",
            )
            epoch_range = (int(low), int(high))
        st.selectbox("Metric", METRICS, key=state.CLUSTERS_METRIC)
    else:
        _ensure(epoch_key, lambda v: v in epochs, epochs[-1])
        if len(epochs) > 1:
            epoch = int(
                st.select_slider(
                    "Epoch", options=epochs, key=epoch_key, format_func=lambda e: f"E_{e}"
                )
            )
        else:
            epoch = epochs[0]
            st.caption(f"Epoch: E_{epoch} (the only recorded epoch)")
    if kind == "metrics":
        st.multiselect("Metrics", METRICS, key=state.CLUSTERS_METRICS)
    scales = ["auto", *SCALES]
    _ensure(state.CLUSTERS_SCALE, lambda v: v in scales, "auto")
    scale = st.selectbox(
        "Scaling",
        scales,
        key=state.CLUSTERS_SCALE,
        format_func=lambda s: (
            f"auto ({SCALES[FeatureSpec(kind).resolved_scale]})" if s == "auto" else SCALES[s]
        ),
    )
    return kind, chosen, epoch, epoch_range, str(scale)


def _projection_controls() -> str:
    """The projector and its parameters; returns the projector."""
    st.markdown("**Projection**")
    _ensure(state.CLUSTERS_PROJECTOR, lambda v: v in PROJECTORS, "pca")
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
    _ensure(
        state.CLUSTERS_PERPLEXITY,
        lambda v: isinstance(v, (int, float)) and 2 <= v <= 200,
        30.0,
    )
    _ensure(state.CLUSTERS_NEIGHBORS, lambda v: isinstance(v, int) and 2 <= v <= 500, 15)
    _ensure(
        state.CLUSTERS_MIN_DIST,
        lambda v: isinstance(v, (int, float)) and 0 <= v <= 0.99,
        0.1,
    )
    _ensure(state.CLUSTERS_DISTANCE, lambda v: v in DISTANCES[projector], "euclidean")
    _ensure(state.CLUSTERS_SEED, lambda v: isinstance(v, int) and v >= 0, 0)
    _ensure(state.CLUSTERS_REPRODUCIBLE, lambda v: isinstance(v, bool), False)
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
    _ensure(state.CLUSTERS_METHOD, lambda v: v in CLUSTERERS, "kmeans")
    method = st.radio(
        "Method",
        list(CLUSTERERS),
        key=state.CLUSTERS_METHOD,
        format_func=CLUSTERERS.get,
        horizontal=True,
    )
    _ensure(state.CLUSTERS_K, lambda v: isinstance(v, int) and 2 <= v <= 50, 4)
    _ensure(state.CLUSTERS_MIN_SIZE, lambda v: isinstance(v, int) and 0 <= v <= 10000, 0)
    _ensure(state.CLUSTERS_LINKAGE, lambda v: v in LINKAGES, "ward")
    _ensure(state.CLUSTERS_ON, lambda v: v in CLUSTER_ON, "features")
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
    color_options = [c for c in COLORS if c != "hmm" or _hmm_problem(active) is None]
    color_epoch_key = _widget_key("color_epoch", active.ref)
    left, middle, right = st.columns([2, 3, 4])
    with left:
        _ensure(state.CLUSTERS_COLOR, lambda v: v in color_options, "cluster")
        color = st.selectbox(
            "Colour by", color_options, key=state.CLUSTERS_COLOR, format_func=COLORS.get
        )
        _ensure(state.CLUSTERS_COLOR_METRIC, lambda v: v in METRICS, "act_mean")
        if color == "metric":
            st.selectbox("Colour metric", METRICS, key=state.CLUSTERS_COLOR_METRIC)
    with middle:
        _ensure(color_epoch_key, lambda v: v in epochs, analysis_epoch)
        if color not in ("cluster", "layer") and len(epochs) > 1:
            st.select_slider(
                "Colour at epoch",
                options=epochs,
                key=color_epoch_key,
                format_func=lambda e: f"E_{e}",
            )
    with right:
        _ensure(state.CLUSTERS_PERMUTATIONS, lambda v: isinstance(v, int) and 5 <= v <= 1000, 50)
        _ensure(
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
            help="How many shuffled versions / untrained networks each null draws.",
        )
        inner[1].multiselect(
            "Null models",
            list(NULLS),
            key=state.CLUSTERS_NULLS,
            help="; ".join(f"{k}: {v}" for k, v in NULLS.items()),
        )
    return str(color)


def _controls(active: ActiveTrace) -> Settings:
    """Draw every setting of the page (the URL's values first) and return them."""
    _apply_url(active.ref)
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
    color_epoch_key = _widget_key("color_epoch", active.ref)
    return Settings(
        kind=kind,
        layers=tuple(chosen),
        epoch=epoch,
        epoch_range=epoch_range,
        metric=str(state.get(state.CLUSTERS_METRIC)),
        metrics=tuple(state.get(state.CLUSTERS_METRICS) or DEFAULT_METRICS),
        scale=str(scale),
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
    )


# -- computations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Projection:
    """A fitted projection: what the page draws, without the projector."""

    embedding: np.ndarray
    explained: np.ndarray
    backend: str
    notes: list[str]
    seconds: float


@dataclass(frozen=True)
class Clustering:
    """A fitted clustering of the feature rows."""

    labels: np.ndarray
    probabilities: np.ndarray
    n_clusters: int
    score: float
    score_name: str
    silhouette: float
    notes: list[str]
    seconds: float


def _features(active: ActiveTrace, spec: FeatureSpec) -> NeuronFeatures | None:
    key = work.key("features", active.key, spec.to_dict())
    return work.compute(
        key,
        lambda progress: neuron_features(active.trace, spec),
        label=f"Describing the neurons: {spec.describe()}",
        button_key=f"{state.CLUSTERS_RUN}:features",
    )


def _projection(
    active: ActiveTrace, features: NeuronFeatures, settings: Settings
) -> Projection | None:
    params = settings.projector_params()
    key = work.key("projection", active.key, [features.spec.to_dict(), params])
    estimate = estimate_seconds(
        settings.projector, features.n_rows, n_features=features.values.shape[1]
    )
    name = PROJECTORS[settings.projector]

    def run(progress: work.Progress) -> Projection:
        projector = NeuronProjector(**params).fit(features.values, progress=progress)
        return Projection(
            embedding=projector.embedding_,
            explained=projector.explained_variance_ratio_,
            backend=projector.backend_,
            notes=list(projector.notes_),
            seconds=projector.seconds_,
        )

    return work.compute(
        key,
        run,
        label=f"{name} of {features.n_rows} neurons",
        estimate=estimate,
        button=f"Compute the {name} map ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:projection",
    )


def _clustering(
    active: ActiveTrace,
    features: NeuronFeatures,
    projection: Projection | None,
    settings: Settings,
) -> Clustering | None:
    if settings.on == "map" and projection is None:
        return None
    params = settings.clusterer_params()
    key = work.key("clusters", active.key, [features.spec.to_dict(), params])
    data = projection.embedding if settings.on == "map" and projection else features.values
    estimate = estimate_seconds(settings.method, data.shape[0], n_features=data.shape[1])
    name = CLUSTERERS[settings.method]

    def run(progress: work.Progress) -> Clustering:
        progress(0.1, f"{name} on {data.shape[0]} rows × {data.shape[1]} features")
        started = time.perf_counter()
        fitted = settings.clusterer().fit(data)
        return Clustering(
            labels=fitted.labels_,
            probabilities=fitted.probabilities_,
            n_clusters=fitted.n_clusters_,
            score=fitted.score_,
            score_name=fitted.score_name_,
            silhouette=fitted.silhouette_,
            notes=list(fitted.notes_),
            seconds=time.perf_counter() - started,
        )

    return work.compute(
        key,
        run,
        label=f"{name} clustering",
        estimate=estimate,
        button=f"Cluster with {name} ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:clusters",
    )


def _chance(active: ActiveTrace, features: NeuronFeatures, settings: Settings) -> ChanceTest | None:
    if not settings.nulls:
        st.warning(
            "No null model is chosen: pick at least one, or nothing says whether these clusters "
            "are more than chance."
        )
        return None
    params = [
        features.spec.to_dict(),
        settings.clusterer_params(),
        settings.permutations,
        list(settings.nulls),
    ]
    key = work.key("chance", active.key, params)
    projector_params = settings.projector_params() if settings.on == "map" else None
    runs, _ = ChanceTest.plan(features, settings.nulls, active.trace)
    estimate = ChanceTest.estimate_seconds(
        features.n_rows,
        features.values.shape[1],
        settings.clusterer(),
        projector=NeuronProjector(**projector_params) if projector_params else None,
        n_permutations=settings.permutations,
        n_nulls=len(runs),
    )
    if "untrained" in runs:  # one fresh initialisation per permutation
        estimate += settings.permutations * reinitialisation_seconds(active.trace)
    if active.live:  # a new epoch makes a new trace version: run the test when asked
        estimate = max(estimate, work.AUTO_SECONDS + 1)

    def run(progress: work.Progress) -> ChanceTest:
        test = ChanceTest(settings.permutations, nulls=settings.nulls, random_state=settings.seed)
        return test.fit(
            features,
            settings.clusterer(),
            trace=active.trace,
            projector=NeuronProjector(**projector_params) if projector_params else None,
            progress=progress,
        )

    return work.compute(
        key,
        run,
        label=f"Testing the clusters against {settings.permutations} versions of each null",
        estimate=estimate,
        button=f"Run the test against chance ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:chance",
    )


def _summary(
    active: ActiveTrace, features: NeuronFeatures, clustering: Clustering, settings: Settings
) -> ClusterSummary:
    key = work.key("summary", active.key, [features.spec.to_dict(), settings.clusterer_params()])
    found = work.stored(key)
    if found is None:
        profile = "raw" if features.spec.resolved_scale == "none" else "values"
        found = cluster_summary(features, clustering.labels, profile_values=profile)
        work.keep(key, found)
    return found


# -- colours ----------------------------------------------------------------------------------
def _hmm_states(active: ActiveTrace) -> np.ndarray | None:
    """HMM states of every neuron at every recorded epoch, shape (n_neurons, n_epochs), from the
    Dynamics page's shared neuron-level HMM (one fit per trace, shared by both pages); −1 for a
    neuron the HMM does not model. ``None`` when the fit fails (then remembered, and the colour
    option hidden)."""
    from .dynamics import neuron_states

    try:
        states = np.asarray(neuron_states(active).states_)
        if states.shape != (active.trace.n_neurons, len(active.trace.epochs)):
            raise ValueError(f"its states have shape {states.shape}")
    except Exception as exc:
        work.keep(work.key("hmm-failed", active.key, None), f"the HMM fit failed: {exc}")
        st.warning(
            f"HMM states cannot colour this trace: {md_escape(exc, 300)}. "
            "Colouring by cluster instead."
        )
        return None
    return states


def _colors(
    active: ActiveTrace,
    neuron_ids: np.ndarray,
    layers: np.ndarray,
    cluster_labels: np.ndarray | None,
    color: str,
    color_metric: str,
    epoch: int,
) -> tuple[pd.Series, str, str, list[str] | None, str | None]:
    """``(colour values, title, N|Q, category order, metric)`` for the points."""
    trace = active.trace
    if color == "layer":
        order = [n for n in trace.layer_names() if n in set(layers.tolist())]
        return pd.Series(layers, dtype=object), "layer", "N", order, None
    if color in ("metric", "selectivity"):
        metric = color_metric if color == "metric" else "selectivity"
        values = trace.metrics_at(epoch)[neuron_ids, METRICS.index(metric)].astype(float)
        return pd.Series(values), f"{metric} at E_{epoch}", "Q", None, metric
    if color == "health":
        health = cache.health(active.key, trace)
        row = health.epochs.index(epoch)
        labels = np.full(neuron_ids.size, "healthy", dtype=object)
        applies = np.zeros(neuron_ids.size, dtype=bool)
        for flag in reversed(FLAGS):
            applies |= health.applies[flag][neuron_ids]
            labels[health.flags[flag][row][neuron_ids]] = FLAG_TITLES[flag]
        labels[~applies] = "n/a"
        order = [*(FLAG_TITLES[f] for f in FLAGS), "healthy", "n/a"]
        return pd.Series(labels), f"health at E_{epoch}", "N", order, None
    if color == "hmm":
        states = _hmm_states(active)
        if states is not None:
            column = states[neuron_ids, trace.epochs.index(epoch)]
            labels = np.array(
                [f"state {int(s)}" if s >= 0 else "not modelled" for s in column], dtype=object
            )
            found = sorted(set(column.tolist()), key=lambda s: (s < 0, s))
            order = [f"state {int(s)}" if s >= 0 else "not modelled" for s in found]
            return pd.Series(labels), f"HMM state at E_{epoch}", "N", order, None
    if cluster_labels is None:
        return pd.Series(["n/a"] * neuron_ids.size), "cluster", "N", ["n/a"], None
    names = np.array([cluster_name(int(c)) for c in cluster_labels], dtype=object)
    found = sorted(set(cluster_labels.tolist()), key=lambda c: (c < 0, c))
    return pd.Series(names), "cluster", "N", [cluster_name(c) for c in found], None


def _point_frame(
    active: ActiveTrace,
    neuron_ids: np.ndarray,
    layers: np.ndarray,
    epochs: np.ndarray,
    coords: np.ndarray,
    cluster_labels: np.ndarray | None,
) -> pd.DataFrame:
    """One row per point with its signature, cluster and key metrics (at its own epoch)."""
    trace = active.trace
    frame = pd.DataFrame(
        {
            "neuron": neuron_ids,
            "layer": layers,
            "epoch": epochs,
            "signature": signature_column(epochs, layers, neuron_ids),
            "x": coords[:, 0],
            "y": coords[:, 1],
            "cluster": (
                [cluster_name(int(c)) for c in cluster_labels]
                if cluster_labels is not None
                else "n/a"
            ),
        }
    )
    for metric in cviz.TOOLTIP_METRICS:
        column = METRICS.index(metric)
        values = np.full(len(frame), np.nan)
        for e in np.unique(epochs):
            rows = np.flatnonzero(epochs == e)
            values[rows] = trace.metrics_at(int(e))[neuron_ids[rows], column]
        frame[metric] = values
    return frame


# -- selection ----------------------------------------------------------------------------------
def _selection_from_event(
    event: Any, frame: pd.DataFrame, cell_of_point: np.ndarray
) -> list[int] | None:
    """The neurons a map event selects, or ``None`` when the event is not new."""
    selection = getattr(event, "selection", None) or {}
    if not isinstance(selection, dict):
        return None
    fingerprint = json.dumps(selection, sort_keys=True, default=str)
    if fingerprint == state.get(state.CLUSTERS_LAST_EVENT):
        return None
    state.put(state.CLUSTERS_LAST_EVENT, fingerprint)
    chosen = np.zeros(len(frame), dtype=bool)
    points = selection.get(cviz.CLICK)
    if isinstance(points, list):
        cells = {int(p["cell"]) for p in points if isinstance(p, dict) and "cell" in p}
        chosen |= np.isin(cell_of_point, list(cells))
    box = selection.get(cviz.BOX)
    if isinstance(box, dict) and box:
        x_range = next((v for k, v in box.items() if k.startswith("x")), None)
        y_range = next((v for k, v in box.items() if k.startswith("y")), None)
        if x_range and y_range:
            x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
            chosen |= (
                (x >= min(x_range))
                & (x <= max(x_range))
                & (y >= min(y_range))
                & (y <= max(y_range))
            )
    if not (isinstance(points, list) and points) and not (isinstance(box, dict) and box):
        return None  # a cleared selection keeps the list (use "Clear selection")
    return sorted({int(n) for n in frame.loc[chosen, "neuron"]})


def _selected() -> list[int]:
    value = state.get(state.CLUSTERS_SELECTION) or []
    return [int(v) for v in value if isinstance(v, (int, np.integer))]


# -- sections -------------------------------------------------------------------------------------
def _verdict(test: ChanceTest | None, clustering: Clustering) -> None:
    """The test's verdict, shown above the map."""
    if test is None:
        st.warning(
            "**Against chance: not tested yet.** Any clustering algorithm returns clusters; "
            "run the test below before reading anything into them.",
            icon=":material/help:",
        )
        return
    text = f"**Against chance:** {md_escape(test.sentence_, 600)}"
    if test.n_rows_ < test.n_rows_total_:
        text += f" (scored on a random sample of {test.n_rows_} of {test.n_rows_total_} neurons)"
    if test.clustered_:
        st.success(text, icon=":material/check_circle:")
    elif test.undecided_:
        st.info(text, icon=":material/help:")
    else:
        st.warning(text, icon=":material/warning:")


def _chance_section(
    test: ChanceTest | None, clustering: Clustering, settings: Settings, features: NeuronFeatures
) -> None:
    st.subheader("Against chance")
    st.caption(
        f"Silhouette and {clustering.score_name} of the real features against "
        f"{settings.permutations} null versions of each null model, each clustered by the same "
        f"{CLUSTERERS[settings.method]}"
        + (" after the same projection" if settings.on == "map" else "")
        + ". p = (1 + versions at least as separated) / (P + 1)."
    )
    if test is None:
        return
    for result in test.results_.values():
        st.markdown(f"- **{md_escape(result.description)}** — {md_escape(result.sentence, 600)}")
    for name, reason in test.unavailable_.items():
        st.markdown(f"- **{md_escape(NULLS[name])}** — not run: {md_escape(reason, 400)}")
    rows, references = [], []
    for result in test.results_.values():
        label = result.name
        for score, values in result.scores.items():
            shown = "silhouette" if score == "silhouette" else test.score_name_
            rows += [{"score": shown, "null": label, "value": float(v)} for v in values]
        if result.reference:
            for score, value in result.reference.items():
                shown = "silhouette" if score == "silhouette" else test.score_name_
                references.append(
                    {
                        "score": shown,
                        "null": label,
                        "value": value,
                        "label": "the run's own E_0",
                    }
                )
    if rows:
        frame = pd.DataFrame(rows)
        observed = {
            "silhouette": test.observed_["silhouette"],
            test.score_name_: test.observed_["score"],
        }
        chart = cviz.null_chart(frame, observed, pd.DataFrame(references) if references else None)
        show_chart(chart, width="content")
        table = pd.DataFrame(
            [
                {
                    "null model": r.name,
                    "P": r.n_permutations,
                    "silhouette p": r.p_values["silhouette"],
                    f"{test.score_name_} p": r.p_values["score"],
                    "null median silhouette": float(np.nanmedian(r.scores["silhouette"]))
                    if np.isfinite(r.scores["silhouette"]).any()
                    else np.nan,
                    "run's own E_0 silhouette": (r.reference or {}).get("silhouette", np.nan),
                }
                for r in test.results_.values()
            ]
        )
        st.dataframe(table, hide_index=True)
    st.caption(
        f"Real features: silhouette {test.observed_['silhouette']:.3f}, "
        f"{test.score_name_} {test.observed_['score']:.3f}, on {test.n_rows_} neurons; the "
        f"test took {fmt_duration(test.seconds_)}. Column shuffling destroys every dependence "
        "between features, not only clusters; the Gaussian null asks whether there is more "
        "than one cloud at all."
    )


def _map(
    active: ActiveTrace,
    features: NeuronFeatures,
    projection: Projection,
    clustering: Clustering | None,
    settings: Settings,
) -> pd.DataFrame:
    labels = clustering.labels if clustering is not None else None
    frame = _point_frame(
        active, features.neuron_ids, features.layers, features.epochs, projection.embedding, labels
    )
    colors, title, kind, order, metric = _colors(
        active,
        features.neuron_ids,
        features.layers,
        labels,
        settings.color,
        settings.color_metric,
        settings.color_epoch,
    )
    frame["color"] = colors.to_numpy()
    frame["selected"] = frame["neuron"].isin(_selected())
    subtitle = [features.spec.describe()]
    subtitle += projection.notes
    if clustering is not None and clustering.notes:
        subtitle += clustering.notes
    chart, cell_of_point = cviz.map_chart(
        frame,
        title=f"{PROJECTORS[settings.projector]} of {features.n_rows} neurons",
        color_title=title,
        color_type=kind,
        color_domain=order,
        metric=metric,
        subtitle=subtitle,
    )
    event = show_chart(
        chart, select=[cviz.CLICK, cviz.BOX], key=f"{state.CLUSTERS_MAP_CHART}:{active.key}"
    )
    st.caption(
        "Click a neuron (shift-click for more) or drag a box to select; the selection is listed "
        "below, and a click on a row there opens the neuron's profile."
    )
    picked = _selection_from_event(event, frame, cell_of_point)
    if picked is not None:
        state.put(state.CLUSTERS_SELECTION, picked)
        _publish_url(settings, active.ref)  # the address bar shares the selection at once
    return frame


def _selection_table(active: ActiveTrace, frame: pd.DataFrame) -> None:
    selected = _selected()
    st.subheader("Selected neurons")
    if not selected:
        st.caption("Nothing selected: click or box-select neurons on the map.")
        return
    rows = frame[frame["neuron"].isin(selected)]
    missing = sorted(set(selected) - set(rows["neuron"].tolist()))
    left, right = st.columns([5, 1])
    left.caption(
        f"{len(rows)} neuron(s) selected — click a row to open its profile on the Neurons page."
        + (f" {len(missing)} selected neuron(s) are not on this map." if missing else "")
    )
    right.button(
        "Clear selection",
        key=f"{state.CLUSTERS_RUN}:clear",
        on_click=state.put,
        args=(state.CLUSTERS_SELECTION, []),
    )
    shown = rows.drop(columns=["color", "x", "y", "selected"]).reset_index(drop=True)
    neuron_table(
        active.name,
        shown,
        list(shown["signature"]),
        key=f"{state.CLUSTERS_SELECTION_TABLE}:{hash(tuple(selected))}",
        max_height=360,
        column_config={m: st.column_config.NumberColumn(format="%.4g") for m in METRICS},
    )


def _summary_section(
    active: ActiveTrace,
    features: NeuronFeatures,
    clustering: Clustering,
    summary: ClusterSummary,
) -> None:
    st.subheader("The clusters")
    table = summary.table.drop(columns=["cluster"]).rename(
        columns={"name": "cluster", "typical": "most typical neuron"}
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "share": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
            "spread": st.column_config.NumberColumn(format="%.3g"),
        },
    )
    scale = features.spec.resolved_scale
    title = {"none": "value", "neuron": "z-score per neuron", "global": "standardised"}.get(
        scale, "value"
    )
    chart = cviz.profiles_chart(summary.profiles, features.spec.kind, value_title=title)
    show_chart(chart, width="content")
    left, right = st.columns(2)
    with left:
        chart = cviz.cluster_layers_chart(summary.layer_counts, active.trace.layer_names())
        show_chart(chart, width="stretch")
    with right:
        st.markdown("**Most typical neurons** (nearest their cluster's centre) — click to open")
        typical = summary.typical[["name", "rank", "signature", "distance"]].rename(
            columns={"name": "cluster"}
        )
        neuron_table(
            active.name,
            typical,
            list(typical["signature"]),
            key=f"{state.CLUSTERS_TYPICAL_TABLE}:{active.key}",
            max_height=320,
            column_config={"distance": st.column_config.NumberColumn(format="%.3g")},
        )


def _labels_csv(features: NeuronFeatures, frame: pd.DataFrame, settings: Settings) -> bytes:
    placed = frame[["signature", "neuron", "layer", "epoch", "cluster", "x", "y"]].copy()
    placed["excluded_because"] = ""
    left_out = features.excluded.assign(cluster="", x=np.nan, y=np.nan).rename(
        columns={"reason": "excluded_because"}
    )[placed.columns]
    out = pd.concat([placed, left_out], ignore_index=True)
    header = (
        f"# features: {features.spec.describe()}; projection: {settings.projector}; "
        f"clustering: {settings.method} on {settings.on}\n"
    )
    return (header + out.to_csv(index=False)).encode()


def _excluded(features: NeuronFeatures) -> None:
    if features.excluded.empty:
        return
    reasons = features.excluded["reason"].value_counts()
    summary = "; ".join(f"{count} {md_escape(reason, 120)}" for reason, count in reasons.items())
    with st.expander(
        f"{len(features.excluded)} neuron(s) cannot be placed on the map and are left out: "
        f"{summary}"
    ):
        st.dataframe(features.excluded, hide_index=True)


def _through_time(
    active: ActiveTrace,
    features: NeuronFeatures,
    clustering: Clustering | None,
    settings: Settings,
) -> None:
    st.header("Through training")
    spec = features.spec
    trace = active.trace
    if not spec.per_epoch:
        st.info(
            "A trajectory already spans the epochs. Pick a per-epoch feature set (metrics, "
            "response, activations, weights) to watch the neurons move through training in one "
            "joint map."
        )
        return
    if len(trace.epochs) < 2:
        st.info("This trace has one recorded epoch: nothing to follow through time.")
        return
    params = settings.projector_params()
    key = work.key("joint", active.key, [spec.to_dict() | {"epoch": None}, params])
    n_neurons = sum(trace.layer(n).n_neurons for n in spec.layers)
    rows = min(n_neurons * len(trace.epochs), MAX_JOINT_POINTS)
    estimate = estimate_seconds(settings.projector, rows, n_features=features.values.shape[1])
    name = PROJECTORS[settings.projector]
    st.caption(
        f"One {name} of every (neuron, epoch) pair, so the slider moves the neurons through "
        "one fixed space; the selected neurons draw their paths."
    )

    def run(progress: work.Progress) -> JointEmbedding:
        projector = NeuronProjector(**params)
        return joint_embedding(
            trace, spec, projector, max_points=MAX_JOINT_POINTS, progress=progress
        )

    joint = work.compute(
        key,
        run,
        label=f"Joint {name} of {rows} (neuron, epoch) points",
        estimate=estimate,
        button=f"Compute the joint {name} ({fmt_duration(estimate)})",
        button_key=f"{state.CLUSTERS_RUN}:joint",
    )
    if joint is None:
        return
    frame = joint.frame
    time_key = state.epoch_key(state.CLUSTERS_TIME_EPOCH, active.ref)
    _ensure(time_key, lambda v: v in joint.epochs, joint.epochs[-1])
    epoch = int(
        st.select_slider(
            "Epoch", options=joint.epochs, key=time_key, format_func=lambda e: f"E_{e}"
        )
    )
    at = frame[frame["epoch"] == epoch].reset_index(drop=True)
    label_of = (
        dict(zip(features.neuron_ids.tolist(), clustering.labels.tolist()))
        if clustering is not None
        else {}
    )
    labels = np.array([label_of.get(int(n), -2) for n in at["neuron"]])
    points = _point_frame(
        active,
        at["neuron"].to_numpy(),
        at["layer"].to_numpy(),
        at["epoch"].to_numpy(),
        at[["x", "y"]].to_numpy(),
        None,
    )
    points["cluster"] = [cluster_name(int(c)) if c >= -1 else "n/a" for c in labels]
    color = settings.color
    if color == "cluster":
        names = points["cluster"]
        order = sorted(set(names), key=lambda s: (s in ("noise", "n/a"), s == "n/a", len(s), s))
        points["color"] = names.to_numpy()
        title, kind, metric = f"cluster (at E_{spec.epoch})", "N", None
    else:
        colors, title, kind, order, metric = _colors(
            active,
            points["neuron"].to_numpy(),
            points["layer"].to_numpy(),
            None,
            color,
            settings.color_metric,
            epoch,
        )
        points["color"] = colors.to_numpy()
    selected = _selected()[:MAX_TRAILS]
    trails = frame[frame["neuron"].isin(selected)].sort_values(["neuron", "epoch"])
    pad_x = 0.03 * float(frame["x"].max() - frame["x"].min() or 1.0)
    pad_y = 0.03 * float(frame["y"].max() - frame["y"].min() or 1.0)
    extent = (
        float(frame["x"].min() - pad_x),
        float(frame["x"].max() + pad_x),
        float(frame["y"].min() - pad_y),
        float(frame["y"].max() + pad_y),
    )
    subtitle = [*joint.notes]
    if selected:
        subtitle.append(
            f"black: the paths of {len(selected)} selected neuron(s) through "
            f"E_{joint.epochs[0]}…E_{joint.epochs[-1]}"
        )
    chart, cell_of_point = cviz.map_chart(
        points,
        title=f"Joint {name}: the neurons at E_{epoch}",
        color_title=title,
        color_type=kind,
        color_domain=order,
        metric=metric,
        subtitle=subtitle,
        extent=extent,
        trails=trails,
    )
    event = show_chart(
        chart, select=cviz.CLICK, key=f"{state.CLUSTERS_TIME_CHART}:{active.key}:{epoch}"
    )
    st.caption("Click a neuron to open its profile at this epoch.")
    selection = getattr(event, "selection", None) or {}
    clicked = selection.get(cviz.CLICK) if isinstance(selection, dict) else None
    if isinstance(clicked, list) and clicked and isinstance(clicked[0], dict):
        cell = int(clicked[0].get("cell", -1))
        rows_hit = np.flatnonzero(cell_of_point == cell)
        if rows_hit.size:
            open_neuron(active.name, str(points["signature"].iloc[int(rows_hit[0])]))
    if not joint.excluded.empty:
        st.caption(
            f"{len(joint.excluded)} (neuron, epoch) point(s) cannot be placed (constant or "
            "undefined features) and are not drawn."
        )


def _results(active: ActiveTrace, settings: Settings) -> None:
    try:
        features = _features(active, settings.spec())
    except FeatureError as exc:
        st.warning(f"These features cannot be built from this trace: {md_escape(exc, 600)}")
        return
    if features is None:
        return
    _excluded(features)
    for note in features.notes:
        st.caption(md_escape(note, 400))
    if features.n_rows < 5:
        st.warning(
            f"Only {features.n_rows} neuron(s) can be placed with these features: a map and "
            "clusters need at least 5. Include more layers or pick another feature set."
        )
        return
    projection = clustering = test = None
    with guarded(f"projecting the neurons with {PROJECTORS[settings.projector]}"):
        try:
            projection = _projection(active, features, settings)
        except ValueError as exc:
            st.warning(f"The projection cannot run: {md_escape(exc, 400)}")
    with guarded(f"clustering with {CLUSTERERS[settings.method]}"):
        try:
            clustering = _clustering(active, features, projection, settings)
        except ValueError as exc:
            st.warning(f"The clustering cannot run: {md_escape(exc, 400)}")
    if clustering is not None:
        with guarded("testing the clusters against chance"):
            try:
                test = _chance(active, features, settings)
            except (FeatureError, ValueError) as exc:
                st.warning(f"The test against chance cannot run: {md_escape(exc, 400)}")
        _verdict(test, clustering)
        st.caption(
            f"{clustering.n_clusters} cluster(s) by {CLUSTERERS[settings.method]} on "
            f"{CLUSTER_ON[settings.on]}: silhouette {clustering.silhouette:.3f}, "
            f"{clustering.score_name} {clustering.score:.3f}."
        )
    frame = None
    if projection is not None:
        with guarded("drawing the map"):
            frame = _map(active, features, projection, clustering, settings)
            if projection.explained.size:
                chart = cviz.explained_variance_chart(projection.explained)
                show_chart(chart, width="content")
                st.caption(
                    f"The map shows {projection.explained[:2].sum():.1%} of the variance of the "
                    "features (PC1 and PC2)."
                )
            else:
                parts = [f"Projected by {projection.backend} in "]
                parts[0] += fmt_duration(projection.seconds)
                caption = "; ".join([*parts, *projection.notes]) + "."
                if settings.on == "features":
                    caption += (
                        " Distances on a t-SNE or UMAP map are not distances between neurons: "
                        "the clusters and the test against chance use the features."
                    )
                st.caption(caption)
    if clustering is not None:
        with guarded("summarising the test against chance"):
            _chance_section(test, clustering, settings, features)
    if frame is not None:
        with guarded("listing the selected neurons"):
            _selection_table(active, frame)
    if clustering is not None:
        with guarded("summarising the clusters"):
            _summary_section(
                active, features, clustering, _summary(active, features, clustering, settings)
            )
        if frame is not None:
            st.download_button(
                "Cluster labels (CSV)",
                data=lambda: _labels_csv(features, frame, settings),
                file_name=f"{active.name or 'trace'}.clusters.csv",
                mime="text/csv",
                key=f"{state.CLUSTERS_RUN}:download",
                on_click="ignore",
            )
    with guarded("following the neurons through training"):
        try:
            _through_time(active, features, clustering, settings)
        except (FeatureError, ValueError) as exc:
            st.warning(f"The joint embedding cannot run: {md_escape(exc, 400)}")


def render_clusters() -> None:
    """Draw the Clusters page."""
    require_shell()
    st.title("Clusters")
    st.caption(
        "A meta-model of the neurons: describe each neuron by features, project them to a map, "
        "cluster them — and test whether the clusters are more than chance."
    )
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    if active.live:
        st.info(
            "This run is still training: the map describes the epochs recorded so far.",
            icon="⏳",
        )
    status = numba_guard.warm_up_status()
    if status.state == "running":
        st.caption(
            f"UMAP is compiling in the background (started {fmt_duration(status.seconds)} "
            "ago); a UMAP asked for now waits for it."
        )
    settings: Settings | None = None
    with guarded("reading the settings"):
        settings = _controls(active)
        _publish_url(settings, active.ref)
    if settings is None:
        return
    problem = reinitialisation_problem(active.trace)
    if problem and "untrained" in settings.nulls and settings.kind != "trajectory":
        st.caption(f"The untrained-network null cannot run: {md_escape(problem, 300)}")
    _results(active, settings)
