"""The health builders the pages share (nn_tracing.views.health), checked against the flags
of nn_tracing.analysis.health read directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nn_tracing as nt
from nn_tracing.analysis.health import FLAGS, NeuronHealth, neuron_health
from nn_tracing.views import health as views


@pytest.fixture(scope="module")
def trace(tiny_trace_file: Path) -> nt.NetworkTrace:
    return nt.load_trace(tiny_trace_file)


@pytest.fixture(scope="module")
def health(trace: nt.NetworkTrace) -> NeuronHealth:
    return neuron_health(trace)


def test_a_relu_network_has_every_flag_but_saturation(health: NeuronHealth) -> None:
    assert views.defined_flags(health) == ["dead", "starved", "exploding"]


def test_the_tiles_count_each_flag_and_its_change_since_the_first_epoch(
    health: NeuronHealth,
) -> None:
    tiles = views.health_tiles(health, 1, 0)
    assert [t.label for t in tiles] == [
        "Dead at E_1",
        "Saturated",
        "Gradient-starved at E_1",
        "Exploding at E_1",
    ]
    for tile, flag in zip(tiles, FLAGS, strict=True):
        if flag == "saturated":
            assert tile.value == "n/a" and tile.delta is None
            continue
        now, before = health.flags[flag][1].sum(), health.flags[flag][0].sum()
        assert tile.value == f"{now} of {health.applies[flag].sum()}"
        assert tile.delta == f"{now - before:+d} vs E_0"
        assert tile.delta_color == ("inverse" if now != before else "off")


def test_the_flagged_table_lists_every_neuron_with_a_flag(
    health: NeuronHealth, trace: nt.NetworkTrace
) -> None:
    table, signatures = views.flagged_table(health, trace, 1)
    any_flag = np.zeros(trace.n_neurons, dtype=bool)
    for flag in FLAGS:
        any_flag |= health.flags[flag][1]
    expected = np.flatnonzero(any_flag)
    assert expected.size  # the tiny trace has dead and starved neurons at E_1
    assert signatures == [trace.signature(1, int(i)) for i in expected]
    assert table["signature"].tolist() == signatures and "neuron" not in table


def test_the_table_view_filters_sorts_and_drops_empty_columns(
    health: NeuronHealth, trace: nt.NetworkTrace
) -> None:
    table = health.table(1)
    everything = views.table_view(table, health)
    assert len(everything) == trace.n_neurons
    assert "saturated" not in everything and "saturation" not in everything
    assert everything["n_flags"].is_monotonic_decreasing
    view = views.table_view(table, health, layers=["hidden_2"], flags=["dead", "starved"])
    ids = np.arange(trace.layer("hidden_2").first_id, trace.layer("hidden_2").last_id + 1)
    mask = health.flags["dead"][1][ids] | health.flags["starved"][1][ids]
    assert sorted(view["neuron"]) == ids[mask].tolist()
    caption = views.table_caption(table, health, 1, len(view))
    dead, starved = health.flags["dead"][1].sum(), health.flags["starved"][1].sum()
    assert caption.startswith(f"At E_1: {dead} dead, {starved} gradient-starved, 0 exploding")
    assert f"of {trace.n_neurons} neurons. Showing {len(view)};" in caption


def test_one_neurons_health_line_says_yes_where_it_is_flagged(health: NeuronHealth) -> None:
    dead = int(np.flatnonzero(health.flags["dead"][1])[0])
    line = views.neuron_health_line(health, dead, 1)
    n_dead = int(health.flags["dead"][:, dead].sum())
    assert line.startswith("**Health at E_1** — dead: **yes** (at ")
    assert f"(at {n_dead} of 5 recorded epochs)" in line and "saturated: n/a" in line
    assert views.neuron_health_line(health, 0, 1).count("n/a") == 4  # an input


def test_the_definitions_escape_their_markdown(health: NeuronHealth) -> None:
    text = views.flag_definitions(health.thresholds)
    assert text.startswith("**dead**: never active on the probe set \\(act\\_max ≤ 0\\)")
    assert text.count("**") == 2 * len(FLAGS)


def test_counts_say_which_neurons_they_are_of(trace: nt.NetworkTrace, health: NeuronHealth) -> None:
    hidden = sum(info.n_neurons for info in trace.layers[1:-1])
    with_weights = hidden + trace.layers[-1].n_neurons
    assert views.population(health, "dead") == "hidden neurons"
    assert views.population(health, "starved") == "neurons with weights (hidden and output)"
    note = views.count_note(health)
    assert note == (
        f"Dead: of the {hidden} hidden neurons. Gradient-starved, exploding: of the "
        f"{with_weights} neurons with weights (hidden and output)."
    )
    tiles = {t.label.split(" at ")[0]: t for t in views.health_tiles(health, 4, 0)}
    assert tiles["Dead"].help == f"of the {hidden} hidden neurons"
    assert tiles["Dead"].value.endswith(f" of {hidden}")
