"""A chart's Vega-Lite spec is converted once per chart object (``nn_tracing/ui/charts.py``):
the same spec Streamlit's own conversion gives, reused while the chart lives, dropped with it;
a layout shown with named data sends what the whole chart would."""

from __future__ import annotations

import gc

import altair as alt
import pandas as pd
import pytest
import streamlit as st
from streamlit import dataframe_util
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec

from nn_tracing import load_trace, viz
from nn_tracing.ui import charts
from nn_tracing.viz.palette import with_palette


def _chart() -> alt.Chart:
    data = pd.DataFrame({"x": [1, 2, 3], "y": [3.0, 1.0, 2.0], "layer": ["a", "b", "a"]})
    return alt.Chart(data).mark_point().encode(x="x", y="y", color="layer:N")


def test_the_spec_is_streamlits_own_conversion_made_once_per_chart(monkeypatch) -> None:
    chart = _chart()
    expected = _convert_altair_to_vega_lite_spec(with_palette(chart))
    calls = []

    def counting(converted):
        calls.append(converted)
        return _convert_altair_to_vega_lite_spec(converted)

    monkeypatch.setattr(charts, "_convert_altair_to_vega_lite_spec", counting)
    first = charts._spec(chart)
    assert first == expected  # the palette applied, the data as named Arrow datasets
    assert first["config"]["range"]["category"] and first["datasets"]
    assert charts._spec(chart) is first and len(calls) == 1
    other = _chart()  # an equal chart, another object: converted for itself
    assert charts._spec(other) == first and len(calls) == 2


def test_a_charts_spec_goes_with_it() -> None:
    chart = _chart()
    key = id(chart)
    charts._spec(chart)
    assert key in charts._SPECS
    del chart
    gc.collect()
    assert key not in charts._SPECS


def test_a_layout_shown_with_its_data_sends_what_the_whole_chart_sends(
    tiny_trace_file, monkeypatch
) -> None:
    """The Neurons page's profile: one layout converted once, then each neuron's rows."""
    trace = load_trace(tiny_trace_file)
    sent: list[dict] = []
    monkeypatch.setattr(st, "vega_lite_chart", lambda spec, **options: sent.append(spec))
    conversions = []
    monkeypatch.setattr(
        charts,
        "_convert_altair_to_vega_lite_spec",
        lambda chart: conversions.append(chart) or _convert_altair_to_vega_lite_spec(chart),
    )
    quantiles = viz.layer_quantiles(trace, "hidden_1")
    frames = [viz.neuron_history_frame(trace, n, quantiles, 4) for n in (3, 4)]
    kind = viz.history_layout_key(frames[0])
    assert viz.history_layout_key(frames[1]) == kind == (kind[0], True, True)
    layout = viz.neuron_history_layout(*kind)
    for frame in frames:
        charts.show_chart(layout, data={viz.HISTORY_DATA: viz.neuron_history_data(frame)})
    assert len(conversions) == 1  # the layout, once for both neurons

    for frame, spec in zip(frames, sent):
        whole = _convert_altair_to_vega_lite_spec(with_palette(viz.neuron_history_chart(frame)))
        [(name, rows)] = whole.pop("datasets").items()
        assert whole.pop("data") == {"name": name}
        data = spec["datasets"][viz.HISTORY_DATA]
        assert dataframe_util.convert_anything_to_arrow_bytes(data) == rows
        rest = {k: v for k, v in spec.items() if k not in ("data", "datasets")}
        assert spec["data"] == {"name": viz.HISTORY_DATA} and rest == whole
    assert sent[0]["datasets"][viz.HISTORY_DATA]["signature"].iloc[0] == "E_0/L_hidden_1/n_3"


def test_a_chart_with_named_data_cannot_be_selectable() -> None:
    with pytest.raises(ValueError, match="selectable"):
        charts.show_chart(_chart(), data={"d": pd.DataFrame()}, select="pick")
