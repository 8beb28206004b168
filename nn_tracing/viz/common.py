"""What every chart shares: the mark budget, neuron signatures, colour scales, binning.

A chart that would draw more than :data:`MARK_BUDGET` marks aggregates instead (neurons are
binned into cells that show the bin's mean) and says so in its subtitle, so that a trace of
thousands of neurons stays responsive in the browser.
"""

from __future__ import annotations

import math
import re

import altair as alt
import numpy as np

from ..analysis.derived_metrics import metric_description
from ..timeaxis import time_key
from ..trace import format_signature
from .palette import MISSING, SEQUENTIAL_SCHEME
from .palette import diverging_scale as _palette_diverging

__all__ = [
    "MARK_BUDGET",
    "SIGNED_METRICS",
    "bin_size_for",
    "binned_means",
    "color_scale",
    "diverging_scale",
    "element_height",
    "metric_title",
    "signature",
    "signature_range",
]

#: Largest number of marks one chart draws before it aggregates.
MARK_BUDGET = 5000

#: Metrics that take both signs (a diverging colour scale centred on 0 suits them).
SIGNED_METRICS: frozenset[str] = frozenset({"w_mean", "bias", "act_mean", "act_min", "act_max"})

#: The colour of a cell whose metric is not defined (NaN).
MISSING_COLOR = MISSING


#: An integer axis for epochs and counts.
INTEGER_AXIS = {"format": "d", "tickMinStep": 1}


#: ``E_<epoch>/L_<layer>/n_<id>``, the neuron signature every tooltip carries (one helper for
#: the whole package: :func:`nn_tracing.trace.format_signature`).
signature = format_signature


def signature_range(epoch: int, layer: str, ids: np.ndarray) -> str:
    """A compact description of several neurons of one layer at one epoch.

    >>> signature_range(3, "hidden_1", np.array([4, 5, 6]))
    'E_3/L_hidden_1/n_4 … n_6 (3 neurons)'
    >>> signature_range(3, "hidden_1", np.array([9, 2, 7, 11]))
    'E_3/L_hidden_1: n_9, n_2, n_7, … (4 neurons)'
    """
    ids = np.asarray(ids)
    if ids.size == 1:
        return format_signature(epoch, layer, int(ids[0]))
    if np.all(np.diff(ids) == 1):
        return f"{time_key(epoch)}/L_{layer}/n_{ids[0]} … n_{ids[-1]} ({ids.size} neurons)"
    shown = ", ".join(f"n_{i}" for i in ids[:3])
    return f"{time_key(epoch)}/L_{layer}: {shown}, … ({ids.size} neurons)"


def metric_title(metric: str) -> str:
    """``"act_mean — mean activation on the probe set"``."""
    description = metric_description(metric)
    return f"{metric} — {description}" if description else metric


def color_scale(
    metric: str, *, percentile: bool = False, domain: tuple[float, float] | None = None
) -> alt.Scale:
    """Diverging around 0 for signed metrics, sequential otherwise (or for percentiles);
    ``domain`` clamps the scale (values beyond it take the end colours)."""
    if percentile:
        return alt.Scale(scheme=SEQUENTIAL_SCHEME, domain=[0, 1])
    if metric in SIGNED_METRICS:
        return _palette_diverging(domain=domain)
    extra = {"domain": list(domain), "clamp": True} if domain is not None else {}
    return alt.Scale(scheme=SEQUENTIAL_SCHEME, **extra)


def diverging_scale(values: np.ndarray) -> alt.Scale:
    """The one colour scale of signed values (weights, attributions, signed activations):
    :func:`nn_tracing.viz.palette.diverging_scale` — orange positive, blue negative, centred
    on 0 and symmetric, so equal magnitudes look equally strong, on every page."""
    return _palette_diverging(values)


def bin_size_for(n_items: int, budget: int = MARK_BUDGET) -> int:
    """How many items one mark must stand for to stay within ``budget`` (1: no binning)."""
    return max(1, math.ceil(n_items / max(budget, 1)))


