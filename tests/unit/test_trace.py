"""NetworkTrace lookups: the seed's way, by signature, and pandas' way — and their errors."""

import numpy as np
import pytest
import torch
from torch import nn

from nn_tracing import METRICS, TraceableNN
from nn_tracing.trace import format_signature, parse_signature, signature_column


@pytest.fixture(scope="module")
def trace():
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("hidden_1", nn.Linear(2, 16))
    net.add_module("act_1", nn.ReLU())
    net.add_module("output", nn.Linear(16, 2))
    x, y = torch.randn(30, 2), torch.randint(0, 2, (30,))
    model = TraceableNN(net, probe=(x, y), epoch_intervals=[30], num_epochs=30)
    for epoch in range(1, 31):
        model.start_epoch(epoch)
        model.end_epoch(epoch)
    return model.finish()


def test_neural_index_and_ids(trace):
    assert trace.neural_index == {"input": (0, 1), "hidden_1": (2, 17), "output": (18, 19)}
    assert trace.n_neurons == 20
    assert trace.layer_of(17).name == "hidden_1"
    assert trace.signature(30, 20 - 1) == "E_30/L_output/n_19"


def test_three_lookups_agree(trace):
    seed_way = trace["E_30"]["L_hidden_1"]["n_10"]
    by_signature = trace.neuron("E_30/L_hidden_1/n_10")
    row = trace.frame.loc[(30, "hidden_1", 10)]
    assert seed_way.signature == "E_30/L_hidden_1/n_10"
    assert seed_way.metrics == by_signature.metrics
    for name in METRICS:
        assert seed_way.metrics[name] == pytest.approx(row[name], nan_ok=True)
    assert seed_way.act_mean == row["act_mean"]
    assert seed_way.activations.shape == (30,)
    assert np.array_equal(seed_way.activations, trace.probe_activations(30)[:, 10])


def test_frame_shape_and_dtypes(trace):
    frame = trace.frame
    assert frame.index.names == ["epoch", "layer", "neuron"]
    assert len(frame) == 2 * 20
    assert list(frame.columns) == list(METRICS)
    assert all(str(dtype) == "float32" for dtype in frame.dtypes)
    assert np.isnan(frame.loc[(0, "input", 0), "w_norm"])
    assert np.isnan(frame.loc[(0, "hidden_1", 2), "w_drift"])  # no previous epoch at E_0


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda t: t["E_5"], "recorded epochs: E_0, E_30"),
        (lambda t: t["30"], "use E_<epoch>"),
        (lambda t: t["E_30"]["hidden_1"], "layers: L_input, L_hidden_1, L_output"),
        (lambda t: t["E_30"]["L_hidden_9"], "layers: L_input"),
        (lambda t: t["E_30"]["L_hidden_1"]["n_18"], r"n_2 … n_17"),
        (lambda t: t["E_30"]["L_hidden_1"]["20"], r"n_2 … n_17"),
        (lambda t: t.neuron("E_30/hidden_1/n_2"), "E_<epoch>/L_<layer>/n_<id>"),
        (lambda t: t.neuron("E_31/L_hidden_1/n_2"), "recorded epochs"),
        (lambda t: t.layer("nope"), "layers: input, hidden_1, output"),
        (lambda t: t.layer_of(99), "n_0 to n_19"),
        (lambda t: t.metric("accuracy"), "metrics: w_mean"),
    ],
)
def test_wrong_keys_raise_key_error_listing_what_exists(trace, key, message):
    with pytest.raises(KeyError, match=message):
        key(trace)


def test_mapping_views(trace):
    assert trace.keys() == ["E_0", "E_30"]
    assert list(trace["E_30"]) == ["L_input", "L_hidden_1", "L_output"]
    assert len(trace["E_30"]["L_hidden_1"]) == 16
    assert "E_30" in trace and "E_2" not in trace


def test_parse_signature():
    assert parse_signature("E_30/L_features.0/n_20") == (30, "features.0", 20)


def test_format_signature_is_the_inverse_of_parse_signature(trace):
    assert format_signature(30, "features.0", 20) == "E_30/L_features.0/n_20"
    assert parse_signature(format_signature(30, "features.0", 20)) == (30, "features.0", 20)
    assert trace.signature(30, 5) == format_signature(30, "hidden_1", 5)
    assert trace.neuron("E_30/L_hidden_1/n_5").signature == "E_30/L_hidden_1/n_5"


