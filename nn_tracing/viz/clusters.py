"""Charts of the Clusters page: the neuron map, its nulls, and what each cluster holds.

* :func:`map_chart` — the 2-D map of the neurons (one point per neuron, coloured by layer,
  cluster, a metric, a health flag or an HMM state), with a click selection (:data:`CLICK`)
  and a box selection (:data:`BOX`); above :data:`~nn_tracing.viz.common.MARK_BUDGET` points
  it draws a grid of cells instead (:func:`bin_points`), each the count of its neurons,
  and says so. With ``trails`` it also draws the paths of chosen neurons through the epochs
  of a joint embedding.
* :func:`explained_variance_chart` — PCA's share of variance per component.
* :func:`null_chart` — the real score against each null's ``P`` versions.
* :func:`profiles_chart` — each cluster's mean feature profile and interquartile band, as
  small multiples; :func:`cluster_layers_chart` — the layers each cluster draws from.

Every data frame here is plain pandas; nothing imports Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..timeaxis import time_word
from .common import MARK_BUDGET, color_scale
from .palette import CATEGORICAL, HIGHLIGHT, MUTED, POSITIVE, REFERENCE, SERIES, categorical_scale

__all__ = [
    "BOX",
    "CLICK",
    "NOISE_COLOR",
    "bin_points",
    "cluster_layers_chart",
    "explained_variance_chart",
    "map_chart",
    "null_chart",
    "profiles_chart",
]

#: Name of the click selection on the map; its value holds ``cell`` (a row of the frame
#: drawn, or a grid cell when binned).
CLICK = "click"
#: Name of the box (interval) selection on the map; its value holds ``x`` and ``y`` ranges.
BOX = "box"
NOISE_COLOR = MUTED
#: Tooltip metrics of a neuron on the map, when the frame carries them.
TOOLTIP_METRICS: tuple[str, ...] = ("act_mean", "act_active", "selectivity", "w_norm", "grad_norm")


def nominal_scale(domain: Sequence[str]) -> alt.Scale:
    """A categorical scale: distinct colours in ``domain`` order, grey for ``noise`` and
    ``n/a`` (:func:`nn_tracing.viz.palette.categorical_scale`)."""
    return categorical_scale(domain)


def bin_points(
    frame: pd.DataFrame,
    *,
    color_type: str,
    budget: int = MARK_BUDGET,
    domain: tuple[float, float, float, float] | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Aggregate points into a square grid of at most ``budget`` cells.

    Parameters
    ----------
    frame
        One row per point: ``x``, ``y``, ``color``, ``neuron``, ``signature``.
    color_type
        ``N``: a cell takes its most common colour; ``Q``: the mean.
    domain
        ``(x_min, x_max, y_min, y_max)`` of the grid (default: the points' extent).

    Returns
    -------
    ``(cells, cell_of_point)``: one row per occupied cell (``cell``, ``x0``, ``x1``, ``y0``,
    ``y1``, ``x``, ``y`` (its centre), ``n``, ``color``, ``share`` (of the most common
    colour), ``neuron`` and ``signature`` of its point nearest the centre, ``neurons``), and
    the cell id of every point, array of shape (n_points,).
    """
    side = max(1, math.isqrt(budget))
    x, y = frame["x"].to_numpy(float), frame["y"].to_numpy(float)
    x0, x1, y0, y1 = domain or (x.min(), x.max(), y.min(), y.max())
    width = (x1 - x0) or 1.0
    height = (y1 - y0) or 1.0
    gx = np.clip(((x - x0) / width * side).astype(int), 0, side - 1)
    gy = np.clip(((y - y0) / height * side).astype(int), 0, side - 1)
    cell_of_point = gx * side + gy
    rows = []
    for cell, members in pd.Series(np.arange(len(frame))).groupby(cell_of_point):
        idx = members.to_numpy()
        cx, cy = divmod(int(cell), side)
        centre_x = x0 + (cx + 0.5) * width / side
        centre_y = y0 + (cy + 0.5) * height / side
        nearest = idx[np.argmin((x[idx] - centre_x) ** 2 + (y[idx] - centre_y) ** 2)]
        colors = frame["color"].iloc[idx]
        if color_type == "Q":
            values = pd.to_numeric(colors, errors="coerce")
            color: object = float(values.mean()) if values.notna().any() else float("nan")
            share = 1.0
        else:
            counts = colors.astype(str).value_counts()
            color, share = counts.index[0], float(counts.iloc[0] / idx.size)
        rows.append(
            {
                "cell": int(cell),
                "x0": x0 + cx * width / side,
                "x1": x0 + (cx + 1) * width / side,
                "y0": y0 + cy * height / side,
                "y1": y0 + (cy + 1) * height / side,
                "x": centre_x,
                "y": centre_y,
                "n": int(idx.size),
                "color": color,
                "share": share,
                "neuron": int(frame["neuron"].iloc[nearest]),
                "signature": str(frame["signature"].iloc[nearest]),
            }
        )
    return pd.DataFrame(rows), cell_of_point


