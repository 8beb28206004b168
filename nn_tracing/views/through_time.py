"""Pure builders of the Clusters page's "Through training" section: (trace, settings) → the map
through time by any method, its estimate, its faithfulness in words, the visualisation
entropy, and its charts (the clickable map at one epoch; the map that scrubs in the browser).

The page (``ui/clusters_time.py``) draws the widgets and runs the fit on the analysis worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..analysis.cost import estimate_seconds
from ..analysis.embedding import (
    TIME_MAPS,
    FeatureSpec,
    JointEmbedding,
    entropy_by_epoch,
    map_through_time,
    visualisation_entropy,
)
from ..analysis.embedding.through_time import time_map_seconds
from ..progress import Progress
from ..timeaxis import time_key
from ..trace import NetworkTrace
from ..viz import clusters as cviz
from ..viz.through_time import scrub_chart
from .clusters import MAX_JOINT_POINTS, MAX_TRAILS, Coloring, NeuronMap, joint_extent

__all__ = [
    "DEFAULT_TIME_MAP",
    "TIME_MAPS",
    "embed_map",
    "entropy_caption",
    "faithfulness_caption",
    "map_params",
    "map_seconds",
    "scrub_map",
    "time_map",
]

#: The method the page starts with: PCA is exact (identical features, identical points) and
#: instant; the others are one click away.
DEFAULT_TIME_MAP = "pca"


def map_params(method: str, projector_params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of the map through time by ``method``, from the page's projector
    settings (the neighbourhood, distance and seed carry over where the method has them)."""
    params = {k: v for k, v in projector_params.items() if k != "method"}
    if method in ("aligned_umap", "mphate") and params.get("random_state") is None:
        params["random_state"] = 0  # these fits are always seeded
    if method != projector_params.get("method") and method in ("pca", "tsne", "umap"):
        params["metric"] = "euclidean" if method == "pca" else params.get("metric", "euclidean")
    if method == "tsne" and params.get("metric") not in ("euclidean", "cosine"):
        params["metric"] = "euclidean"
    return params


def map_seconds(
    method: str, rows: int, n_features: int, estimate: Callable[..., float] = estimate_seconds
) -> float:
    """Expected seconds of the map through time by ``method`` on ``rows`` (neuron, epoch) rows
    (``estimate``: the projectors' estimate, :func:`~nn_tracing.analysis.cost.estimate_seconds`)."""
    if method in ("pca", "tsne", "umap"):
        return estimate(method, rows, n_features=n_features)
    return time_map_seconds(method, rows)


def embed_map(
    trace: NetworkTrace,
    spec: FeatureSpec,
    method: str,
    params: dict[str, Any],
    progress: Progress,
) -> JointEmbedding:
    """The map through time by ``method`` (:func:`~nn_tracing.analysis.embedding.
    map_through_time`), at most :data:`~nn_tracing.views.clusters.MAX_JOINT_POINTS` points."""
    return map_through_time(
        trace, spec, method, params=params, max_points=MAX_JOINT_POINTS, progress=progress
    )


def faithfulness_caption(joint: JointEmbedding) -> str:
    """How faithful the map is, in words (empty when it was not measured)."""
    if joint.faithfulness is None:
        return ""
    return f"How faithful this {TIME_MAPS.get(joint.method, joint.method)} is: " + (
        joint.faithfulness.sentence()
    )


def entropy_caption(joint: JointEmbedding) -> str:
    """The map's visualisation entropy (M-PHATE's measure of how heterogeneous the hidden
    units are over training), with what it means."""
    coords = joint.frame[["x", "y"]].to_numpy(dtype=np.float64)
    score = visualisation_entropy(coords)
    by_epoch = entropy_by_epoch(joint.frame)
    first, last = by_epoch.iloc[0], by_epoch.iloc[-1]
    text = (
        f"Visualisation entropy of this map: {score:.2f} bits (of at most 6.64; the entropy of "
        "a 10 × 10 histogram of every point, Gigante et al. 2019). Higher means the units "
        "stay more varied over training, which the paper found with better generalisation; "
        f"each time's own points go from {first:.2f} at {time_key(int(by_epoch.index[0]))} "
        f"to {last:.2f} at {time_key(int(by_epoch.index[-1]))}."
    )
    if joint.method != "mphate":
        text += " (The paper's measure is on an M-PHATE map; this one is not.)"
    return text


def time_map(
    joint: JointEmbedding,
    points: pd.DataFrame,
    coloring: Coloring,
    epoch: int,
    selected: Sequence[int],
) -> NeuronMap:
    """The map through time at ``epoch``: ``points`` (:func:`~nn_tracing.views.clusters.
    joint_points`) coloured, on fixed axes, with the paths of the first
    :data:`~nn_tracing.views.clusters.MAX_TRAILS` ``selected`` neurons."""
    frame = joint.frame
    points = points.copy()
    points["color"] = coloring.values.to_numpy()
    trails_of = list(selected)[:MAX_TRAILS]
    trails = frame[frame["neuron"].isin(trails_of)].sort_values(["neuron", "epoch"])
    subtitle = [*joint.notes]
    if trails_of:
        subtitle.append(
            f"black: the paths of {len(trails_of)} selected neuron(s) through "
            f"{time_key(joint.epochs[0])}…{time_key(joint.epochs[-1])}"
        )
    name = TIME_MAPS.get(joint.method, joint.method)
    chart, cell_of_point = cviz.map_chart(
        points,
        title=f"{name[0].upper()}{name[1:]}: the neurons at {time_key(epoch)}",
        color_title=coloring.title,
        color_type=coloring.kind,
        color_domain=coloring.domain,
        metric=coloring.metric,
        subtitle=subtitle,
        extent=joint_extent(frame),
        trails=trails,
    )
    return NeuronMap(points, chart, cell_of_point)


def scrub_map(
    joint: JointEmbedding, trails: Sequence[int] = (), axis: str | None = None
) -> alt.LayerChart:
    """Every epoch of the map in one chart whose slider moves the neurons in the browser."""
    name = TIME_MAPS.get(joint.method, joint.method)
    return scrub_chart(
        joint.frame,
        joint.epochs,
        title=f"{name[0].upper()}{name[1:]}, scrubbed in the browser",
        subtitle=["drag the slider below the chart: the neurons move without reloading"],
        extent=joint_extent(joint.frame),
        trails=list(trails)[:MAX_TRAILS],
        axis=axis,
    )
