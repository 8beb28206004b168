"""AppTest helpers shared by the app tests: the real entrypoint, and health checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "streamlit_app.py"


def new_app() -> AppTest:
    """A session of the app (``streamlit_app.py``), not yet run."""
    return AppTest.from_file(str(ENTRYPOINT), default_timeout=120)


def assert_healthy(at: AppTest) -> None:
    """No uncaught exception and no error box on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.main.error, [e.value for e in at.main.error]


def texts(elements: object) -> str:
    """The text of a list of elements, Markdown escapes removed (what the user reads)."""
    return " ".join(re.sub(r"\\(.)", r"\1", str(e.value)) for e in elements)  # type: ignore[attr-defined]


def chart_rows(chart: object) -> list[dict]:
    """Every data row of a chart element: the spec's inline datasets, or (for a chart with a
    selection, whose data Streamlit sends as Arrow) the element's datasets."""
    proto = chart.proto  # type: ignore[attr-defined]
    rows = [row for rows in json.loads(proto.spec).get("datasets", {}).values() for row in rows]
    for dataset in proto.datasets:
        frame = dataframe_util.convert_arrow_bytes_to_pandas_df(dataset.data.data)
        rows += frame.to_dict("records")
    return rows


def shown_charts(at: AppTest) -> list:
    """The page's charts, less the empty one-pixel chart that loads the browser's charting
    library early (:func:`nn_tracing.ui.charts.load_charting`)."""
    return [c for c in at.get("vega_lite_chart") if json.loads(c.proto.spec).get("width") != 1]
