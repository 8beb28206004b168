"""One neuron's life: its metrics over the recorded epochs against its layer, and its
activations on the probe set at one epoch.

The computations are :mod:`nn_tracing.analysis.profiles`'; this module shapes their results
for Altair. The rest of the Neurons page's charts are in :mod:`nn_tracing.viz.profile`.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..analysis.profiles import layer_bands, metric_history
from ..trace import METRICS, NetworkTrace, signature_column
from .common import INTEGER_AXIS
from .palette import HIGHLIGHT, NULL_BAND, NULL_LINE, SERIES

__all__ = [
    "HISTORY_DATA",
    "activation_histogram_chart",
    "activation_histogram_frame",
    "chart_data",
    "history_layout_key",
    "layer_quantiles",
    "neuron_history_chart",
    "neuron_history_data",
    "neuron_history_frame",
    "neuron_history_layout",
]


def layer_quantiles(trace: NetworkTrace, layer: str) -> np.ndarray:
    """25th, 50th and 75th percentile of every metric over a layer's neurons, per epoch
    (:func:`nn_tracing.analysis.profiles.layer_bands`).

    Returns
    -------
    array of shape (len(METRICS), n_epochs, 3); NaN where no neuron has a value.
    """
    return layer_bands(trace, layer)


def neuron_history_frame(
    trace: NetworkTrace,
    neuron_id: int,
    quantiles: np.ndarray | None,
    selected_epoch: int,
    *,
    percentiles: bool = True,
) -> pd.DataFrame:
    """Long frame of one neuron's metrics over epochs with its layer's quartiles.

    Columns: those of :func:`nn_tracing.analysis.profiles.metric_history` (``epoch``,
    ``metric``, ``value``, ``p25``, ``median``, ``p75``, ``percentile`` unless
    ``percentiles=False``), plus ``signature`` and ``selected`` (the epoch shown elsewhere on
    the page). ``quantiles=None``: the neuron alone, its layer's quartiles NaN (what a page
    draws while it computes them).
    """
    layer = trace.layer_of(neuron_id).name
    if quantiles is None:
        quantiles = np.full((len(METRICS), len(trace.epochs), 3), np.nan)
    frame = metric_history(trace, neuron_id, quantiles, percentiles=percentiles)
    frame["signature"] = signature_column(frame["epoch"], layer, neuron_id)
    frame["selected"] = frame["epoch"] == selected_epoch
    return frame


def even_columns(n_panels: int, *, fewest: int = 3, most: int = 5) -> int:
    """The number of columns between ``fewest`` and ``most`` that leaves the fewest empty
    cells in the last row of ``n_panels`` small multiples (more columns on a tie).

    >>> even_columns(13), even_columns(12), even_columns(9), even_columns(2)
    (5, 4, 3, 2)
    """
    if n_panels <= fewest:
        return max(n_panels, 1)
    return min(range(fewest, most + 1), key=lambda c: (-n_panels % c, -c))


#: The columns :func:`neuron_history_chart` draws (its marks, tooltip and selected epoch).
_CHART_COLUMNS = ("epoch", "metric", "value", "p25", "median", "p75", "percentile")

#: The name of the dataset a profile chart's layout (:func:`neuron_history_layout`) draws.
HISTORY_DATA = "neuron_history"


def chart_data(frame: pd.DataFrame) -> pd.DataFrame:
    """What the profile chart sends to the browser, and no more: the drawn columns, and the
    repeated texts (the metric; the signature, one per epoch shared by every panel) as
    categoricals, which Arrow sends once each: about half the bytes of the whole frame for a
    trace of 100 recorded epochs (72 against 136 KB), values unchanged."""
    kept = [c for c in (*_CHART_COLUMNS, "signature", "selected") if c in frame]
    data = frame[kept].copy()
    for column in ("metric", "signature"):
        if column in data:
            data[column] = data[column].astype("category")
    return data.reset_index(drop=True)


def history_layout_key(frame: pd.DataFrame) -> tuple[tuple[str, ...], bool, bool]:
    """What the layout of ``frame``'s profile chart depends on, and nothing else: the metrics
    it has values of, whether its layer's quartiles are known, whether its percentiles are."""
    valued = set(frame.loc[frame["value"].notna(), "metric"].unique())
    metrics = tuple(m for m in METRICS if m in valued)
    return metrics, bool(frame["median"].notna().any()), "percentile" in frame