def _color_encoding(
    color_title: str,
    color_type: str,
    domain: Sequence[str] | None,
    metric: str | None,
) -> alt.Color:
    if color_type == "Q":
        return (
            alt.when("isValid(datum.color) && isFinite(datum.color)")
            .then(
                alt.Color(
                    "color:Q",
                    title=color_title,
                    scale=color_scale(metric or ""),
                    legend=alt.Legend(orient="right"),
                )
            )
            .otherwise(alt.value(NOISE_COLOR))
        )
    scale = nominal_scale(domain) if domain is not None else alt.Scale(range=list(CATEGORICAL))
    return alt.Color("color:N", title=color_title, scale=scale, legend=alt.Legend(orient="right"))


def map_chart(
    frame: pd.DataFrame,
    *,
    title: str,
    color_title: str,
    color_type: str = "N",
    color_domain: Sequence[str] | None = None,
    metric: str | None = None,
    subtitle: Sequence[str] = (),
    extent: tuple[float, float, float, float] | None = None,
    trails: pd.DataFrame | None = None,
    budget: int = MARK_BUDGET,
    height: int = 480,
) -> tuple[alt.TopLevelMixin, np.ndarray]:
    """The map of the neurons.

    Parameters
    ----------
    frame
        One row per point: ``x``, ``y``, ``color`` (a category or a number), ``neuron``,
        ``layer``, ``signature``, ``cluster``; optionally ``selected`` (outlined) and the
        metrics of :data:`TOOLTIP_METRICS`, shown in the tooltip.
    color_type
        ``N`` (categories, in ``color_domain`` order) or ``Q`` (numbers; ``metric`` picks the
        scale).
    extent
        Fixed axis ranges ``(x_min, x_max, y_min, y_max)`` (the joint embedding keeps the
        same axes at every epoch).
    trails
        Paths to draw: ``neuron``, ``epoch``, ``x``, ``y``, ``signature`` (sorted by epoch).

    Returns
    -------
    ``(chart, cell_of_point)``: the chart, and for every row of ``frame`` the ``cell`` value
    a click on it reports (its row number, or its grid cell when binned).
    """
    subtitle = list(subtitle)
    x_scale = alt.Scale(domain=list(extent[:2]), nice=False, zero=False) if extent else None
    y_scale = alt.Scale(domain=list(extent[2:]), nice=False, zero=False) if extent else None
    scales = (x_scale or alt.Scale(zero=False), y_scale or alt.Scale(zero=False))
    click = alt.selection_point(name=CLICK, fields=["cell"], on="click", toggle="true")
    box = alt.selection_interval(name=BOX, encodings=["x", "y"])
    color = _color_encoding(color_title, color_type, color_domain, metric)
    if len(frame) > budget:
        cells, cell_of_point = bin_points(
            frame, color_type=color_type, budget=budget, domain=extent
        )
        subtitle.insert(
            0,
            f"binned: {len(frame)} neurons drawn as {len(cells)} grid cells (over the mark "
            f"budget of {budget}); opacity shows how many neurons a cell holds, a click "
            "selects the whole cell",
        )
        points = _cell_marks(cells, scales, color, color_title, color_type)
    else:
        cell_of_point = np.arange(len(frame))
        points = _point_marks(
            frame.assign(cell=cell_of_point), scales, color, color_title, color_type, click, box
        )
    points = points.add_params(click, box)
    layers: list[alt.Chart] = [points]
    if trails is not None and len(trails):
        layers += _trail_marks(trails, scales)
    chart = alt.layer(*layers) if len(layers) > 1 else points
    return (
        chart.properties(
            title=alt.Title(title, subtitle=subtitle, anchor="start") if subtitle else title,
            height=height,
        ),
        cell_of_point,
    )


