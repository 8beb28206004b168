"""Charts of the Breadcrumbs page: attribution, the trail, ablation, pruning, intervention.

Pure builders (no Streamlit): data frames come from :mod:`nn_tracing.analysis.attribution`
and :mod:`nn_tracing.analysis.intervention`; each function returns an Altair chart (or, for
the trail, Graphviz DOT text for ``st.graphviz_chart``). Neuron marks carry the signature
``E_<epoch>/L_<layer>/n_<id>`` in their tooltip and the fields ``neuron`` and ``epoch`` that a
click selects (selection :data:`~nn_tracing.viz.brain.PICK`, the Overview's). Charts that would
exceed :data:`~nn_tracing.viz.common.MARK_BUDGET` marks show a part and say so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from ..timeaxis import time_word
from ..trace import signature_column
from .brain import PICK
from .common import INTEGER_AXIS, MARK_BUDGET, diverging_scale
from .palette import (
    COUNT_SCHEME,
    FRAME,
    MISSING,
    NEGATIVE,
    NEGATIVE_LIGHT,
    NULL_BAND,
    NULL_LINE,
    POSITIVE,
    POSITIVE_LIGHT,
    REFERENCE,
    SERIES,
    WHITE,
    categorical_colors,
    categorical_scale,
    sign_scale,
    signed_color,
)

__all__ = [
    "NEGATIVE",
    "POSITIVE",
    "ablation_curves_chart",
    "attribution_chart",
    "confusion_chart",
    "decision_boundary_chart",
    "input_image_chart",
    "pruning_chart",
    "selectivity_effect_chart",
    "since_when_chart",
    "trail_dot",
]


_ORDER_TITLES = {
    "attribution": "most important first",
    "reverse": "least important first",
    "selectivity": "most selective first",
    "random": "random order",
}


def _sign_color(field: str = "score") -> alt.Color:
    return alt.Color(
        "sign:N",
        scale=sign_scale(),
        legend=alt.Legend(title=f"{field} sign", orient="top"),
    )


def attribution_chart(
    frame: pd.DataFrame,
    *,
    title: str,
    subtitle: Sequence[str] = (),
    budget: int = MARK_BUDGET,
) -> alt.FacetChart:
    """One panel per layer: its neurons by |score| (rank 1 first), bar height the signed score.

    ``frame`` is :meth:`~nn_tracing.analysis.attribution.Attribution.frame` (``layer``,
    ``neuron``, ``signature``, ``score``, ``magnitude``, ``share``, ``rank``, ``epoch``). Above
    ``budget`` bars, each layer shows its top neurons only and the subtitle says so.
    """
    layers = list(dict.fromkeys(frame["layer"]))
    lines = list(subtitle)
    data = frame
    if len(frame) > budget:
        per_layer = max(1, budget // max(len(layers), 1))
        data = frame[frame["rank"] <= per_layer]
        lines.append(
            f"showing the top {per_layer} neurons of each layer by |score| ({len(data)} of "
            f"{len(frame)} neurons; over the mark budget of {budget})"
        )
    data = data.assign(sign=np.where(data["score"] >= 0, "positive", "negative"))
    lines.append("bars ordered by |score| within each layer; click a bar to open the neuron")
    pick = alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("rank:O", title="rank in layer by |score|", axis=alt.Axis(labels=False)),
            y=alt.Y("score:Q", title="score"),
            color=_sign_color(),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("score:Q", format=".4g"),
                alt.Tooltip("magnitude:Q", title="mean |attribution|", format=".4g"),
                alt.Tooltip("share:Q", title="share of layer", format=".1%"),
                alt.Tooltip("rank:Q"),
            ],
        )
        .add_params(pick)
        .properties(width=220, height=150)
        .facet(
            facet=alt.Facet(
                "layer:N", sort=layers, title=None, header=alt.Header(labelFontSize=12)
            ),
            columns=min(len(layers), 3),  # three panels fit the page width
        )
        .resolve_scale(x="independent", y="independent")
        .properties(title=alt.Title(title, subtitle=lines, anchor="start"))
    )


def input_image_chart(
    frame: pd.DataFrame, image_shape: Sequence[int], *, title: str, size: int = 220
) -> alt.Chart:
    """The input features' scores as an image (each pixel coloured by its signed score).

    ``frame`` holds the input layer's rows of
    :meth:`~nn_tracing.analysis.attribution.Attribution.frame` in feature order; pixel ``i``
    sits at row ``i // width``, column ``i % width``.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    index = np.arange(len(frame))
    data = frame.reset_index(drop=True).assign(
        column=index % width,
        column2=index % width + 1,
        row=index // width,
        row2=index // width + 1,
    )
    pick = alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")
    return (
        alt.Chart(data)
        .mark_rect(stroke=None)
        .encode(
            x=alt.X("column:Q", axis=None, scale=alt.Scale(domain=[0, width], nice=False)),
            x2="column2:Q",
            y=alt.Y(
                "row:Q", axis=None, scale=alt.Scale(domain=[height, 0], nice=False, zero=False)
            ),
            y2="row2:Q",
            color=alt.Color(
                "score:Q",
                scale=diverging_scale(data["score"].to_numpy()),
                legend=alt.Legend(title="score", orient="right"),
            ),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("score:Q", format=".4g"),
                alt.Tooltip("share:Q", title="share of inputs", format=".1%"),
            ],
        )
        .add_params(pick)
        .properties(
            title=alt.Title(
                "Input pixels",
                subtitle=[title, "orange supports the class,", "blue opposes it"],
                anchor="start",
            ),
            width=size,
            height=round(size * height / max(width, 1)),
            autosize=alt.AutoSizeParams(type="pad"),
        )
    )


