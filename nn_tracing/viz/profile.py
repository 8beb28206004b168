"""The Neurons page's charts of one neuron: its weights, connections, responses and field.

Pure Altair builders over the frames of :mod:`nn_tracing.analysis.profiles`. Every mark's
tooltip carries a neuron signature; marks that stand for another neuron (a source, a target, an
input pixel) carry its ``neuron`` id and ``epoch`` under the click selection
:data:`~nn_tracing.viz.brain.PICK`, so a click opens that neuron. Charts that would draw more
than :data:`~nn_tracing.viz.common.MARK_BUDGET` marks aggregate or subsample and say so.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..analysis.profiles import ActivationField
from ..timeaxis import time_key, time_word
from ..trace import format_signature, parse_signature, signature_column
from .brain import PICK
from .common import INTEGER_AXIS, MARK_BUDGET, bin_size_for, binned_means, diverging_scale
from .palette import (
    HIGHLIGHT,
    IMAGE_SCHEME,
    MISSING,
    MUTED,
    NULL_BAND,
    NULL_LINE,
    REFERENCE,
    SEQUENTIAL_SCHEME,
    SERIES,
    WHITE,
    categorical_scale,
    sign_scale,
)

__all__ = [
    "activation_field_chart",
    "class_distribution_chart",
    "connections_chart",
    "incoming_weight_heatmap",
    "incoming_weights_chart",
    "sample_images_chart",
    "sample_images_frame",
    "selectivity_chart",
    "weight_image_chart",
    "weight_image_frame",
]

_SIGN_COLORS = sign_scale()


def _class_key(label: str) -> tuple[int, float | str]:
    """Numeric class labels in numeric order, then the rest by name."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _title(text: str, subtitle: list[str] | None = None) -> alt.Title:
    return alt.Title(text, anchor="start", subtitle=subtitle or alt.Undefined)


_diverging = diverging_scale


def _pick() -> alt.Parameter:
    return alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")


# -- weights -----------------------------------------------------------------------------------
def incoming_weights_chart(
    frame: pd.DataFrame, *, neuron_signature: str, budget: int = MARK_BUDGET
) -> alt.Chart:
    """The incoming weights at one epoch as bars (one per source, in fan-in order).

    ``frame`` is :func:`~nn_tracing.analysis.profiles.incoming_weights`. A click on a bar whose
    source is a known neuron opens it. Above ``budget`` weights, consecutive weights are
    averaged and the subtitle says so.
    """
    data = frame.copy()
    epoch = int(data["epoch"].iloc[0]) if len(data) else 0
    subtitle = [f"{neuron_signature}: one bar per incoming weight, sources in id order"]
    size = bin_size_for(len(data), budget)
    if size > 1:
        means = binned_means(data["weight"].to_numpy(dtype=np.float64)[None, :], size)[0]
        starts = np.arange(means.size) * size
        data = pd.DataFrame(
            {
                "index": starts,
                "label": [f"w[{s}] … w[{min(s + size, len(frame)) - 1}]" for s in starts],
                "weight": means,
                "weight_e0": np.nan,
                "signature": neuron_signature,
                "neuron": -1,
                "epoch": epoch,
            }
        )
        subtitle.append(f"{len(frame)} weights: each bar is the mean of {size} neighbours")
    else:
        data["neuron"] = data["source"]
        data["signature"] = [s or neuron_signature for s in data["signature"]]
    data["sign"] = np.where(data["weight"] >= 0, "positive", "negative")
    many = len(data) > 48
    x = (
        alt.X("index:Q", title="incoming weight (fan-in position)", axis=alt.Axis(**INTEGER_AXIS))
        if many
        else alt.X(
            "label:N",
            sort=alt.EncodingSortField("index"),
            title="source",
            axis=alt.Axis(labelAngle=-45, labelLimit=120),
        )
    )
    has_initial = bool(np.isfinite(data["weight_e0"].to_numpy(dtype=np.float64)).any())
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("label:N", title="source"),
        alt.Tooltip("weight:Q", format=".4g"),
    ]
    if has_initial:
        tooltip.append(alt.Tooltip("weight_e0:Q", title="at E_0", format=".4g"))
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("weight:Q", title=f"weight at {time_key(epoch)}"),
            color=alt.Color("sign:N", scale=_SIGN_COLORS, legend=None),
            tooltip=tooltip,
        )
    )
    layers: list[alt.Chart] = [bars.add_params(_pick())]
    if has_initial and not many:
        layers.append(
            alt.Chart(data)
            .mark_tick(color=REFERENCE, thickness=2, size=14)
            .encode(x=x, y="weight_e0:Q", tooltip=tooltip)
        )
        subtitle.append("black ticks: the same weight at E_0, the untrained network")
    return alt.layer(*layers).properties(
        title=_title("Incoming weights", subtitle), height=200, width="container"
    )