def test_signature_column_broadcasts_single_values_over_the_rows():
    epochs = np.array([0, 5], dtype=np.int64)
    assert signature_column(epochs, "hidden_1", 3) == ["E_0/L_hidden_1/n_3", "E_5/L_hidden_1/n_3"]
    assert signature_column(2, ["input", "output"], range(2)) == [
        "E_2/L_input/n_0",
        "E_2/L_output/n_1",
    ]
    assert signature_column(1, "output", 7) == ["E_1/L_output/n_7"]
    assert signature_column(1, "output", []) == []
    with pytest.raises(ValueError, match="different lengths"):
        signature_column([0, 1], "output", [1, 2, 3])


def test_metric_over_time(trace):
    values = trace.metric("w_norm")
    assert values.shape == (2, 20)
    assert values[1, 5] == trace.frame.loc[(30, "hidden_1", 5), "w_norm"]


HUGE = "9" * 5000  # more digits than int() converts (4300 by default): it raised ValueError


@pytest.mark.parametrize(
    "signature",
    [
        f"E_{HUGE}/L_hidden_1/n_2",
        f"E_30/L_hidden_1/n_{HUGE}",
        "E_٣/L_hidden_1/n_2",  # an Arabic-Indic digit: a unicode digit, not an ASCII one
        "E_30/L_hidden_1/n_٢",
        "E_30/L_hidden_1/n_2\n",  # "$" matched before a trailing newline
        "",
        "E_/L_hidden_1/n_2",
        "E_-1/L_hidden_1/n_2",
        "E_30/L_hidden_1/n_-2",
        "E_30/L_hidden_1/n_1234567890",  # more digits than any epoch or neuron id can have
        "E_30/L_/n_2",
        "E_30/L_hidden_1/n_2/L_output/n_19",
        None,
        30,
    ],
)
def test_malformed_signatures_raise_key_error(trace, signature):
    with pytest.raises(KeyError, match=r"the form is E_<epoch>/L_<layer>/n_<id>"):
        parse_signature(signature)
    with pytest.raises(KeyError, match=r"the form is E_<epoch>/L_<layer>/n_<id>"):
        trace.neuron(signature)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (lambda t: t[f"E_{HUGE}"], "E_0, E_30"),
        (lambda t: t["E_٣٠"], "E_0, E_30"),
        (lambda t: t["E_-30"], "E_0, E_30"),
        (lambda t: t["E_30\n"], "E_0, E_30"),
        (lambda t: t["E_30"]["L_hidden_1"][f"n_{HUGE}"], r"n_2 … n_17"),
        (lambda t: t["E_30"]["L_hidden_1"]["n_١٠"], r"n_2 … n_17"),
        (lambda t: t["E_30"]["L_hidden_1"]["n_-3"], r"n_2 … n_17"),
        (lambda t: t["E_30"]["L_hidden_1"]["n_10\n"], r"n_2 … n_17"),
        (lambda t: t["E_30"]["L_hidden_1"][""], r"n_2 … n_17"),
    ],
)
def test_malformed_lookup_keys_raise_key_error_listing_what_exists(trace, key, message):
    with pytest.raises(KeyError, match=message):
        key(trace)


def test_membership_of_a_malformed_epoch_key_is_false(trace):
    assert f"E_{HUGE}" not in trace
    assert "E_٣٠" not in trace


def test_class_and_feature_names_come_from_the_dataset_or_one_fallback(trace):
    meta = trace.meta
    try:
        trace.meta = {
            **meta,
            "dataset": {"class_names": ["no", "yes"], "feature_names": ["a", "b"]},
        }
        assert trace.class_names == ["no", "yes"] and trace.feature_names == ["a", "b"]
        assert trace.class_name(1) == "yes" and trace.class_name(5) == "class 5"
        # names that do not name every output or input are not used
        trace.meta = {**meta, "dataset": {"class_names": ["no"], "feature_names": ["a"]}}
        assert trace.class_names == ["class 0", "class 1"]
        assert trace.feature_names == ["x0", "x1"]
        trace.meta = {k: v for k, v in meta.items() if k != "dataset"}
        assert trace.class_names == ["class 0", "class 1"] and trace.class_name(0) == "class 0"
        assert trace.feature_names == ["x0", "x1"]
    finally:
        trace.meta = meta