def _dot_escape(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def trail_dot(
    nodes: pd.DataFrame,
    edges: pd.DataFrame,
    *,
    labels: dict[int, str] | None = None,
    max_edges_per_target: int = 6,
) -> str:
    """The breadcrumb trail as a Graphviz DOT graph, input on the left, output on the right.

    Node border width follows the neuron's share of its layer's |score| and its fill the sign
    of the score; edge width follows |flow| relative to the largest flow between the same two
    layers, edge colour its sign. Each node keeps its ``max_edges_per_target`` strongest
    incoming edges so that wide trails stay readable.

    Parameters
    ----------
    nodes, edges
        :attr:`~nn_tracing.analysis.attribution.Trail.nodes` and ``.edges``.
    labels
        Optional names for neurons (input features, classes) by global id.
    """
    labels = labels or {}
    lines = [
        "digraph trail {",
        '  rankdir=LR; splines=true; nodesep=0.15; ranksep=1.1; bgcolor="transparent";',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        "  edge [arrowsize=0.5];",
    ]
    depth_max = int(nodes["depth"].max()) if len(nodes) else 0
    for depth in range(depth_max, -1, -1):
        layer_nodes = nodes[nodes["depth"] == depth]
        if layer_nodes.empty:
            continue
        layer = str(layer_nodes["layer"].iloc[0])
        lines.append(f'  subgraph "cluster_{_dot_escape(layer)}" {{')
        lines.append(
            f'    label="L_{_dot_escape(layer)}"; color="{FRAME}"; fontname="Helvetica"; '
            "fontsize=10;"
        )
        for row in layer_nodes.itertuples():
            share = row.share if isinstance(row.share, float) and math.isfinite(row.share) else 1
            name = labels.get(int(row.neuron))
            title = f"n_{row.neuron}" + (f" · {name}" if name else "")
            is_root = depth == 0
            fill = MISSING if is_root else (POSITIVE_LIGHT if row.score >= 0 else NEGATIVE_LIGHT)
            score = "target" if is_root else f"{row.score:+.3g} ({share:.0%})"
            lines.append(
                f'    "{row.neuron}" [label="{_dot_escape(title)}\\n{_dot_escape(score)}", '
                f'fillcolor="{fill}", penwidth={0.8 + 4 * min(share, 1):.2f}, '
                f'tooltip="{_dot_escape(row.signature)}"];'
            )
        lines.append("  }")
    if len(edges):
        layer_of = dict(zip(nodes["neuron"], nodes["layer"], strict=False))
        data = edges.assign(
            pair=[
                f"{layer_of.get(s)}>{layer_of.get(t)}"
                for s, t in zip(edges["source"], edges["target"], strict=True)
            ],
            strength=edges["flow"].abs(),
        )
        data = (
            data.sort_values("strength", ascending=False)
            .groupby("target", sort=False)
            .head(max_edges_per_target)
        )
        largest = data.groupby("pair")["strength"].transform("max").replace(0, np.nan)
        for row, top in zip(data.itertuples(), largest, strict=True):
            relative = row.strength / top if top and math.isfinite(top) else 0.0
            if relative < 0.02:
                continue
            color = signed_color(row.flow)
            lines.append(
                f'  "{row.source}" -> "{row.target}" [penwidth={0.4 + 6 * relative:.2f}, '
                f'color="{color}", tooltip="flow {row.flow:+.3g} (weight {row.weight:+.3g})"];'
            )
    lines.append("}")
    return "\n".join(lines)


def since_when_chart(history: pd.DataFrame, *, title: str) -> alt.Chart:
    """Each trail neuron's score over the recorded epochs (``history`` from
    :func:`~nn_tracing.analysis.attribution.attribution_history`)."""
    data = history.assign(
        neuron_label=[
            f"L_{layer}/n_{n}" for layer, n in zip(history["layer"], history["neuron"], strict=True)
        ]
    )
    pick = alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")
    x = alt.X(
        "epoch:Q", title=time_word(), axis=alt.Axis(**INTEGER_AXIS), scale=alt.Scale(nice=False)
    )
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("score:Q", format=".4g"),
        alt.Tooltip("magnitude:Q", title="mean |attribution|", format=".4g"),
    ]
    base = alt.Chart(data).encode(
        x=x,
        y=alt.Y("score:Q", title="score"),
        color=alt.Color(
            "neuron_label:N",
            title="trail neuron",
            # as many columns as keep the legend within the plot's height (its labels would
            # be cut off below the chart): one entry takes about 30 px in the app's theme
            legend=alt.Legend(columns=max(1, math.ceil(data["neuron_label"].nunique() / 8))),
        ),
        tooltip=tooltip,
    )
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color=REFERENCE).encode(y="y:Q")
    return alt.layer(
        zero, base.mark_line(), base.mark_point(filled=True, size=36).add_params(pick)
    ).properties(
        title=alt.Title(
            title,
            subtitle=["E_0 is the untrained network: its scores are the baseline"],
            anchor="start",
        ),
        height=240,
    )