def incoming_weight_heatmap(
    history: pd.DataFrame,
    *,
    neuron_signature: str,
    selected_epoch: int | None = None,
    budget: int = MARK_BUDGET,
) -> alt.Chart:
    """The incoming weights over the recorded epochs with kept weights: epochs × sources.

    ``history`` is :func:`~nn_tracing.analysis.profiles.incoming_weight_history`. Above
    ``budget`` cells, neighbouring sources are averaged (the subtitle says so).
    """
    _, layer, neuron_id = parse_signature(neuron_signature)
    epochs = sorted(history["epoch"].unique().tolist())
    n_sources = int(history["index"].max()) + 1 if len(history) else 0
    size = bin_size_for(len(epochs) * n_sources, budget)
    subtitle = [f"{neuron_signature}: rows are incoming weights, columns recorded epochs"]
    if size > 1:
        matrix = (
            history.pivot(index="epoch", columns="index", values="weight")
            .reindex(index=epochs)
            .to_numpy(dtype=np.float64)
        )
        means = binned_means(matrix, size)
        starts = np.arange(means.shape[1]) * size
        data = pd.DataFrame(
            {
                "epoch": np.repeat(epochs, means.shape[1]),
                "index": np.tile(starts, len(epochs)),
                "label": np.tile(
                    [f"w[{s}] … w[{min(s + size, n_sources) - 1}]" for s in starts], len(epochs)
                ),
                "weight": means.ravel(),
            }
        )
        data["signature"] = signature_column(data["epoch"], layer, neuron_id)
        subtitle.append(f"{n_sources} weights: each row is the mean of {size} neighbours")
    else:
        data = history[["epoch", "index", "label", "weight", "signature"]].copy()
        data["signature"] = [
            s if s else format_signature(e, layer, neuron_id)
            for s, e in zip(data["signature"], data["epoch"], strict=True)
        ]
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("label:N", title="source"),
        alt.Tooltip("epoch:O", title=time_word()),
        alt.Tooltip("weight:Q", format=".4g"),
    ]
    n_rows = data["index"].nunique()
    chart = (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("epoch:O", title=time_word()),
            y=alt.Y(
                "label:N",
                sort=alt.EncodingSortField("index"),
                title=None,
                axis=alt.Axis(labels=n_rows <= 64),
            ),
            color=alt.Color("weight:Q", scale=_diverging(data["weight"].to_numpy())),
            tooltip=tooltip,
        )
    )
    layers: list[alt.Chart] = [chart]
    if selected_epoch is not None and selected_epoch in epochs:
        marker = pd.DataFrame({"epoch": [selected_epoch]})
        layers.append(
            alt.Chart(marker)
            .mark_rect(fill=None, stroke=HIGHLIGHT, strokeWidth=2)
            .encode(x=alt.X("epoch:O", title=time_word()))
        )
    height = int(min(max(8 * n_rows, 120), 480))
    return alt.layer(*layers).properties(
        title=_title("Incoming weights over training", subtitle), height=height, width="container"
    )


