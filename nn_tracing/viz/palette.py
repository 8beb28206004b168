"""The one visual language of every chart: which colour means what, defined once.

* **Signed values** (weights, biases, signed activations, attribution scores, flows):
  orange is positive, blue is negative, on every page — :data:`POSITIVE`, :data:`NEGATIVE`,
  the continuous :func:`diverging_scale` (Vega's ``blueorange`` scheme, centred on 0) and
  the two-colour :func:`sign_scale`.
* **Categories** (layers, classes, clusters, states): :data:`CATEGORICAL`, one fixed
  sequence handed out in domain order by :func:`categorical_scale`; ``noise`` and ``n/a``
  are grey (:data:`MUTED`). A nominal colour without a scale of its own takes the same
  sequence: :func:`with_palette` makes it the chart's default range (the app's theme
  would otherwise give its own).
* **Unsigned magnitudes** (``|w|``, percentiles, counts): :data:`SEQUENTIAL_SCHEME`;
  counts in a matrix: :data:`COUNT_SCHEME`; input images (pixels, kernels):
  :data:`IMAGE_SCHEME`.
* **Marks that are not data**: :data:`REFERENCE` (rules marking an epoch or zero),
  :data:`HIGHLIGHT` (the picked neuron, the box of a receptive field), :data:`NULL_BAND` and
  :data:`NULL_LINE` (what chance gives), :data:`MISSING` (a cell whose value is undefined).

A chart module takes its colours from here and writes no colour literal of its own
(``tests/unit/test_palette.py`` checks both the sources and the chart specs).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np

__all__ = [
    "CATEGORICAL",
    "COUNT_SCHEME",
    "DIVERGING_SCHEME",
    "FRAME",
    "HIGHLIGHT",
    "IMAGE_SCHEME",
    "MISSING",
    "MUTED",
    "NEGATIVE",
    "NEGATIVE_LIGHT",
    "NULL_BAND",
    "NULL_LINE",
    "POSITIVE",
    "POSITIVE_LIGHT",
    "REFERENCE",
    "SCHEMES",
    "SEQUENTIAL_SCHEME",
    "SERIES",
    "WHITE",
    "all_colors",
    "categorical_colors",
    "categorical_scale",
    "diverging_scale",
    "sign_scale",
    "signed_color",
    "with_palette",
]

#: Vega scheme of signed values: blue below 0, orange above (``blueorange``).
DIVERGING_SCHEME = "blueorange"
#: Vega scheme of unsigned magnitudes and percentiles.
SEQUENTIAL_SCHEME = "viridis"
#: Vega scheme of counts in a matrix (a confusion matrix).
COUNT_SCHEME = "blues"
#: Vega scheme of input images (pixels, kernels, activation maps).
IMAGE_SCHEME = "greys"
#: Every Vega scheme a chart may name.
SCHEMES: frozenset[str] = frozenset(
    {DIVERGING_SCHEME, SEQUENTIAL_SCHEME, COUNT_SCHEME, IMAGE_SCHEME}
)

#: A positive value (the orange end of :data:`DIVERGING_SCHEME`).
POSITIVE = "#e08214"
#: A negative value (the blue end of :data:`DIVERGING_SCHEME`).
NEGATIVE = "#2d6fb6"
#: Light fills of a positive and a negative node (graph drawings).
POSITIVE_LIGHT = "#fbe1d3"
NEGATIVE_LIGHT = "#dbe8f4"

#: Categories in order: layers, classes, clusters, states (Tableau 10, then Tableau 20's
#: lighter companions).
CATEGORICAL: tuple[str, ...] = (
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#eeca3b",
    "#9d755d",
    "#ff9da6",
    "#79706e",
    "#1f77b4",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#dbdb8d",
    "#9edae5",
    "#393b79",
)
#: A single data series (a neuron's history, a selectivity curve) when no category applies.
SERIES = CATEGORICAL[0]

#: Rules that mark a place (the epoch shown, zero, a threshold).
REFERENCE = "#000000"
#: The picked item: a neuron's rule, a receptive field's box, a top-ranked sample.
HIGHLIGHT = "#d62728"
#: What chance gives: the band of a null and its median line.
NULL_BAND = "#9e9e9e"
NULL_LINE = "#757575"
#: Categories that are not one (``noise``, ``n/a``) and secondary marks.
MUTED = "#bdbdbd"
#: A cell whose metric is undefined (NaN).
MISSING = "#d9d9d9"
#: Plain white and a frame grey (graph clusters, strokes).
WHITE = "#ffffff"
FRAME = "#cccccc"

_GREY_CATEGORIES = frozenset({"noise", "n/a", "not shown"})


def categorical_colors(n: int) -> list[str]:
    """The first ``n`` categorical colours (cycling past :data:`CATEGORICAL`'s length)."""
    return [CATEGORICAL[i % len(CATEGORICAL)] for i in range(n)]


def categorical_scale(domain: Sequence[str]) -> alt.Scale:
    """A categorical scale over ``domain``: distinct colours in order, grey for ``noise``,
    ``n/a`` and ``not shown``."""
    colors, i = [], 0
    for value in domain:
        if value in _GREY_CATEGORIES:
            colors.append(MUTED)
        else:
            colors.append(CATEGORICAL[i % len(CATEGORICAL)])
            i += 1
    return alt.Scale(domain=list(domain), range=colors)


def diverging_scale(
    values: np.ndarray | None = None, *, domain: tuple[float, float] | None = None
) -> alt.Scale:
    """The colour scale of signed values: blue below 0, orange above, centred on 0.

    With ``values`` the domain is symmetric, ``[-max|v|, max|v|]``, so equal magnitudes look
    equally strong; with ``domain`` it is that range, clamped; with neither, the data's.
    """
    if values is not None:
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        bound = bound if bound > 0 else 1.0
        return alt.Scale(scheme=DIVERGING_SCHEME, domain=[-bound, bound], domainMid=0)
    if domain is not None:
        return alt.Scale(scheme=DIVERGING_SCHEME, domain=list(domain), domainMid=0, clamp=True)
    return alt.Scale(scheme=DIVERGING_SCHEME, domainMid=0)


def sign_scale() -> alt.Scale:
    """Two colours for a ``sign`` field holding ``"positive"`` / ``"negative"``."""
    return alt.Scale(domain=["positive", "negative"], range=[POSITIVE, NEGATIVE])


def signed_color(value: float) -> str:
    """:data:`POSITIVE` for a value ≥ 0, else :data:`NEGATIVE` (edges of a graph)."""
    return POSITIVE if value >= 0 else NEGATIVE


def with_palette(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """``chart`` with :data:`CATEGORICAL` as its default categorical range, so that a nominal
    colour without a scale of its own (a layer, a trail neuron) takes the palette's colours
    rather than the app theme's. Call it on the chart as shown, never on a part of one."""
    return chart.configure_range(category=list(CATEGORICAL))


def all_colors() -> frozenset[str]:
    """Every colour literal this module defines (lower case), for the checks of chart specs."""
    named = {
        POSITIVE,
        NEGATIVE,
        POSITIVE_LIGHT,
        NEGATIVE_LIGHT,
        REFERENCE,
        HIGHLIGHT,
        NULL_BAND,
        NULL_LINE,
        MUTED,
        MISSING,
        WHITE,
        FRAME,
    }
    return frozenset(c.lower() for c in (*named, *CATEGORICAL))
