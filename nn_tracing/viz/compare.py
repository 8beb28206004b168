"""The Compare page's charts: runs' curves overlaid, per-layer quantile bands per run, matched
correlations against their null, matched pairs (a click picks a pair), partner stability,
layer × layer similarity, each layer against its final self, and one pair side by side.

Runs are told apart by colour (Altair's categorical scheme, the same one every run chart of
the package uses); every tooltip carries a signature: a neuron's (``E_4/L_hidden_1/n_3``) or,
for a whole layer, its prefix (``E_4/L_hidden_1``).
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..timeaxis import time_word
from .common import INTEGER_AXIS, metric_title
from .palette import NULL_LINE, SEQUENTIAL_SCHEME

__all__ = [
    "PAIR_PICK",
    "convergence_chart",
    "matched_correlations_chart",
    "matched_pairs_chart",
    "pair_history_chart",
    "pair_scatter_chart",
    "quantile_bands_chart",
    "run_curves_chart",
    "similarity_heatmap",
    "stability_chart",
]

#: The click selection of :func:`matched_pairs_chart` (fields ``a_index``, ``b_index``).
PAIR_PICK = "pair"
_RUN = alt.Color("run:N", title="run")  # the palette's categories (show_chart: with_palette)


def _time_x(title: str | None = None) -> alt.X:
    return alt.X(
        "time:Q",
        title=title or time_word(),
        scale=alt.Scale(nice=False),
        axis=alt.Axis(**INTEGER_AXIS),
    )


def run_curves_chart(frame: pd.DataFrame, quantity: str) -> alt.Chart:
    """Every run's curves of ``quantity`` on one axis: colour the run, dash the split."""
    axes = sorted(set(frame["axis"])) if len(frame) else ["epoch"]
    x_title = " / ".join(axes)
    positive = bool(len(frame)) and bool((frame["value"] > 0).all())
    scale = alt.Scale(zero=False, type="log" if quantity == "loss" and positive else "linear")
    subtitle = "each run on its own time axis" if len(axes) > 1 else "colour: run; dash: split"
    return (
        alt.Chart(frame)
        .mark_line()
        .encode(
            x=_time_x(x_title),
            y=alt.Y("value:Q", title=quantity, scale=scale),
            color=_RUN,
            strokeDash=alt.StrokeDash("split:N", title="split"),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("split:N"),
                alt.Tooltip("time:Q", title=x_title),
                alt.Tooltip("value:Q", title=f"{quantity} (shown)", format=".4f"),
                alt.Tooltip("raw:Q", title=f"{quantity} (recorded)", format=".4f"),
            ],
        )
        .properties(
            title=alt.Title(f"{quantity}, every run", subtitle=subtitle, anchor="start"),
            height=240,
        )
    )


def quantile_bands_chart(frame: pd.DataFrame, metric: str, layers: list[str]) -> alt.FacetChart:
    """One panel per layer: each run's 10–90th percentile band of ``metric`` over the
    layer's neurons (shaded) and its median (line), over recorded time. Three panels of 170 px,
    their own y axes and the runs' legend fit the page's 940 px."""
    base = alt.Chart().encode(x=_time_x(), color=_RUN)
    tooltip = [
        alt.Tooltip("run:N"),
        alt.Tooltip("signature:N", title="layer"),
        alt.Tooltip("q1:Q", title="median", format=".4g"),
        alt.Tooltip("q0:Q", title="10th percentile", format=".4g"),
        alt.Tooltip("q2:Q", title="90th percentile", format=".4g"),
        alt.Tooltip("n:Q", title="neurons"),
    ]
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("q0:Q", title=metric), y2="q2:Q", tooltip=tooltip
    )
    line = base.mark_line(point=True).encode(y="q1:Q", tooltip=tooltip)
    return (
        alt.layer(band, line, data=frame)
        .properties(height=170, width=170)
        .facet(facet=alt.Facet("layer:N", sort=layers, title=None), columns=3)
        .properties(
            title=alt.Title(
                metric_title(metric),
                subtitle="per layer and run: median (line), 10th–90th percentile (band)",
                anchor="start",
            )
        )
        .resolve_scale(y="independent")
    )


