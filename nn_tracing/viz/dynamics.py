"""Charts of the Dynamics page: HMM training maps, neuron-level states, decision entropy.

Pure builders (Altair, plus one Graphviz DOT string), no Streamlit:

* :func:`selection_chart` — BIC and AIC against k, the chosen k marked;
* :func:`state_path_chart` — a training curve per run, each point coloured by its state;
* :func:`posterior_chart` / :func:`posterior_entropy_chart` — the posterior state
  probabilities per epoch, and their entropy (where the network is between phases);
* :func:`training_map_dot` — the training map: states and the transitions observed;
* :func:`state_raster_frame` / :func:`state_raster_chart` — neurons × epochs coloured by
  state (binned above the mark budget), a click opens the neuron;
* :func:`mi_layer_chart` / :func:`significant_share_chart` — decision entropy per layer
  over training against its permutation null.

States have one colour everywhere (:func:`state_colors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from ..timeaxis import time_key, time_prefix, time_word
from ..trace import signature_column
from .brain import PICK, epoch_edges
from .common import INTEGER_AXIS, MARK_BUDGET, bin_size_for, signature_range
from .palette import CATEGORICAL, MUTED, REFERENCE

__all__ = [
    "ROW_ORDERS",
    "StateRaster",
    "mi_layer_chart",
    "posterior_chart",
    "posterior_entropy_chart",
    "selection_chart",
    "significant_share_chart",
    "state_colors",
    "state_path_chart",
    "state_raster_chart",
    "state_raster_frame",
    "training_map_dot",
]

#: Categorical colours of states S0, S1, … (the one categorical palette).
_PALETTE = CATEGORICAL
#: How rows of the state raster can be ordered.
ROW_ORDERS: dict[str, str] = {
    "layer": "layer, then id",
    "dominant": "dominant state, then when it first switches",
    "path": "path (neurons with the same path together)",
    "cluster": "cluster, then dominant state",
}


def state_colors(n_states: int) -> alt.Scale:
    """The colour scale of states ``S0 … S{k-1}``, the same in every chart."""
    return alt.Scale(
        domain=[f"S{j}" for j in range(n_states)],
        range=[_PALETTE[j % len(_PALETTE)] for j in range(n_states)],
    )


def _state_color(n_states: int, title: str = "state") -> alt.Color:
    return alt.Color("label:N", scale=state_colors(n_states), title=title)


def phase_strip_chart(phases: pd.DataFrame, *, time_column: str = "epoch") -> alt.LayerChart:
    """Grokking's phases as a strip over time: one bar per phase (``phases`` of a
    :class:`~nn_tracing.analysis.hmm.PhaseReading`: ``phase``, ``first``, ``last``,
    ``states``, ``description``), from its first point to the next phase's, named in place."""
    data = phases.copy()
    data["end"] = [*data["first"].iloc[1:], data["last"].iloc[-1]]
    data["middle"] = (data["first"] + data["end"]) / 2
    data["start_key"] = [time_key(int(v)) for v in data["first"]]
    names = ["memorisation", "plateau", "transition", "clean-up"]
    scale = alt.Scale(domain=[*names, "other"], range=[*CATEGORICAL[: len(names)], MUTED])
    x = alt.X(
        "first:Q",
        title=_time_name(time_column),
        axis=alt.Axis(**INTEGER_AXIS),
        scale=alt.Scale(nice=False),
    )
    base = alt.Chart(data)
    bars = base.mark_bar(height=26).encode(
        x=x,
        x2="end:Q",
        color=alt.Color("phase:N", scale=scale, title="phase"),
        tooltip=[
            alt.Tooltip("phase:N"),
            alt.Tooltip("start_key:N", title="starts at"),
            alt.Tooltip("states:N", title="map states"),
            alt.Tooltip("description:N", title="curves"),
        ],
    )
    text = base.mark_text(color=REFERENCE, dy=-22, align="center").encode(
        x="middle:Q", text="phase:N"
    )
    return alt.layer(bars, text).properties(
        title=alt.Title(
            "Phases of training",
            subtitle=[
                "the map's states read from the accuracies; consecutive states of one phase grouped"
            ],
            anchor="start",
        ),
        height=70,
    )