def weight_image_frame(
    image: np.ndarray, *, panel: str, epoch: int, first_input_id: int = 0
) -> pd.DataFrame:
    """One image of incoming weights in long form: ``panel``, ``row``, ``col``, ``weight``,
    ``neuron`` (the input pixel's global id), ``epoch``, ``signature`` (the pixel's)."""
    rows, cols = image.shape
    r, c = np.divmod(np.arange(rows * cols), cols)
    ids = first_input_id + np.arange(rows * cols)
    return pd.DataFrame(
        {
            "panel": panel,
            "row": r,
            "col": c,
            "pixel": [f"px_{a}_{b}" for a, b in zip(r, c, strict=True)],
            "weight": np.asarray(image, dtype=np.float64).ravel(),
            "neuron": ids,
            "epoch": epoch,
            "signature": signature_column(epoch, "input", ids),
        }
    )


def weight_image_chart(frame: pd.DataFrame, *, title: str, subtitle: list[str]) -> alt.FacetChart:
    """Incoming weights drawn as the image they look at, one panel per ``panel`` value (e.g.
    ``E_0`` and the chosen epoch), on one colour scale centred on 0. A click on a pixel opens
    that input feature."""
    panels = list(dict.fromkeys(frame["panel"]))
    chart = (
        alt.Chart()
        .mark_rect()
        .encode(
            x=alt.X("col:O", axis=None),
            y=alt.Y("row:O", axis=None),
            color=alt.Color(
                "weight:Q", scale=_diverging(frame["weight"].to_numpy()), title="weight"
            ),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("pixel:N"),
                alt.Tooltip("weight:Q", format=".4g"),
            ],
        )
        .add_params(_pick())
        .properties(width=150, height=150)
    )
    return chart.facet(
        data=frame,
        facet=alt.Facet("panel:N", sort=panels, title=None),
        columns=len(panels),
    ).properties(title=_title(title, subtitle))


def connections_chart(frame: pd.DataFrame, *, neuron_signature: str) -> alt.Chart:
    """The strongest incoming and outgoing connections as bars, one per neuron at the other end.

    ``frame`` is :func:`~nn_tracing.analysis.profiles.strongest_connections`. A click opens
    that neuron.
    """
    data = frame.copy()
    data["end"] = [
        f"{'from' if d == 'in' else 'to'} {s.split('/', 1)[1]}"
        for d, s in zip(data["direction"], data["signature"], strict=True)
    ]
    data["sign"] = np.where(data["weight"] >= 0, "positive", "negative")
    order = data.sort_values(["direction", "rank"])["end"].tolist()
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("direction:N"),
        alt.Tooltip("weight:Q", format=".4g"),
        alt.Tooltip("matrix_percentile:Q", title="|w| percentile in its matrix", format=".0%"),
        alt.Tooltip("weight_e0:Q", title="at E_0", format=".4g"),
    ]
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y(
                "end:N", sort=order, title=None, axis=alt.Axis(labelLimit=220, labelOverlap=False)
            ),
            x=alt.X("weight:Q", title="weight"),
            color=alt.Color("sign:N", scale=_SIGN_COLORS, legend=None),
            tooltip=tooltip,
        )
        .add_params(_pick())
        .properties(
            title=_title(
                "Strongest connections",
                [f"{neuron_signature}: largest |weight| in and out; click one to open it"],
            ),
            height=max(24 * len(data), 60),
            width="container",
        )
    )


