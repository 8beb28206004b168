"""Showing an Altair chart (one call that sizes the element and wires a click selection), and a
table of neurons whose rows open the neuron."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

# Streamlit's own conversion of an Altair chart (its data as Arrow datasets), done once per
# chart object here instead of on every rerun; pinned with streamlit in constraints.txt.
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec

from .. import viz
from ..viz.palette import CATEGORICAL, with_palette
from .links import open_neuron

__all__ = ["BLANK", "blank_missing", "load_charting", "neuron_table", "show_chart"]

#: The smallest Vega-Lite chart there is: no data, one pixel, no frame.
_EMPTY_CHART: dict[str, Any] = {
    "data": {"values": []},
    "mark": "point",
    "width": 1,
    "height": 1,
    "padding": 0,
    "config": {"view": {"stroke": None}, "range": {"category": list(CATEGORICAL)}},
}


def load_charting() -> None:
    """An empty one-pixel chart, drawn before a page's first chart has its data: the browser
    loads and starts its charting library (a 775 KB script, a second or more in a fresh page)
    while the server still computes, not after. Put it where a pixel of height goes unseen."""
    st.vega_lite_chart(spec=_EMPTY_CHART, width=1, height=1, theme=None)


#: The Vega-Lite spec of each chart object shown (by ``id``; an entry goes with its chart).
_SPECS: dict[int, dict[str, Any]] = {}
_SPECS_LOCK = threading.Lock()


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """``chart`` in the palette's colours as the Vega-Lite spec Streamlit sends, converted
    once per chart object. Converting validates the whole chart against the Vega-Lite schema
    and serialises its data (tens of milliseconds a chart, most of a cached page's rerun);
    the charts kept by :func:`~nn_tracing.ui.cache.chart` are the same objects on every rerun
    and are never modified, so a followed run's poll or a slider move converts none again."""
    key = id(chart)
    with _SPECS_LOCK:
        spec = _SPECS.get(key)
    if spec is None:
        spec = _convert_altair_to_vega_lite_spec(with_palette(chart))
        with _SPECS_LOCK:
            _SPECS[key] = spec
        weakref.finalize(chart, _SPECS.pop, key, None)
    return spec


def show_chart(
    chart: alt.TopLevelMixin,
    *,
    data: Mapping[str, pd.DataFrame] | None = None,
    select: str | list[str] | None = None,
    key: str | None = None,
    width: str = "stretch",
    height: str | None = None,
) -> Any:
    """``st.altair_chart`` sized to the chart's content, in the palette's colours
    (:func:`~nn_tracing.viz.palette.with_palette`); with ``select`` (a selection
    parameter's name, or several) a click reruns the page and the returned event holds the
    selection. ``height="content"`` keeps the spec's own size (an image whose pixels must stay
    square: a height set from outside would stretch its plot to fill it).

    ``data``: the named datasets (``alt.NamedData``) of a chart built as a layout without
    them, e.g. :func:`~nn_tracing.viz.neuron.neuron_history_layout`. The layout, kept by
    :func:`~nn_tracing.ui.cache.chart`, is converted once; each call sends only its rows.
    Not with ``select``: a selectable chart's identity follows its datasets' names."""
    if data is not None and select is not None:
        raise ValueError("a chart shown with named data cannot be selectable")
    options: dict[str, Any] = {"width": width, "height": height or viz.element_height(chart)}
    if select is not None:
        options.update(on_select="rerun", selection_mode=select, key=key)
    spec = _spec(chart)
    if data is not None:  # a shallow copy: Streamlit copies the spec before it changes it
        spec = {**spec, "datasets": {**spec.get("datasets", {}), **data}}
    return st.vega_lite_chart(spec=spec, **options)


def blank_missing(
    table: pd.DataFrame, column_config: dict[str, Any] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """``table`` ready to show its missing values blank, not as "None": text columns get
    ``""``; number columns stay numbers (so they sort as numbers), their missing values left
    to ``st.dataframe(..., placeholder="")`` — pass :data:`BLANK` with the table. A boolean
    column is left to the grid's check boxes. ``column_config`` is returned as a copy."""
    out = table.copy()
    for column in out.columns:
        values = out[column]
        if values.isna().any() and values.dtype.kind not in "fiub":  # text (object or string)
            out[column] = values.astype(object).where(values.notna(), "")
    return out, dict(column_config or {})


#: What ``st.dataframe`` shows in a missing cell: nothing (with :func:`blank_missing`).
BLANK = ""


def neuron_table(
    trace_name: str | None,
    table: pd.DataFrame,
    signatures: Sequence[str],
    *,
    key: str,
    max_height: int | None = None,
    column_config: dict[str, Any] | None = None,
    current: str | None = None,
) -> None:
    """``table`` (one neuron per row, ``signatures[i]`` the neuron of row ``i``) as a dataframe
    where selecting a row opens that neuron on the Neurons page — unless it is ``current``, the
    neuron already shown. ``max_height``: fit the rows up to that many pixels."""
    options: dict[str, Any] = {}
    if max_height is not None:
        options["height"] = min(36 * len(table) + 40, max_height)
    table, column_config = blank_missing(table, column_config)
    event = st.dataframe(
        table,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=key,
        column_config=column_config,
        placeholder=BLANK,
        **options,
    )
    rows = getattr(getattr(event, "selection", None), "rows", None) or []
    if rows and 0 <= int(rows[0]) < len(signatures) and signatures[int(rows[0])] != current:
        open_neuron(trace_name, signatures[int(rows[0])])
