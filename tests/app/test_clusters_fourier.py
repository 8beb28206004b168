"""The Clusters page colours a modular trace's neurons by dominant frequency (checked against
the rebuilt model run on every pair by hand and NumPy's FFT); other traces do not offer it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_support import assert_healthy, chart_rows, shown_charts
from modular_support import P, modular_config
from streamlit.testing.v1 import AppTest

import nn_tracing as nt
from nn_tracing.data_modular import modular_dataset_arrays
from nn_tracing.models import model_from_trace
from nn_tracing.ui import state
from nn_tracing.views.clusters import COLORS, FREQUENCY_SHARE


@pytest.fixture(scope="module")
def modular_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = modular_config()
    return nt.save_trace(nt.train(config).trace, tmp_path_factory.mktemp("t") / "modular.nntrace")


def _expected(trace: nt.NetworkTrace, epoch: int) -> dict[int, str]:
    """Each hidden neuron's colour, by hand: responses on every pair, averaged over b and
    over a, powers of k and p - k added, the largest share of the summed spectra."""
    X, _ = modular_dataset_arrays("modular_add", P)
    with torch.no_grad():
        hidden = torch.relu(model_from_trace(trace, epoch).hidden_1(torch.from_numpy(X)))
    grid = hidden.numpy().astype(np.float64).reshape(P, P, -1)
    power = np.zeros((grid.shape[2], P // 2))
    for marginal in (grid.mean(axis=1), grid.mean(axis=0)):
        full = np.abs(np.fft.fft(marginal, axis=0)) ** 2  # (P, n)
        power += np.stack([full[k] + full[P - k] for k in range(1, P // 2 + 1)], axis=1)
    first = trace.neural_index["hidden_1"][0]
    out = {}
    for j in range(grid.shape[2]):
        share = power[j].max() / power[j].sum()
        out[first + j] = f"k={power[j].argmax() + 1}" if share >= FREQUENCY_SHARE else "mixed"
    return out


def test_neurons_are_coloured_by_their_dominant_frequency(
    app: Callable[[], AppTest], runs_dir: Path, modular_file: Path
) -> None:
    shutil.copy(modular_file, runs_dir / "modular.nntrace")
    at = app()
    at.query_params["trace"] = "modular"
    at.query_params["perms"] = "5"
    at.run()
    at.switch_page("pages/clusters.py").run()
    assert_healthy(at)
    at.selectbox(key=state.CLUSTERS_COLOR).set_value("frequency").run()
    assert_healthy(at)
    trace = nt.load_trace(modular_file)
    epoch = trace.epochs[-1]
    expected = _expected(trace, epoch)
    chart = next(
        c
        for c in shown_charts(at)
        if "PCA of" in json.dumps(json.loads(c.proto.spec).get("title", ""))
    )
    rows = [r for r in chart_rows(chart) if r.get("neuron") in expected]
    assert rows and all(r["color"] == expected[r["neuron"]] for r in rows)
    assert any(r["color"].startswith("k=") for r in rows)


def test_other_traces_do_not_offer_the_frequency_colour(app: Callable[[], AppTest]) -> None:
    at = app()
    at.query_params["trace"] = "tiny"
    at.query_params["perms"] = "5"
    at.run()
    at.switch_page("pages/clusters.py").run()
    assert_healthy(at)
    options = at.selectbox(key=state.CLUSTERS_COLOR).options
    assert COLORS["metric"] in options and COLORS["frequency"] not in options
