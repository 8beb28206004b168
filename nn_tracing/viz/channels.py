"""Charts of convolution channels as image neurons: kernels over training, top images with
the receptive-field box that drove them, a channel's activation map, pixel attribution.

Pure Altair builders over long frames (one row per pixel) made by
:mod:`nn_tracing.views.channels`. Pixels are drawn as ``rect`` marks on quantitative axes
(``col … col + 1``, ``row … row + 1``, rows downwards) in square panels, so every pixel is a
square whatever the image's size. Signed values share one colour scale
(:func:`~nn_tracing.viz.common.diverging_scale`); every tooltip carries the neuron's signature.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .common import diverging_scale
from .palette import HIGHLIGHT, IMAGE_SCHEME

__all__ = [
    "activation_map_chart",
    "grey_image_chart",
    "kernel_images_chart",
    "pixel_attribution_chart",
    "top_images_chart",
]

#: The colour of a receptive-field box.
BOX_COLOR = HIGHLIGHT


def _pixels(
    frame: pd.DataFrame, color: alt.Color, size: int, tooltip: list[alt.Tooltip]
) -> alt.Chart:
    """Square pixels of one image per panel (``row``, ``col``; ``frame`` sets the size)."""
    height = int(frame["row"].max()) + 1 if len(frame) else 1
    width = int(frame["col"].max()) + 1 if len(frame) else 1
    return (
        alt.Chart()
        .mark_rect(stroke=None)
        .encode(
            x=alt.X("col:Q", axis=None, scale=alt.Scale(domain=[0, width], nice=False)),
            x2="col2:Q",
            y=alt.Y("row:Q", axis=None, scale=alt.Scale(domain=[height, 0], nice=False)),
            y2="row2:Q",
            color=color,
            tooltip=tooltip,
        )
        .properties(width=size, height=round(size * height / max(width, 1)))
    )


def _with_edges(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(col2=frame["col"] + 1, row2=frame["row"] + 1)


def _grey_image(image: pd.DataFrame, title: str, size: int = 200) -> alt.Chart:
    """One input image in grey (darker is larger), with its own data: ``row``, ``col``,
    ``value``, ``signature``."""
    return _pixels(
        image,
        alt.Color("value:Q", scale=alt.Scale(scheme=IMAGE_SCHEME), legend=None),
        size,
        [alt.Tooltip("signature:N", title="signature"), alt.Tooltip("value:Q", format=".3g")],
    ).properties(data=_with_edges(image), title=title)


def grey_image_chart(image: pd.DataFrame, title: str, size: int = 200) -> alt.Chart:
    """One input image in grey, square pixels (``image``: ``row``, ``col``, ``value``,
    ``signature``); a probe sample on the Breadcrumbs page, an explained input here."""
    return _grey_image(image, title, size)


def kernel_images_chart(frame: pd.DataFrame, *, title: str, subtitle: list[str]) -> alt.FacetChart:
    """One channel's kernels at several epochs: a panel per ``panel`` (epoch, and input
    channel when there are several), each weight a square on one diverging scale.

    ``frame``: :func:`nn_tracing.views.channels.kernel_frame`.
    """
    panels = list(dict.fromkeys(frame["panel"]))
    color = alt.Color("weight:Q", scale=diverging_scale(frame["weight"].to_numpy()), title="weight")
    tooltip = [
        alt.Tooltip("signature:N", title="signature"),
        alt.Tooltip("panel:N", title="kernel"),
        alt.Tooltip("row:Q"),
        alt.Tooltip("col:Q"),
        alt.Tooltip("weight:Q", format=".4g"),
    ]
    columns = min(len(panels), int(frame["n_epochs"].iloc[0]) if len(frame) else 1)
    return (
        _pixels(frame, color, 64, tooltip)
        .facet(
            data=_with_edges(frame),
            facet=alt.Facet(
                "panel:N", sort=panels, title=None, header=alt.Header(labelFontSize=10)
            ),
            columns=max(columns, 1),
        )
        .properties(title=alt.Title(title, subtitle=subtitle, anchor="start"))
    )


def top_images_chart(
    pixels: pd.DataFrame, boxes: pd.DataFrame, *, title: str, subtitle: list[str], columns: int = 6
) -> alt.FacetChart:
    """Top-activating images (grey) with the receptive-field box of each image's peak (red).

    ``pixels``: ``caption``, ``row``, ``col``, ``value``, ``signature``, ``probe_index``,
    ``activation``; ``boxes``: one row per image, ``caption``, ``col``, ``col2``, ``row``,
    ``row2`` (the box's pixel edges), ``peak``, ``signature``
    (:func:`nn_tracing.views.channels.top_images_frames`).
    """
    captions = list(dict.fromkeys(pixels["caption"]))
    data = pd.concat(
        [_with_edges(pixels).assign(kind="pixel"), boxes.assign(kind="box")], ignore_index=True
    )
    image = _pixels(
        pixels,
        alt.Color("value:Q", scale=alt.Scale(scheme=IMAGE_SCHEME), legend=None),
        96,
        [
            alt.Tooltip("signature:N", title="signature"),
            alt.Tooltip("probe_index:Q", title="probe sample"),
            alt.Tooltip("activation:Q", title="activation (mean of map)", format=".4g"),
            alt.Tooltip("value:Q", title="pixel", format=".3g"),
        ],
    ).transform_filter(alt.datum.kind == "pixel")
    box = (
        alt.Chart()
        .mark_rect(fill=None, stroke=BOX_COLOR, strokeWidth=2)
        .encode(
            x="col:Q",
            x2="col2:Q",
            y="row:Q",
            y2="row2:Q",
            tooltip=[
                alt.Tooltip("signature:N", title="signature"),
                alt.Tooltip("peak:Q", title="peak of the map", format=".4g"),
                alt.Tooltip("where:N", title="peak at (row, col)"),
            ],
        )
        .transform_filter(alt.datum.kind == "box")
    )
    return (
        alt.layer(image, box, data=data)
        .properties(width=96, height=96)
        .facet(
            facet=alt.Facet(
                "caption:N", sort=captions, title=None, header=alt.Header(labelFontSize=10)
            ),
            columns=columns,
        )
        .properties(title=alt.Title(title, subtitle=subtitle, anchor="start"))
    )


def activation_map_chart(
    image: pd.DataFrame, activation_map: pd.DataFrame, box: pd.DataFrame, *, title: str
) -> alt.HConcatChart:
    """A sample (grey, with the peak's receptive-field box) beside the channel's activation
    map on it (one square per map position, on the diverging scale).

    ``image``: ``row``, ``col``, ``value``, ``signature``; ``activation_map``: ``row``,
    ``col``, ``activation``, ``signature``; ``box``: one row, as in :func:`top_images_chart`.
    """
    left = _grey_image(image, "the sample; red: what the peak sees")
    outline = (
        alt.Chart(box)
        .mark_rect(fill=None, stroke=BOX_COLOR, strokeWidth=2)
        .encode(x="col:Q", x2="col2:Q", y="row:Q", y2="row2:Q")
    )
    right = _pixels(
        activation_map,
        alt.Color(
            "activation:Q",
            scale=diverging_scale(activation_map["activation"].to_numpy()),
            title="activation",
        ),
        200,
        [
            alt.Tooltip("signature:N", title="signature"),
            alt.Tooltip("row:Q", title="map row"),
            alt.Tooltip("col:Q", title="map column"),
            alt.Tooltip("activation:Q", format=".4g"),
        ],
    ).properties(data=_with_edges(activation_map), title="the channel's activation map")
    framed = alt.layer(left, outline).properties(height=left.height, width=left.width)
    return (
        alt.hconcat(framed, right)
        .resolve_scale(color="independent")
        .properties(title=alt.Title(title, anchor="start"))
    )


def pixel_attribution_chart(
    image: pd.DataFrame, scores: pd.DataFrame, *, title: str, subtitle: list[str]
) -> alt.HConcatChart:
    """The explained input (grey) beside its pixels' attribution (square pixels; orange
    supports the class, blue opposes it, as on every page: the palette of
    :mod:`nn_tracing.viz.palette`).

    ``image``: ``row``, ``col``, ``value``, ``signature``; ``scores``: ``row``, ``col``,
    ``score``, ``signature``.
    """
    left = _grey_image(image, "input (mean of the explained samples)")
    right = _pixels(
        scores,
        alt.Color(
            "score:Q",
            scale=diverging_scale(np.asarray(scores["score"])),
            title="score",
        ),
        200,
        [
            alt.Tooltip("signature:N", title="signature"),
            alt.Tooltip("row:Q"),
            alt.Tooltip("col:Q"),
            alt.Tooltip("score:Q", format=".4g"),
        ],
    ).properties(data=_with_edges(scores), title="attribution of each pixel")
    return (
        alt.hconcat(left, right)
        .resolve_scale(color="independent")
        .properties(title=alt.Title(title, subtitle=subtitle, anchor="start"))
    )
