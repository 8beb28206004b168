"""A chart's Vega-Lite spec is converted once per chart object (``nn_tracing/ui/charts.py``):
the same spec Streamlit's own conversion gives, reused while the chart lives, dropped with it."""

from __future__ import annotations

import gc

import altair as alt
import pandas as pd
from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec

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
