"""Neuron health flags (nn_tracing.analysis.health): definitions checked on known arrays, on
real traces, and on networks trained with a neuron built to have each flag (its bias forced very
negative: dead; its outgoing weights cut: gradient-starved; its incoming weights doubled every
epoch: exploding; a tanh neuron's bias forced very positive: saturated)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from nn_tracing import MLP, LayerInfo, NetworkTrace, TraceableNN, TrainConfig, load_trace
from nn_tracing.analysis.health import (
    FLAGS,
    HEALTH_LABELS,
    HealthThresholds,
    dead_mask,
    exploding_mask,
    neuron_health,
    saturation_share,
    starved_mask,
    sustained,
)
from nn_tracing.analysis.health_neuron import neuron_flags
from nn_tracing.data import prepare_data
from nn_tracing.rundir import RunWriter
from nn_tracing.views.health import neuron_health_line


def test_dead_is_never_active_on_the_probe_where_the_flag_applies() -> None:
    act_max = np.array([[0.5, 0.0, -1.0, np.nan], [0.0, 2.0, -1.0, -3.0]])
    applies = np.array([True, True, True, False])
    assert dead_mask(act_max, applies).tolist() == [
        [False, True, True, False],
        [True, False, True, False],
    ]


def test_starved_is_below_one_percent_of_the_layer_median() -> None:
    grad = np.array([[1.0, 1.0, 1.0, 0.009, 0.011, 5.0, 0.0, 0.0]])
    mask, limits = starved_mask(grad, [slice(0, 5), slice(5, 6), slice(6, 8)], ratio=0.01)
    assert mask.tolist() == [[False, False, False, True, False, False, True, True]]
    assert limits[0].tolist() == [0.01, 0.05, 0.0]


def test_saturation_counts_probe_samples_near_the_bounds() -> None:
    layers = [
        LayerInfo("input", "input", 1, 0),
        LayerInfo("h", "linear", 2, 1, activation="Tanh"),
        LayerInfo("s", "linear", 1, 3, activation="Sigmoid"),
        LayerInfo("r", "linear", 1, 4, activation="ReLU"),
    ]
    acts = np.array(
        [
            [0.0, 0.99, 0.1, 0.999, 5.0],
            [0.0, -0.99, 0.2, 0.5, 0.0],
            [0.0, 0.98, 0.3, 0.001, 1.0],
            [0.0, 0.5, 0.99, 0.6, 2.0],
        ]
    )
    share = saturation_share(acts, layers, slope=0.05)
    assert np.isnan(share[0]) and np.isnan(share[4])
    assert share[1:4].tolist() == [0.75, 0.25, 0.5]  # column 2: only 0.99 is saturated


def test_a_relu_trace_has_dead_and_starved_flags_but_no_saturation(tiny_trace_file: Path) -> None:
    trace = load_trace(tiny_trace_file)
    health = neuron_health(trace)
    hidden = slice(trace.layer("hidden_1").first_id, trace.layer("hidden_2").last_id + 1)
    assert health.applies["dead"][hidden].all() and not health.applies["dead"][:2].any()
    assert not health.applies["saturated"].any()
    assert health.applies["starved"][2:].all() and not health.applies["starved"][:2].any()
    act_max = trace.metric("act_max")
    assert (health.flags["dead"][:, hidden] == (act_max[:, hidden] <= 0)).all()
    counts = health.counts()
    assert set(counts["flag"]) == {"dead", "starved", "exploding"}
    assert set(counts["layer"]) == {"hidden_1", "hidden_2", "output"}
    assert (counts["count"] <= counts["n_neurons"]).all()


def test_a_saturating_tanh_trace_is_flagged_from_its_probe_activations(
    tanh_trace_file: Path,
) -> None:
    trace = load_trace(tanh_trace_file)
    seen: list[float] = []
    health = neuron_health(trace, progress=lambda fraction, _: seen.append(fraction))
    assert len(seen) == len(trace.epochs) and seen[-1] == 1.0
    last = trace.epochs[-1]
    acts = trace.probe_activations(last)
    expected = (np.abs(acts) > np.sqrt(0.95)).mean(axis=0) > 0.5
    hidden = health.applies["saturated"]
    assert (health.flags["saturated"][-1][hidden] == expected[hidden]).all()
    assert not health.applies["dead"].any()
    assert health.totals(last)["saturated"] == int(expected[hidden].sum()) > 0


def test_thresholds_state_their_definitions() -> None:
    described = HealthThresholds().describe()
    assert "act_max ≤ 0" in described["dead"]
    assert "1% of its layer's median at each of the last 3 recorded epochs" in described["starved"]
    assert "|a| > 0.975" in described["saturated"]
    assert "10× its E_0 norm" in described["exploding"]
    assert "growing at each of the last 3 recorded epochs" in described["exploding"]
    with pytest.raises(ValueError, match="starved_epochs"):
        HealthThresholds(starved_epochs=0)
    with pytest.raises(ValueError, match="exploding_factor"):
        HealthThresholds(exploding_factor=1.0)


def test_sustained_needs_every_one_of_the_last_k_rows() -> None:
    mask = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 1], [1, 1]], dtype=bool)
    assert sustained(mask, 3).tolist() == [
        [True, True],  # at the start: every row so far
        [True, False],
        [False, False],
        [False, False],
        [False, True],
        [True, True],
    ]
    assert (sustained(mask, 1) == mask).all()


def test_exploding_is_ten_times_the_reference_and_still_growing() -> None:
    w_norm = np.array(
        [
            # grows ×2 a step | grows then stops | tiny at E_0 | no weights | becomes NaN
            [1.0, 1.0, 0.001, np.nan, 1.0],
            [2.0, 20.0, 0.002, np.nan, 1.0],
            [4.0, 30.0, 0.004, np.nan, 1.0],
            [8.0, 40.0, 0.008, np.nan, 1.0],
            [16.0, 40.0, 0.016, np.nan, np.nan],
        ]
    )
    mask, growth = exploding_mask(w_norm, [slice(0, 3), slice(3, 4), slice(4, 5)], 10.0, 3)
    assert mask[:, 0].tolist() == [False, False, False, False, True]  # 16 ≥ 10, rising ×3
    assert mask[:, 1].tolist() == [False, True, True, True, False]  # stops growing at E_4
    # the tiny neuron's reference is its layer's median E_0 norm (1.0), not its own 0.001
    assert not mask[:, 2].any() and growth[4, 2] == pytest.approx(0.016)
    assert not mask[:, 3].any() and np.isnan(growth[:, 3]).all()
    assert mask[:, 4].tolist() == [False, False, False, False, True]  # not finite


# -- networks built to have each flag ----------------------------------------------------------
DATA = TrainConfig(dataset="moons", n_samples=300, probe_size=64, seed=0)
# global ids: input n_0, n_1; hidden_1 n_2 … n_9; hidden_2 n_10 … n_17; output n_18, n_19
DEAD, STARVED, EXPLODING, SATURATED = 2, 3, 10, 2
EPOCHS = 7
PLANT_FROM = 4  # dead and starved from E_4 on


def _planted(activation: str, plant: Callable[[MLP, int], None]) -> NetworkTrace:
    """Train a tiny MLP in our own loop, calling ``plant(net, epoch)`` before each record."""
    data = prepare_data(DATA)
    torch.manual_seed(0)
    net = MLP(2, (8, 8), 2, activation)
    probe = (torch.from_numpy(data.X_probe), torch.from_numpy(data.y_probe))
    model = TraceableNN(net, probe=probe, loss_fn=F.cross_entropy, keep_weights=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    for epoch in range(1, EPOCHS + 1):
        model.start_epoch(epoch)
        for start in range(0, len(x), 64):
            loss = F.cross_entropy(model(x[start : start + 64]), y[start : start + 64])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            plant(net, epoch)
        model.end_epoch(epoch, train_loss=loss.item())
    return model.finish()


def _plant_relu(net: MLP, epoch: int) -> None:
    if epoch >= PLANT_FROM:
        net.hidden_1.bias[DEAD - 2] = -100.0  # never active again
        net.hidden_2.weight[:, STARVED - 2] = 0.0  # its output reaches nothing: no gradient
    net.hidden_2.weight[EXPLODING - 10] *= 2.0  # doubled every epoch
    net.output.weight[:, EXPLODING - 10] = 0.0  # (so that the loss stays finite)


@pytest.fixture(scope="module")
def planted() -> NetworkTrace:
    return _planted("relu", _plant_relu)


def _reference_flags(trace: NetworkTrace, t: HealthThresholds) -> dict[str, np.ndarray]:
    """The stated definitions, written out with loops (no code shared with health.py)."""
    act_max, grad, w_norm = (
        trace.metric(m).astype(np.float64) for m in ("act_max", "grad_norm", "w_norm")
    )
    n_epochs, n = act_max.shape
    dead = np.zeros((n_epochs, n), bool)
    starved = np.zeros((n_epochs, n), bool)
    exploding = np.zeros((n_epochs, n), bool)
    for info in trace.layers[1:]:
        ids = list(info.ids)
        below = np.array(
            [
                [grad[e, i] < t.starved_ratio * np.median(grad[e, ids]) for i in ids]
                for e in range(n_epochs)
            ]
        )
        reference = [max(w_norm[0, i], np.median(w_norm[0, ids])) for i in ids]
        for e in range(n_epochs):
            window = range(max(0, e - t.starved_epochs + 1), e + 1)
            steps = range(max(1, e - t.exploding_epochs + 1), e + 1)
            for col, i in enumerate(ids):
                dead[e, i] = info.activation == "ReLU" and act_max[e, i] <= 0
                starved[e, i] = all(below[w, col] for w in window)
                growing = e >= 1 and all(w_norm[s, i] > w_norm[s - 1, i] for s in steps)
                exploding[e, i] = w_norm[e, i] >= t.exploding_factor * reference[col] and growing
    return {"dead": dead, "starved": starved, "exploding": exploding}


def test_a_neuron_whose_bias_is_forced_very_negative_is_dead(planted) -> None:
    health = neuron_health(planted)
    act_max = planted.metric("act_max")
    assert (act_max[:PLANT_FROM, DEAD] > 0).all()  # alive while trained normally
    assert health.of_neuron(DEAD)["dead"].tolist() == [e >= PLANT_FROM for e in planted.epochs]
    assert not health.flags["dead"][:, STARVED].any()  # cut off, but still active


def test_a_neuron_without_gradient_is_starved_only_after_k_recorded_epochs(planted) -> None:
    health = neuron_health(planted)
    grad = planted.metric("grad_norm")
    assert (grad[PLANT_FROM:, STARVED] == 0).all() and (grad[:PLANT_FROM, STARVED] > 0).all()
    assert (planted.metric("act_max")[:, STARVED] > 0).all()  # active: starved, not dead
    # zero gradient from E_4 on; three recorded epochs of it by E_6
    assert health.of_neuron(STARVED)["starved"].tolist() == [e >= 6 for e in planted.epochs]
    quick = neuron_health(planted, HealthThresholds(starved_epochs=1))
    assert quick.of_neuron(STARVED)["starved"].tolist() == [e >= 4 for e in planted.epochs]
    table = health.table(6).set_index("neuron")
    assert table.loc[STARVED, "grad_ratio"] == 0.0 and bool(table.loc[STARVED, "starved"])


def test_a_neuron_whose_weights_double_every_epoch_is_exploding(planted) -> None:
    health = neuron_health(planted)
    w_norm = planted.metric("w_norm")
    growth = w_norm[:, EXPLODING] / w_norm[0, EXPLODING]
    assert growth[3] < 10 < growth[4]  # 2^4 = 16 by E_4
    assert health.of_neuron(EXPLODING)["exploding"].tolist() == [e >= 4 for e in planted.epochs]
    others = np.delete(health.flags["exploding"], EXPLODING, axis=1)
    assert not others.any()
    np.testing.assert_allclose(
        health.table(7).set_index("neuron").loc[EXPLODING, "w_growth"],
        w_norm[-1, EXPLODING] / max(w_norm[0, EXPLODING], np.median(w_norm[0, 10:18])),
    )


def test_every_flag_matches_its_definition_written_out(planted) -> None:
    for thresholds in (HealthThresholds(), HealthThresholds(starved_epochs=2, exploding_epochs=1)):
        health = neuron_health(planted, thresholds)
        expected = _reference_flags(planted, thresholds)
        for flag, mask in expected.items():
            assert (health.flags[flag] == mask).all(), flag


def test_a_tanh_neuron_whose_bias_is_forced_very_positive_is_saturated() -> None:
    def plant(net: MLP, epoch: int) -> None:
        if epoch >= 2:
            net.hidden_1.bias[SATURATED - 2] = 50.0

    trace = _planted("tanh", plant)
    health = neuron_health(trace)
    assert health.of_neuron(SATURATED)["saturated"].tolist() == [e >= 2 for e in trace.epochs]
    assert health.saturation[2:, SATURATED].tolist() == [1.0] * (len(trace.epochs) - 2)
    acts = np.stack([trace.probe_activations(e) for e in trace.epochs])
    share = (1 - acts**2 < 0.05).mean(axis=1)  # tanh's slope below 5 % of its maximum
    hidden = slice(2, 18)
    expected = share[:, hidden] > 0.5
    assert (health.flags["saturated"][:, hidden] == expected).all()


def test_the_health_table_lists_every_neuron_with_na_where_a_flag_does_not_apply(
    planted,
) -> None:
    health = neuron_health(planted)
    table = health.table(7)
    assert len(table) == planted.n_neurons and table["neuron"].tolist() == list(range(20))
    assert table["signature"].iloc[DEAD] == "E_7/L_hidden_1/n_2"
    assert table["dead"].iloc[:2].isna().all() and table["saturated"].isna().all()
    assert table["dead"].iloc[18:].isna().all()  # logits are not rectified
    assert bool(table["dead"].iloc[DEAD]) and bool(table["exploding"].iloc[EXPLODING])
    flags = table[list(FLAGS)].fillna(False).astype(bool)
    assert (table["n_flags"] == flags.sum(axis=1)).all()
    assert isinstance(table["dead"].dtype, pd.BooleanDtype)


def test_each_neurons_label_is_its_first_flag_in_display_order(planted) -> None:
    """The colour of a neuron on a map: its first flag in FLAGS order (a dead neuron that is
    also starved is dead), "healthy" without one, "n/a" where no flag is defined."""
    health = neuron_health(planted)
    titles = {"dead": "dead", "saturated": "saturated", "starved": "gradient-starved"}
    titles["exploding"] = "exploding"
    for epoch in planted.epochs:
        row = planted.epochs.index(epoch)
        expected = []
        for neuron in range(planted.n_neurons):
            carried = [f for f in FLAGS if health.flags[f][row, neuron]]
            defined = any(health.applies[f][neuron] for f in FLAGS)
            expected.append(titles[carried[0]] if carried else "healthy" if defined else "n/a")
        assert health.labels(epoch).tolist() == expected
    some = np.array([DEAD, 0, EXPLODING])
    assert health.labels(7, some).tolist() == health.labels(7)[some].tolist()
    assert health.labels(7, some)[:2].tolist() == ["dead", "n/a"]
    assert HEALTH_LABELS == ("dead", "saturated", "gradient-starved", "exploding", "healthy", "n/a")
    # a neuron with two flags: the first in FLAGS order wins
    forced = neuron_health(planted)
    forced.flags["starved"][-1, DEAD] = True
    assert forced.labels(planted.epochs[-1], np.array([DEAD])).tolist() == ["dead"]


# -- one neuron's flags (nn_tracing.analysis.health_neuron: the Neurons page's health line) ----
def _run_directory(trace: NetworkTrace, directory: Path) -> NetworkTrace:
    """``trace`` written through the run directory's writer and opened again: its neuron
    table answered by DuckDB over the parts (``trace.query``)."""
    writer = RunWriter(directory, trace)
    for epoch in trace.epochs:
        writer.write_epoch(epoch)
    writer.close()
    opened = load_trace(directory)
    assert opened.query is not None
    return opened


def _assert_same_flags(trace: NetworkTrace, health, thresholds: HealthThresholds) -> None:
    for neuron in range(trace.n_neurons):
        one = neuron_flags(trace, neuron, thresholds)
        expected = health.of_neuron(neuron)
        for flag in FLAGS:
            assert one.applies[flag] == bool(health.applies[flag][neuron]), (neuron, flag)
            assert one.history[flag].tolist() == expected[flag].tolist(), (neuron, flag)
        assert one.history["epoch"].tolist() == list(trace.epochs)


def test_one_neurons_flags_equal_the_whole_traces_in_memory_and_from_disk(
    planted, tmp_path: Path
) -> None:
    on_disk = _run_directory(planted, tmp_path / "planted")
    for thresholds in (HealthThresholds(), HealthThresholds(starved_epochs=1, exploding_epochs=2)):
        health = neuron_health(planted, thresholds)
        assert health.flags["dead"].any() and health.flags["starved"].any()
        assert health.flags["exploding"].any()  # every flag of a ReLU net is planted
        _assert_same_flags(planted, health, thresholds)
        _assert_same_flags(on_disk, health, thresholds)
    line = neuron_health_line(neuron_flags(on_disk, DEAD), DEAD, 7)
    assert line == neuron_health_line(neuron_health(planted), DEAD, 7)
    assert "dead: **yes** (at 4 of 8 recorded epochs)" in line and "saturated: n/a" in line


def test_one_tanh_neurons_saturation_reads_its_probe_activations(tmp_path: Path) -> None:
    def plant(net: MLP, epoch: int) -> None:
        if epoch >= 2:
            net.hidden_1.bias[SATURATED - 2] = 50.0

    trace = _planted("tanh", plant)
    health = neuron_health(trace)
    assert health.flags["saturated"][:, SATURATED].any()
    _assert_same_flags(trace, health, HealthThresholds())
    _assert_same_flags(_run_directory(trace, tmp_path / "tanh"), health, HealthThresholds())
