"""Runs side by side on real trained traces: curves, per-layer quantiles (memory and DuckDB),
config differences, probe checks, B rerun on A's probe, similarity over training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nn_tracing import NetworkTrace, load_trace, train
from nn_tracing.analysis.compare import (
    CompareUnavailable,
    RunPair,
    check_probes,
    common_layers,
    config_differences,
    convergence_order,
    convergence_to_final,
    layer_quantile_bands,
    layer_similarity,
    layer_similarity_over_epochs,
    linear_cka,
    smooth,
    training_curves,
)
from nn_tracing.rundir import RunWriter
from tests.conftest import TINY_CONFIG


@pytest.fixture(scope="module")
def runs() -> dict[str, NetworkTrace]:
    """Two seeds of the tiny moons MLP, one with another probe (data_seed) and kept weights,
    and one with other widths."""
    out = {}
    for name, config in {
        "a": TINY_CONFIG,
        "b": TINY_CONFIG.replace(seed=1),
        "other_probe": TINY_CONFIG.replace(seed=2, data_seed=5, keep_weights=True),
        "wider": TINY_CONFIG.replace(seed=3, hidden_sizes=(12, 8)),
    }.items():
        run = train(config)
        assert run.trace is not None
        out[name] = run.trace
    return out


def test_smoothing_is_a_debiased_moving_average():
    values = np.array([1.0, np.nan, 2.0, 4.0])
    w = 0.6
    expected, last, k = [], 0.0, 0
    for v in values:
        if np.isnan(v):
            expected.append(np.nan)
            continue
        last, k = w * last + (1 - w) * v, k + 1
        expected.append(last / (1 - w**k))
    np.testing.assert_allclose(smooth(values, w), expected)
    np.testing.assert_array_equal(smooth(values[[0, 2, 3]], 0.0), values[[0, 2, 3]])
    with pytest.raises(ValueError, match="smoothing"):
        smooth(values, 1.0)


def test_curves_of_two_runs_are_their_histories(runs):
    frame = training_curves({"a": runs["a"], "b": runs["b"]}, "loss")
    for name in ("a", "b"):
        history = runs[name].history
        part = frame[(frame["run"] == name) & (frame["split"] == "train")]
        np.testing.assert_allclose(part["raw"], history["train_loss"].dropna())
        np.testing.assert_allclose(part["value"], part["raw"])
        assert set(part["axis"]) == {"epoch"}
    smoothed = training_curves({"a": runs["a"]}, "accuracy", smoothing=0.5)
    part = smoothed[smoothed["split"] == "validation"]
    np.testing.assert_allclose(part["value"], smooth(part["raw"].to_numpy(), 0.5))
    assert training_curves({"a": runs["a"]}, per_step=True).empty  # no per-step table


def test_per_step_curves_come_from_the_step_table():
    run = train(TINY_CONFIG.replace(drop_batches=False, epochs=2))
    frame = training_curves({"s": run.trace}, per_step=True)
    steps = run.trace.steps.groupby("step")["loss"].first()
    np.testing.assert_allclose(frame["raw"], steps.to_numpy())
    assert set(frame["axis"]) == {"step"} and set(frame["split"]) == {"train (per step)"}


def test_layer_quantiles_equal_numpy_in_memory_and_from_a_run_directory(runs, tmp_path: Path):
    trace = runs["a"]
    frame = layer_quantile_bands(trace, "act_mean", (0.1, 0.5, 0.9))
    info = trace.layer("hidden_2")
    values = trace.metric("act_mean")[:, info.first_id : info.last_id + 1].astype(np.float64)
    part = frame[frame["layer"] == "hidden_2"].sort_values("time")
    np.testing.assert_allclose(part[["q0", "q1", "q2"]], np.quantile(values, [0.1, 0.5, 0.9], 1).T)
    assert part["n"].tolist() == [info.n_neurons] * len(trace.epochs)
    writer = RunWriter(tmp_path / "run", trace)
    for epoch in trace.epochs:
        writer.write_epoch(epoch)
    writer.close()
    on_disk = load_trace(tmp_path / "run")
    assert on_disk.query is not None
    from_disk = layer_quantile_bands(on_disk, "act_mean", (0.1, 0.5, 0.9))
    merged = frame.merge(from_disk, on=["layer", "time"], suffixes=("", "_disk"))
    assert len(merged) == len(frame)
    np.testing.assert_allclose(
        merged[["q0", "q1", "q2"]], merged[["q0_disk", "q1_disk", "q2_disk"]], rtol=1e-5
    )


def test_config_differences_list_only_what_differs(runs):
    frame = config_differences({"a": runs["a"], "wider": runs["wider"]})
    assert set(frame["setting"]) == {"seed", "hidden_sizes", "layer widths"}
    row = frame.set_index("setting").loc["seed"]
    assert (row["a"], row["wider"]) == ("0", "3")
    assert config_differences({"a": runs["a"], "a2": runs["a"]}).empty


def test_probe_sets_are_compared_by_content(runs):
    assert check_probes(runs["a"], runs["b"]).same
    check = check_probes(runs["a"], runs["other_probe"])
    assert not check.same and "not the same ones" in check.reason
    assert common_layers(runs["a"], runs["wider"]) == ["hidden_1", "hidden_2", "output"]


def test_b_is_rerun_on_as_probe_when_the_probes_differ(runs):
    a, b = runs["a"], runs["other_probe"]
    pair = RunPair(a, b)
    last = a.epochs[-1]
    xa, xb = pair.layer("hidden_1", last)
    np.testing.assert_array_equal(xa, a.probe_activations(last)[:, 2:10])
    assert xb.shape == (len(a.probe[1]), 8)
    # reference: B's network by hand, on A's probe inputs
    import torch

    from nn_tracing import model_from_trace

    model = model_from_trace(b, last)
    with torch.no_grad():
        hidden = model[1](model[0](torch.as_tensor(a.probe[0], dtype=torch.float32)))
    np.testing.assert_allclose(xb, hidden.numpy(), atol=1e-5)
    # the other run kept no weights at E_0 but the pair still cannot use A's stored ones for B
    no_weights = RunPair(runs["other_probe"], a)
    with pytest.raises(CompareUnavailable, match="kept no weights"):
        no_weights.layer("hidden_1", 0)


def test_layer_similarity_between_runs_has_a_baseline_below_it(runs):
    pair = RunPair(runs["a"], runs["b"])
    last = pair.common_epochs[-1]
    frame = layer_similarity(pair, last, method="cka", n_permutations=5)
    assert len(frame) == 9 and set(frame["layer_a"]) == {"hidden_1", "hidden_2", "output"}
    xa, xb = pair.layer("hidden_2", last)
    row = frame[(frame["layer_a"] == "hidden_2") & (frame["layer_b"] == "hidden_2")].iloc[0]
    assert row["similarity"] == pytest.approx(linear_cka(xa, xb), abs=1e-5)
    assert row["similarity"] > row["null"]
    svcca = layer_similarity(pair, last, method="svcca", n_permutations=2)
    assert svcca["similarity"].between(0, 1).all()
    over = layer_similarity_over_epochs(pair)
    assert over.shape == (len(pair.common_epochs), 3, 3)
    np.testing.assert_allclose(over[-1].ravel(), frame["similarity"], atol=1e-6)


def test_each_layer_converges_to_itself_and_the_order_is_read():
    run = train(TINY_CONFIG.replace(epochs=8))
    frame = convergence_to_final(run.trace, n_permutations=3)
    last = frame[frame["time"] == run.trace.epochs[-1]]
    np.testing.assert_allclose(last["similarity"], 1.0, atol=1e-9)
    assert (last["similarity"] > last["null"]).all()
    order, verdict = convergence_order(frame, threshold=0.9)
    assert order["depth"].tolist() == [1, 2, 3]
    assert verdict.endswith("with the final representation)")
    planted = pd.DataFrame(
        {
            "layer": ["l1"] * 3 + ["l2"] * 3,
            "depth": [1] * 3 + [2] * 3,
            "time": [0, 1, 2] * 2,
            "similarity": [0.5, 0.95, 1.0, 0.2, 0.5, 1.0],
        }
    )
    order, verdict = convergence_order(planted, 0.9)
    assert order["converged"].tolist() == [1, 2] and verdict.startswith("Yes")
    planted["depth"] = [2] * 3 + [1] * 3
    assert convergence_order(planted, 0.9)[1].startswith("No")