# -- responses ---------------------------------------------------------------------------------
def class_distribution_chart(
    summary: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    neuron_signature: str,
    budget: int = MARK_BUDGET,
) -> alt.LayerChart:
    """The neuron's probe activations per class: Tukey box plots with every sample as a dot.

    ``summary`` is :func:`~nn_tracing.analysis.profiles.class_distributions`, ``samples``
    :func:`~nn_tracing.analysis.profiles.probe_responses`. Above ``budget`` samples, an even
    subsample of dots is drawn (the boxes always use every sample) and the subtitle says so.
    """
    classes = summary["class"].tolist()
    subtitle = [f"{neuron_signature}: boxes span the quartiles, whiskers 1.5 × IQR"]
    dots = samples.copy()
    step = bin_size_for(len(dots), max(budget - 4 * len(summary), 1))
    if step > 1:
        dots = dots.iloc[::step]
        subtitle.append(f"dots: every {step}th of {len(samples)} probe samples")
    dots = dots.assign(
        jitter=((dots["probe_index"].to_numpy() * 0.6180339887) % 1.0) * 0.6 - 0.3,
        signature=neuron_signature,
        predicted=dots["predicted_class"].astype(str),
    )
    box_data = summary.assign(signature=neuron_signature)
    x = alt.X("class:N", sort=classes, title="class")
    box_tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("class:N"),
        alt.Tooltip("n:Q", title="samples"),
        alt.Tooltip("median:Q", format=".4g"),
        alt.Tooltip("q1:Q", title="25th pct", format=".4g"),
        alt.Tooltip("q3:Q", title="75th pct", format=".4g"),
        alt.Tooltip("mean:Q", format=".4g"),
        alt.Tooltip("active:Q", title="share active", format=".0%"),
    ]
    whisker = (
        alt.Chart(box_data)
        .mark_rule(color=NULL_LINE)
        .encode(x=x, y=alt.Y("whisker_low:Q", title="activation"), y2="whisker_high:Q")
    )
    box = (
        alt.Chart(box_data)
        .mark_bar(size=28, opacity=0.35, color=NULL_BAND)
        .encode(x=x, y="q1:Q", y2="q3:Q", tooltip=box_tooltip)
    )
    median = (
        alt.Chart(box_data)
        .mark_tick(color=REFERENCE, size=28, thickness=2)
        .encode(x=x, y="median:Q", tooltip=box_tooltip)
    )
    points = (
        alt.Chart(dots)
        .mark_circle(size=24, opacity=0.6)
        .encode(
            x=x,
            xOffset=alt.XOffset("jitter:Q", scale=alt.Scale(domain=[-0.5, 0.5])),
            y="activation:Q",
            color=alt.Color("class:N", sort=classes, legend=None),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("probe_index:Q", title="probe sample"),
                alt.Tooltip("class:N", title="label"),
                alt.Tooltip("predicted:N", title="predicted"),
                alt.Tooltip("activation:Q", format=".4g"),
            ],
        )
    )
    return alt.layer(whisker, box, points, median).properties(
        title=_title("Activation by class on the probe set", subtitle),
        height=240,
        width="container",
    )


def selectivity_chart(
    frame: pd.DataFrame, *, layer: str, neuron_id: int, selected_epoch: int | None = None
) -> alt.LayerChart:
    """The class selectivity index over the recorded epochs against its shuffled-label band.

    ``frame`` is :func:`~nn_tracing.analysis.profiles.selectivity_over_epochs`. The grey band
    is the 5th–95th percentile of the index under shuffled labels, the dashed line its median;
    filled points are epochs where the neuron beats the null (p < 0.05).
    """
    data = frame.copy()
    data["signature"] = signature_column(data["epoch"], layer, neuron_id)
    data["beats null"] = np.where(
        data["p_value"] < 0.05, "p < 0.05", np.where(data["tested"], "p ≥ 0.05", "not tested")
    )
    x = alt.X(
        "epoch:Q", title=time_word(), scale=alt.Scale(nice=False), axis=alt.Axis(**INTEGER_AXIS)
    )
    tested = data[data["tested"]]
    band = (
        alt.Chart(tested)
        .mark_area(opacity=0.3, color=NULL_BAND)
        .encode(x=x, y=alt.Y("null_p05:Q", title="selectivity index"), y2="null_p95:Q")
    )
    null_median = (
        alt.Chart(tested)
        .mark_line(color=NULL_LINE, strokeDash=[4, 3])
        .encode(x=x, y="null_median:Q")
    )
    line = alt.Chart(data).mark_line(color=SERIES).encode(x=x, y="selectivity:Q")
    points = (
        alt.Chart(data)
        .mark_point(filled=True, size=40)
        .encode(
            x=x,
            y="selectivity:Q",
            color=alt.Color(
                "beats null:N",
                scale=alt.Scale(
                    domain=["p < 0.05", "p ≥ 0.05", "not tested"],
                    range=[SERIES, MUTED, MISSING],
                ),
                title=None,
            ),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("selectivity:Q", format=".3f"),
                alt.Tooltip("preferred_class:N", title="preferred class"),
                alt.Tooltip("null_median:Q", title="null median", format=".3f"),
                alt.Tooltip("null_p95:Q", title="null 95th pct", format=".3f"),
                alt.Tooltip("p_value:Q", title="p", format=".3g"),
            ],
        )
    )
    layers: list[alt.Chart] = [band, null_median, line, points]
    if selected_epoch is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"epoch": [selected_epoch]}))
            .mark_rule(color=HIGHLIGHT)
            .encode(x=alt.X("epoch:Q", title=time_word()))
        )
    return alt.layer(*layers).properties(
        title=_title(
            "Class selectivity over training",
            ["grey: 5th–95th percentile with shuffled labels (the chance level); dashed: median"],
        ),
        height=220,
        width="container",
    )


