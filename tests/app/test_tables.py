"""Tables show blanks, not "None" (nn_tracing/ui/charts.py blank_missing), and every table of
every page on a real trace holds no missing value the grid would print as "None"."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from apptest_support import assert_healthy
from streamlit.testing.v1 import AppTest

from nn_tracing.ui.charts import blank_missing

PAGES = ["pages/neurons.py", "pages/clusters.py", "pages/dynamics.py", "pages/breadcrumbs.py"]


def test_missing_values_become_blanks_in_their_column_format() -> None:
    table = pd.DataFrame(
        {"a": [1.23456, np.nan], "b": [0.5, 0.25], "c": ["x", None], "d": [0.125, np.nan]}
    )
    config = {
        "a": st.column_config.NumberColumn("first", format="%.2f", help="h"),
        "d": st.column_config.NumberColumn("share", format="percent"),
    }
    shown, shown_config = blank_missing(table, config)
    assert shown["a"].tolist() == ["1.23", ""]
    assert shown["d"].tolist() == ["12.5%", ""]
    assert shown["c"].tolist() == ["x", ""]
    assert shown["b"].tolist() == [0.5, 0.25]  # nothing missing: left a number
    assert shown_config["a"]["label"] == "first" and shown_config["a"]["help"] == "h"
    assert shown_config["a"]["type_config"]["type"] == "text"
    assert "b" not in shown_config
    assert table["a"].isna().sum() == 1  # the caller's table is not changed


@pytest.mark.parametrize("page", PAGES)
def test_no_table_of_a_page_shows_none(app: Callable[[], AppTest], page: str) -> None:
    at = app().run()
    at.switch_page(page).run()
    assert_healthy(at)
    for frame in (d.value for d in at.dataframe):
        # check-box columns (a health flag that does not apply) are left to the grid
        missing = [c for c in frame.columns if frame[c].dtype.kind != "b" and frame[c].isna().any()]
        assert missing == [], (page, missing)
