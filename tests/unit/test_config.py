"""TrainConfig validation and (de)serialisation."""

import json

import pytest

from nn_tracing import TrainConfig


def test_round_trip_through_json():
    cfg = TrainConfig(dataset="digits", hidden_sizes=(32, 16), epoch_intervals=[1, 5], epochs=5)
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.epoch_intervals == (1, 5)
    assert again.hidden_sizes == (32, 16)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dataset", "mnist", "unknown dataset"),
        ("hidden_sizes", (), "hidden layers"),
        ("hidden_sizes", (16, 0), "width 0"),
        ("hidden_sizes", "16", "list of layer widths"),
        ("activation", "swish", "unknown activation"),
        ("epochs", 0, "between 1"),
        ("epochs", 2.5, "integer"),
        ("batch_size", 0, "between 1"),
        ("lr", 0, "must be in"),
        ("lr", float("nan"), "finite"),
        ("optimizer", "lbfgs", "unknown optimizer"),
        ("dropout", 1.0, "must be in"),
        ("probe_size", 1, "between 2"),
        ("epoch_intervals", 0, "epoch_intervals"),
        ("keep_weights", "yes", "true or false"),
        ("device", "tpu", "choose one of"),
    ],
)
def test_invalid_fields_raise_value_error_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message) as info:
        TrainConfig(**{field: value})
    assert str(info.value).startswith(field)


def test_list_epochs_must_fit_the_run():
    with pytest.raises(ValueError, match="only 10 epochs"):
        TrainConfig(epochs=10, epoch_intervals=[5, 20])


def test_csv_needs_path_and_label():
    with pytest.raises(ValueError, match="csv_path"):
        TrainConfig(dataset="csv")
    with pytest.raises(ValueError, match="label_column"):
        TrainConfig(dataset="csv", csv_path="x.csv")


def test_unknown_keys_are_rejected_with_the_known_ones_listed():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) hidden.*known keys"):
        TrainConfig.from_dict({"hidden": [4]})
