"""The brain scan's and one layer's charts send ids, not texts: the browser derives each cell's
signature (and a binned cell's id range) with a Vega expression. Evaluated here by Chromium's
JavaScript on every row of the data sent, they must equal the Python frames' texts
(``format_signature``, ``signature_range``), which the charts used to send."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nn_tracing import load_trace
from nn_tracing.synthetic import synthetic_trace
from nn_tracing.viz.brain import (
    brain_scan_frame,
    neuron_epoch_chart_data,
    neuron_epoch_frame,
    scan_chart_data,
)


def _derived(browser, data: pd.DataFrame, texts: dict[str, str]) -> dict[str, list[str]]:
    """Each expression of ``texts`` evaluated by the browser on every row of ``data``."""
    page = browser.new_page()
    try:
        rows = data.astype(object).where(data.notna(), None).to_dict("records")
        return page.evaluate(
            """([rows, texts]) => Object.fromEntries(Object.entries(texts).map(([k, e]) => {
                   const f = new Function('datum', 'return ' + e);
                   return [k, rows.map((datum) => String(f(datum)))];
               }))""",
            [[{k: (str(v) if k == "layer" else v) for k, v in r.items()} for r in rows], texts],
        )
    finally:
        page.close()


@pytest.mark.parametrize(("order", "budget"), [("id", 6), ("id", 5000), ("value", 6)])
def test_the_brain_scans_texts_are_derived_in_the_browser_exactly(
    browser, tiny_trace_file: Path, order: str, budget: int
) -> None:
    trace = load_trace(tiny_trace_file)
    scan = brain_scan_frame(trace, 4, "act_mean", order=order, budget=budget)
    data, texts = scan_chart_data(scan)
    assert "signature" not in data and (scan.binned or "neurons" not in data)
    derived = _derived(browser, data, texts)
    assert derived["signature"] == scan.frame["signature"].tolist()
    if scan.binned:
        sent = derived.get("neurons", data.get("neurons", pd.Series(dtype=object)).tolist())
        assert list(sent) == scan.frame["neurons"].tolist()
        assert (order == "id") == ("neurons" in derived)


@pytest.mark.parametrize(("order", "budget"), [("id", 200), ("id", 5000), ("value", 200)])
def test_one_layers_texts_are_derived_in_the_browser_exactly(
    browser, order: str, budget: int
) -> None:
    trace = synthetic_trace([4, 50, 3], 6)  # 50 neurons × 6 epochs: rows binned under 200
    layer = trace.layer_names()[1]
    frame = neuron_epoch_frame(trace, layer, "act_mean", order=order, budget=budget)
    assert (frame.attrs["row_size"] > 1) == (budget == 200)
    data, texts = neuron_epoch_chart_data(frame)
    derived = _derived(browser, data, texts)
    assert derived["signature"] == frame["signature"].tolist()
    sent = derived["neurons"] if "neurons" in derived else data["neurons"].tolist()
    assert list(sent) == frame["neurons"].tolist()
