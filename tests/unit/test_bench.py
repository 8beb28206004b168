"""Smoke test of the overhead benchmark (``nn_tracing.bench``) on a tiny workload."""

from __future__ import annotations

import json

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
    assert "| standard | every epoch, drop_batches=False |" in printed
    assert "untraced (bench loop)" in printed
    assert "every-epoch trace" in printed
    assert "PASS" in printed or "MISS" in printed
    payload = json.loads(out_json.read_text())
    names = {row["variant"] for row in payload["variants"]}
    assert {bench.BASE_TRAIN, bench.EVERY, bench.LAST_ONLY, bench.STEPS, bench.BASE_LOOP} <= names
    assert payload["storage"]["standard"]["bytes"] > 0
    assert torch.get_num_threads() == threads  # the benchmark restores the thread count


def test_quick_caps_what_the_cli_passes():
    args = bench._parser().parse_args(["--quick", "--repeats", "5", "--epochs", "10"])
    assert bench._settings(args) == (2, 2, 2000)
    args = bench._parser().parse_args([])
    assert bench._settings(args) == (5, 10, 20000)