def sample_images_frame(
    top: pd.DataFrame, pixel_columns: list[str], image_shape: tuple[int, int], neuron_signature: str
) -> pd.DataFrame:
    """Top-activating image samples in long form: one row per pixel of each sample, with a
    ``caption`` (rank, label, prediction, activation) per sample."""
    rows, cols = image_shape
    pixels = top[pixel_columns].to_numpy(dtype=np.float64)
    r, c = np.divmod(np.arange(rows * cols), cols)
    captions = [
        f"#{rank} · label {label} · pred {pred} · a={act:.3g}"
        for rank, label, pred, act in zip(
            top["rank"], top["class"], top["predicted_class"], top["activation"], strict=True
        )
    ]
    n = len(top)
    return pd.DataFrame(
        {
            "caption": np.repeat(captions, rows * cols),
            "probe_index": np.repeat(top["probe_index"].to_numpy(), rows * cols),
            "activation": np.repeat(top["activation"].to_numpy(dtype=np.float64), rows * cols),
            "row": np.tile(r, n),
            "col": np.tile(c, n),
            "value": pixels.ravel(),
            "signature": neuron_signature,
        }
    )


def sample_images_chart(frame: pd.DataFrame, *, title: str, columns: int = 6) -> alt.FacetChart:
    """Probe samples drawn as images (grey scale of the raw pixel values), one panel each."""
    captions = list(dict.fromkeys(frame["caption"]))
    return (
        alt.Chart()
        .mark_rect()
        .encode(
            x=alt.X("col:O", axis=None),
            y=alt.Y("row:O", axis=None),
            color=alt.Color("value:Q", scale=alt.Scale(scheme=IMAGE_SCHEME), legend=None),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("probe_index:Q", title="probe sample"),
                alt.Tooltip("activation:Q", format=".4g"),
                alt.Tooltip("value:Q", title="pixel", format=".3g"),
            ],
        )
        .properties(width=90, height=90)
        .facet(
            data=frame,
            facet=alt.Facet(
                "caption:N",
                sort=captions,
                title=None,
                # one line per part ("#1", "label …", "pred …", "a=…"): a panel stays as wide
                # as its image, so six fit the page
                header=alt.Header(labelFontSize=10, labelExpr="split(datum.value, ' · ')"),
            ),
            columns=columns,
        )
        .properties(title=_title(title))
    )