# -- model selection -------------------------------------------------------------------------------
def selection_chart(selection: pd.DataFrame, criterion: str, chosen: int) -> alt.LayerChart:
    """BIC and AIC against the number of states; the criterion's minimum and the k in use
    (``chosen``, a manual override when it differs) marked."""
    fitted = selection[selection["restarts"] > 0]
    long = fitted.melt(
        id_vars=["k", "log_likelihood", "converged"],
        value_vars=["bic", "aic"],
        var_name="criterion",
        value_name="value",
    )
    long["criterion"] = long["criterion"].str.upper()
    long["converged_label"] = long["converged"].map({True: "yes", False: "no"})
    best = int(fitted.loc[fitted[criterion].idxmin(), "k"])
    x = alt.X("k:Q", title="number of states k", axis=alt.Axis(**INTEGER_AXIS))
    y = alt.Y("value:Q", title="criterion (lower is better)", scale=alt.Scale(zero=False))
    tooltip = [
        alt.Tooltip("k:Q"),
        alt.Tooltip("criterion:N"),
        alt.Tooltip("value:Q", format=",.1f"),
        alt.Tooltip("log_likelihood:Q", title="log-likelihood", format=",.1f"),
        alt.Tooltip("converged_label:N", title="EM converged"),
    ]
    base = alt.Chart(long)
    lines = base.mark_line(point=True).encode(
        x=x, y=y, color=alt.Color("criterion:N", title=None), tooltip=tooltip
    )
    marks = pd.DataFrame({"k": [chosen], "what": [f"in use: k = {chosen}"]})
    rule = (
        alt.Chart(marks)
        .mark_rule(color=REFERENCE, strokeDash=[4, 3])
        .encode(x="k:Q", tooltip=[alt.Tooltip("what:N", title="")])
    )
    subtitle = [f"{criterion.upper()} is lowest at k = {best}", "dashed: the k in use"]
    skipped = selection[selection["restarts"] == 0]
    if len(skipped):
        subtitle.append(
            f"not fitted (too little data): k = {', '.join(map(str, skipped['k'].tolist()))}"
        )
    if best == int(fitted["k"].max()) and len(fitted) > 1:
        subtitle += [
            "lowest at the largest k tried: smooth trends",
            "can be cut into ever more states",
        ]
    return alt.layer(lines, rule).properties(
        title=alt.Title("Choosing the number of states", subtitle=subtitle, anchor="start"),
        height=220,
    )


# -- the training map ------------------------------------------------------------------------------
def _binned_path(path: pd.DataFrame, time_column: str, budget: int) -> tuple[pd.DataFrame, int]:
    """Per run, consecutive observations in bins so that all runs fit ``budget`` points;
    each bin shows its most common state and mean values."""
    size = bin_size_for(len(path), budget)
    if size == 1:
        return path, 1
    parts = []
    for run, part in path.groupby("run", sort=False):
        part = part.reset_index(drop=True)
        group = np.arange(len(part)) // size
        numeric = part.select_dtypes("number").groupby(group).mean()
        numeric["state"] = part.groupby(group)["state"].agg(lambda s: s.mode().iloc[0])
        numeric[time_column] = part.groupby(group)[time_column].first()
        numeric["run"] = run
        parts.append(numeric)
    out = pd.concat(parts, ignore_index=True)
    out["label"] = "S" + out["state"].astype(int).astype(str)
    return out, size


def _time_name(time_column: str) -> str:
    """The word for a time column: the trace's axis (``step`` on a step trace) for its
    recorded points (``epoch``), the column's own name otherwise (``step`` of the per-step
    table)."""
    return time_word() if time_column == "epoch" else time_column


