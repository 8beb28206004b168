"""Pure builders of the Clusters page: (trace, settings) → the frames, charts and texts it shows.

The page (``ui/clusters.py``) draws the widgets and the layout and runs the slow work
on the analysis worker; everything it computes or shows is built here, without Streamlit:

* the fits it runs on the worker — :func:`project`, :func:`cluster`, :func:`fit_chance_test`,
  :func:`summarise` — and their estimates;
* the colour of the points (:func:`point_colors`: layer, cluster, a metric, a health flag with
  its precedence, an HMM state) and the point frames (:func:`point_frame`);
* the map (:func:`neuron_map`) and the neurons a selection on it picks
  (:func:`points_in_selection`);
* the verdict of the test against chance (:func:`verdict`), its chart and table;
* the cluster summary's tables and charts, the CSV of the labels;
* the points of the joint map "through training" (:func:`joint_points`; the maps themselves:
  :mod:`nn_tracing.views.through_time`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..analysis.baselines import ChanceTest, NotReusable
from ..analysis.cost import chance_workers, reinitialisation_seconds
from ..analysis.derived_metrics import metric_at
from ..analysis.embedding import (
    CLUSTERERS,
    PROJECTORS,
    ClusterSummary,
    FeatureSpec,
    JointEmbedding,
    NeuronClusterer,
    NeuronFeatures,
    NeuronProjector,
    cluster_name,
    cluster_summary,
)
from ..analysis.health import HEALTH_LABELS, NeuronHealth
from ..analysis.sequential import stopping_count
from ..progress import Progress
from ..timeaxis import time_key
from ..trace import METRICS, NetworkTrace, signature_column
from ..viz import clusters as cviz

__all__ = [
    "CLUSTER_ON",
    "COLORS",
    "DECISION_PERMUTATIONS",
    "DISTANCES",
    "LINKAGES",
    "MAX_JOINT_POINTS",
    "MAX_TRAILS",
    "Clustering",
    "Coloring",
    "NeuronMap",
    "Projection",
    "Verdict",
    "chance_caption",
    "chance_estimate",
    "clicked_signature",
    "cluster",
    "cluster_coloring",
    "clustering_caption",
    "clustering_input",
    "fit_chance_test",
    "frequency_coloring",
    "hmm_coloring",
    "joint_cluster_coloring",
    "joint_extent",
    "joint_points",
    "joint_size",
    "labels_csv",
    "layers_chart",
    "neuron_map",
    "null_chart",
    "null_table",
    "point_colors",
    "point_frame",
    "points_in_selection",
    "profiles_chart",
    "project",
    "projection_caption",
    "selected_rows",
    "summarise",
    "summary_table",
    "through_time_problem",
    "typical_table",
    "variance_caption",
    "verdict",
]

#: Most trails drawn through the joint embedding.
MAX_TRAILS = 50
#: The Clusters page's default P of the test against chance: the fewest versions that decide at
#: p = 0.05 (1 / (P + 1) = 0.05); :func:`more_permutations` offers a finer p-value after.
DECISION_PERMUTATIONS = 19
#: Most versions per null the page offers.
MAX_PERMUTATIONS = 1000
#: Most points of the joint embedding (neurons × epochs).
MAX_JOINT_POINTS = 20000
#: The distances each projector offers.
DISTANCES: dict[str, tuple[str, ...]] = {
    "pca": ("euclidean",),
    "tsne": ("euclidean", "cosine"),
    "umap": ("euclidean", "cosine", "correlation", "manhattan"),
}
LINKAGES = ("ward", "average", "complete", "single")
#: What the clusterer runs on.
CLUSTER_ON = {"features": "the features", "map": "the 2-D map"}
#: What colours the points.
COLORS: dict[str, str] = {
    "cluster": "cluster",
    "layer": "layer",
    "metric": "a metric at an epoch",
    "selectivity": "selectivity at an epoch",
    "health": "health flag at an epoch",
    "hmm": "HMM state at an epoch (Dynamics)",
    "frequency": "dominant frequency at an epoch (modular arithmetic)",
}
#: Below this share of the power a neuron's dominant frequency does not colour it ("mixed").
FREQUENCY_SHARE = 0.3


# -- fits (run on the analysis worker) --------------------------------------------------------
@dataclass(frozen=True)
class Projection:
    """A fitted projection: what the page draws, without the projector.

    Attributes
    ----------
    embedding : array of shape (n_rows, 2); explained : PCA's variance ratios (empty for
    t-SNE and UMAP); backend : what projected; notes : adjustments made; seconds : how long
    """

    embedding: np.ndarray
    explained: np.ndarray
    backend: str
    notes: list[str]
    seconds: float


@dataclass(frozen=True)
class Clustering:
    """A fitted clustering of the feature rows.

    Attributes
    ----------
    labels : int array of shape (n_rows,) (−1: noise); probabilities : array of shape
    (n_rows,); n_clusters; score and score_name : the algorithm's own score; silhouette;
    notes : adjustments made; seconds : how long
    """

    labels: np.ndarray
    probabilities: np.ndarray
    n_clusters: int
    score: float
    score_name: str
    silhouette: float
    notes: list[str]
    seconds: float


def project(values: np.ndarray, params: dict[str, Any], progress: Progress) -> Projection:
    """The 2-D map of the feature rows ``values`` (shape (n_rows, n_features)) by a
    :class:`NeuronProjector` with ``params``."""
    projector = NeuronProjector(**params).fit(values, progress=progress)
    return Projection(
        embedding=projector.embedding_,
        explained=projector.explained_variance_ratio_,
        backend=projector.backend_,
        notes=list(projector.notes_),
        seconds=projector.seconds_,
    )


def clustering_input(
    features: NeuronFeatures, projection: Projection | None, on: str
) -> np.ndarray | None:
    """What the clusterer runs on (``on``: ``features`` or ``map``): an array of shape
    (n_rows, n_columns), or ``None`` when it is the map and there is none yet."""
    if on == "map":
        return projection.embedding if projection is not None else None
    return features.values


def cluster(data: np.ndarray, clusterer: NeuronClusterer, progress: Progress) -> Clustering:
    """``clusterer`` fitted on ``data`` (shape (n_rows, n_columns))."""
    name = CLUSTERERS[clusterer.method]
    progress(0.1, f"{name} on {data.shape[0]} rows × {data.shape[1]} features")
    started = time.perf_counter()
    fitted = clusterer.fit(data)
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


def chance_estimate(
    trace: NetworkTrace,
    features: NeuronFeatures,
    clusterer: NeuronClusterer,
    *,
    projector_params: dict[str, Any] | None,
    permutations: int,
    nulls: Sequence[str],
) -> float:
    """Expected seconds of :func:`fit_chance_test` (with one fresh initialisation of the
    network per permutation when the untrained null runs)."""
    runs, _ = ChanceTest.plan(features, nulls, trace)
    estimate = ChanceTest.estimate_seconds(
        features.n_rows,
        features.values.shape[1],
        clusterer,
        projector=NeuronProjector(**projector_params) if projector_params else None,
        n_permutations=permutations,
        n_nulls=len(runs),
    )
    if "untrained" in runs:  # drawn as many at a time as the other versions
        projector = projector_params["method"] if projector_params else None
        workers = chance_workers(features.n_rows, projector)
        estimate += permutations * reinitialisation_seconds(trace) / workers
    return float(estimate)


def more_permutations(permutations: int) -> int | None:
    """The next P that makes the smallest p-value 5× finer (19 → 99 → 499: p down to 0.05,
    0.01, 0.002), at most :data:`MAX_PERMUTATIONS`; ``None`` at the top."""
    bigger = min(5 * (int(permutations) + 1) - 1, MAX_PERMUTATIONS)
    return bigger if bigger > permutations else None


def smaller_permutations(permutations: int) -> list[int]:
    """The P values below ``permutations`` whose test a test of ``permutations`` versions can
    extend (the page's default and the rungs of :func:`more_permutations`), largest first."""
    rungs, value = [], DECISION_PERMUTATIONS
    while value is not None and value < permutations:
        rungs.append(value)
        value = more_permutations(value)
    return rungs[::-1]


def fit_chance_test(
    trace: NetworkTrace,
    features: NeuronFeatures,
    clusterer: NeuronClusterer,
    *,
    projector_params: dict[str, Any] | None,
    permutations: int,
    nulls: Sequence[str],
    seed: int,
    progress: Progress,
    previous: ChanceTest | None = None,
) -> ChanceTest:
    """The clustering of ``features`` against ``permutations`` versions of each null (the same
    projection first when ``projector_params`` is given); ``previous``, a test of the same
    clustering with fewer versions: its versions are reused (``ChanceTest.fit``)."""
    projector = NeuronProjector(**projector_params) if projector_params else None
    test = ChanceTest(permutations, nulls=nulls, random_state=seed)
    try:
        return test.fit(
            features,
            clusterer,
            trace=trace,
            projector=projector,
            progress=progress,
            previous=previous,
        )
    except NotReusable:  # another seed or clustering: draw every version
        return test.fit(features, clusterer, trace=trace, projector=projector, progress=progress)


def summarise(features: NeuronFeatures, labels: np.ndarray) -> ClusterSummary:
    """Every cluster's size, profile, layers and most typical neurons (profiles in the
    features' own units when they are not scaled)."""
    profile = "raw" if features.spec.resolved_scale == "none" else "values"
    return cluster_summary(features, labels, profile_values=profile)


# -- colours ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Coloring:
    """How the points of a map are coloured.

    Attributes
    ----------
    values : one colour value per point (a category or a number)
    title : the legend's title
    kind : ``N`` (categories) or ``Q`` (numbers)
    domain : the categories in legend order (``None`` for numbers)
    metric : the metric behind numbers (picks the colour scale), else ``None``
    """

    values: pd.Series
    title: str
    kind: str
    domain: list[str] | None
    metric: str | None


def hmm_coloring(
    states: np.ndarray, neuron_ids: np.ndarray, epoch_index: int, epoch: int
) -> Coloring:
    """Colour by HMM state: ``states`` of shape (n_neurons, n_epochs) (−1: not modelled), at
    the recorded epoch ``epoch`` (column ``epoch_index``)."""
    column = states[neuron_ids, epoch_index]
    labels = np.array(
        [f"state {int(s)}" if s >= 0 else "not modelled" for s in column], dtype=object
    )
    found = sorted(set(column.tolist()), key=lambda s: (s < 0, s))
    order = [f"state {int(s)}" if s >= 0 else "not modelled" for s in found]
    return Coloring(pd.Series(labels), f"HMM state at {time_key(epoch)}", "N", order, None)


def frequency_coloring(frequencies: pd.DataFrame, neuron_ids: np.ndarray, epoch: int) -> Coloring:
    """Colour by dominant frequency ``k=…`` (a and b together), ``mixed`` where it holds less
    than :data:`FREQUENCY_SHARE` of the power (``frequencies``: one row per neuron, in id
    order, with ``frequency`` and ``share``)."""
    rows = frequencies.set_index("neuron").reindex(neuron_ids)
    strong = rows["share"].to_numpy(dtype=float) >= FREQUENCY_SHARE
    k = rows["frequency"].fillna(0).to_numpy(dtype=int)
    labels = np.where(strong, [f"k={v}" for v in k], "mixed").astype(object)
    order = [f"k={v}" for v in sorted(set(k[strong].tolist()))] + ["mixed"]
    return Coloring(pd.Series(labels), f"dominant frequency at E_{epoch}", "N", order, None)


def cluster_coloring(cluster_labels: np.ndarray | None, n_points: int) -> Coloring:
    """Colour by cluster (noise last); ``n/a`` everywhere when there is no clustering."""
    if cluster_labels is None:
        return Coloring(pd.Series(["n/a"] * n_points), "cluster", "N", ["n/a"], None)
    names = np.array([cluster_name(int(c)) for c in cluster_labels], dtype=object)
    found = sorted(set(cluster_labels.tolist()), key=lambda c: (c < 0, c))
    return Coloring(pd.Series(names), "cluster", "N", [cluster_name(c) for c in found], None)


def point_colors(
    trace: NetworkTrace,
    neuron_ids: np.ndarray,
    layers: np.ndarray,
    cluster_labels: np.ndarray | None,
    color: str,
    color_metric: str,
    epoch: int,
    *,
    health: NeuronHealth | None = None,
    hmm_states: np.ndarray | None = None,
    frequencies: pd.DataFrame | None = None,
) -> Coloring:
    """The colour of every point.

    Parameters
    ----------
    neuron_ids, layers
        The points' neurons and their layers, arrays of shape (n_points,).
    cluster_labels
        Their clusters (shape (n_points,)), or ``None``.
    color
        One of :data:`COLORS`; ``metric`` colours by ``color_metric``; metrics, health and HMM
        states are taken at ``epoch``.
    health
        The trace's health flags (needed for ``health``).
    hmm_states
        The shared HMM's states, shape (n_neurons, n_epochs); ``None`` with ``hmm``: the fit
        failed, and the points are coloured by cluster.
    frequencies
        Every neuron's dominant frequency at ``epoch``
        (:func:`~nn_tracing.analysis.fourier.layer_frequencies`; needed for ``frequency``).
    """
    if color == "layer":
        order = [n for n in trace.layer_names() if n in set(layers.tolist())]
        return Coloring(pd.Series(layers, dtype=object), "layer", "N", order, None)
    if color in ("metric", "selectivity"):
        metric = color_metric if color == "metric" else "selectivity"
        values = metric_at(trace, epoch, metric)[neuron_ids]
        return Coloring(pd.Series(values), f"{metric} at {time_key(epoch)}", "Q", None, metric)
    if color == "health":
        if health is None:
            raise ValueError("colouring by health needs the trace's health flags")
        labels = health.labels(epoch, neuron_ids)
        return Coloring(
            pd.Series(labels), f"health at {time_key(epoch)}", "N", list(HEALTH_LABELS), None
        )
    if color == "hmm" and hmm_states is not None:
        return hmm_coloring(hmm_states, neuron_ids, trace.epochs.index(epoch), epoch)
    if color == "frequency":
        if frequencies is None:
            raise ValueError("colouring by frequency needs the neurons' dominant frequencies")
        return frequency_coloring(frequencies, neuron_ids, epoch)
    return cluster_coloring(cluster_labels, neuron_ids.size)


# -- the map ----------------------------------------------------------------------------------
def point_frame(
    trace: NetworkTrace,
    neuron_ids: np.ndarray,
    layers: np.ndarray,
    epochs: np.ndarray,
    coords: np.ndarray,
    cluster_labels: np.ndarray | None,
) -> pd.DataFrame:
    """One row per point with its signature, cluster and key metrics (at its own epoch).

    Parameters
    ----------
    neuron_ids, layers, epochs
        Each point's neuron, layer and epoch, arrays of shape (n_points,).
    coords
        Its place on the map, shape (n_points, 2).
    cluster_labels
        Its cluster, shape (n_points,), or ``None`` (``n/a``).

    Returns
    -------
    ``neuron``, ``layer``, ``epoch``, ``signature``, ``x``, ``y``, ``cluster`` and the metrics
    of :data:`nn_tracing.viz.clusters.TOOLTIP_METRICS`.
    """
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


@dataclass(frozen=True)
class NeuronMap:
    """A map drawn: its points (:func:`point_frame` with ``color``), the chart, and for every
    point the ``cell`` a click on it reports (array of shape (n_points,))."""

    frame: pd.DataFrame
    chart: alt.TopLevelMixin
    cell_of_point: np.ndarray


def neuron_map(
    trace: NetworkTrace,
    features: NeuronFeatures,
    projection: Projection,
    clustering: Clustering | None,
    coloring: Coloring,
    selected: Sequence[int],
    projector: str,
) -> NeuronMap:
    """The map of the feature rows: one point per row at its projected place, the
    ``selected`` neurons outlined."""
    labels = clustering.labels if clustering is not None else None
    frame = point_frame(
        trace, features.neuron_ids, features.layers, features.epochs, projection.embedding, labels
    )
    frame["color"] = coloring.values.to_numpy()
    frame["selected"] = frame["neuron"].isin(selected)
    subtitle = [features.spec.describe(), *projection.notes]
    if clustering is not None and clustering.notes:
        subtitle += clustering.notes
    chart, cell_of_point = cviz.map_chart(
        frame,
        title=f"{PROJECTORS[projector]} of {features.n_rows} neurons",
        color_title=coloring.title,
        color_type=coloring.kind,
        color_domain=coloring.domain,
        metric=coloring.metric,
        subtitle=subtitle,
    )
    return NeuronMap(frame, chart, cell_of_point)


def points_in_selection(
    selection: dict[str, Any], frame: pd.DataFrame, cell_of_point: np.ndarray
) -> list[int] | None:
    """The neurons a selection on the map picks: the clicked points
    (:data:`~nn_tracing.viz.clusters.CLICK`, by ``cell``) and those in the box
    (:data:`~nn_tracing.viz.clusters.BOX`); ``None`` when it picks nothing (a cleared
    selection keeps the list)."""
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
        return None
    return sorted({int(n) for n in frame.loc[chosen, "neuron"]})


def clicked_signature(selection: Any, frame: pd.DataFrame, cell_of_point: np.ndarray) -> str | None:
    """The signature of the point a click selection (a map event's ``selection``) names, or
    ``None``."""
    clicked = selection.get(cviz.CLICK) if isinstance(selection, dict) else None
    if not (isinstance(clicked, list) and clicked and isinstance(clicked[0], dict)):
        return None
    rows_hit = np.flatnonzero(cell_of_point == int(clicked[0].get("cell", -1)))
    return str(frame["signature"].iloc[int(rows_hit[0])]) if rows_hit.size else None


def projection_caption(projection: Projection, on: str, took: str) -> str:
    """What a t-SNE or UMAP map is (``took``: its duration, written)."""
    caption = "; ".join([f"Projected by {projection.backend} in {took}", *projection.notes]) + "."
    if on == "features":
        caption += (
            " Distances on a t-SNE or UMAP map are not distances between neurons: "
            "the clusters and the test against chance use the features."
        )
    return caption


def variance_caption(explained: np.ndarray) -> str:
    """How much of the features' variance a PCA map shows (``explained``: the ratios)."""
    return f"The map shows {explained[:2].sum():.1%} of the variance of the features (PC1 and PC2)."


def clustering_caption(clustering: Clustering, method: str, on: str) -> str:
    """The clustering in one sentence: clusters, algorithm, what it ran on, its scores."""
    return (
        f"{clustering.n_clusters} cluster(s) by {CLUSTERERS[method]} on "
        f"{CLUSTER_ON[on]}: silhouette {clustering.silhouette:.3f}, "
        f"{clustering.score_name} {clustering.score:.3f}."
    )


# -- against chance ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """The test's verdict: ``kind`` (``success``: more than chance, ``info``: undecided,
    ``warning``: not more than chance), an icon, the test's sentence (plain text), and a note
    (plain text, no markup) to append."""

    kind: str
    icon: str
    sentence: str
    note: str


def verdict(test: ChanceTest) -> Verdict:
    """The verdict of a fitted test against chance."""
    note = ""
    if test.n_rows_ < test.n_rows_total_:
        note = f" (scored on a random sample of {test.n_rows_} of {test.n_rows_total_} neurons)"
    if test.clustered_:
        return Verdict("success", ":material/check_circle:", test.sentence_, note)
    if test.undecided_:
        return Verdict("info", ":material/help:", test.sentence_, note)
    return Verdict("warning", ":material/warning:", test.sentence_, note)


def chance_caption(score_name: str, permutations: int, method: str, on: str) -> str:
    """What the test compares, and how its p-value is computed."""
    return (
        f"Silhouette and {score_name} of the real features against up to "
        f"{permutations} null versions of each null model, each clustered by the same "
        f"{CLUSTERERS[method]}"
        + (" after the same projection" if on == "map" else "")
        + f". Sequential (Besag & Clifford 1991): a null stops drawing once "
        f"{stopping_count(permutations, 0.05)} of its versions are as separated as the real "
        "clusters — the verdict can no longer change — and p = that number / versions drawn; "
        "a null that is beaten draws all P, and p = (1 + versions at least as separated) / "
        "(P + 1)."
    )


def _score_title(test: ChanceTest, score: str) -> str:
    return "silhouette" if score == "silhouette" else test.score_name_


def null_chart(test: ChanceTest) -> alt.HConcatChart | None:
    """The real scores against every null version (diamonds: the run's own ``E_0``);
    ``None`` when no null ran."""
    rows, references = [], []
    for result in test.results_.values():
        for score, values in result.scores.items():
            shown = _score_title(test, score)
            rows += [{"score": shown, "null": result.name, "value": float(v)} for v in values]
        for score, value in (result.reference or {}).items():
            references.append(
                {
                    "score": _score_title(test, score),
                    "null": result.name,
                    "value": value,
                    "label": f"the run's own {time_key(0)}",
                }
            )
    if not rows:
        return None
    observed = {
        "silhouette": test.observed_["silhouette"],
        test.score_name_: test.observed_["score"],
    }
    return cviz.null_chart(
        pd.DataFrame(rows), observed, pd.DataFrame(references) if references else None
    )


def null_table(test: ChanceTest) -> pd.DataFrame:
    """One row per null model: its P, its p-values and its median silhouette."""
    return pd.DataFrame(
        [
            {
                "null model": r.name,
                "P": r.n_max or r.n_permutations,
                "drawn": r.n_permutations,
                "silhouette p": r.p_values["silhouette"],
                f"{test.score_name_} p": r.p_values["score"],
                "null median silhouette": float(np.nanmedian(r.scores["silhouette"]))
                if np.isfinite(r.scores["silhouette"]).any()
                else np.nan,
                f"run's own {time_key(0)} silhouette": (r.reference or {}).get(
                    "silhouette", np.nan
                ),
            }
            for r in test.results_.values()
        ]
    )


# -- the clusters -----------------------------------------------------------------------------
def summary_table(summary: ClusterSummary) -> pd.DataFrame:
    """One row per cluster, as the page lists them."""
    return summary.table.drop(columns=["cluster"]).rename(
        columns={"name": "cluster", "typical": "most typical neuron"}
    )


def profiles_chart(summary: ClusterSummary, spec: FeatureSpec) -> alt.TopLevelMixin:
    """Each cluster's mean feature profile, titled by the features' scaling."""
    title = {"none": "value", "neuron": "z-score per neuron", "global": "standardised"}.get(
        spec.resolved_scale, "value"
    )
    return cviz.profiles_chart(summary.profiles, spec.kind, value_title=title)


def layers_chart(summary: ClusterSummary, trace: NetworkTrace) -> alt.TopLevelMixin:
    """The layers each cluster draws from, in the trace's layer order."""
    return cviz.cluster_layers_chart(summary.layer_counts, trace.layer_names())


def typical_table(summary: ClusterSummary) -> pd.DataFrame:
    """The most typical neurons of every cluster (nearest its centre)."""
    return summary.typical[["name", "rank", "signature", "distance"]].rename(
        columns={"name": "cluster"}
    )


def selected_rows(frame: pd.DataFrame, selected: Sequence[int]) -> tuple[pd.DataFrame, int]:
    """The map's rows of the ``selected`` neurons (without the drawing's columns), and how
    many selected neurons are not on the map."""
    rows = frame[frame["neuron"].isin(selected)]
    missing = len(set(selected) - set(rows["neuron"].tolist()))
    shown = rows.drop(columns=["color", "x", "y", "selected"]).reset_index(drop=True)
    return shown, missing


def labels_csv(
    features: NeuronFeatures, frame: pd.DataFrame, *, projector: str, method: str, on: str
) -> bytes:
    """Every neuron's cluster and place on the map, and why the neurons left out are, as CSV
    with a header line that says how they were made."""
    placed = frame[["signature", "neuron", "layer", "epoch", "cluster", "x", "y"]].copy()
    placed["excluded_because"] = ""
    left_out = features.excluded.assign(cluster="", x=np.nan, y=np.nan).rename(
        columns={"reason": "excluded_because"}
    )[placed.columns]
    out = pd.concat([placed, left_out], ignore_index=True)
    header = (
        f"# features: {features.spec.describe()}; projection: {projector}; "
        f"clustering: {method} on {on}\n"
    )
    return (header + out.to_csv(index=False)).encode()


# -- through training -------------------------------------------------------------------------
def through_time_problem(trace: NetworkTrace, spec: FeatureSpec) -> str | None:
    """Why the neurons cannot be followed through training with these features (``None``:
    they can)."""
    if not spec.per_epoch:
        return (
            "A trajectory already spans the epochs. Pick a per-epoch feature set (metrics, "
            "response, activations, weights) to watch the neurons move through training in one "
            "joint map."
        )
    if len(trace.epochs) < 2:
        return "This trace has one recorded epoch: nothing to follow through time."
    return None


def joint_size(trace: NetworkTrace, spec: FeatureSpec) -> int:
    """The points of the joint embedding: (neuron, epoch) pairs, at most
    :data:`MAX_JOINT_POINTS`."""
    n_neurons = sum(trace.layer(n).n_neurons for n in spec.layers)
    return min(n_neurons * len(trace.epochs), MAX_JOINT_POINTS)


def joint_points(
    trace: NetworkTrace,
    joint: JointEmbedding,
    epoch: int,
    features: NeuronFeatures,
    cluster_labels: np.ndarray | None,
) -> pd.DataFrame:
    """The neurons of the joint embedding at ``epoch`` (:func:`point_frame`), each with the
    cluster its feature row has (``cluster_labels``, one per row of ``features``); ``n/a``
    for a neuron without one."""
    at = joint.frame[joint.frame["epoch"] == epoch].reset_index(drop=True)
    label_of = (
        dict(zip(features.neuron_ids.tolist(), cluster_labels.tolist()))
        if cluster_labels is not None
        else {}
    )
    labels = np.array([label_of.get(int(n), -2) for n in at["neuron"]])
    points = point_frame(
        trace,
        at["neuron"].to_numpy(),
        at["layer"].to_numpy(),
        at["epoch"].to_numpy(),
        at[["x", "y"]].to_numpy(),
        None,
    )
    points["cluster"] = [cluster_name(int(c)) if c >= -1 else "n/a" for c in labels]
    return points


def joint_cluster_coloring(points: pd.DataFrame, cluster_epoch: int | None) -> Coloring:
    """Colour the joint map's points by the cluster found at ``cluster_epoch`` (noise and
    ``n/a`` last)."""
    names = points["cluster"]
    order = sorted(set(names), key=lambda s: (s in ("noise", "n/a"), s == "n/a", len(s), s))
    return Coloring(
        pd.Series(names.to_numpy()), f"cluster (at {time_key(cluster_epoch)})", "N", order, None
    )


def joint_extent(frame: pd.DataFrame) -> tuple[float, float, float, float]:
    """Fixed axes ``(x_min, x_max, y_min, y_max)`` around every point of every epoch (3 %
    margins), so that the map keeps its axes while the slider moves."""
    pad_x = 0.03 * float(frame["x"].max() - frame["x"].min() or 1.0)
    pad_y = 0.03 * float(frame["y"].max() - frame["y"].min() or 1.0)
    return (
        float(frame["x"].min() - pad_x),
        float(frame["x"].max() + pad_x),
        float(frame["y"].min() - pad_y),
        float(frame["y"].max() + pad_y),
    )
