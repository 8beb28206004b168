"""Step schedules through the interfaces people use: the ``--step-intervals`` flag (a real
subprocess, a config file overridden), and the sidebar form's *on optimizer steps* mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import cli as run_cli

import nn_tracing as nt
from nn_tracing.step_schedule import recorded_steps
from nn_tracing.ui.training_form import DEFAULTS, config_from_form


def cli(*args: str, cwd: Path):
    """``nn-tracing ARGS`` in a real process (:func:`test_cli.cli`)."""
    return run_cli(*args, cwd=cwd, timeout=300)


def test_the_flag_trains_a_step_trace_over_a_config_files_epoch_schedule(tmp_path: Path) -> None:
    # iris: 112 training samples, batch 32 -> 4 steps per epoch; 5 epochs = 20 steps
    (tmp_path / "cfg.toml").write_text(
        'dataset = "iris"\nhidden_sizes = [4]\nepochs = 5\nbatch_size = 32\n'
        "epoch_intervals = [1, 3]\n"
    )
    done = cli(
        "train",
        "--config",
        "cfg.toml",
        "--step-intervals",
        "log:8",
        "--out",
        "s.nntrace",
        "--quiet",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "steps [0, 1, 2, 4, 8, 16, 20]" in done.stdout
    trace = nt.load_trace(tmp_path / "s.nntrace")
    steps_per_epoch = trace.meta["steps_per_epoch"]
    assert steps_per_epoch == 4
    assert trace.epochs == recorded_steps("log:8", 5 * steps_per_epoch)
    assert trace.meta["config"]["step_intervals"] == "log:8"
    assert trace.meta["config"]["epoch_intervals"] is None
    info = cli("info", "s.nntrace", cwd=tmp_path)
    assert "steps      7 recorded: 0, 1, 2, 4, 8, 16, 20" in info.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [("every", "--step-intervals: 'every': use N, log, log:N"), ("log:0", "must be positive")],
)
def test_a_bad_flag_is_one_line(tmp_path: Path, spec: str, message: str) -> None:
    done = cli("estimate", "--dataset", "moons", "--step-intervals", spec, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_the_flag_and_an_epoch_flag_are_exclusive(tmp_path: Path) -> None:
    done = cli("estimate", "--step-intervals", "5", "--every", "2", cwd=tmp_path)
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr


def test_the_form_records_on_steps_and_says_what_is_wrong() -> None:
    config, errors = config_from_form(
        {**DEFAULTS, "record_mode": "steps", "record_value": "log:25"}
    )
    assert errors == {} and config is not None
    assert (config.step_intervals, config.epoch_intervals) == ("log:25", None)
    listed, _ = config_from_form({**DEFAULTS, "record_mode": "steps", "record_value": "10, 100"})
    assert listed is not None and listed.step_intervals == (10, 100)
    _, errors = config_from_form({**DEFAULTS, "record_mode": "steps", "record_value": "hourly"})
    assert errors == {
        "record_value": "'hourly': use N, log, log:N, a list like 10, 100, 1000, or last"
    }
    _, errors = config_from_form({**DEFAULTS, "record_mode": "steps", "record_value": "0"})
    assert list(errors) == ["record_value"] and "is not valid" in errors["record_value"]