def state_path_chart(
    path: pd.DataFrame,
    n_states: int,
    *,
    time_column: str = "epoch",
    y: str = "loss",
    y_title: str = "training loss",
    budget: int = MARK_BUDGET,
) -> alt.LayerChart:
    """A training curve per run (``y`` against time), each point coloured by its state."""
    data, size = _binned_path(path.dropna(subset=[y]), time_column, budget)
    data = data.assign(
        signature=time_prefix() + data.get("epoch", data[time_column]).astype(int).astype(str)
    )
    x = alt.X(
        f"{time_column}:Q",
        title=_time_name(time_column),
        axis=alt.Axis(**INTEGER_AXIS),
        scale=alt.Scale(nice=False),
    )
    scale = alt.Scale(type="log") if y == "loss" and (data[y] > 0).all() else alt.Scale(zero=False)
    y_enc = alt.Y(f"{y}:Q", title=y_title, scale=scale)
    tooltip = [
        alt.Tooltip("run:N"),
        alt.Tooltip("signature:N", title=time_word()),
        alt.Tooltip("label:N", title="state"),
        alt.Tooltip(f"{y}:Q", title=y_title, format=".4g"),
        alt.Tooltip("entropy:Q", title="posterior entropy (bits)", format=".2f"),
    ]
    if time_column != "epoch":
        tooltip.insert(1, alt.Tooltip(f"{time_column}:Q", title=time_column))
    base = alt.Chart(data)
    line = base.mark_line(color=MUTED, strokeWidth=1).encode(x=x, y=y_enc, detail="run:N")
    runs = data["run"].nunique()
    points = base.mark_point(filled=True, size=40 if len(data) < 400 else 14).encode(
        x=x,
        y=y_enc,
        color=_state_color(n_states),
        shape=alt.Shape("run:N", title="run") if 1 < runs <= 8 else alt.Undefined,
        tooltip=tooltip,
    )
    subtitle = ["each point coloured by its Viterbi state"]
    if size > 1:
        subtitle.append(
            f"binned (mark budget {MARK_BUDGET}): each point is {size} {_time_name(time_column)}s, "
            "coloured by their most common state"
        )
    return alt.layer(line, points).properties(
        title=alt.Title(
            f"{y_title} and the state of each {_time_name(time_column)}",
            subtitle=subtitle,
            anchor="start",
        ),
        height=240,
    )


def posterior_chart(
    path: pd.DataFrame, n_states: int, *, time_column: str = "epoch", budget: int = MARK_BUDGET
) -> alt.FacetChart:
    """The posterior probability of each state at each time, stacked, one panel per run."""
    data, size = _binned_path(path, time_column, budget // max(n_states, 1))
    columns = [f"p_S{j}" for j in range(n_states)]
    long = data.melt(
        id_vars=["run", time_column], value_vars=columns, var_name="label", value_name="p"
    )
    long["label"] = long["label"].str.slice(2)
    runs = list(dict.fromkeys(data["run"]))
    chart = (
        alt.Chart(long)
        .mark_area(interpolate="step-after")
        .encode(
            x=alt.X(
                f"{time_column}:Q",
                title=_time_name(time_column),
                axis=alt.Axis(**INTEGER_AXIS),
                scale=alt.Scale(nice=False),
            ),
            y=alt.Y("p:Q", stack="normalize", title=None, axis=alt.Axis(format="%", tickCount=2)),
            color=alt.Color("label:N", scale=state_colors(n_states), legend=None),
            order=alt.Order("label:N"),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip(f"{time_column}:Q", title=_time_name(time_column)),
                alt.Tooltip("label:N", title="state"),
                alt.Tooltip("p:Q", format=".3f"),
            ],
        )
        .properties(height=70, width=440)
    )
    subtitle = [
        "the probability of each state at each time, one panel per run",
        "mixed colours in a column: the model is unsure which state the network is in",
    ]
    if size > 1:
        subtitle.append(f"binned: each column is the mean of {size} {_time_name(time_column)}s")
    return chart.facet(
        facet=alt.Facet("run:N", sort=runs, title=None, header=alt.Header(labelAnchor="start")),
        columns=1,
        spacing=8,
    ).properties(
        title=alt.Title("Posterior state probabilities", subtitle=subtitle, anchor="start")
    )