def _cell_marks(
    cells: pd.DataFrame,
    scales: tuple[alt.Scale, alt.Scale],
    color: Any,
    color_title: str,
    color_type: str,
) -> alt.Chart:
    """A binned map: one rectangle per grid cell, opacity by how many neurons it holds."""
    tooltip = [
        alt.Tooltip("signature:N", title="nearest the centre"),
        alt.Tooltip("n:Q", title="neurons"),
        alt.Tooltip("color:N" if color_type == "N" else "color:Q", title=color_title),
    ]
    if color_type == "N":
        tooltip.append(alt.Tooltip("share:Q", title="share of that colour", format=".0%"))
    return (
        alt.Chart(cells)
        .mark_rect(stroke=None)
        .encode(
            x=alt.X("x0:Q", title=None, scale=scales[0]),
            x2="x1:Q",
            y=alt.Y("y0:Q", title=None, scale=scales[1]),
            y2="y1:Q",
            color=color,
            opacity=alt.Opacity("n:Q", scale=alt.Scale(range=[0.35, 1]), legend=None),
            tooltip=tooltip,
        )
    )


def _point_marks(
    data: pd.DataFrame,
    scales: tuple[alt.Scale, alt.Scale],
    color: Any,
    color_title: str,
    color_type: str,
    click: alt.Parameter,
    box: alt.Parameter,
) -> alt.Chart:
    """One circle per neuron, outlined when clicked, boxed or ``selected``."""
    if "selected" not in data:
        data = data.assign(selected=False)
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("cluster:N", title="cluster"),
    ]
    if color_title not in ("cluster", "layer"):
        tooltip.append(
            alt.Tooltip("color:N" if color_type == "N" else "color:Q", title=color_title)
        )
    tooltip += [alt.Tooltip(f"{m}:Q", title=m, format=".4g") for m in TOOLTIP_METRICS if m in data]
    size = 60 if len(data) < 300 else 30 if len(data) < 2000 else 12
    return (
        alt.Chart(data)
        .mark_circle(size=size, opacity=0.85)
        .encode(
            x=alt.X("x:Q", title=None, scale=scales[0]),
            y=alt.Y("y:Q", title=None, scale=scales[1]),
            color=color,
            stroke=alt.when(click, empty=False)
            .then(alt.value(REFERENCE))
            .when(box, empty=False)
            .then(alt.value(REFERENCE))
            .when("datum.selected")
            .then(alt.value(REFERENCE))
            .otherwise(alt.value(None)),
            strokeWidth=alt.when("datum.selected").then(alt.value(2.0)).otherwise(alt.value(1.0)),
            tooltip=tooltip,
        )
    )


def _trail_marks(trails: pd.DataFrame, scales: tuple[alt.Scale, alt.Scale]) -> list[alt.Chart]:
    """Each trailed neuron's path through the epochs: a line and its points."""
    path = alt.Chart(trails).encode(
        x=alt.X("x:Q", scale=scales[0]),
        y=alt.Y("y:Q", scale=scales[1]),
        detail="neuron:N",
        order="epoch:Q",
        tooltip=[
            alt.Tooltip("signature:N", title="signature"),
            alt.Tooltip("epoch:Q", title=time_word()),
        ],
    )
    return [
        path.mark_line(color=REFERENCE, strokeWidth=1.2, opacity=0.7),
        path.mark_point(color=REFERENCE, size=18, filled=True, opacity=0.7),
    ]


