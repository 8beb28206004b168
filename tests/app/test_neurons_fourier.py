"""The Neurons page's Fourier view on a modular arithmetic trace, through the real entrypoint:
the response over a and b, the a × b map and the spectrum, with values and the dominant
frequency checked against the rebuilt model run by hand on every pair."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from modular_support import P, modular_config
from streamlit.testing.v1 import AppTest

import nn_tracing as nt
from nn_tracing.data_modular import modular_dataset_arrays
from nn_tracing.models import model_from_trace


@pytest.fixture(scope="module")
def modular_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = modular_config(keep_weights=True)
    trace = nt.train(config).trace
    return nt.save_trace(trace, tmp_path_factory.mktemp("t") / "modular.nntrace")


def _charts(at: AppTest) -> dict[str, object]:
    out = {}
    for chart in shown_charts(at):
        title = json.loads(chart.proto.spec).get("title")
        text = title.get("text", "") if isinstance(title, dict) else str(title or "")
        out[text] = chart
    return out


def test_the_fourier_view_shows_the_neurons_response_on_every_pair(
    app: Callable[[], AppTest], runs_dir: Path, modular_file: Path
) -> None:
    shutil.copy(modular_file, runs_dir / "modular.nntrace")
    at = app()
    at.query_params["trace"] = "modular"
    neuron = 2 * P + 5  # the sixth hidden neuron
    at.query_params["neuron"] = f"E_2/L_hidden_1/n_{neuron}"
    at.run()
    assert_healthy(at)
    assert "Response over the residues" in texts(at.markdown)
    charts = _charts(at)
    signature = f"E_2/L_hidden_1/n_{neuron}"
    profile = charts[f"{signature}: response over the residues"]
    grid = charts[f"{signature} on every pair"]
    assert f"{signature}: power per frequency" in charts
    # brute force: the model rebuilt at E_2 on every pair, by hand
    trace = nt.load_trace(modular_file)
    X, _ = modular_dataset_arrays("modular_add", P)
    with torch.no_grad():
        hidden = torch.relu(model_from_trace(trace, 2).hidden_1(torch.from_numpy(X))).numpy()
    column = hidden[:, 5].reshape(P, P)
    rows = chart_rows(profile)
    over_a = np.array(
        [r["activation"] for r in sorted(rows, key=lambda r: r["residue"]) if r["operand"] == "a"]
    )
    assert np.allclose(over_a, column.mean(axis=1), atol=1e-5)
    cells = chart_rows(grid)
    assert len(cells) == P * P
    assert all(abs(c["activation"] - column[c["a"], c["b"]]) < 1e-5 for c in cells)
    power = np.abs(np.fft.fft(column.mean(axis=1))) ** 2
    k = int(np.argmax(power[1 : P // 2 + 1]) + 1)
    assert f"Dominant frequency over a: k = {k} " in texts(at.caption)
    assert "Untrained (E_0)" in texts(at.caption)


def test_other_datasets_have_no_fourier_view(app: Callable[[], AppTest]) -> None:
    at = app()
    at.query_params["trace"] = "tiny"
    at.query_params["neuron"] = "E_3/L_hidden_2/n_12"
    at.run()
    assert_healthy(at)
    assert "Response over the residues" not in texts(at.markdown)