def ablation_curves_chart(
    curves: pd.DataFrame,
    *,
    layer: str,
    chance: float,
    band: tuple[float, float] = (5.0, 95.0),
    n_repeats: int = 0,
) -> alt.LayerChart:
    """Accuracy against the number of ``layer``'s neurons ablated, one line per order; the
    random order as its mean (dashed) and band."""
    data = curves.assign(order_title=curves["order"].map(_ORDER_TITLES).fillna(curves["order"]))
    x = alt.X(
        "k:Q",
        title=f"neurons of {layer} ablated",
        axis=alt.Axis(**INTEGER_AXIS),
        scale=alt.Scale(nice=False),
    )
    y = alt.Y("accuracy:Q", title="probe accuracy", scale=alt.Scale(domain=[0, 1]))
    color = alt.Color(
        "order_title:N",
        title="order",
        sort=list(_ORDER_TITLES.values()),
        scale=alt.Scale(
            domain=list(_ORDER_TITLES.values()),
            range=[*categorical_colors(3), NULL_LINE],
        ),
    )
    tooltip = [
        alt.Tooltip("order_title:N", title="order"),
        alt.Tooltip("k:Q", title="ablated"),
        alt.Tooltip("accuracy:Q", format=".3f"),
        alt.Tooltip("low:Q", title=f"{band[0]:g}th percentile", format=".3f"),
        alt.Tooltip("high:Q", title=f"{band[1]:g}th percentile", format=".3f"),
    ]
    random = data[data["order"] == "random"]
    fixed = data[data["order"] != "random"]
    layers = []
    if len(random):
        layers.append(
            alt.Chart(random)
            .mark_area(opacity=0.2, color=NULL_BAND)
            .encode(x=x, y=alt.Y("low:Q", title="probe accuracy"), y2="high:Q", tooltip=tooltip)
        )
        layers.append(
            alt.Chart(random)
            .mark_line(strokeDash=[4, 3])
            .encode(x=x, y=y, color=color, tooltip=tooltip)
        )
    layers.append(
        alt.Chart(fixed).mark_line(point=True).encode(x=x, y=y, color=color, tooltip=tooltip)
    )
    layers.append(
        alt.Chart(pd.DataFrame({"chance": [chance]}))
        .mark_rule(color=NULL_LINE, strokeDash=[2, 2])
        .encode(y="chance:Q", tooltip=[alt.Tooltip("chance:Q", title="chance", format=".3f")])
    )
    subtitle = [f"dotted: chance ({chance:.2f}, the largest class share)"]
    if len(random):
        subtitle.append(
            f"grey band: {band[0]:g}th–{band[1]:g}th percentile of {n_repeats} random orders; "
            "dashed: their mean"
        )
    return alt.layer(*layers).properties(
        title=alt.Title(f"Ablation curves of {layer}", subtitle=subtitle, anchor="start"),
        height=280,
    )