def matched_correlations_chart(
    pairs: pd.DataFrame, null: np.ndarray, threshold: float, null_label: str
) -> alt.LayerChart:
    """The distribution of matched correlations against the null's, the null's 99th
    percentile as a rule (a neuron to its right is universal)."""
    bins = np.linspace(-1, 1, 41)
    rows = []
    for label, values in (("matched", pairs["r"].to_numpy()), (null_label, np.asarray(null))):
        values = values[np.isfinite(values)]
        counts, _ = np.histogram(values, bins=bins)
        share = counts / max(values.size, 1)
        rows += [
            {"which": label, "r0": lo, "r1": hi, "share": s, "count": int(c)}
            for lo, hi, s, c in zip(bins[:-1], bins[1:], share, counts, strict=True)
        ]
    frame = pd.DataFrame(rows)
    bars = (
        alt.Chart(frame)
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(
            x=alt.X("r0:Q", title="correlation with the partner", scale=alt.Scale(domain=[-1, 1])),
            x2="r1:Q",
            y=alt.Y("share:Q", title="share of neurons", stack=None),
            color=alt.Color("which:N", title=None),
            tooltip=[
                alt.Tooltip("which:N", title="distribution"),
                alt.Tooltip("r0:Q", title="from r", format=".2f"),
                alt.Tooltip("r1:Q", title="to r", format=".2f"),
                alt.Tooltip("count:Q", title="neurons"),
            ],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        .mark_rule(color=NULL_LINE, strokeDash=[4, 3])
        .encode(
            x="threshold:Q",
            tooltip=[alt.Tooltip("threshold:Q", title="null's 99th percentile", format=".3f")],
        )
    )
    return alt.layer(bars, rule).properties(
        title=alt.Title(
            "Matched correlations against the null",
            subtitle="dashed: the null's 99th percentile; a neuron beyond it is universal",
            anchor="start",
        ),
        height=220,
    )


def matched_pairs_chart(pairs: pd.DataFrame) -> alt.Chart:
    """Every neuron of A and its matched correlation; a click picks the pair
    (selection :data:`PAIR_PICK`)."""
    data = pairs[pairs["b_index"] >= 0].copy()
    data["kind"] = np.where(data["universal"], "universal", "not universal")
    pick = alt.selection_point(name=PAIR_PICK, fields=["a_index", "b_index"], on="click")
    return (
        alt.Chart(data)
        .mark_circle(size=70)
        .encode(
            x=alt.X(
                "a_index:Q",
                title="neuron of run A (position in the layer)",
                axis=alt.Axis(**INTEGER_AXIS),
            ),
            y=alt.Y("r:Q", title="correlation with its partner in run B"),
            color=alt.Color("kind:N", title=None, sort=["universal", "not universal"]),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.5)),
            tooltip=[
                alt.Tooltip("a_signature:N", title="run A"),
                alt.Tooltip("b_signature:N", title="run B"),
                alt.Tooltip("r:Q", title="correlation", format=".3f"),
                alt.Tooltip("stable_from:Q", title=f"partner stable from {time_word()}"),
            ],
        )
        .add_params(pick)
        .properties(
            title=alt.Title(
                "Matched pairs", subtitle="click a pair to see both neurons", anchor="start"
            ),
            height=240,
        )
    )


def stability_chart(pairs: pd.DataFrame) -> alt.Chart:
    """How many neurons' partners became stable at each recorded epoch."""
    data = pairs.dropna(subset=["stable_from"])
    counts = (
        data.groupby("stable_from")
        .agg(neurons=("a_index", "size"), examples=("a_signature", lambda s: ", ".join(s[:3])))
        .reset_index()
        .rename(columns={"stable_from": "time"})
    )
    return (
        alt.Chart(counts)
        .mark_bar()
        .encode(
            x=alt.X("time:O", title=f"partner stable from {time_word()}"),
            y=alt.Y("neurons:Q", title="neurons of run A"),
            tooltip=[
                alt.Tooltip("time:O", title=time_word()),
                alt.Tooltip("neurons:Q"),
                alt.Tooltip("examples:N", title="e.g."),
            ],
        )
        .properties(
            title=alt.Title(
                "When each neuron's partner stopped changing",
                subtitle="matched at every recorded epoch both runs have",
                anchor="start",
            ),
            height=200,
        )
    )


