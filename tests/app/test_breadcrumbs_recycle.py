"""The Breadcrumbs Intervention tab's "recycle dormant neurons" (ReDo) through the real
entrypoint: its numbers are those of nn_tracing.analysis.intervention.recycle_dormant on the
same network, and the recycled model is offered for download."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import TrainConfig, load_trace, save_trace, train
from nn_tracing.analysis.intervention import recycle_dormant
from nn_tracing.analysis.neuron_model import NeuronModel
from nn_tracing.ui import state

PAGE = "pages/breadcrumbs.py"


@pytest.fixture
def dormant_run(runs_dir: Path) -> Path:
    """A tiny run trained with lr 0.5: half its hidden neurons end dormant (deterministic)."""
    config = TrainConfig(
        dataset="moons",
        hidden_sizes=(8, 8),
        epochs=4,
        n_samples=300,
        probe_size=64,
        seed=0,
        lr=0.5,
    )
    run = train(config)
    assert run.trace is not None
    return save_trace(run.trace, runs_dir / "dormant.nntrace")


def _metric(at: AppTest, label: str) -> str:
    for metric in at.metric:
        if metric.label == label:
            return str(metric.value)
    raise AssertionError(f"no metric {label!r}: {[m.label for m in at.metric]}")


def test_recycling_reports_dormant_shares_and_outputs_and_downloads_the_model(
    app: Callable[[], AppTest], dormant_run: Path
) -> None:
    at = app()
    at.query_params["trace"] = "dormant"
    at.run()
    at.switch_page(PAGE).run()
    at.session_state[state.BREADCRUMBS_TAB] = "Intervention"
    at.run()
    at.button_group(key=state.BREADCRUMBS_KIND).set_value("recycle").run()
    assert_healthy(at)
    at.button_group(key=state.BREADCRUMBS_RECYCLE_TAU).set_value(0.0).run()
    assert_healthy(at)
    assert at.query_params["change"] == "recycle" and at.query_params["tau"] == "0.0"

    trace = load_trace(dormant_run)
    x, y = trace.probe
    expected = recycle_dormant(NeuronModel.from_trace(trace), x, y, tau=0.0, seed=0)
    assert expected.n_recycled >= 4
    assert _metric(at, "τ-dormant (τ = 0)") == f"{expected.fraction('after'):.1%}"
    assert _metric(at, "Neurons recycled") == str(expected.n_recycled)
    assert _metric(at, "Largest output change") == "0"
    assert "outputs on the probe are unchanged" in texts(at.markdown)
    table = at.main.dataframe[0].value.set_index("layer")
    for layer, count in expected.dormant_before.items():
        assert table.loc[layer, "dormant before"] == count
        assert table.loc[layer, "dormant after"] == expected.dormant_after[layer]

    buttons = {b.label: b for b in at.get("download_button")}
    assert set(buttons) >= {"Recycled weights (.safetensors)", "Recycled config (.json)"}