def explained_variance_chart(ratios: np.ndarray) -> alt.Chart:
    """PCA: the share of the variance of each component (the map shows the first two)."""
    frame = pd.DataFrame(
        {
            "component": [f"PC{i + 1}" for i in range(len(ratios))],
            "share": np.asarray(ratios, dtype=float),
            "shown": ["on the map" if i < 2 else "not shown" for i in range(len(ratios))],
        }
    )
    frame["cumulative"] = frame["share"].cumsum()
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("component:N", sort=list(frame["component"]), title=None),
            y=alt.Y("share:Q", title="share of variance", axis=alt.Axis(format="%")),
            color=alt.Color(
                "shown:N",
                scale=alt.Scale(domain=["on the map", "not shown"], range=[SERIES, MUTED]),
                legend=alt.Legend(title=None, orient="top"),
            ),
            tooltip=[
                alt.Tooltip("component:N"),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("cumulative:Q", format=".1%"),
            ],
        )
        .properties(title="PCA: explained variance", height=160)
    )


def null_chart(
    frame: pd.DataFrame, observed: dict[str, float], references: pd.DataFrame | None = None
) -> alt.HConcatChart:
    """The real score against every null version, one panel per score.

    Parameters
    ----------
    frame
        ``score`` (``silhouette`` or the algorithm's score name), ``null`` (its label),
        ``value`` — one row per null version.
    observed
        ``{score: value}`` of the real features (the red rule).
    references
        Optional ``score``, ``null``, ``value`` rows drawn as diamonds (the run's own E_0).
    """
    panels = []
    nulls = list(dict.fromkeys(frame["null"]))
    for score in dict.fromkeys(frame["score"]):
        data = frame[frame["score"] == score]
        value = observed.get(score, float("nan"))
        finite = data["value"][np.isfinite(data["value"])]
        low = min([*finite.tolist(), value if math.isfinite(value) else 0.0, 0.0])
        high = max([*finite.tolist(), value if math.isfinite(value) else 0.0])
        scale = alt.Scale(domain=[low, high + 0.05 * (high - low or 1)], nice=False)
        base = alt.Chart(data).encode(
            x=alt.X("value:Q", title=score, scale=scale),
            y=alt.Y("null:N", title=None, sort=nulls),
        )
        parts: list[alt.Chart] = [
            base.mark_tick(thickness=2, size=18, opacity=0.6, color=SERIES).encode(
                tooltip=[alt.Tooltip("null:N"), alt.Tooltip("value:Q", format=".3f")]
            )
        ]
        if math.isfinite(value):
            parts.append(
                alt.Chart(pd.DataFrame({"value": [value], "label": ["real features"]}))
                .mark_rule(color=HIGHLIGHT, strokeWidth=2.5)
                .encode(
                    x="value:Q",
                    tooltip=[alt.Tooltip("label:N"), alt.Tooltip("value:Q", format=".3f")],
                )
            )
        if references is not None and len(references):
            own = references[references["score"] == score]
            if len(own):
                parts.append(
                    alt.Chart(own)
                    .mark_point(shape="diamond", size=110, filled=True, color=POSITIVE)
                    .encode(
                        x="value:Q",
                        y=alt.Y("null:N", sort=nulls),
                        tooltip=[alt.Tooltip("label:N"), alt.Tooltip("value:Q", format=".3f")],
                    )
                )
        panels.append(alt.layer(*parts).properties(height=max(60, 40 * len(nulls)), width=300))
    return alt.hconcat(*panels).properties(
        title=alt.Title(
            "Real features (red) against each null's versions (blue ticks)",
            subtitle=["orange diamond: the run's own recorded E_0"]
            if references is not None and len(references)
            else [],
            anchor="start",
        )
    )


def _profile_x(profiles: pd.DataFrame, kind: str) -> tuple[alt.X, str]:
    if kind == "trajectory":
        return alt.X("position:Q", title=time_word(), scale=alt.Scale(nice=False)), "Q"
    if kind in ("metrics", "response"):
        order = list(dict.fromkeys(profiles["column"]))
        return alt.X("column:N", title=None, sort=order), "N"
    title = "probe sample (sorted by class)" if kind == "activations" else "incoming weight"
    return alt.X("position:Q", title=title, scale=alt.Scale(nice=False)), "Q"