def selectivity_effect_chart(neurons: pd.DataFrame, *, layer: str, epoch: int) -> alt.Chart:
    """Class selectivity against the rise in probe loss when the neuron alone is ablated."""
    data = neurons.assign(signature=signature_column(epoch, layer, neurons["neuron"]), epoch=epoch)
    pick = alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")
    return (
        alt.Chart(data.dropna(subset=["selectivity", "loss_rise"]))
        .mark_circle(size=60, color=SERIES)
        .encode(
            x=alt.X("selectivity:Q", title="class selectivity index"),
            y=alt.Y("loss_rise:Q", title="probe loss rise when ablated alone"),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("selectivity:Q", format=".3f"),
                alt.Tooltip("loss_rise:Q", title="loss rise", format=".4g"),
                alt.Tooltip("accuracy_drop:Q", title="accuracy drop", format=".3f"),
                alt.Tooltip("importance:Q", format=".4g"),
            ],
        )
        .add_params(pick)
        .properties(
            title=alt.Title(
                f"Selectivity against importance, {layer}",
                subtitle=["one point per neuron; click to open it"],
                anchor="start",
            ),
            height=260,
        )
    )


def confusion_chart(
    before: np.ndarray, after: np.ndarray, class_names: Sequence[str], *, max_classes: int = 30
) -> alt.HConcatChart | None:
    """Confusion matrices before and after side by side (``None`` above ``max_classes``)."""
    k = before.shape[0]
    if k > max_classes:
        return None
    names = [str(c) for c in class_names] if len(class_names) == k else [str(i) for i in range(k)]
    panels = []
    for label, matrix in (("before", before), ("after", after)):
        true, predicted = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        data = pd.DataFrame(
            {
                "true": [names[i] for i in true.ravel()],
                "predicted": [names[i] for i in predicted.ravel()],
                "count": matrix.ravel(),
                "change": (after - before).ravel(),
            }
        )
        base = alt.Chart(data).encode(
            x=alt.X("predicted:N", sort=names, title="predicted"),
            y=alt.Y("true:N", sort=names, title="true class"),
        )
        cells = base.mark_rect().encode(
            color=alt.Color("count:Q", scale=alt.Scale(scheme=COUNT_SCHEME), legend=None),
            tooltip=[
                alt.Tooltip("true:N"),
                alt.Tooltip("predicted:N"),
                alt.Tooltip("count:Q"),
                alt.Tooltip("change:Q", title="after − before"),
            ],
        )
        text = base.mark_text(fontSize=11).encode(
            text="count:Q",
            color=alt.condition(
                alt.datum.count > float(matrix.max()) / 2,
                alt.value(WHITE),
                alt.value(REFERENCE),
            ),
        )
        panels.append(
            alt.layer(cells, text).properties(
                title=label, width=min(40 * k + 40, 320), height=min(40 * k + 40, 320)
            )
        )
    return alt.hconcat(*panels).properties(
        title=alt.Title("Confusion on the probe set", anchor="start")
    )