def binned_means(values: np.ndarray, size: int) -> np.ndarray:
    """Means of consecutive chunks of ``size`` along the last axis, ignoring NaN.

    Parameters
    ----------
    values : array of shape (..., n)
    size : chunk length; the last chunk may be shorter

    Returns
    -------
    array of shape (..., ceil(n / size)); NaN where a chunk holds only NaN.
    """
    n = values.shape[-1]
    cells = math.ceil(n / size)
    padded = np.full((*values.shape[:-1], cells * size), np.nan)
    padded[..., :n] = values
    chunks = padded.reshape(*values.shape[:-1], cells, size)
    finite = np.isfinite(chunks)
    counts = finite.sum(axis=-1)
    sums = np.where(finite, chunks, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


_TITLE_LINE = 24
_SUBTITLE_LINE = 15
_X_AXIS = 64  # tick labels and axis title
_X_TICKS = 30  # tick labels only (an axis without a title)
_PADDING = 36  # what Streamlit and vega-embed keep around the view
_LEGEND_ROW = 44  # a legend above or below the plot (its title and one row of symbols)
#: A facet grid as Vega lays it out (measured in Chromium, tests/e2e/test_layout.py checks
#: the gap below): each row's header line and its padding, the spacing between rows, and what
#: vega-embed keeps below the grid (a facet grid keeps its own size: it does not stretch to
#: fill the element, so any excess is a gap).
_FACET_HEADER_LINE = 16  # one line of header labels at the default font size
_FACET_HEADER_PAD = 12
_FACET_SPACING = 18
_FACET_PADDING = 22


def _title_height(title: object) -> int:
    if title is alt.Undefined or not title:
        return 0
    if isinstance(title, str):
        return _TITLE_LINE
    subtitle = getattr(title, "subtitle", alt.Undefined)
    lines = len(subtitle) if isinstance(subtitle, list) else int(isinstance(subtitle, str))
    return _TITLE_LINE + _SUBTITLE_LINE * lines


def _plot_height(chart: object) -> int:
    height = getattr(chart, "height", alt.Undefined)
    return int(height) if isinstance(height, (int, float)) else 300


def _has_x_axis(chart: object) -> bool:
    """Whether the chart draws an x axis (``axis=None`` on every view's x says it does not)."""
    return _x_axis_height(chart) > 0


def _x_axis_height(chart: object) -> int:
    """Pixels of the chart's x axis: none (``axis=None`` on every view), tick labels only
    (``title=None`` on every view that draws one), or labels and a title."""
    views = chart.layer if isinstance(getattr(chart, "layer", None), list) else [chart]
    height = 0
    for view in views:
        encoding = getattr(view, "encoding", alt.Undefined)
        if encoding is alt.Undefined:
            continue
        x = encoding.to_dict(validate=False).get("x")
        if x is None or x.get("axis", {}) is None:
            continue
        titled = "title" not in x or x["title"] is not None
        height = max(height, _X_AXIS if titled else _X_TICKS)
    return height


def _legend_row(chart: object) -> int:
    """Pixels of a legend placed above or below the plot (``orient`` top or bottom)."""
    view = getattr(chart, "spec", chart)
    encoding = getattr(view, "encoding", alt.Undefined)
    if encoding is alt.Undefined:
        return 0
    channels = encoding.to_dict(validate=False).values()
    for channel in channels:
        legend = channel.get("legend") if isinstance(channel, dict) else None
        if isinstance(legend, dict) and legend.get("orient") in ("top", "bottom"):
            return _LEGEND_ROW
    return 0


def element_height(chart: alt.TopLevelMixin) -> int:
    """Pixels the whole chart needs: plot, title and subtitle lines, x axis, facet rows.

    Streamlit sizes a chart element by its own ``height`` argument (the plot then fills
    what the title and axes leave), not by the Vega-Lite height inside the spec; pass this
    to ``st.altair_chart(..., height=...)`` so that the plot keeps the height it asked for.
    """
    title = _title_height(getattr(chart, "title", alt.Undefined))
    if isinstance(chart, alt.HConcatChart):
        return max(element_height(part) for part in chart.hconcat) + title
    if isinstance(chart, alt.FacetChart):
        facet = chart.facet.to_dict()
        panels = facet.get("sort")  # facet builders here list their panels
        n = len(panels) if isinstance(panels, list) else 1
        columns = chart.columns if isinstance(chart.columns, int) else n
        rows = math.ceil(n / max(columns, 1))
        header = _facet_header(facet, panels if isinstance(panels, list) else [])
        grid = rows * (_plot_height(chart.spec) + header) + (rows - 1) * _FACET_SPACING
        axis = _x_axis_height(chart.spec) or _X_AXIS
        axes = rows if _own_x_axes(chart) else 1  # an x axis under every row, or the grid's
        return grid + title + axes * axis + _FACET_PADDING + _legend_row(chart)
    return _plot_height(chart) + title + _x_axis_height(chart) + _PADDING


def _own_x_axes(chart: alt.FacetChart) -> bool:
    """Whether every panel of a facet draws its own x axis (``resolve_axis(x="independent")``)."""
    resolve = chart.resolve
    if resolve is alt.Undefined:
        return False
    return resolve.to_dict().get("axis", {}).get("x") == "independent"


def _facet_header(facet: dict, panels: list) -> int:
    """Pixels of one row's header: its label lines (a ``labelExpr`` that splits the label
    makes several) at the header's font size, and their padding; none for ``labels=False``."""
    header = facet.get("header") if isinstance(facet.get("header"), dict) else {}
    if header.get("labels") is False:
        return 0
    lines = 1
    split = re.search(r"split\(datum\.value,\s*'([^']+)'\)", str(header.get("labelExpr", "")))
    if split is not None and panels:
        lines = max(len(str(panel).split(split.group(1))) for panel in panels)
    size = header.get("labelFontSize")
    line = math.ceil(size * 1.25) if isinstance(size, (int, float)) else _FACET_HEADER_LINE
    return lines * line + _FACET_HEADER_PAD