# -- the activation field ----------------------------------------------------------------------
def _edges(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size == 1:
        return centres - 0.5, centres + 0.5
    mids = (centres[1:] + centres[:-1]) / 2
    start = np.concatenate([[centres[0] - (mids[0] - centres[0])], mids])
    end = np.concatenate([mids, [centres[-1] + (centres[-1] - mids[-1])]])
    return start, end


def activation_field_chart(
    field: ActivationField,
    *,
    layer: str,
    highlight: list[int] | None = None,
    budget: int = MARK_BUDGET,
) -> alt.LayerChart:
    """The neuron's activation over the input plane as a heatmap, the probe points on top.

    Points are coloured by class; ``highlight`` (probe indices, e.g. the top-activating
    samples) get a thick outline. Above ``budget`` marks the probe points are subsampled
    evenly (the subtitle says so); the grid itself is sized by the caller.
    """
    signature = format_signature(field.epoch, layer, field.neuron_id)
    heat, n_cells = _field_heat(field, signature)
    subtitle = [f"{signature} at {time_key(field.epoch)}, computed by running the traced model"]
    layers: list[alt.Chart] = [heat]
    if field.probe_x is not None:
        points, notes = _field_points(
            field, field.probe_x, signature, highlight, max(budget - n_cells, 1)
        )
        layers.append(points)
        subtitle += notes
    return (
        alt.layer(*layers)
        .resolve_scale(color="independent", fill="independent")
        .properties(title=_title("Activation field", subtitle), width=480, height=420)
    )


def _field_heat(field: ActivationField, signature: str) -> tuple[alt.Chart, int]:
    """The neuron's activation over the grid of the input plane, and how many cells it has.
    Cells overlap their neighbours by a sliver, which closes the anti-aliasing seams."""
    x0, x1 = _edges(field.x)
    y0, y1 = _edges(field.y)
    domain_x, domain_y = (x0[0], x1[-1]), (y0[0], y1[-1])
    x1 = x1 + 0.08 * (x1 - x0)
    y1 = y1 + 0.08 * (y1 - y0)
    n = field.x.size
    grid = pd.DataFrame(
        {
            "x0": np.tile(x0, n),
            "x1": np.tile(x1, n),
            "y0": np.repeat(y0, n),
            "y1": np.repeat(y1, n),
            "value": field.values.ravel(),
            "signature": signature,
        }
    )
    fx, fy = field.feature_names
    values = field.values[np.isfinite(field.values)]
    scale = (
        _diverging(values)
        if values.size and values.min() < 0
        else alt.Scale(scheme=SEQUENTIAL_SCHEME, zero=False)
    )
    heat = (
        alt.Chart(grid)
        .mark_rect(clip=True)
        .encode(
            x=alt.X("x0:Q", title=fx, scale=alt.Scale(domain=list(domain_x), nice=False)),
            x2="x1:Q",
            y=alt.Y("y0:Q", title=fy, scale=alt.Scale(domain=list(domain_y), nice=False)),
            y2="y1:Q",
            color=alt.Color("value:Q", scale=scale, title="activation"),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("value:Q", title="activation", format=".4g"),
            ],
        )
    )
    return heat, len(grid)


def _field_points(
    field: ActivationField,
    probe_x: np.ndarray,
    signature: str,
    highlight: list[int] | None,
    room: int,
) -> tuple[alt.Chart, list[str]]:
    """The probe samples (``probe_x``, the field's) over the field, by class, ``highlight``
    outlined, evenly thinned to ``room`` marks (the highlighted ones kept); and the subtitle
    lines that say so."""
    labels = field.probe_labels if field.probe_labels is not None else np.zeros(len(probe_x))
    notes = []
    points = pd.DataFrame(
        {
            "px": probe_x[:, 0],
            "py": probe_x[:, 1],
            "class": [str(v) for v in np.asarray(labels).tolist()],
            "probe_index": np.arange(len(probe_x)),
            "activation": field.probe_values if field.probe_values is not None else np.nan,
            "signature": signature,
        }
    )
    points["top"] = points["probe_index"].isin(highlight or [])
    step = bin_size_for(len(points), room)
    if step > 1:
        points = points[(points["probe_index"] % step == 0) | points["top"]]
        notes.append(f"probe points: every {step}th of {len(probe_x)} shown")
    if highlight:
        notes.append("red outline: the top-activating probe samples")
    chart = (
        alt.Chart(points)
        .mark_point(filled=True, size=30, opacity=0.9)
        .encode(
            x="px:Q",
            y="py:Q",
            fill=alt.Fill(
                "class:N",
                scale=categorical_scale(sorted(set(points["class"]), key=_class_key)),
                title="class",
            ),
            stroke=alt.condition("datum.top", alt.value(HIGHLIGHT), alt.value(WHITE)),
            strokeWidth=alt.condition("datum.top", alt.value(2.5), alt.value(0.6)),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("probe_index:Q", title="probe sample"),
                alt.Tooltip("class:N", title="label"),
                alt.Tooltip("activation:Q", format=".4g"),
            ],
        )
    )
    return chart, notes