def posterior_entropy_chart(
    path: pd.DataFrame, n_states: int, *, time_column: str = "epoch", budget: int = MARK_BUDGET
) -> alt.Chart:
    """Entropy of the posterior state probabilities per time and run (bits); high where the
    network is between phases."""
    data, size = _binned_path(path, time_column, budget)
    data = data.assign(
        signature=time_prefix() + data.get("epoch", data[time_column]).astype(int).astype(str)
    )
    subtitle = [
        f"0: certain of one state; {math.log2(max(n_states, 1)):.2f} bits: all {n_states} "
        "equally likely"
    ]
    if size > 1:
        subtitle.append(f"binned: each point is the mean of {size} {_time_name(time_column)}s")
    return (
        alt.Chart(data)
        .mark_line(point=len(data) < 400)
        .encode(
            x=alt.X(
                f"{time_column}:Q",
                title=_time_name(time_column),
                axis=alt.Axis(**INTEGER_AXIS),
                scale=alt.Scale(nice=False),
            ),
            y=alt.Y(
                "entropy:Q",
                title="posterior entropy (bits)",
                scale=alt.Scale(domain=[0, max(math.log2(max(n_states, 2)), 0.1)]),
            ),
            color=alt.Color("run:N", title="run"),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("signature:N", title=time_word()),
                alt.Tooltip("label:N", title="state"),
                alt.Tooltip("entropy:Q", format=".3f"),
            ],
        )
        .properties(
            title=alt.Title(
                "Where the network is between phases", subtitle=subtitle, anchor="start"
            ),
            height=160,
        )
    )


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def training_map_dot(
    states: pd.DataFrame, transitions: pd.DataFrame, *, time_column: str = "epoch"
) -> str:
    """The training map as Graphviz DOT: one node per state visited (colour as in the charts,
    dashed border for a detour), one edge per transition observed, labelled with its fitted
    probability; the chance of staying is in the node."""
    lines = [
        "digraph training_map {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for row in states.itertuples(index=False):
        if row.observations == 0:
            continue
        color = _PALETTE[int(row.state) % len(_PALETTE)]
        span = (
            f"{time_key(int(row.first))}–{int(row.last)}"
            if time_column == "epoch"
            else f"{time_column}s {int(row.first)}–{int(row.last)}"
        )
        runs = f" · {int(row.runs)} run{'s' if row.runs != 1 else ''}"
        label = "\\n".join(
            _dot_text(part) for part in (row.label, f"{span}{runs}", f"stay {row.stay:.2f}")
        )
        style = '"rounded,filled,dashed"' if row.detour else '"rounded,filled"'
        lines.append(
            f'  {row.label} [label="{label}", fillcolor="{color}40", '
            f'color="{color}", penwidth=2, style={style}];'
        )
    counts = transitions["count"].to_numpy(dtype=float) if len(transitions) else np.zeros(0)
    top = counts.max() if counts.size else 1.0
    for row in transitions.itertuples(index=False):
        width = 1.0 + 2.5 * float(row.count) / top
        lines.append(
            f'  S{int(row.source)} -> S{int(row.target)} [label="{row.probability:.2f} '
            f'({int(row.count)}×)", penwidth={width:.2f}];'
        )
    lines.append("}")
    return "\n".join(lines)


# -- neuron-level states ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StateRaster:
    """Cells of the state raster: ``frame`` has ``row``, ``x0``, ``x1``, ``epoch``, ``label``
    (the state, or the most common one in a binned cell), ``share`` (of that state in the
    cell), ``neuron`` (the id a click opens), ``signature``, ``neurons``, ``layer``;
    ``row_size`` neurons per row; ``order``; ``n_states``."""

    frame: pd.DataFrame
    row_size: int
    order: str
    n_states: int
    layers: list[str]

    @property
    def binned(self) -> bool:
        return self.row_size > 1


def _row_order(
    states: np.ndarray,
    layers: np.ndarray,
    dominant: np.ndarray,
    order: str,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    n = states.shape[0]
    if order == "layer":
        return np.arange(n)
    if order in ("dominant", "cluster"):
        changed = np.diff(states, axis=1) != 0
        first = np.where(changed.any(axis=1), changed.argmax(axis=1), states.shape[1])
        if order == "cluster":
            if groups is None:
                raise ValueError("order='cluster' needs the neurons' cluster labels (groups=)")
            return np.lexsort((np.arange(n), first, dominant, np.asarray(groups)))
        return np.lexsort((np.arange(n), first, dominant))
    if order == "path":
        keys = [states[:, t] for t in range(states.shape[1] - 1, -1, -1)]
        return np.lexsort(keys)
    raise ValueError(f"order={order!r}: use one of {tuple(ROW_ORDERS)}")


def state_raster_frame(
    states: np.ndarray,
    neuron_ids: np.ndarray,
    layers: np.ndarray,
    epochs: list[int],
    n_states: int,
    *,
    dominant: np.ndarray | None = None,
    order: str = "layer",
    groups: np.ndarray | None = None,
    budget: int = MARK_BUDGET,
) -> StateRaster:
    """Neurons (rows) × epochs, each cell the neuron's Viterbi state.

    Parameters
    ----------
    states : int array of shape (n_neurons, n_epochs)
    neuron_ids, layers : arrays of shape (n_neurons,)
    dominant : int array of shape (n_neurons,), for ``order="dominant"``
    order : one of :data:`ROW_ORDERS`
    groups : array of shape (n_neurons,), cluster labels for ``order="cluster"`` (e.g. from
        the Clusters page's clustering)
    budget : most cells; above it, runs of consecutive rows are binned and each cell shows
        the most common state of its neurons (and its share)
    """
    states = np.asarray(states)
    n, t = states.shape
    dominant = states[:, 0] if dominant is None else np.asarray(dominant)
    ordering = _row_order(states, np.asarray(layers), dominant, order, groups)
    states, ids, layer_of = (
        states[ordering],
        np.asarray(neuron_ids)[ordering],
        np.asarray(layers)[ordering],
    )
    row_size = bin_size_for(n, max(budget // max(t, 1), 16))
    n_rows = math.ceil(n / row_size)
    starts = np.arange(n_rows) * row_size
    x0, x1 = epoch_edges(epochs)
    # counts of each state per (row bin, epoch): one array operation per state
    padded = np.full((n_rows * row_size, t), -1)
    padded[:n] = states
    blocks = padded.reshape(n_rows, row_size, t)
    counts = np.stack([(blocks == j).sum(axis=1) for j in range(n_states)], axis=2)
    mode = counts.argmax(axis=2)  # (rows, t)
    members = np.minimum(row_size, n - starts)[:, None]
    share = counts.max(axis=2) / members
    picks = ids[starts]
    pick_layers = layer_of[starts]
    rows = np.repeat(np.arange(n_rows), t)
    cols = np.tile(np.arange(t), n_rows)
    epoch_values = np.asarray(epochs)[cols]
    frame = pd.DataFrame(
        {
            "row": rows,
            "x0": x0[cols],
            "x1": x1[cols],
            "epoch": epoch_values,
            "label": ["S" + str(s) for s in mode.reshape(-1)],
            "share": share.reshape(-1),
            "neuron": picks[rows].astype(np.int64),
            "layer": pick_layers[rows],
            "signature": signature_column(
                np.asarray(epoch_values).astype(np.int64),
                pick_layers[rows].astype(str),
                picks[rows].astype(np.int64),
            ),
        }
    )
    if row_size > 1:
        ranges = [
            signature_range(0, str(layer_of[s]), ids[s : s + row_size]).split("/", 1)[1]
            for s in starts
        ]
        frame["neurons"] = [ranges[r] for r in rows]
    else:
        frame["neurons"] = frame["signature"]
    return StateRaster(frame, row_size, order, n_states, list(dict.fromkeys(layer_of.tolist())))


def state_raster_chart(raster: StateRaster) -> alt.Chart:
    """The state raster: rows are neurons (or bins of neurons), columns recorded epochs."""
    frame = raster.frame
    subtitle = [
        f"rows: neurons ordered by {ROW_ORDERS.get(raster.order, raster.order)}; click a "
        "cell to open the neuron"
    ]
    if raster.binned:
        subtitle.append(
            f"binned (mark budget {MARK_BUDGET}): each row is {raster.row_size} neurons, "
            "coloured by their most common state (its share in the tooltip)"
        )
    n_rows = int(frame["row"].max()) + 1 if len(frame) else 1
    pick = alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("label:N", title="state"),
    ]
    if raster.binned:
        tooltip += [
            alt.Tooltip("neurons:N", title="row"),
            alt.Tooltip("share:Q", title="share in this state", format=".0%"),
        ]
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X(
                "x0:Q",
                title=time_word(),
                scale=alt.Scale(nice=False, zero=False),
                axis=alt.Axis(**INTEGER_AXIS),
            ),
            x2="x1:Q",
            y=alt.Y("row:O", axis=None),
            color=_state_color(raster.n_states),
            tooltip=tooltip,
        )
        .add_params(pick)
        .properties(
            title=alt.Title(
                "Each neuron's path through the shared states", subtitle=subtitle, anchor="start"
            ),
            height=min(max(4 * n_rows, 160), 480),
        )
    )


# -- decision entropy ------------------------------------------------------------------------------
def mi_layer_chart(summary: pd.DataFrame, label: str, epoch: int | None = None) -> alt.LayerChart:
    """Per layer over training: the median mutual information with the ``label`` class (line),
    its interquartile range (band) and the median 95th percentile of the permutation null
    (dashed) — above the dashed line is above chance."""
    data = summary.assign(
        signature=time_prefix() + summary["epoch"].astype(str) + "/L_" + summary["layer"]
    )
    layers = list(dict.fromkeys(data["layer"]))
    x = alt.X(
        "epoch:Q", title=time_word(), axis=alt.Axis(**INTEGER_AXIS), scale=alt.Scale(nice=False)
    )
    color = alt.Color("layer:N", sort=layers, title="layer")
    tooltip = [
        alt.Tooltip("signature:N", title=f"layer at {time_word()}"),
        alt.Tooltip("median:Q", title="median MI (bits)", format=".3f"),
        alt.Tooltip("q1:Q", title="25th percentile", format=".3f"),
        alt.Tooltip("q3:Q", title="75th percentile", format=".3f"),
        alt.Tooltip("null_q95:Q", title="null 95th percentile", format=".3f"),
        alt.Tooltip("n_significant:Q", title="significant neurons"),
        alt.Tooltip("n_neurons:Q", title="neurons"),
    ]
    base = alt.Chart(data)
    band = base.mark_area(opacity=0.18).encode(x=x, y="q1:Q", y2="q3:Q", color=color)
    line = base.mark_line(point=True).encode(
        x=x,
        y=alt.Y("median:Q", title=f"I(activation; {label} class), bits"),
        color=color,
        tooltip=tooltip,
    )
    null = base.mark_line(strokeDash=[4, 3], opacity=0.8).encode(
        x=x, y="null_q95:Q", color=color, tooltip=tooltip
    )
    parts: list[alt.Chart] = [band, line, null]
    if epoch is not None:
        parts.append(
            alt.Chart(pd.DataFrame({"epoch": [epoch]}))
            .mark_rule(color=REFERENCE, strokeDash=[2, 2])
            .encode(x=alt.X("epoch:Q", title=time_word()))
        )
    return alt.layer(*parts).properties(
        title=alt.Title(
            f"Information about the {label} class, per layer",
            subtitle=[
                "line: median over the layer's neurons; band: interquartile range",
                "dashed: the 95th percentile of the label-permutation null (chance, with the "
                "plug-in bias)",
            ],
            anchor="start",
        ),
        height=240,
    )


def significant_share_chart(summary: pd.DataFrame, alpha: float) -> alt.Chart:
    """Share of each layer's neurons significantly informative (after FDR) per epoch."""
    data = summary.assign(
        signature=time_prefix() + summary["epoch"].astype(str) + "/L_" + summary["layer"]
    )
    layers = list(dict.fromkeys(data["layer"]))
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "epoch:Q",
                title=time_word(),
                axis=alt.Axis(**INTEGER_AXIS),
                scale=alt.Scale(nice=False),
            ),
            y=alt.Y(
                "share_significant:Q",
                title="share significant",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color("layer:N", sort=layers, title="layer"),
            tooltip=[
                alt.Tooltip("signature:N", title=f"layer at {time_word()}"),
                alt.Tooltip("n_significant:Q", title="significant"),
                alt.Tooltip("n_neurons:Q", title="neurons"),
                alt.Tooltip("share_significant:Q", title="share", format=".0%"),
            ],
        )
        .properties(
            title=alt.Title(
                "Neurons more ordered than chance",
                subtitle=f"significant after Benjamini–Hochberg at FDR {alpha:g}",
                anchor="start",
            ),
            height=200,
        )
    )