def pruning_chart(
    curve: pd.DataFrame,
    *,
    chosen_k: int | None,
    accuracy_after: float | None,
    n_repeats: int,
    chance: float,
) -> alt.LayerChart:
    """Accuracy against neurons pruned per hidden layer: least important first vs random."""
    x = alt.X(
        "k:Q",
        title="neurons pruned in every hidden layer",
        axis=alt.Axis(**INTEGER_AXIS),
        scale=alt.Scale(nice=False),
    )
    tooltip = [
        alt.Tooltip("k:Q", title="pruned per layer"),
        alt.Tooltip("accuracy:Q", title="least important first", format=".3f"),
        alt.Tooltip("random_mean:Q", title="random (mean)", format=".3f"),
        alt.Tooltip("random_low:Q", title="random 5th percentile", format=".3f"),
        alt.Tooltip("random_high:Q", title="random 95th percentile", format=".3f"),
        alt.Tooltip("parameters:Q", format=","),
    ]
    base = alt.Chart(curve)
    layers = [
        base.mark_area(opacity=0.2, color=NULL_BAND).encode(
            x=x,
            y=alt.Y("random_low:Q", title="probe accuracy", scale=alt.Scale(domain=[0, 1])),
            y2="random_high:Q",
            tooltip=tooltip,
        ),
        base.mark_line(strokeDash=[4, 3], color=NULL_LINE).encode(
            x=x, y="random_mean:Q", tooltip=tooltip
        ),
        base.mark_line(point=True, color=SERIES).encode(x=x, y="accuracy:Q", tooltip=tooltip),
        alt.Chart(pd.DataFrame({"chance": [chance]}))
        .mark_rule(color=NULL_LINE, strokeDash=[2, 2])
        .encode(y="chance:Q"),
    ]
    if chosen_k is not None and accuracy_after is not None and chosen_k > 0:
        layers.append(
            alt.Chart(pd.DataFrame({"k": [chosen_k], "accuracy": [accuracy_after]}))
            .mark_point(shape="diamond", size=140, filled=True, color=REFERENCE)
            .encode(
                x="k:Q",
                y="accuracy:Q",
                tooltip=[
                    alt.Tooltip("k:Q", title="chosen k"),
                    alt.Tooltip("accuracy:Q", title="pruned model", format=".3f"),
                ],
            )
        )
    return alt.layer(*layers).properties(
        title=alt.Title(
            "Pruning the least important neurons against pruning random ones",
            subtitle=[
                f"blue: least important first; grey: mean and 5th–95th percentile of "
                f"{n_repeats} random prunings of the same sizes; dotted: chance",
                "black diamond: the pruned model (its layers may differ in k)",
            ],
            anchor="start",
        ),
        height=280,
    )


def decision_boundary_chart(
    xs: np.ndarray,
    ys: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    confidence_before: np.ndarray,
    confidence_after: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
    flipped: np.ndarray,
    class_names: Sequence[str],
    *,
    feature_names: Sequence[str] = ("x0", "x1"),
    budget: int = MARK_BUDGET,
    random_state: int = 0,
    standardised_points: np.ndarray | None = None,
) -> alt.HConcatChart:
    """The predicted class over the input plane, before and after, with the probe samples on
    top (flipped ones outlined in black).

    ``xs``, ``ys`` and ``points`` are in whatever units the caller chose: with
    ``standardised_points`` (what the network read, one row per point) they are the dataset's
    own units, the axes say so and each point's tooltip adds its standardised values; without,
    the axes say "standardised".

    Each panel draws ``len(xs) * len(ys)`` cells and the probe points; above half the mark
    budget per panel, a random subset of the points (every flipped one kept) is drawn and the
    subtitle says so.
    """
    names = [str(c) for c in class_names]
    k = max(len(names), int(max(before.max(), after.max(), labels.max())) + 1)
    names = names if len(names) == k else [str(i) for i in range(k)]
    shown, flipped_mask, note = _drawn_points(
        labels, flipped, len(xs) * len(ys), budget, random_state
    )
    probe = pd.DataFrame(
        {
            "x": points[shown, 0],
            "y": points[shown, 1],
            "label": [names[int(i)] for i in labels[shown]],
            "sample": shown,
            "flipped": flipped_mask[shown],
        }
    )
    if standardised_points is not None:
        probe["x_std"] = standardised_points[shown, 0]
        probe["y_std"] = standardised_points[shown, 1]
    fx, fy = (
        (str(feature_names[0]), str(feature_names[1])) if len(feature_names) >= 2 else ("x0", "x1")
    )
    plane = _plane(xs, ys, fx, fy, standardised=standardised_points is not None)
    panels = [
        _boundary_panel(plane, title, predicted, confidence, probe, names)
        for title, predicted, confidence in (
            ("before", before, confidence_before),
            ("after", after, confidence_after),
        )
    ]
    subtitle = [
        "cells: the predicted class over the plane (paler: less confident); points: the probe "
        "set by true class, outlined in black where the prediction flipped",
        *note,
    ]
    return alt.hconcat(*panels).properties(
        title=alt.Title("Decision boundary before and after", subtitle=subtitle, anchor="start")
    )


