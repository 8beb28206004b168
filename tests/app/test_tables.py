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

from nn_tracing.ui.charts import BLANK, blank_missing

PAGES = ["pages/neurons.py", "pages/clusters.py", "pages/dynamics.py", "pages/breadcrumbs.py"]


def test_missing_values_become_blanks_and_numbers_stay_numbers() -> None:
    table = pd.DataFrame(
        {"a": [1.23456, np.nan], "b": [0.5, 0.25], "c": ["x", None], "d": [0.125, np.nan]}
    )
    table["e"] = pd.array([3, None], dtype="Int64")
    config = {
        "a": st.column_config.NumberColumn("first", format="%.2f", help="h"),
        "d": st.column_config.NumberColumn("share", format="percent"),
    }
    shown, shown_config = blank_missing(table, config)
    assert shown["c"].tolist() == ["x", ""]
    # numbers stay numbers (they sort as numbers); the grid's placeholder shows the gap blank
    for column in ("a", "b", "d", "e"):
        assert shown[column].dtype.kind in "fi", column
    assert np.isnan(shown["a"].iloc[1]) and shown["a"].iloc[0] == 1.23456
    assert shown["e"].isna().tolist() == [False, True]
    assert shown_config == config and shown_config is not config  # formats kept, a copy
    assert BLANK == ""
    assert table["c"].isna().sum() == 1  # the caller's table is not changed


@pytest.mark.parametrize("page", PAGES)
def test_no_table_of_a_page_shows_none(app: Callable[[], AppTest], page: str) -> None:
    at = app().run()
    at.switch_page(page).run()
    assert_healthy(at)
    for element in at.dataframe:
        frame, proto = element.value, element.proto
        blank = proto.HasField("placeholder") and proto.placeholder == ""
        # check-box columns (a health flag that does not apply) are left to the grid
        missing = [c for c in frame.columns if frame[c].dtype.kind != "b" and frame[c].isna().any()]
        text = [c for c in missing if frame[c].dtype.kind not in "fiu"]
        assert text == [], (page, text)  # a text column never holds a missing value
        assert blank or not missing, (page, missing)  # a number's gap is shown blank


def test_a_number_column_with_blanks_sorts_as_numbers(app: Callable[[], AppTest]) -> None:
    """The Neurons page's strongest connections of a run without kept weights at E_0: the
    "at E_0" column is blank, yet numeric, and the grid shows its gaps blank."""
    at = app()
    at.query_params["trace"] = "tiny"
    at.query_params["neuron"] = "E_2/L_hidden_1/n_3"
    at.query_params["tab"] = "Inputs and outputs"
    at.run()
    assert_healthy(at)
    checked = 0
    for element in at.dataframe:
        frame = element.value
        for column in frame.columns:
            if frame[column].dtype.kind != "b" and frame[column].isna().any():
                assert frame[column].dtype.kind == "f", column
                assert element.proto.placeholder == ""
                checked += 1
    assert checked >= 1
