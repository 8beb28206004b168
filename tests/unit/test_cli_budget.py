"""``nn-tracing`` with the storage knobs and ``--max-trace-bytes``: the estimate, the refusal."""

import json

import pytest
from test_cli import cli

import nn_tracing as nt
from nn_tracing.cli import EXIT_OVER_BUDGET, main
from nn_tracing.estimate import estimate_run, format_bytes
from nn_tracing.trace_budget import budget_options

RUN = ("--dataset", "digits", "--hidden", "256", "256", "--epochs", "20", "--probe-size", "400")
CONFIG = nt.TrainConfig(dataset="digits", hidden_sizes=(256, 256), epochs=20, probe_size=400)


def test_dry_run_prints_the_knobs_and_the_estimate_they_give(capsys):
    args = ("--activation-samples", "100", "--activation-dtype", "float16", "--every", "5")
    assert main(["train", "--dry-run", *RUN, *args]) == 0
    out = capsys.readouterr().out
    config = CONFIG.replace(activation_samples=100, activation_dtype="float16", epoch_intervals=5)
    estimate = estimate_run(config)
    assert estimate.n_recorded == 5 and estimate.n_kept == 100
    assert (
        "kept         every layer, 586 neurons; activations of 100 of 400 probe samples, "
        "float16; schedule every 5th epoch and the last" in out
    )
    assert f"trace file   {format_bytes(estimate.trace_bytes)}" in out
    assert f"run dir      {format_bytes(estimate.rundir_bytes)}" in out
    assert format_bytes(estimate.trace_bytes) != format_bytes(estimate_run(CONFIG).trace_bytes)


def test_layers_trace_only_the_hidden_layers_named(capsys):
    assert main(["estimate", *RUN, "--layers", "hidden_2"]) == 0
    out = capsys.readouterr().out
    estimate = estimate_run(CONFIG.replace(traced_layers=("hidden_2",)))
    assert estimate.n_neurons == 64 + 256 + 10
    assert "kept         layers input, hidden_2, output, 330 neurons;" in out
    assert f"trace file   {format_bytes(estimate.trace_bytes)}" in out
    assert main(["estimate", *RUN, "--layers", "hidden_7"]) == 2
    assert "traced_layers=('hidden_7',): unknown layer 'hidden_7'" in capsys.readouterr().err


def test_estimate_over_the_budget_is_refused_with_exit_code_5_and_the_knobs(capsys):
    limit = 2 * 2**20
    code = main(["estimate", *RUN, "--max-trace-bytes", "2MiB"])
    assert code == EXIT_OVER_BUDGET == 5
    err = capsys.readouterr().err
    assert err.startswith("nn-tracing: error: The trace of this run would be about ")
    assert len(err.strip().splitlines()) == 1
    for name, size in budget_options(CONFIG.replace(max_trace_bytes=limit), limit):
        assert f"{name} → {format_bytes(size)}" in err, name


def test_adapt_prints_what_it_changed_and_the_adapted_estimate(capsys):
    assert main(["estimate", *RUN, "--max-trace-bytes", "5MiB", "--on-budget", "adapt"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("To fit max_trace_bytes (5.0 MiB) the run was adapted: ")
    assert "activation_dtype='float16'" in out
    assert "budget 5.0 MiB (adapt)" in out


@pytest.mark.parametrize("size", ["lots", "40%", "-1"])
def test_a_bad_size_is_one_clear_line(size, capsys):
    assert main(["estimate", *RUN, "--max-trace-bytes", size]) == 2
    err = capsys.readouterr().err
    assert f"--max-trace-bytes {size!r} is not a size" in err


def test_train_refused_through_a_real_process_writes_nothing(tmp_path):
    result = cli(
        "train", *RUN, "--max-trace-bytes", "1MiB", "--out", "runs/x/", "--quiet", cwd=tmp_path
    )
    assert result.returncode == EXIT_OVER_BUDGET, result.stderr
    assert "Traceback" not in result.stderr
    assert "over max_trace_bytes (1.0 MiB)" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_train_with_the_knobs_writes_them_into_the_trace(tmp_path):
    args = ("--dataset", "moons", "--hidden", "16", "--epochs", "3", "--probe-size", "100")
    result = cli(
        "train",
        *args,
        "--activation-samples",
        "20",
        "--activation-dtype",
        "float16",
        "--max-trace-bytes",
        "50MiB",
        "--out",
        "run/",
        "--quiet",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    trace = nt.load_trace(tmp_path / "run")
    assert trace.probe_activations(3).shape == (20, 2 + 16 + 2)
    config = trace.meta["config"]
    assert (config["activation_samples"], config["activation_dtype"]) == (20, "float16")
    assert config["max_trace_bytes"] == 50 * 2**20
    assert json.loads(json.dumps(trace.meta["budget"]))["max_trace_bytes"] == 50 * 2**20