def _drawn_points(
    labels: np.ndarray, flipped: np.ndarray, n_cells: int, budget: int, random_state: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Which probe samples a panel draws beside its ``n_cells`` cells: all, or above half the
    mark budget a seeded subset keeping every flipped one; the flipped mask; the note."""
    room = max(budget // 2 - n_cells, 50)
    flipped_mask = np.zeros(len(labels), dtype=bool)
    flipped_mask[np.asarray(flipped, dtype=np.int64)] = True
    if len(labels) <= room:
        return np.arange(len(labels)), flipped_mask, []
    rng = np.random.default_rng(random_state)
    rest = np.flatnonzero(~flipped_mask)
    keep = rng.choice(rest, size=max(room - int(flipped_mask.sum()), 0), replace=False)
    shown = np.sort(np.concatenate([np.flatnonzero(flipped_mask), keep]))
    note = (
        f"{len(shown)} of {len(labels)} probe samples drawn (every flipped one; over the "
        f"mark budget of {budget})"
    )
    return shown, flipped_mask, [note]


@dataclass(frozen=True)
class _Plane:
    """The input plane both decision-boundary panels share: every grid cell's edges (a cell
    centred on each (x, y)), the axes (their scales span the cells), and the probe points'
    tooltip."""

    cells: pd.DataFrame
    x_scale: alt.Scale
    y_scale: alt.Scale
    x_title: str
    y_title: str
    tips: list[alt.Tooltip]


def _plane(xs: np.ndarray, ys: np.ndarray, fx: str, fy: str, standardised: bool) -> _Plane:
    """The plane of ``xs`` × ``ys``; ``standardised``: the points' standardised values are
    known, so the axes are in the dataset's units and the tooltip adds the standardised ones."""
    dx = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
    dy = float(ys[1] - ys[0]) if len(ys) > 1 else 1.0
    gx, gy = np.meshgrid(xs, ys)
    cells = pd.DataFrame(
        {
            "x": gx.ravel() - dx / 2,
            "x2": gx.ravel() + dx / 2,
            "y": gy.ravel() - dy / 2,
            "y2": gy.ravel() + dy / 2,
        }
    )
    x_scale = alt.Scale(domain=[float(xs[0] - dx / 2), float(xs[-1] + dx / 2)], nice=False)
    y_scale = alt.Scale(domain=[float(ys[0] - dy / 2), float(ys[-1] + dy / 2)], nice=False)
    suffix = "" if standardised else " (standardised)"
    tips = [
        alt.Tooltip("sample:Q", title="probe sample"),
        alt.Tooltip("x:Q", title=fx, format=".4g"),
        alt.Tooltip("y:Q", title=fy, format=".4g"),
    ]
    if standardised:
        tips += [
            alt.Tooltip("x_std:Q", title=f"{fx} (standardised)", format=".3f"),
            alt.Tooltip("y_std:Q", title=f"{fy} (standardised)", format=".3f"),
        ]
    return _Plane(cells, x_scale, y_scale, f"{fx}{suffix}", f"{fy}{suffix}", tips)


def _boundary_panel(
    plane: _Plane,
    title: str,
    predicted: np.ndarray,
    confidence: np.ndarray,
    probe: pd.DataFrame,
    names: list[str],
) -> alt.LayerChart:
    """One panel: the predicted class of every cell (paler where less confident) and the
    probe samples on top, flipped ones outlined."""
    cells = plane.cells.assign(predicted=[names[int(i)] for i in predicted], confidence=confidence)
    color_scale = categorical_scale(names)
    grid = (
        alt.Chart(cells)
        .mark_rect(stroke=None)
        .encode(
            x=alt.X("x:Q", title=plane.x_title, scale=plane.x_scale),
            x2="x2:Q",
            y=alt.Y("y:Q", title=plane.y_title, scale=plane.y_scale),
            y2="y2:Q",
            color=alt.Color("predicted:N", scale=color_scale, title="class"),
            opacity=alt.Opacity(
                "confidence:Q",
                scale=alt.Scale(domain=[1 / len(names), 1], range=[0.08, 0.45]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("predicted:N", title="predicted"),
                alt.Tooltip("confidence:Q", format=".2f"),
            ],
        )
    )
    dots = (
        alt.Chart(probe)
        .mark_circle(size=28)
        .encode(
            x=alt.X("x:Q", scale=plane.x_scale),
            y=alt.Y("y:Q", scale=plane.y_scale),
            color=alt.Color("label:N", scale=color_scale, title="class"),
            stroke=alt.condition("datum.flipped", alt.value(REFERENCE), alt.value(None)),
            strokeWidth=alt.condition("datum.flipped", alt.value(1.5), alt.value(0)),
            opacity=alt.value(0.9),
            tooltip=[
                *plane.tips,
                alt.Tooltip("label:N", title="class"),
                alt.Tooltip("flipped:N", title="prediction flipped"),
            ],
        )
    )
    return alt.layer(grid, dots).properties(title=title, width=300, height=300)