def similarity_heatmap(
    frame: pd.DataFrame, method: str, layers_a: list[str], layers_b: list[str]
) -> alt.LayerChart:
    """Layer × layer similarity of A with B, cells coloured on [0, 1]; the value and the
    permutation baseline in the tooltip."""
    data = frame.copy()
    data["above"] = np.where(data["similarity"] > data["null"], "yes", "no")
    base = alt.Chart(data).encode(
        x=alt.X("layer_b:N", sort=layers_b, title="run B"),
        y=alt.Y("layer_a:N", sort=layers_a, title="run A"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "similarity:Q", scale=alt.Scale(scheme=SEQUENTIAL_SCHEME, domain=[0, 1]), title=method
        ),
        tooltip=[
            alt.Tooltip("layer_a:N", title="L_ of run A"),
            alt.Tooltip("layer_b:N", title="L_ of run B"),
            alt.Tooltip("similarity:Q", format=".3f"),
            alt.Tooltip("null:Q", title="permutation baseline (95th pct.)", format=".3f"),
            alt.Tooltip("above:N", title="above the baseline"),
        ],
    )
    return alt.layer(cells).properties(
        title=alt.Title(
            f"{method}, every layer of A against every layer of B",
            subtitle="tooltip: the permutation baseline",
            anchor="start",
        ),
        height=max(160, 40 * len(layers_a)),
    )


def convergence_chart(frame: pd.DataFrame, method: str, layers: list[str]) -> alt.LayerChart:
    """Each layer's similarity with its final representation over time (solid), and the
    permutation baseline (dashed)."""
    color = alt.Color("layer:N", sort=layers, title="layer")
    tooltip = [
        alt.Tooltip("signature:N", title="layer"),
        alt.Tooltip("similarity:Q", format=".3f"),
        alt.Tooltip("null:Q", title="permutation baseline (95th pct.)", format=".3f"),
    ]
    base = alt.Chart(frame).encode(x=_time_x(), color=color, tooltip=tooltip)
    lines = base.mark_line(point=True).encode(
        y=alt.Y("similarity:Q", title=method, scale=alt.Scale(domain=[0, 1]))
    )
    null = base.mark_line(strokeDash=[3, 3], opacity=0.6).encode(y="null:Q")
    return alt.layer(lines, null).properties(
        title=alt.Title(
            f"Each layer against its own final representation ({method})",
            subtitle="dashed: the permutation baseline",
            anchor="start",
        ),
        height=240,
    )


def pair_scatter_chart(frame: pd.DataFrame) -> alt.Chart:
    """Both neurons' activations, one point per probe sample, coloured by class."""
    a_sig, b_sig = str(frame["a_signature"].iloc[0]), str(frame["b_signature"].iloc[0])
    return (
        alt.Chart(frame)
        .mark_circle(size=30, opacity=0.7)
        .encode(
            x=alt.X("a:Q", title=f"run A {a_sig}"),
            y=alt.Y("b:Q", title=f"run B {b_sig}"),
            color=alt.Color("class:N", title="class"),
            tooltip=[
                alt.Tooltip("sample:Q", title="probe sample"),
                alt.Tooltip("class:N"),
                alt.Tooltip("a_signature:N", title="run A"),
                alt.Tooltip("a:Q", title="activation A", format=".4g"),
                alt.Tooltip("b_signature:N", title="run B"),
                alt.Tooltip("b:Q", title="activation B", format=".4g"),
            ],
        )
        .properties(title=alt.Title("The pair on each probe sample", anchor="start"), height=260)
    )


def pair_history_chart(frame: pd.DataFrame, metric: str) -> alt.Chart:
    """Each neuron of the pair: ``metric`` over its run's recorded time."""
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=_time_x(),
            y=alt.Y("value:Q", title=metric),
            color=_RUN,
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("signature:N", title="neuron"),
                alt.Tooltip("value:Q", title=metric, format=".4g"),
            ],
        )
        .properties(
            title=alt.Title(
                f"The pair over training: {metric}", subtitle=metric_title(metric), anchor="start"
            ),
            height=260,
        )
    )
