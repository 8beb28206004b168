"""Every page of the app, run through the real entrypoint with a real trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, new_app, shown_charts
from streamlit.testing.v1 import AppTest

from nn_tracing.ui import state

PAGES = [
    "pages/overview.py",
    "pages/neurons.py",
    "pages/clusters.py",
    "pages/dynamics.py",
    "pages/breadcrumbs.py",
]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_draws_its_charts_without_error(app: Callable[[], AppTest], page: str) -> None:
    at = app().run()
    at.switch_page(page).run()
    assert_healthy(at)
    assert shown_charts(at), f"{page} draws no chart"
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"
    assert at.query_params["trace"] == "tiny"


def test_overview_shows_summary_brain_scan_and_health(app: Callable[[], AppTest]) -> None:
    at = app().run()
    assert_healthy(at)
    labels = [m.label for m in at.metric]
    for label in ("Parameters", "Hidden neurons", "Recorded epochs", "Validation accuracy"):
        assert label in labels
    assert any(label.startswith("Dead at E_4") for label in labels)
    assert any(label.startswith("Gradient-starved at E_4") for label in labels)
    # curves (loss, accuracy), brain scan, layer x epoch, one layer's neurons, dormant, health
    assert len(shown_charts(at)) == 7


def test_moving_the_epoch_slider_and_metric_redraws(app: Callable[[], AppTest]) -> None:
    at = app().run()
    slider = at.select_slider(key=state.epoch_key(state.OVERVIEW_EPOCH, "run:tiny"))
    slider.set_value(2).run()
    assert_healthy(at)
    assert any(m.label == "Dead at E_2" for m in at.metric)
    at.selectbox(key=state.OVERVIEW_METRIC).set_value("grad_norm").run()
    at.radio(key=state.OVERVIEW_ORDER).set_value("value").run()
    at.toggle(key=state.OVERVIEW_PERCENTILE).set_value(True).run()
    assert_healthy(at)


def test_sidebar_lists_the_runs_and_offers_downloads(app: Callable[[], AppTest]) -> None:
    at = app().run()
    picker = at.sidebar.selectbox(key=state.TRACE_PICKER)
    assert picker.options[0].startswith("tiny · ✓ · moons · MLP 8-8 relu")
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Trace (.nntrace)", "Neuron frame (CSV)", "Neuron frame (Parquet)"]


def test_an_empty_runs_folder_gets_a_demo_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-runs"
    monkeypatch.setenv("NN_TRACING_RUNS_DIR", str(empty))
    at = new_app().run()
    assert_healthy(at)
    # the moons demo, and the digits demo and a second moons seed made in the background
    assert {p.name for p in empty.glob("*.nntrace")} <= {
        "demo-moons.nntrace",
        "demo-digits.nntrace",
        "demo-moons-seed1.nntrace",
    }
    assert (empty / "demo-moons.nntrace").is_file()
    assert at.session_state[state.ACTIVE_TRACE] == "run:demo-moons"
    assert shown_charts(at)


def test_a_corrupt_file_in_runs_is_listed_but_never_breaks_the_app(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    (runs_dir / "broken.nntrace").write_bytes(b"PK\x03\x04 truncated")
    at = app().run()
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"
    table = at.sidebar.dataframe[0].value
    assert "broken" in set(table["name"])
    assert table.loc[table["name"] == "broken", "problem"].iloc[0]


PAGE_MODULES = {
    "pages/overview.py": "overview",
    "pages/neurons.py": "neurons",
    "pages/clusters.py": "clusters",
    "pages/dynamics.py": "dynamics",
    "pages/breadcrumbs.py": "breadcrumbs.page",  # a package: the page is its page module
}


@pytest.mark.parametrize("page", PAGES)
def test_an_unexpected_error_in_a_page_is_a_message_in_place(
    app: Callable[[], AppTest], page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a page did not foresee becomes an error message that names it — never
    Streamlit's exception box with a traceback — and the sidebar still works."""
    import importlib

    module = importlib.import_module(f"nn_tracing.ui.{PAGE_MODULES[page]}")

    def broken() -> None:
        raise RuntimeError("a planted failure")

    at = app().run()
    monkeypatch.setattr(module, "resolve_active", broken)
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.main.error)
    assert "a planted failure" in errors and "Something went wrong" in errors
    assert any(b.label == "Run training" for b in at.sidebar.button)
