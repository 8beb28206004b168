"""The nn-tracing command, run for real through subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import nn_tracing as nt
from nn_tracing.cli import main
from nn_tracing.estimate import format_bytes

ROOT = Path(__file__).resolve().parents[2]
#: A child process imports this checkout's nn_tracing, whatever its working directory.
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
}


def cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nn_tracing.cli", *args],
        cwd=cwd,
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cli")
    result = cli(
        "train",
        "--dataset",
        "moons",
        "--hidden",
        "8",
        "8",
        "--epochs",
        "6",
        "--every",
        "3",
        "--seed",
        "0",
        "--n-samples",
        "300",
        "--probe-size",
        "50",
        "--out",
        "runs/moons.nntrace",
        cwd=cwd,
    )
    return cwd, result


def test_train_writes_a_loadable_trace_with_a_progress_bar(trained):
    cwd, result = trained
    assert result.returncode == 0, result.stderr
    assert "saved runs/moons.nntrace (complete" in result.stdout
    assert "epoch" in result.stderr and "100%" in result.stderr  # tqdm progress bar
    trace = nt.load_trace(cwd / "runs" / "moons.nntrace")
    assert trace.epochs == [0, 3, 6]
    assert trace.meta["config"]["hidden_sizes"] == [8, 8]


def test_info_summarises_the_trace(trained):
    cwd, _ = trained
    result = cli("info", "runs/moons.nntrace", cwd=cwd)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "status     complete",
        "hidden_1",
        "n_2 … n_9",
        "3 recorded: 0, 3, 6",
        "selectivity",
        "val_acc",
        "moons",
    ):
        assert expected in out, expected


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_the_neuron_frame(trained, fmt):
    cwd, _ = trained
    result = cli("export", "runs/moons.nntrace", "--format", fmt, "--out", f"n.{fmt}", cwd=cwd)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(cwd / "n.csv") if fmt == "csv" else pd.read_parquet(cwd / "n.parquet")
    trace = nt.load_trace(cwd / "runs" / "moons.nntrace")
    assert len(frame) == len(trace.frame) == 3 * trace.n_neurons
    assert list(frame.columns[:3]) == ["epoch", "layer", "neuron"]


def test_config_file_and_schedule_flags(tmp_path):
    (tmp_path / "cfg.toml").write_text(
        'dataset = "iris"\nhidden_sizes = [4]\nepochs = 3\nepoch_intervals = [1, 3]\n'
    )
    os.chdir(tmp_path)
    try:
        assert (
            main(
                [
                    "train",
                    "--config",
                    "cfg.toml",
                    "--keep-weights",
                    "--keep-batches",
                    "--out",
                    "x.nntrace",
                    "--quiet",
                ]
            )
            == 0
        )
        assert (
            main(["train", "--config", "cfg.toml", "--last", "--out", "y.nntrace", "--quiet"]) == 0
        )
    finally:
        os.chdir(Path(__file__).parent)
    trace = nt.load_trace(tmp_path / "x.nntrace")
    assert trace.epochs == [0, 1, 3]
    assert trace.steps is not None and trace.weights(1) is not None
    assert nt.load_trace(tmp_path / "y.nntrace").epochs == [0, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--hidden", "0"], "hidden_sizes"),
        (["train", "--epochs", "5", "--epochs-at", "9"], "only 5 epochs"),
        (["train", "--lr", "-1"], "lr="),
        (["train", "--config", "missing.toml"], "does not exist"),
        (["train", "--config", "bad.toml"], "not valid TOML"),
        (["train", "--config", "unknown.toml"], "unknown config key"),
        (["train", "--config", "bad.json"], "not valid JSON"),
        (["train", "--config", "list.json"], "must hold an object"),
        (["train", "--out", "folder"], "is a runs folder"),
        (["train", "--out", "done/"], "holds a run already"),
        (["train", "--out", "new/", "--run-dir", "other"], "--run-dir goes with"),
        (["train", "--threads", "0"], "--threads must be at least 1"),
        (["train", "--csv", "nope.csv", "--label-column", "y"], "does not exist"),
        (["info", "nothing.nntrace"], "no such file"),
        (["info", "garbage.nntrace"], "not a .nntrace"),
        (["export", "garbage.nntrace"], "not a .nntrace"),
        (["estimate", "--probe-size", "1"], "probe_size=1"),
        (["estimate", "--csv", "nope.csv", "--label-column", "y"], "does not exist"),
        (["train", "--dry-run", "--csv", "nope.csv", "--label-column", "y"], "does not exist"),
        (["train", "--dry-run", "--epochs", "5", "--epochs-at", "9"], "only 5 epochs"),
    ],
)
def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(
    tmp_path, monkeypatch, capsys, args, message
):
    (tmp_path / "bad.toml").write_text("epochs = [")
    (tmp_path / "unknown.toml").write_text("layers = 3\n")
    (tmp_path / "bad.json").write_text('{"epochs": ')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "garbage.nntrace").write_bytes(b"\x00garbage" * 100)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.nntrace").write_bytes(b"")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "manifest.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--quiet"] if args[0] == "train" else args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nn-tracing: error:"), lines
    assert message in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["train", "--hidden", "0"], "hidden_sizes"), (["info", "garbage.nntrace"], "not a .nntrace")],
)
def test_bad_input_through_a_real_process_has_no_traceback(tmp_path, args, message):
    (tmp_path / "garbage.nntrace").write_bytes(b"\x00garbage" * 100)
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nn-tracing: error:"), result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr


ESTIMATE_ARGS = ("--dataset", "digits", "--hidden", "64", "--epochs", "20", "--keep-weights")


def test_estimate_prints_peak_trace_breakdown_and_the_knob(capsys):
    assert main(["estimate", *ESTIMATE_ARGS, "--probe-size", "400"]) == 0
    out = capsys.readouterr().out
    config = nt.TrainConfig(
        dataset="digits", hidden_sizes=(64,), epochs=20, keep_weights=True, probe_size=400
    )
    estimate = nt.estimate_run(config)
    assert "21 recorded, probe 400" in out
    assert f"peak memory  {format_bytes(estimate.peak_bytes)}" in out
    assert f"trace file   {format_bytes(estimate.trace_bytes)}" in out
    for part in estimate.breakdown:
        assert f"  {part}" in out, part
    assert out.strip().splitlines()[-1] == estimate.describe()
    assert "lower probe_size or record fewer epochs (epoch_intervals)" in out


def test_train_dry_run_prints_the_estimate_and_trains_nothing(tmp_path):
    result = cli("train", "--dry-run", *ESTIMATE_ARGS, "--out", "x.nntrace", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "peak memory" in result.stdout and "trace file" in result.stdout
    assert "probe activations" in result.stdout
    assert not (tmp_path / "x.nntrace").exists() and not (tmp_path / "runs").exists()
    assert result.stdout == cli("estimate", *ESTIMATE_ARGS, cwd=tmp_path).stdout


def test_argparse_errors_exit_non_zero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--dataset", "mnist"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--dataset", "mnist"], "argument --dataset: invalid choice: 'mnist'"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--epochs"], "argument --epochs: expected one argument"),
        (["train", "--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
        (["train", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
        (["train", "--every", "2", "--last"], "argument --last: not allowed with argument"),
        (["info"], "the following arguments are required: FILE"),
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        (["export", "x.nntrace", "--format", "xlsx"], "argument --format: invalid choice"),
    ],
)
def test_argparse_errors_are_one_line_like_every_other_error(capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nn-tracing: error: "), captured.err
    assert message in lines[0] and "usage:" not in captured.err
    assert captured.out == ""


def test_an_argparse_error_through_a_real_process_is_one_line(tmp_path):
    result = cli("train", "--dataset", "mnist", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("nn-tracing: error: argument --dataset: invalid choice")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["info", "-h"]])
def test_help_still_prints_the_usage_and_exits_zero(capsys, args):
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nn-tracing") and "options:" in out


def test_ctrl_c_stops_after_the_current_batch_and_saves(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nn_tracing.cli",
            "train",
            "--dataset",
            "moons",
            "--epochs",
            "2000",
            "--n-samples",
            "4000",
            "--last",
            "--out",
            "stopped.nntrace",
        ],
        cwd=tmp_path,
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    # wait for training to be under way (the progress bar shows a loss)
    buffer = ""
    while time.time() < deadline and "loss=" not in buffer:
        buffer += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    trace = nt.load_trace(tmp_path / "stopped.nntrace")
    assert trace.status == "stopped"
    assert trace.meta["partial_epoch"] in trace.epochs


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "nn-tracing"
    assert script.exists()
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "train" in result.stdout


def test_out_dir_writes_a_run_directory_and_nothing_else(tmp_path):
    """``--out runs/x/`` (and a name without .nntrace) is a run directory, read from a JSON
    config file holding exactly a TrainConfig (``null`` included)."""
    config = nt.TrainConfig(
        dataset="moons", hidden_sizes=(5,), epochs=2, n_samples=200, probe_size=40, lr=0.0123
    )
    (tmp_path / "cfg.json").write_text(json.dumps(config.to_dict()))
    result = cli("train", "--config", "cfg.json", "--out", "runs/x/", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "saved runs/x/ (complete; epochs [0, 1, 2]" in result.stdout
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["x"]
    trace = nt.load_trace(tmp_path / "runs" / "x")
    assert trace.status == "complete" and trace.epochs == [0, 1, 2]
    assert nt.TrainConfig.from_dict(trace.meta["config"]) == config
    assert (
        main(
            ["train", "--dataset", "iris", "--epochs", "1", "--quiet", "--out", str(tmp_path / "y")]
        )
        == 0
    )
    assert nt.load_trace(tmp_path / "y").epochs == [0, 1]


def _global_batch(epoch: int, step: int, steps_per_epoch: int) -> int:
    """Batches trained before position (epoch, batches done in it); epoch 0 is before any."""
    return 0 if epoch == 0 else (epoch - 1) * steps_per_epoch + step


def assert_stopped_within_one_batch(trace: nt.NetworkTrace, steps_per_epoch: int) -> None:
    """The stop took effect at most one batch after it was asked for, and the trace says so."""
    asked = trace.meta["stop_requested_at"]
    stopped = (trace.meta["stopped_epoch"], trace.meta["stopped_step"])
    gap = _global_batch(*stopped, steps_per_epoch) - _global_batch(
        asked["epoch"], asked["step"], steps_per_epoch
    )
    assert 0 <= gap <= 1, (asked, stopped)
    assert trace.status == "stopped"
    assert trace.meta["partial_epoch"] == stopped[0] == trace.epochs[-1]
    assert f"epoch {stopped[0]}, step {stopped[1]}" in trace.meta["status_message"]


#: Many small batches per epoch (15000 training samples / 8), so that a stop is easy to place
#: in the middle of an epoch; only the last epoch is recorded (plus E_0 and the stopped one).
MANY_BATCHES = ("--dataset", "moons", "--hidden", "8", "--epochs", "50", "--n-samples", "20000",
                "--batch-size", "8", "--probe-size", "64", "--last")  # fmt: skip
MANY_BATCHES_PER_EPOCH = 1875


def _wait_for_progress(run_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> dict:
    """The heartbeat's progress once the run is in its second epoch or later (the heartbeat
    shows the epoch at least at every epoch's end)."""
    from nn_tracing.rundir_live import read_writer

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        writer = read_writer(run_dir)
        progress = writer.progress if writer is not None else {}
        if progress.get("epoch", 0) >= 2:
            return progress
        time.sleep(0.05)
    raise AssertionError("the run did not get under way")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_takes_effect_within_one_batch(tmp_path, signum):
    """SIGTERM behaves as the first Ctrl-C: the run finishes its batch, records the epoch in
    progress and closes its directory as ``stopped``; where the request came and where the
    run stopped are recorded, at most one batch apart."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nn_tracing", "train", *MANY_BATCHES, "--quiet", "--out", "run/"],
        cwd=tmp_path,
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        progress = _wait_for_progress(tmp_path / "run", proc)
        assert progress["steps_per_epoch"] == MANY_BATCHES_PER_EPOCH
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopping after the current batch" in err
    assert "saved run/ (stopped" in out
    trace = nt.load_trace(tmp_path / "run")
    assert_stopped_within_one_batch(trace, MANY_BATCHES_PER_EPOCH)
    assert trace.meta["stop_requested_at"]["epoch"] >= progress["epoch"]
    assert trace.epochs == [0, trace.meta["stopped_epoch"]]
