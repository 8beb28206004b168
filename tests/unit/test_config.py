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


def test_the_storage_and_budget_fields_round_trip_through_json_and_toml():
    import tomllib

    cfg = TrainConfig(
        activation_samples=64,
        activation_dtype="float16",
        max_trace_bytes=50 * 2**20,
        on_budget="adapt",
        epoch_intervals=5,
    )
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # TOML has no null: a config file leaves the unset fields out
    lines = []
    for key, value in cfg.to_dict().items():
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    assert TrainConfig.from_dict(tomllib.loads("\n".join(lines))) == cfg
    assert TrainConfig().activation_samples is None and TrainConfig().on_budget == "refuse"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("activation_samples", 0, "between 1"),
        ("activation_samples", 2.5, "integer"),
        ("activation_dtype", "bfloat16", "float32, float16"),
        ("max_trace_bytes", 0, "between 1"),
        ("max_trace_bytes", "1GiB", "integer"),
        ("on_budget", "shrink", "refuse, adapt"),
    ],
)
def test_invalid_storage_and_budget_fields_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message) as info:
        TrainConfig(**{field: value})
    assert str(info.value).startswith(field)