def neuron_history_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the profile chart of ``frame`` draws (the metrics of its layout)."""
    metrics = history_layout_key(frame)[0]
    return chart_data(frame[frame["metric"].isin(metrics)])


def neuron_history_layout(
    metrics: tuple[str, ...], layer: bool, percentiles: bool, *, columns: int | None = None
) -> alt.FacetChart:
    """The profile chart without its data, which it reads from the dataset
    :data:`HISTORY_DATA` (:func:`neuron_history_data`): one layout serves every neuron with
    the same :func:`history_layout_key`, so a page builds and converts it once and sends
    only each neuron's rows. Small multiples, one per metric: the neuron (line), with
    ``layer`` over its layer's median (dashed) and interquartile band (shaded); the selected
    epoch as a vertical rule. The grid is as even as the number of metrics allows
    (:func:`even_columns`) and every panel keeps the same room for its y labels, so that the
    columns line up. Every panel draws its own epoch axis: a shared one would sit at the grid's
    foot, under the empty cells of a short last row."""
    columns = columns or even_columns(len(metrics))
    width = min(170, 780 // columns - 50)
    x = alt.X("epoch:Q", title=None, scale=alt.Scale(nice=False), axis=alt.Axis(**INTEGER_AXIS))
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("metric:N"),
        alt.Tooltip("value:Q", format=".4g"),
    ]
    if layer:
        tooltip += [
            alt.Tooltip("median:Q", title="layer median", format=".4g"),
            alt.Tooltip("p25:Q", title="layer 25th pct", format=".4g"),
            alt.Tooltip("p75:Q", title="layer 75th pct", format=".4g"),
        ]
    if percentiles:
        tooltip.append(alt.Tooltip("percentile:Q", title="percentile in layer", format=".0%"))
    base = alt.Chart()
    y_axis = alt.Axis(format="~g", minExtent=44, labelLimit=44, tickCount=4)
    y_scale = alt.Scale(zero=False)
    line = base.mark_line(point=alt.OverlayMarkDef(size=18), color=SERIES)
    rule = base.mark_rule(color=HIGHLIGHT).encode(x=x).transform_filter("datum.selected")
    if layer:
        band = base.mark_area(opacity=0.25, color=NULL_BAND).encode(
            x=x, y=alt.Y("p25:Q", title=None, scale=y_scale, axis=y_axis), y2="p75:Q"
        )
        median = base.mark_line(color=NULL_LINE, strokeDash=[4, 3]).encode(x=x, y="median:Q")
        layers = [band, median, line.encode(x=x, y="value:Q", tooltip=tooltip), rule]
    else:  # the neuron alone: no empty band and median for the browser to lay out
        value = alt.Y("value:Q", title=None, scale=y_scale, axis=y_axis)
        layers = [line.encode(x=x, y=value, tooltip=tooltip), rule]
    return (
        alt.layer(*layers, data=alt.NamedData(HISTORY_DATA))
        .properties(width=width, height=100)
        .facet(facet=alt.Facet("metric:N", sort=list(metrics), title=None), columns=columns)
        .resolve_scale(y="independent")
        .resolve_axis(x="independent")
    )


def neuron_history_chart(frame: pd.DataFrame, *, columns: int | None = None) -> alt.FacetChart:
    """The profile chart of ``frame`` (:func:`neuron_history_frame`) with its data: its
    layout (:func:`neuron_history_layout`) given its rows (:func:`neuron_history_data`)."""
    layout = neuron_history_layout(*history_layout_key(frame), columns=columns)
    return layout.properties(data=neuron_history_data(frame))


def activation_histogram_frame(
    activations: np.ndarray,
    labels: np.ndarray,
    class_names: list[str] | None,
    signature: str,
) -> pd.DataFrame:
    """One row per probe sample: ``activation``, ``class`` (its name), ``signature``."""
    labels = np.asarray(labels).astype(np.int64)
    names = [str(n) for n in class_names] if class_names else []
    classes = [names[i] if 0 <= i < len(names) else f"class {i}" for i in labels]
    return pd.DataFrame(
        {
            "activation": np.asarray(activations, dtype=np.float64),
            "class": classes,
            "signature": signature,
        }
    )


def activation_histogram_chart(frame: pd.DataFrame) -> alt.Chart:
    """The neuron's activations on the probe set, stacked by class."""
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("activation:Q", bin=alt.Bin(maxbins=40), title="activation"),
            y=alt.Y("count():Q", title="probe samples"),
            color=alt.Color("class:N", title="class"),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("class:N"),
                alt.Tooltip("activation:Q", bin=alt.Bin(maxbins=40), title="activation"),
                alt.Tooltip("count():Q", title="samples"),
            ],
        )
        .properties(
            title=alt.Title("activation on the probe set, by class", anchor="start"),
            height=220,
        )
    )
