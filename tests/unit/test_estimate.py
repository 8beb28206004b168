"""``estimate_run``: peak memory and trace size from a config, checked against real runs."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nn_tracing as nt
from nn_tracing.data import dataset_shape
from nn_tracing.estimate import MMAP_CEILING, RunTooLarge, check_budget, estimate_run, format_bytes

# The child trains one config and reports how much its resident memory grew (VmHWM after
# training and saving, minus VmRSS before training) and the saved file's size. It imports
# everything and runs a tiny warm-up first, so that PyTorch's one-time set-up (which the
# estimate leaves out) is not counted; resetting VmHWM (clear_refs 5) forgets the warm-up's peak.
CHILD = textwrap.dedent(
    """
    import ctypes, gc, json, os, sys
    import torch
    import nn_tracing as nt

    def status():
        values = {}
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line.split(":")[0]] = int(line.split()[1]) * 1024
        return values

    # transparent huge pages are a setting of the machine (``always`` on some kernels): they
    # round what a process touches up to 2 MiB pages, which the estimate does not model
    ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE
    torch.set_num_threads(1)
    out = sys.argv[2]
    warm = nt.train(nt.TrainConfig(dataset="moons", hidden_sizes=(4,), epochs=1,
                                   n_samples=100, probe_size=10))
    nt.save_trace(warm.trace, out)
    del warm
    gc.collect()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before = status()["VmRSS"]
    run = nt.train(nt.TrainConfig.from_dict(json.loads(sys.argv[1])))
    run.trace.frame  # the app builds it for every live view
    nt.save_trace(run.trace, out)
    print(json.dumps({"peak": status()["VmHWM"] - before, "file": os.path.getsize(out)}))
    """
)

# Two configs whose memory is mostly the trace, in the two regimes of the allocator: per-epoch
# arrays of a few MiB that live in glibc's heap, and arrays above its 32 MiB mmap ceiling.
HEAP_CONFIG = {
    "dataset": "moons",
    "hidden_sizes": [256, 256],
    "epochs": 10,
    "n_samples": 8000,
    "probe_size": 2000,
    "keep_weights": True,
}
MAPPED_CONFIG = {
    "dataset": "classification",
    "hidden_sizes": [2048],
    "epochs": 3,
    "n_samples": 16384,
    "val_fraction": 0.5,
    "probe_size": 8192,
    "batch_size": 512,
}


def measure(config: dict, tmp_path: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(config), str(tmp_path / "run.nntrace")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc to measure RSS"
)
@pytest.mark.parametrize("config", [HEAP_CONFIG, MAPPED_CONFIG], ids=["heap", "mapped"])
def test_estimate_is_within_20_percent_of_a_real_run(config, tmp_path):
    estimate = estimate_run(nt.TrainConfig.from_dict(config))
    measured = measure(config, tmp_path)
    assert measured["peak"] > 50 * 2**20  # the trace dominates, not allocator noise
    report = (
        f"estimated peak {format_bytes(estimate.peak_bytes)} vs measured "
        f"{format_bytes(measured['peak'])}; trace {format_bytes(estimate.trace_bytes)} vs "
        f"{format_bytes(measured['file'])}"
    )
    assert estimate.peak_bytes == pytest.approx(measured["peak"], rel=0.2), report
    assert estimate.trace_bytes == pytest.approx(measured["file"], rel=0.2), report


def test_the_two_measured_configs_cover_both_allocator_regimes():
    heap = nt.TrainConfig.from_dict(HEAP_CONFIG)
    mapped = nt.TrainConfig.from_dict(MAPPED_CONFIG)
    per_epoch = lambda e: e.breakdown["probe activations"] // e.n_recorded  # noqa: E731
    assert per_epoch(estimate_run(heap)) < MMAP_CEILING < per_epoch(estimate_run(mapped))


BASE = nt.TrainConfig(dataset="digits", hidden_sizes=(64, 64), epochs=20, probe_size=100)


def test_activations_are_probe_samples_times_neurons_times_recorded_epochs():
    estimate = estimate_run(BASE)
    n_neurons = 64 + 64 + 64 + 10
    assert estimate.n_neurons == n_neurons and estimate.n_recorded == 21
    assert estimate.breakdown["probe activations"] == 21 * 100 * n_neurons * 4
    assert estimate.n_parameters == 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10


def test_peak_and_trace_grow_linearly_with_probe_size():
    # sizes at which one epoch's tensors stay the largest entry of the file (saving holds the
    # largest twice, so the peak has a kink where another entry becomes the largest)
    sizes = (250, 325, 400)  # below the validation split (449 samples)
    peaks = [estimate_run(BASE.replace(probe_size=p)).peak_bytes for p in sizes]
    traces = [estimate_run(BASE.replace(probe_size=p)).trace_bytes for p in sizes]
    assert peaks[0] < peaks[1] < peaks[2]
    assert peaks[2] - peaks[1] == pytest.approx(peaks[1] - peaks[0], rel=0.01)
    assert traces[2] - traces[1] == pytest.approx(traces[1] - traces[0], rel=0.01)


def test_peak_and_trace_grow_linearly_with_recorded_epochs():
    schedules = ((5, 10), (5, 10, 15), (5, 10, 15, 20))
    estimates = [estimate_run(BASE.replace(epoch_intervals=s)) for s in schedules]
    assert [e.n_recorded for e in estimates] == [3, 4, 5]
    peaks = [e.peak_bytes for e in estimates]
    traces = [e.trace_bytes for e in estimates]
    assert peaks[2] - peaks[1] == pytest.approx(peaks[1] - peaks[0], rel=0.01)
    assert traces[2] - traces[1] == pytest.approx(traces[1] - traces[0], rel=0.01)
    # and a run that records only its last epoch holds far less
    assert estimate_run(BASE.replace(epoch_intervals=-1)).peak_bytes < peaks[0]


def test_the_breakdown_adds_up_to_the_peak_largest_first():
    estimate = estimate_run(BASE.replace(keep_weights=True, drop_batches=False))
    assert sum(estimate.breakdown.values()) == estimate.peak_bytes
    assert list(estimate.breakdown.values()) == sorted(estimate.breakdown.values(), reverse=True)
    for part in ("probe activations", "kept weights", "per-step table", "saving", "dataset"):
        assert estimate.breakdown[part] > 0, part


@pytest.mark.parametrize(
    ("changes", "part", "knobs"),
    [
        (
            {"hidden_sizes": (2048,), "probe_size": 8192, "n_samples": 40_000, "epochs": 30},
            "probe activations",
            ("probe_size", "epoch_intervals", "× 31 epochs"),
        ),
        (
            {"hidden_sizes": (2048, 2048), "probe_size": 16, "keep_weights": True},
            "kept weights",
            ("keep_weights", "epoch_intervals"),
        ),
        (
            {"hidden_sizes": (8,), "probe_size": 16, "n_samples": 3_000_000, "epochs": 1},
            "loading the data",
            ("n_samples",),
        ),
        (
            {"hidden_sizes": (8,), "probe_size": 16, "batch_size": 1, "drop_batches": False},
            "per-step table",
            ("drop_batches",),
        ),
    ],
)
def test_describe_names_the_biggest_part_and_its_knob(changes, part, knobs):
    config = nt.TrainConfig(dataset="classification", **changes)
    estimate = estimate_run(config)
    assert estimate.dominant == part
    sentence = estimate.describe()
    assert sentence.endswith(".") and "\n" not in sentence
    assert re.search(r"[.;]\s+[A-Z]", sentence) is None  # one sentence
    assert part in sentence and format_bytes(estimate.peak_bytes) in sentence
    for knob in knobs:
        assert knob in sentence, (knob, sentence)


def test_the_issues_run_is_refused_with_the_knob_to_turn():
    """hidden 8192, probe 65536, 400k samples, every epoch: gigabytes per recorded epoch."""
    config = nt.TrainConfig(
        hidden_sizes=(8192,), probe_size=65536, n_samples=400_000, epochs=30, keep_weights=True
    )
    estimate = estimate_run(config)
    per_epoch = 65536 * (20 + 8192 + 2) * 4
    assert estimate.breakdown["probe activations"] == 31 * per_epoch  # 2.0 GiB × 31
    assert estimate.peak_bytes > 2 * 31 * per_epoch  # held, and copied again while saving
    with pytest.raises(RunTooLarge, match="lower probe_size") as info:
        check_budget(estimate, max_peak_bytes=8 * 2**30)
    assert info.value.estimate is estimate and "8.0 GiB" in str(info.value)
    small = estimate_run(nt.TrainConfig(dataset="moons", epochs=5))
    assert check_budget(small, max_peak_bytes=8 * 2**30, max_trace_bytes=2**30) is small


@pytest.mark.parametrize("name", sorted(nt.BUILTIN_DATASETS))
def test_dataset_shape_matches_the_loaded_dataset(name):
    config = nt.TrainConfig(dataset=name, n_samples=321)
    data = nt.load_dataset(name, n_samples=321)
    assert tuple(dataset_shape(config)) == (len(data.y), data.n_features, data.n_classes)


def test_dataset_shape_of_a_csv_reads_the_header_and_labels(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,label\n" + "".join(f"{i},{i},{i},{'xyz'[i % 3]}\n" for i in range(30)))
    config = nt.TrainConfig(dataset="csv", csv_path=str(path), label_column="label")
    assert tuple(dataset_shape(config)) == (30, 3, 3)
    with pytest.raises(ValueError, match="no column 'y'"):
        dataset_shape(config.replace(label_column="y"))
    with pytest.raises(ValueError, match="does not exist"):
        estimate_run(config.replace(csv_path=str(tmp_path / "missing.csv")))


def test_format_bytes_uses_binary_units():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(68 * 2**20) == "68 MiB"
    assert format_bytes(2.1 * 2**30) == "2.1 GiB"
