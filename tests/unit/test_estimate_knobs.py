"""The estimate's knobs (kept samples, float16, schedule) against real runs on disk.

Each case trains for real, writes the run directory as it trains (``train(out=…)``) and the
``.nntrace`` file after, and compares ``estimate.trace_bytes`` with the file's size and
``estimate.rundir_bytes`` with the bytes of the directory's files (their apparent sizes, as
``du --apparent-size -b`` counts them without the directories themselves).
"""

import os

import numpy as np
import pytest

import nn_tracing as nt
from nn_tracing.estimate import estimate_run, format_bytes
from nn_tracing.tracer._budget import directory_bytes

BASE = {"dataset": "digits", "hidden_sizes": (96, 48), "epochs": 8, "probe_size": 300}

CASES = {
    "all samples, float32, every epoch": {},
    "all samples, float16, every epoch": {"activation_dtype": "float16"},
    "60 samples, float32, every 3rd epoch": {"activation_samples": 60, "epoch_intervals": 3},
    "60 samples, float16, a list of epochs": {
        "activation_samples": 60,
        "activation_dtype": "float16",
        "epoch_intervals": (1, 2, 8),
    },
    "float16, last epoch, weights kept": {
        "activation_dtype": "float16",
        "epoch_intervals": -1,
        "keep_weights": True,
    },
    "one of three hidden layers traced": {
        "hidden_sizes": (96, 256, 48),
        "traced_layers": ("hidden_2",),
        "epoch_intervals": 2,
    },
    "a wide layer, 200 samples": {
        "dataset": "moons",
        "hidden_sizes": (512,),
        "n_samples": 2400,
        "activation_samples": 200,
    },
}


@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_the_estimate_is_within_10_percent_of_the_file_and_the_run_directory(changes, tmp_path):
    config = nt.TrainConfig(**{**BASE, **changes})
    run = nt.train(config, out=tmp_path / "run")
    nt.save_trace(run.trace, tmp_path / "run.nntrace")
    estimate = estimate_run(config)
    file_bytes = os.path.getsize(tmp_path / "run.nntrace")
    dir_bytes = directory_bytes(tmp_path / "run")
    assert file_bytes > 150_000  # not a trace made of headers
    report = (
        f"file {format_bytes(file_bytes)}, estimated {format_bytes(estimate.trace_bytes)}; "
        f"directory {format_bytes(dir_bytes)}, estimated {format_bytes(estimate.rundir_bytes)}"
    )
    assert estimate.trace_bytes == pytest.approx(file_bytes, rel=0.10), report
    assert estimate.rundir_bytes == pytest.approx(dir_bytes, rel=0.10), report


def test_the_knobs_change_what_the_trace_stores(tmp_path):
    config = nt.TrainConfig(
        **{**BASE, "epochs": 3},
        activation_samples=40,
        activation_dtype="float16",
        data_seed=3,
    )
    run = nt.train(config, out=tmp_path / "run")
    full = nt.train(config.replace(activation_samples=None, activation_dtype="float32"))
    trace, reference = run.trace, full.trace
    rows = nt.tracer.kept_rows(len(reference.probe[1]), 40, seed=3)
    assert rows is not None and len(rows) == 40 and np.all(np.diff(rows) > 0)
    # the statistics use the whole probe: the same neuron table as the full run
    np.testing.assert_array_equal(trace.frame.to_numpy(), reference.frame.to_numpy())
    # the probe set and the tensors are the kept rows, float16 on disk, float32 when read
    np.testing.assert_array_equal(trace.probe[0], reference.probe[0][rows])
    for epoch in trace.epochs:
        stored = trace.epoch_tensors(epoch)
        assert stored["activations"].dtype == np.float16 and stored["logits"].dtype == np.float16
        expected = reference.probe_activations(epoch)[rows]
        read = trace.probe_activations(epoch)
        assert read.dtype == np.float32 and read.shape == (40, trace.n_neurons)
        np.testing.assert_allclose(read, expected, rtol=1e-3, atol=1e-3)
        np.testing.assert_array_equal(trace.predictions(epoch), reference.predictions(epoch)[rows])
    assert trace.meta["activation_samples"] == 40 and trace.meta["activation_dtype"] == "float16"
    assert trace.meta["n_probe"] == len(reference.probe[1])
    # both the run directory and the file read back the same (the format accepts float16)
    for loaded in (nt.load_trace(tmp_path / "run"), _saved(trace, tmp_path)):
        assert loaded.epoch_tensors(1)["activations"].dtype == np.float16
        np.testing.assert_array_equal(loaded.probe_activations(1), trace.probe_activations(1))
        np.testing.assert_array_equal(loaded.probe[1], trace.probe[1])


def _saved(trace, tmp_path):
    nt.save_trace(trace, tmp_path / "saved.nntrace")
    return nt.load_trace(tmp_path / "saved.nntrace")


def test_each_knob_lowers_the_estimate_as_it_says():
    config = nt.TrainConfig(**BASE)
    full = estimate_run(config)
    half = estimate_run(config.replace(activation_dtype="float16"))
    kept = estimate_run(config.replace(activation_samples=30))
    fewer = estimate_run(config.replace(epoch_intervals=4))
    n_neurons = 64 + 96 + 48 + 10
    assert full.breakdown["probe activations"] == 9 * 300 * n_neurons * 4
    assert half.breakdown["probe activations"] == 9 * 300 * n_neurons * 2
    assert kept.breakdown["probe activations"] == 9 * 30 * n_neurons * 4
    assert fewer.breakdown["probe activations"] == 3 * 300 * n_neurons * 4
    assert half.n_kept == 300 and kept.n_kept == 30 and kept.n_probe == 300
    assert full.trace_bytes > half.trace_bytes > kept.trace_bytes
    assert "activation_samples" in full.details["probe activations"]
    assert "float16" in full.details["probe activations"]


def test_a_layer_selection_traces_those_layers_with_the_same_statistics(tmp_path):
    config = nt.TrainConfig(**{**BASE, "epochs": 2, "hidden_sizes": (32, 24, 16)})
    full = nt.train(config).trace
    run = nt.train(config.replace(traced_layers=("hidden_2",)), out=tmp_path / "run")
    trace = run.trace
    assert trace.layer_names() == ["input", "hidden_2", "output"]
    assert trace.neural_index == {"input": (0, 63), "hidden_2": (64, 87), "output": (88, 97)}
    assert trace.meta["traced_layers"] == ["hidden_2", "output"]
    # the same neurons as in the full trace, renumbered: same statistics, same activations
    columns = list(range(64)) + list(range(64 + 32, 64 + 32 + 24)) + list(range(136, 146))
    for epoch in trace.epochs:
        # (float32 reductions over a matrix of another width: equal to rounding)
        np.testing.assert_allclose(
            trace.metrics_at(epoch), full.metrics_at(epoch)[columns], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            trace.probe_activations(epoch), full.probe_activations(epoch)[:, columns], rtol=1e-6
        )
    assert estimate_run(run.config).n_neurons == 98
    loaded = nt.load_trace(tmp_path / "run")  # a built-in trace of a selection validates
    assert loaded.layer_names() == trace.layer_names()


def test_an_unknown_layer_is_refused_with_the_layers_listed():
    import torch
    from torch import nn

    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with pytest.raises(ValueError, match=r"no such traceable layer; the layers are 0, 2"):
        nt.TraceableNN(net, probe=(x, y), layers=["1"])
    traced = nt.TraceableNN(net, probe=(x, y), layers=["2"])
    assert traced.neural_index == {"input": (0, 3), "2": (4, 6)}
