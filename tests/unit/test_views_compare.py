"""The Compare page's views: the pair in the URL, what stops or qualifies a comparison."""

from __future__ import annotations

import pytest

from nn_tracing import train
from nn_tracing.views import compare as view
from tests.conftest import TINY_CONFIG


def test_a_pair_round_trips_through_its_url_text_and_bad_text_is_refused():
    text = view.format_pair("blocks.0:mlp", 3, 12)
    assert text == "blocks.0:mlp:3:12"
    assert view.parse_pair(text) == ("blocks.0:mlp", 3, 12)
    for bad in ("", "hidden_1", "hidden_1:3", ":3:4", "hidden_1:a:4", "hidden_1:-1:4"):
        assert view.parse_pair(bad) is None, bad


@pytest.fixture(scope="module")
def traces():
    a = train(TINY_CONFIG).trace
    wide = train(TINY_CONFIG.replace(seed=1, hidden_sizes=(12, 8))).trace
    return a, wide


def test_other_widths_are_a_note_and_no_common_layer_an_error(traces):
    a, wide = traces
    errors, notes = view.pair_problems(a, wide)
    assert errors == []
    assert notes == [
        "Layer hidden_1 has 8 neurons in run A and 12 in run B: a one-to-one matching leaves "
        "4 of the wider run's neurons unmatched."
    ]
    renamed = train(TINY_CONFIG).trace
    renamed.layers = [renamed.layers[0]] + [
        type(info)(**{**info.to_dict(), "name": f"x_{info.name}"}) for info in renamed.layers[1:]
    ]
    errors, _ = view.pair_problems(a, renamed)
    assert len(errors) == 1 and "no traced layer in common" in errors[0]


def test_matching_a_wider_run_leaves_none_of_as_neurons_unmatched(traces):
    a, wide = traces
    matched = view.match_layer(a, wide, "hidden_1", a.epochs[-1], n_permutations=2)
    assert len(matched.pairs) == 8 and (matched.pairs["b_index"] >= 0).all()
    assert matched.pairs["b_index"].nunique() == 8 and matched.pairs["b_index"].max() < 12
    assert matched.pairs["b_signature"].str.startswith("E_4/L_hidden_1/n_").all()
    assert matched.stability_note is None and len(matched.stability_epochs) == len(a.epochs)
