"""The brain scan: every neuron coloured by a metric, at one epoch and over time.

Three views, each a data builder (NumPy/pandas) and a chart builder (Altair):

* :func:`brain_scan_frame` / :func:`brain_scan_chart` — one strip per layer, one cell per
  neuron (ordered by id or by value), at one recorded epoch;
* :func:`layer_epoch_frame` / :func:`layer_epoch_chart` — layers × recorded epochs, each cell
  the layer's median with its quartiles in the tooltip;
* :func:`neuron_epoch_frame` / :func:`neuron_epoch_chart` — one layer's neurons × recorded
  epochs.

Above :data:`~nn_tracing.viz.common.MARK_BUDGET` marks, neurons are binned (each cell the mean
of a run of neurons) and the chart's subtitle says so. Every cell carries the signature of a
neuron it stands for, which a click selects (selection parameter :data:`PICK`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from ..analysis.derived_metrics import metric_at, metric_over_time
from ..timeaxis import time_key, time_prefix, time_word
from ..trace import METRICS, NetworkTrace, signature_column
from .common import (
    INTEGER_AXIS,
    MARK_BUDGET,
    MISSING_COLOR,
    SIGNED_METRICS,
    bin_size_for,
    binned_means,
    color_scale,
    signature_range,
)
from .palette import REFERENCE

__all__ = [
    "PICK",
    "BrainScan",
    "brain_scan_chart",
    "brain_scan_frame",
    "epoch_edges",
    "layer_epoch_chart",
    "layer_epoch_frame",
    "neuron_epoch_chart",
    "neuron_epoch_frame",
]

#: Name of the click selection on neuron cells; its value holds ``neuron`` and ``epoch``.
PICK = "pick"
ORDERS = ("id", "value")


@dataclass(frozen=True)
class BrainScan:
    """The data of a brain-scan chart and how it was aggregated.

    ``frame`` has one row per cell: ``layer``, ``x0``, ``x1`` (position in [0, 1] along the
    layer's strip), ``value`` (the metric, or the mean over the cell), ``color`` (what the
    colour encodes), ``neuron`` (the id a click opens), ``epoch``, ``signature`` and
    ``neurons`` (what the cell stands for), ``n`` (neurons in the cell), ``first`` (the
    cell's first neuron along the strip: in id order its neurons are ``first … first + n - 1``).
    """

    frame: pd.DataFrame
    metric: str
    epoch: int
    layers: list[str]
    bin_size: int
    percentile: bool
    domain: tuple[float, float] | None = None
    order: str = "id"

    @property
    def binned(self) -> bool:
        return self.bin_size > 1


def _percentiles(values: np.ndarray) -> np.ndarray:
    """Rank of each finite value within ``values``, scaled to [0, 1]; NaN stays NaN."""
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    count = int(finite.sum())
    if count == 1:
        out[finite] = 0.5
    elif count > 1:
        ranks = pd.Series(values[finite]).rank(method="average").to_numpy()
        out[finite] = (ranks - 1) / (count - 1)
    return out


def _order(values: np.ndarray, by: str) -> np.ndarray:
    if by == "value":
        # ascending, NaN last
        return np.argsort(np.where(np.isfinite(values), values, np.inf), kind="stable")
    return np.arange(values.size)


def _representatives(values: np.ndarray, means: np.ndarray, size: int) -> np.ndarray:
    """Per chunk of ``size``, the offset of the value closest to the chunk's mean."""
    n = values.size
    cells = means.size
    padded = np.full(cells * size, np.nan)
    padded[:n] = values
    distance = np.abs(padded.reshape(cells, size) - means[:, None])
    distance = np.where(np.isfinite(distance), distance, np.inf)
    return distance.argmin(axis=1)


def brain_scan_frame(
    trace: NetworkTrace,
    epoch: int,
    metric: str,
    *,
    order: str = "id",
    percentile: bool = False,
    budget: int = MARK_BUDGET,
) -> BrainScan:
    """Cells of the brain scan of ``metric`` at ``epoch``.

    Parameters
    ----------
    order
        ``"id"``: neurons in id order along each strip; ``"value"``: ascending by value.
    percentile
        Colour by the percentile of the value within its layer instead of the raw value
        (layers whose scales differ by orders of magnitude stay readable).
    budget
        Most cells to draw; above it, runs of neurons are binned into one cell.
    """
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: use one of {ORDERS}")
    values_all = metric_at(trace, epoch, metric)
    size = bin_size_for(trace.n_neurons, budget)
    parts = []
    for info in trace.layers:
        values = values_all[info.first_id : info.last_id + 1]
        colors = _percentiles(values) if percentile else values
        ordering = _order(values, order)
        values, colors = values[ordering], colors[ordering]
        ids = np.asarray(info.ids)[ordering]
        if size == 1:
            cell_values, cell_colors, picks = values, colors, ids
            members: list[str] = signature_column(epoch, info.name, ids.astype(np.int64))
            counts = np.ones(ids.size, dtype=int)
        else:
            cell_values = binned_means(values, size)
            cell_colors = binned_means(colors, size)
            offsets = _representatives(values, cell_values, size)
            starts = np.arange(cell_values.size) * size
            picks = ids[np.minimum(starts + offsets, ids.size - 1)]
            members = [signature_range(epoch, info.name, ids[s : s + size]) for s in starts]
            counts = np.minimum(size, ids.size - starts)
        cells = cell_values.size
        positions = np.arange(cells)
        parts.append(
            pd.DataFrame(
                {
                    "layer": info.name,
                    "x0": positions / cells,
                    "x1": (positions + 1) / cells,
                    "value": cell_values,
                    "color": cell_colors,
                    "neuron": picks.astype(np.int64),
                    "epoch": epoch,
                    "signature": signature_column(epoch, info.name, picks.astype(np.int64)),
                    "neurons": members,
                    "n": counts,
                    "first": ids[np.minimum(positions * size, ids.size - 1)].astype(np.int64),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    return BrainScan(
        frame=frame,
        metric=metric,
        epoch=epoch,
        layers=trace.layer_names(),
        bin_size=size,
        percentile=percentile,
        order=order,
        domain=None if percentile else robust_domain(values_all, signed=metric in SIGNED_METRICS),
    )


def robust_domain(values: np.ndarray, *, signed: bool) -> tuple[float, float] | None:
    """The 2nd to 98th percentile of the finite values (symmetric around 0 when ``signed``),
    so that a few extreme neurons (often the output logits) do not wash out the rest."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = (float(v) for v in np.percentile(finite, [2, 98]))
    if signed:
        bound = max(abs(low), abs(high))
        low, high = -bound, bound
    return (low, high) if high > low else None


#: Pixels of a colour legend's title (with its padding) and of half an end label.
_LEGEND_TITLE = 20
_LEGEND_LABEL = 8


def _color(
    field: str,
    metric: str,
    percentile: bool,
    title: str,
    domain: tuple[float, float] | None = None,
    length: int | None = None,
) -> alt.Color:
    """The cells' colour, grey where the value is missing. ``length``: the colour bar's
    length in pixels (a bar longer than the plot would push its end label out of the chart)."""
    legend = alt.Legend(title=title, orient="right")
    if length is not None:
        legend = alt.Legend(title=title, orient="right", gradientLength=length)
    return (
        alt.when(f"isValid(datum.{field}) && isFinite(datum.{field})")
        .then(
            alt.Color(
                f"{field}:Q",
                scale=color_scale(metric, percentile=percentile, domain=domain),
                legend=legend,
            )
        )
        .otherwise(alt.value(MISSING_COLOR))
    )


def _signature_expr(point: str, layer: str, neuron: str = "datum.neuron") -> str:
    """A Vega expression for each row's signature (:func:`~nn_tracing.trace.format_signature`):
    ``point`` and ``layer`` are expressions (a quoted constant or a field), ``neuron`` too."""
    return f"{point} + '/L_' + {layer} + '/n_' + {neuron}"


def _range_expr(point: str, layer: str, first: str = "datum.first", n: str = "datum.n") -> str:
    """A Vega expression for :func:`~nn_tracing.viz.common.signature_range` of the ``n``
    consecutive ids from ``first`` (one signature when ``n`` is 1)."""
    one = _signature_expr(point, layer, first)
    many = (
        f"{point} + '/L_' + {layer} + '/n_' + {first} + ' … n_' + ({first} + {n} - 1) "
        f"+ ' (' + {n} + ' neurons)'"
    )
    return f"{n} == 1 ? {one} : {many}"


def _slim(frame: pd.DataFrame, floats: tuple[str, ...], ints: tuple[str, ...]) -> pd.DataFrame:
    """What a chart sends to the browser: ``floats`` as float32 (exact enough to draw and for a
    four-digit tooltip), ``ints`` as int32 (numbers in the browser, not BigInt), a ``layer``
    column as a categorical (sent once per layer)."""
    data = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    if "layer" in frame:
        data["layer"] = pd.Categorical(
            frame["layer"], categories=list(dict.fromkeys(frame["layer"]))
        )
    for column in floats:
        data[column] = frame[column].to_numpy(np.float32)
    for column in ints:
        data[column] = frame[column].to_numpy(np.int32)
    return data


def scan_chart_data(scan: BrainScan) -> tuple[pd.DataFrame, dict[str, str]]:
    """The brain scan's data as the browser gets it, and the Vega expressions of the texts it
    derives: the drawn columns only (``color`` only when it differs from ``value``), float32
    and int32, the layer as a categorical; the signatures (and, binned in id order, the
    cells' id ranges) computed by the browser from the ids, not sent as 5 000 strings. About
    a fifth of the frame's bytes at 5 000 cells."""
    floats = ("x0", "x1", "value", "color") if scan.percentile else ("x0", "x1", "value")
    ints = ("neuron", "epoch", "n", "first") if scan.binned else ("neuron", "epoch", "n")
    data = _slim(scan.frame, floats, ints)
    point = json.dumps(time_key(scan.epoch))
    texts = {"signature": _signature_expr(point, "datum.layer")}
    if scan.binned and scan.order == "id":
        texts["neurons"] = _range_expr(point, "datum.layer")
    elif scan.binned:  # value order: a cell's ids are not a range
        data["neurons"] = scan.frame["neurons"].to_numpy(object)
    return data, texts


def brain_scan_chart(scan: BrainScan) -> alt.Chart:
    """One strip per layer, one cell per neuron (or bin), coloured by the metric."""
    frame = scan.frame
    subtitle = ["grey: not defined for this layer (e.g. input features have no weights)"]
    if scan.domain is not None:
        subtitle.insert(
            0,
            f"colours span the 2nd–98th percentile of all neurons ({scan.domain[0]:.3g} to "
            f"{scan.domain[1]:.3g}); values beyond take the end colours",
        )
    if scan.binned:
        subtitle.insert(
            0,
            f"binned: {len(frame)} cells for {int(frame['n'].sum())} neurons, each cell the "
            f"mean of up to {scan.bin_size} neurons (over the mark budget of {MARK_BUDGET}); "
            "a click opens the cell's most typical neuron",
        )
    title = alt.Title(f"{scan.metric} at {time_key(scan.epoch)}", subtitle=subtitle, anchor="start")
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("value:Q", title=scan.metric, format=".4g"),
    ]
    if scan.binned:
        tooltip.insert(1, alt.Tooltip("neurons:N", title="cell"))
    if scan.percentile:
        tooltip.append(alt.Tooltip("color:Q", title="percentile in layer", format=".0%"))
    pick = alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")
    legend_title = "percentile in layer" if scan.percentile else scan.metric
    height = max(30 * len(scan.layers), 120)
    # the colour bar, its title above and its end labels fit within the plot's height
    bar = height - _LEGEND_TITLE - _LEGEND_LABEL
    data, texts = scan_chart_data(scan)
    return (
        alt.Chart(data)
        .transform_calculate(**texts)
        .mark_rect(stroke=None)
        .encode(
            x=alt.X("x0:Q", axis=None, scale=alt.Scale(domain=[0, 1], nice=False, zero=False)),
            x2="x1:Q",
            y=alt.Y("layer:N", sort=scan.layers, title=None),
            color=_color(
                "color" if scan.percentile else "value",
                scan.metric,
                scan.percentile,
                legend_title,
                scan.domain,
                length=bar,
            ),
            tooltip=tooltip,
        )
        .add_params(pick)
        .properties(title=title, height=height)
    )


def epoch_edges(epochs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges along a time axis: half-way between neighbouring recorded epochs.

    >>> [e.tolist() for e in epoch_edges([0, 1, 5])]
    [[-0.5, 0.5, 3.0], [0.5, 3.0, 5.5]]
    """
    e = np.asarray(epochs, dtype=np.float64)
    if e.size == 0:
        return e, e
    mids = (e[1:] + e[:-1]) / 2
    start = np.concatenate([[e[0] - 0.5], mids])
    end = np.concatenate([mids, [e[-1] + 0.5]])
    return start, end


def _epoch_bins(epochs: list[int], size: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Group consecutive epochs into bins of ``size``; edges span each bin."""
    start, end = epoch_edges(epochs)
    groups = [np.arange(i, min(i + size, len(epochs))) for i in range(0, len(epochs), size)]
    return groups, np.array([start[g[0]] for g in groups]), np.array([end[g[-1]] for g in groups])


def layer_epoch_frame(
    trace: NetworkTrace, metric: str, *, budget: int = MARK_BUDGET
) -> pd.DataFrame:
    """The layer median of ``metric`` at every recorded epoch, with its quartiles.

    Columns: ``layer``, ``epoch`` (the first epoch of the cell), ``epoch_last``, ``x0``,
    ``x1`` (cell edges in epochs), ``median``, ``p25``, ``p75``, ``n`` (neurons with a
    value), ``signature`` (``E_<epoch>/L_<layer>``) and ``neurons`` (the id range). Many
    epochs × layers are binned along time to stay within ``budget`` cells.
    """
    epochs = trace.epochs
    size = bin_size_for(len(epochs) * len(trace.layers), budget)
    groups, x0, x1 = _epoch_bins(epochs, size)
    cells = _layer_quartiles(trace, metric, groups)
    rows = []
    for l_index, info in enumerate(trace.layers):
        for g_index, (group, start, end) in enumerate(zip(groups, x0, x1, strict=True)):
            p25, median, p75, n_finite = cells[l_index, g_index]
            first, last = epochs[group[0]], epochs[group[-1]]
            rows.append(
                {
                    "layer": info.name,
                    "epoch": first,
                    "epoch_last": last,
                    "x0": start,
                    "x1": end,
                    "median": median,
                    "p25": p25,
                    "p75": p75,
                    "n": int(n_finite // max(len(group), 1)),
                    "signature": f"{time_key(first)}/L_{info.name}"
                    + (f" … {time_key(last)}" if last != first else ""),
                    "neurons": f"n_{info.first_id} … n_{info.last_id}",
                }
            )
    frame = pd.DataFrame(rows)
    frame.attrs["bin_size"] = size
    return frame


def _layer_quartiles(trace: NetworkTrace, metric: str, groups: list[np.ndarray]) -> np.ndarray:
    """25th, 50th, 75th percentile and count of the finite values of ``metric`` over each
    layer and group of epochs (positions in ``trace.epochs``): array of shape
    (n_layers, n_groups, 4). From DuckDB when the trace is a run directory on disk."""
    epochs = trace.epochs
    out = np.full((len(trace.layers), len(groups), 4), np.nan)
    if trace.query is not None and metric in METRICS:
        frame = trace.query.layer_quantiles(
            metric, epoch_groups=[[epochs[i] for i in group] for group in groups]
        )
        values = frame[["q0", "q1", "q2", "n"]].to_numpy(np.float64)
        out[frame["layer_index"].to_numpy(), frame["group"].to_numpy()] = values
        return out
    values = metric_over_time(trace, metric)  # (n_epochs, n_neurons)
    for l_index, info in enumerate(trace.layers):
        block = values[:, info.first_id : info.last_id + 1]
        for g_index, group in enumerate(groups):
            cell = block[group].ravel()
            finite = cell[np.isfinite(cell)]
            out[l_index, g_index, 3] = finite.size
            if finite.size:
                out[l_index, g_index, :3] = np.percentile(finite, [25, 50, 75])
    return out


def layer_epoch_chart(
    frame: pd.DataFrame,
    metric: str,
    layers: list[str],
    selected_epoch: int | None = None,
) -> alt.LayerChart:
    """Layers × recorded epochs, each cell coloured by the layer's median."""
    size = int(frame.attrs.get("bin_size", 1))
    subtitle = ["each cell: the median over the layer's neurons; quartiles in the tooltip"]
    if size > 1:
        subtitle.append(f"binned over time: each cell spans {size} recorded epochs")
    base = alt.Chart(frame)
    cells = base.mark_rect().encode(
        x=alt.X(
            "x0:Q",
            title=time_word(),
            scale=alt.Scale(nice=False, zero=False),
            axis=alt.Axis(**INTEGER_AXIS),
        ),
        x2="x1:Q",
        y=alt.Y("layer:N", sort=layers, title=None),
        color=_color("median", metric, False, f"median {metric}"),
        tooltip=[
            alt.Tooltip("signature:N", title="signature"),
            alt.Tooltip("neurons:N", title="neurons"),
            alt.Tooltip("median:Q", format=".4g"),
            alt.Tooltip("p25:Q", title="25th percentile", format=".4g"),
            alt.Tooltip("p75:Q", title="75th percentile", format=".4g"),
        ],
    )
    layers_: list[alt.Chart] = [cells]
    if selected_epoch is not None:
        marker = pd.DataFrame({"epoch": [selected_epoch]})
        layers_.append(
            alt.Chart(marker)
            .mark_rule(color=REFERENCE, strokeDash=[4, 3])
            .encode(x=alt.X("epoch:Q", title=time_word()))
        )
    return alt.layer(*layers_).properties(
        title=alt.Title(f"{metric} by layer over training", subtitle=subtitle, anchor="start"),
        height=max(30 * len(layers), 120),
    )


def _layer_rows(
    trace: NetworkTrace, layer: str, metric: str, order: str, row_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of one layer's chart: the means of runs of ``row_size`` neurons in ``order``
    at every epoch, and the layer's ids in that order. Binned in id order on a run directory,
    DuckDB averages the runs (only the means are read out, not the layer's every value)."""
    info = trace.layer(layer)
    if order == "id" and row_size > 1 and trace.query is not None and metric in METRICS:
        means = trace.query.binned_means(metric, info.first_id, info.last_id, row_size)
        return means, np.asarray(info.ids)
    values = metric_over_time(trace, metric, layer)
    ordering = _order(values[-1], order) if len(trace.epochs) else np.arange(info.n_neurons)
    values = values[:, ordering]
    ids = np.asarray(info.ids)[ordering]
    return (binned_means(values, row_size) if row_size > 1 else values), ids


def neuron_epoch_frame(
    trace: NetworkTrace,
    layer: str,
    metric: str,
    *,
    order: str = "id",
    budget: int = MARK_BUDGET,
) -> pd.DataFrame:
    """One layer's neurons × recorded epochs: ``metric`` of every neuron at every epoch.

    Rows are neurons in id order, or ordered by their value at the last recorded epoch
    (``order="value"``). Above ``budget`` cells, runs of neurons are binned (each cell their
    mean) and, if still needed, runs of epochs too; ``frame.attrs`` says how.
    Columns: ``row`` (position), ``x0``, ``x1``, ``epoch``, ``value``, ``neuron`` (the id a
    click opens: the row's first), ``signature``, ``neurons``, ``n`` (neurons in the row).
    """
    if order not in ORDERS:
        raise ValueError(f"order={order!r}: use one of {ORDERS}")
    info = trace.layer(layer)
    epochs = trace.epochs
    max_rows = max(budget // max(len(epochs), 1), 16)
    row_size = bin_size_for(info.n_neurons, max_rows)
    cells, ids = _layer_rows(trace, layer, metric, order, row_size)  # (n_epochs, rows)
    n_rows = cells.shape[1]
    epoch_size = bin_size_for(len(epochs) * n_rows, budget)
    groups, x0, x1 = _epoch_bins(epochs, epoch_size)
    starts = np.arange(n_rows) * row_size
    counts = np.minimum(row_size, info.n_neurons - starts)
    parts = []
    for group, start, end in zip(groups, x0, x1, strict=True):
        epoch = epochs[group[0]]
        cell_values = np.nanmean(cells[group], axis=0) if len(group) > 1 else cells[group[0]]
        picks = ids[starts]
        parts.append(
            pd.DataFrame(
                {
                    "row": np.arange(n_rows),
                    "x0": start,
                    "x1": end,
                    "epoch": epoch,
                    "value": cell_values,
                    "neuron": picks.astype(np.int64),
                    "signature": signature_column(epoch, layer, picks.astype(np.int64)),
                    "neurons": [
                        signature_range(epoch, layer, ids[s : s + row_size]) for s in starts
                    ]
                    if row_size > 1
                    else signature_column(epoch, layer, picks.astype(np.int64)),
                    "n": counts,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs.update(row_size=row_size, epoch_size=epoch_size, order=order, layer=layer)
    return frame


def neuron_epoch_chart_data(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """One layer's chart data as the browser gets it, as :func:`scan_chart_data`: float32 and
    int32 columns, the signatures (and, in id order, the rows' id ranges) derived by the
    browser from the epoch and the first id of each row."""
    data = _slim(frame, ("x0", "x1", "value"), ("row", "epoch", "neuron", "n"))
    point = f"{json.dumps(time_prefix())} + datum.epoch"
    layer = json.dumps(str(frame.attrs.get("layer", "")))
    texts = {"signature": _signature_expr(point, layer)}
    if frame.attrs.get("order", "id") == "id" or int(frame.attrs.get("row_size", 1)) == 1:
        texts["neurons"] = _range_expr(point, layer, first="datum.neuron")
    else:  # a row's ids are not a range
        data["neurons"] = frame["neurons"].to_numpy(object)
    return data, texts


def neuron_epoch_chart(frame: pd.DataFrame, metric: str) -> alt.Chart:
    """One layer's neurons (rows) × recorded epochs, coloured by the metric."""
    row_size = int(frame.attrs.get("row_size", 1))
    epoch_size = int(frame.attrs.get("epoch_size", 1))
    layer = frame.attrs.get("layer", "")
    order = frame.attrs.get("order", "id")
    subtitle = [
        "rows: neurons in id order"
        if order == "id"
        else "rows: neurons ordered by their value at the last recorded epoch"
    ]
    if row_size > 1 or epoch_size > 1:
        subtitle.append(
            f"binned (mark budget {MARK_BUDGET}): each row is the mean of {row_size} neurons"
            + (f", each column of {epoch_size} recorded epochs" if epoch_size > 1 else "")
        )
    n_rows = int(frame["row"].max()) + 1 if len(frame) else 1
    pick = alt.selection_point(name=PICK, fields=["neuron", "epoch"], on="click")
    data, texts = neuron_epoch_chart_data(frame)
    return (
        alt.Chart(data)
        .transform_calculate(**texts)
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
            color=_color("value", metric, False, metric),
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("neurons:N", title="cell"),
                alt.Tooltip("value:Q", title=metric, format=".4g"),
            ],
        )
        .add_params(pick)
        .properties(
            title=alt.Title(
                f"{metric} of every neuron of {layer}", subtitle=subtitle, anchor="start"
            ),
            height=min(max(3 * n_rows, 160), 420),
        )
    )
