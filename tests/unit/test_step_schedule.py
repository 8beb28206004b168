"""Step schedules (``nn_tracing.step_schedule``): log-spaced values, every n-th, lists, the
last step, the text forms of the CLI and the form, and the errors."""

from __future__ import annotations

import pytest

from nn_tracing import TrainConfig
from nn_tracing.step_schedule import (
    MAX_RECORDED_STEPS,
    format_step_spec,
    normalize_step_intervals,
    parse_step_spec,
    recorded_steps,
    should_record_step,
)


def brute_force(spec: object, num_steps: int) -> list[int]:
    """The schedule by its definition, step by step (the module lists it without a loop)."""
    out = [0]
    for step in range(1, num_steps + 1):
        last = step == num_steps
        if isinstance(spec, int) and spec > 0:
            keep = step % spec == 0 or last
        elif spec == -1:
            keep = last
        elif isinstance(spec, tuple):
            keep = step in spec
        elif spec == "log":
            keep = step in {2**k for k in range(40)} or last
        else:
            every = int(str(spec).split(":")[1])
            power = step in {2**k for k in range(40)}
            keep = (power and step < every) or step % every == 0 or last
        if keep:
            out.append(step)
    return out


def test_log_spaced_steps_are_the_powers_of_two_and_the_last() -> None:
    assert recorded_steps("log", 100) == [0, 1, 2, 4, 8, 16, 32, 64, 100]
    assert recorded_steps("log", 64) == [0, 1, 2, 4, 8, 16, 32, 64]


def test_log_then_every_n_is_pythia_like() -> None:
    # Pythia: 0, 1, 2, 4, …, 512, then every 1000 steps
    steps = recorded_steps("log:1000", 5000)
    assert steps == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000, 4000, 5000]
    assert recorded_steps("log:25", 100) == [0, 1, 2, 4, 8, 16, 25, 50, 75, 100]


@pytest.mark.parametrize(
    "spec", [1, 3, 7, -1, (1, 5, 9), "log", "log:1", "log:4", "log:5", "log:25", "log:64"]
)
@pytest.mark.parametrize("num_steps", [1, 9, 64, 100, 257])
def test_every_form_matches_its_definition(spec: object, num_steps: int) -> None:
    if isinstance(spec, tuple) and spec[-1] > num_steps:
        with pytest.raises(ValueError, match="lists step 9 but the run has only"):
            recorded_steps(spec, num_steps)
        return
    expected = brute_force(spec, num_steps)
    assert recorded_steps(spec, num_steps) == expected
    assert [s for s in range(num_steps + 1) if should_record_step(s, spec, num_steps)] == expected


def test_without_the_run_length_the_last_step_is_not_known() -> None:
    assert not should_record_step(7, "log:4", None)
    assert should_record_step(8, "log:4", None)
    assert not should_record_step(7, -1, None)
    assert should_record_step(0, (5,), None)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        (5, 5),
        (-1, -1),
        ([30, 3, 10], (3, 10, 30)),
        ("log", "log"),
        (" LOG:100 ", "log:100"),
        (("log", 25), "log:25"),
        (["log", 25], "log:25"),
        (None, None),
    ],
)
def test_normalize_gives_the_canonical_form(value: object, canonical: object) -> None:
    assert normalize_step_intervals(value) == canonical


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "step_intervals=0 is not valid"),
        (-2, "step_intervals=-2 is not valid"),
        (True, "step_intervals=True is not valid"),
        (2.5, "step_intervals=2.5 is not valid"),
        ([], "is an empty list"),
        ([3, 0], "0 is not a positive step number"),
        ([3, 3], "lists a step more than once"),
        ("logs", "'logs' is not valid"),
        ("log:0", "the N of 'log:N' must be positive"),
        ("log:-3", "is not valid"),
    ],
)
def test_bad_schedules_are_refused_with_the_value(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_step_intervals(value)


def test_a_schedule_recording_too_many_steps_is_refused() -> None:
    with pytest.raises(ValueError, match=f"over the limit of {MAX_RECORDED_STEPS}"):
        recorded_steps(1, MAX_RECORDED_STEPS + 10)


@pytest.mark.parametrize(
    ("text", "spec"),
    [("25", 25), ("log", "log"), ("Log:25", "log:25"), ("10, 100 1000", (10, 100, 1000))],
)
def test_text_forms_round_trip(text: str, spec: object) -> None:
    assert parse_step_spec(text) == spec
    assert parse_step_spec(format_step_spec(spec)) == spec
    assert parse_step_spec("last") == -1 and format_step_spec(-1) == "last"


def test_text_that_is_no_schedule_says_what_to_type() -> None:
    with pytest.raises(ValueError, match="use N, log, log:N"):
        parse_step_spec("every")
    with pytest.raises(ValueError, match="not valid"):
        parse_step_spec("0")


def test_train_config_takes_a_step_schedule_and_round_trips() -> None:
    config = TrainConfig(step_intervals=("log", 25))
    assert config.step_intervals == "log:25"
    assert TrainConfig.from_dict(config.to_dict()) == config
    listed = TrainConfig(step_intervals=[40, 4])
    assert TrainConfig.from_dict(listed.to_dict()).step_intervals == (4, 40)


def test_train_config_refuses_two_schedules_and_bad_ones() -> None:
    with pytest.raises(ValueError, match=r"step_intervals=.*leave epoch_intervals unset"):
        TrainConfig(epoch_intervals=5, step_intervals=10)
    with pytest.raises(ValueError, match="step_intervals='hourly' is not valid"):
        TrainConfig(step_intervals="hourly")
