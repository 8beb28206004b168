"""Smoke test of the overhead benchmark (``nn_tracing.bench``) on a tiny workload."""

from __future__ import annotations

import json

import pytest
import torch

from nn_tracing import bench


def test_quick_benchmark_prints_the_table(capsys, tmp_path):
    threads = torch.get_num_threads()
    out_json = tmp_path / "bench.json"
    code = bench.main(
        [
            "--quick",
            "--repeats",
            "1",
            "--epochs",
            "1",
            "--samples",
            "400",
            "--no-wide",
            "--json",
            str(out_json),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "| workload | variant | median s | ratio |" in printed
    assert "| standard | untraced |" in printed
    assert "| cnn | every epoch |" in printed  # every workload but the one left out
    assert "| wide |" not in printed
    assert "| standard | every epoch, drop_batches=False |" in printed
    assert "untraced (bench loop)" in printed
    assert "every-epoch trace" in printed
    assert "PASS" in printed or "MISS" in printed
    assert "| standard | every epoch, written to a run directory |" in printed
    assert "| run directory | files | directory / zip | directory load s |" in printed
    assert "writing every epoch to a run directory ≤ 1.02× in memory" in printed
    payload = json.loads(out_json.read_text())
    rows = {row["variant"]: row for row in payload["variants"] if row["workload"] == "standard"}
    assert {
        bench.BASE_TRAIN,
        bench.EVERY,
        bench.RUNDIR,
        bench.LAST_ONLY,
        bench.STEPS,
        bench.BASE_LOOP,
    } <= set(rows)
    # the run-directory variant is judged against recording in memory, in the same run
    written, in_memory = rows[bench.RUNDIR], rows[bench.EVERY]
    assert written["baseline"] == bench.EVERY
    assert written["ratio"] == pytest.approx(written["median_s"] / in_memory["median_s"])
    storage = payload["storage"]["standard"]
    assert storage["bytes"] > 0
    # E_0 and E_1 recorded: manifest, heartbeat, probe, 2 epochs' tensors, final weights,
    # 2 neuron parts and 2 history parts
    assert storage["dir_files"] == 10
    assert storage["dir_bytes"] > storage["dir_zip_bytes"] / 2
    assert storage["dir_load_s"] > 0
    assert torch.get_num_threads() == threads  # the benchmark restores the thread count


def test_quick_caps_what_the_cli_passes():
    args = bench._parser().parse_args(["--quick", "--repeats", "5", "--epochs", "10"])
    assert bench._settings(args) == (2, 2, 2000)
    args = bench._parser().parse_args([])
    assert bench._settings(args) == (5, 10, 20000)


def test_variants_can_be_picked_with_their_baselines(capsys):
    args = ["--quick", "--repeats", "1", "--epochs", "1", "--samples", "400", "--no-wide"]
    code = bench.main([*args, "--variant", bench.RUNDIR])
    printed = capsys.readouterr().out
    assert code == 0
    rows = [line.split(" | ") for line in printed.splitlines() if line.startswith("| standard |")]
    measured = {row[1] for row in rows}
    # the variant, the in-memory run it is compared with, and that one's baseline
    assert {bench.RUNDIR, bench.EVERY, bench.BASE_TRAIN} <= measured
    assert bench.STEPS not in measured and bench.BASE_LOOP not in measured


def test_an_unknown_variant_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--quick", "--variant", "every epoch, on a floppy"])
    assert "no variant 'every epoch, on a floppy'" in capsys.readouterr().err


def test_the_cnn_workload_runs_the_built_in_cnn_on_bars(capsys, tmp_path):
    out_json = tmp_path / "bench.json"
    args = ["--quick", "--repeats", "1", "--epochs", "1", "--samples", "400"]
    code = bench.main([*args, "--workload", "cnn", "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert code == 0
    rows = [line.split(" | ") for line in printed.splitlines() if line.startswith("| ")]
    assert {row[0] for row in rows if row[1] in (bench.BASE_TRAIN, bench.EVERY)} == {"| cnn"}
    assert "CNN: every-epoch recording ≤ 1.05× untraced" in printed
    payload = json.loads(out_json.read_text())
    measured = {row["variant"] for row in payload["variants"]}
    assert measured == {bench.BASE_TRAIN, bench.EVERY, bench.LAST_ONLY, bench.STEPS}
    goal = next(g for g in payload["goals"] if g["workload"] == "cnn")
    assert goal["result"] in ("PASS", "MISS") and goal["limit"] == 1.05
    # the every-epoch trace is the CNN's: 1 input channel, conv_1 8, conv_2 16, output 4
    # neurons at E_0 and E_1
    assert payload["storage"]["cnn"]["rows"] == 2 * (1 + 8 + 16 + 4)