def bin_profile_columns(profiles: pd.DataFrame, max_columns: int) -> tuple[pd.DataFrame, int]:
    """Average consecutive columns (by ``position``) so each cluster keeps at most
    ``max_columns`` points; returns the frame and the columns per point (1: unchanged)."""
    n_columns = profiles.groupby("cluster")["column"].size().max()
    if n_columns <= max_columns:
        return profiles, 1
    size = math.ceil(n_columns / max_columns)
    data = profiles.copy()
    data["rank"] = data.groupby("cluster").cumcount() // size
    binned = (
        data.groupby(["cluster", "name", "rank"], sort=False)
        .agg(position=("position", "mean"), mean=("mean", "mean"), p25=("p25", "mean"))
        .join(data.groupby(["cluster", "name", "rank"], sort=False)["p75"].mean())
        .reset_index()
    )
    binned["column"] = binned["position"].round(1).astype(str)
    return binned.drop(columns=["rank"]), size


def profiles_chart(
    profiles: pd.DataFrame,
    kind: str,
    *,
    value_title: str,
    columns: int = 4,
    budget: int = MARK_BUDGET,
) -> alt.FacetChart:
    """Small multiples: each cluster's mean feature profile (line) and interquartile band.

    ``profiles`` is :attr:`~nn_tracing.analysis.embedding.ClusterSummary.profiles`; ``kind``
    the feature set (it decides the x axis). Above the mark budget, consecutive features are
    averaged and the title says so.
    """
    names = list(dict.fromkeys(profiles["name"]))
    per_cluster = max(8, budget // max(2 * len(names), 1))
    data, size = bin_profile_columns(profiles, per_cluster)
    x, x_type = _profile_x(data, kind)
    base = alt.Chart().encode(x=x)
    band = base.mark_area(opacity=0.25, color=SERIES).encode(
        y=alt.Y("p25:Q", title=value_title, axis=alt.Axis(titleLimit=120)), y2="p75:Q"
    )
    line = base.mark_line(point=x_type == "N", color=SERIES).encode(
        y=alt.Y("mean:Q", title=value_title, axis=alt.Axis(titleLimit=120)),
        tooltip=[
            alt.Tooltip("name:N", title="cluster"),
            alt.Tooltip("column:N", title="feature"),
            alt.Tooltip("mean:Q", format=".3g"),
            alt.Tooltip("p25:Q", format=".3g"),
            alt.Tooltip("p75:Q", format=".3g"),
        ],
    )
    subtitle = ["line: the cluster's mean; band: its 25th–75th percentile"]
    if size > 1:
        subtitle.insert(0, f"each point the mean of {size} consecutive features (mark budget)")
    return (
        alt.layer(band, line, data=data)
        .properties(width=170, height=120)
        .facet(facet=alt.Facet("name:N", title=None, sort=names), columns=columns)
        .resolve_scale(y="shared")
        .properties(title=alt.Title("Mean feature profile per cluster", subtitle=subtitle))
    )


def cluster_layers_chart(layer_counts: pd.DataFrame, layer_order: Sequence[str]) -> alt.Chart:
    """How many neurons of each layer every cluster holds (stacked bars)."""
    names = list(dict.fromkeys(layer_counts["name"]))
    return (
        alt.Chart(layer_counts)
        .mark_bar()
        .encode(
            y=alt.Y("name:N", sort=names, title=None),
            x=alt.X("count:Q", title="neurons", stack="zero"),
            color=alt.Color(
                "layer:N", sort=list(layer_order), scale=nominal_scale(list(layer_order))
            ),
            tooltip=[
                alt.Tooltip("name:N", title="cluster"),
                alt.Tooltip("layer:N"),
                alt.Tooltip("count:Q", title="neurons"),
            ],
        )
        .properties(title="Layers in each cluster", height=max(80, 22 * len(names)))
    )
