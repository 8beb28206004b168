"""Replicates (nn_tracing.seeds): runs of one configuration that differ only in their seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from nn_tracing import TrainConfig, load_trace, save_trace
from nn_tracing.seeds import find_replicates, free_seeds, replicate_config, replicate_key


def _variant(source: Path, target: Path, **changes: object) -> Path:
    trace = load_trace(source)
    trace.meta = {**trace.meta, "config": {**trace.meta["config"], **changes}}
    return save_trace(trace, target)


def test_replicates_differ_only_in_seed_or_in_what_is_recorded(
    tiny_trace_file: Path, tmp_path: Path
) -> None:
    _variant(tiny_trace_file, tmp_path / "a.nntrace")
    _variant(tiny_trace_file, tmp_path / "b.nntrace", seed=7, keep_weights=True)
    _variant(tiny_trace_file, tmp_path / "c.nntrace", seed=3, drop_batches=False)
    _variant(tiny_trace_file, tmp_path / "other-lr.nntrace", seed=1, lr=0.5)
    (tmp_path / "broken.nntrace").write_bytes(b"not a trace")
    config = load_trace(tiny_trace_file).meta["config"]
    found = find_replicates(config, tmp_path, exclude=["a"])
    assert [(r.name, r.seed) for r in found] == [("c", 3), ("b", 7)]
    assert all(r.status == "complete" for r in found)
    assert replicate_key(config) == replicate_key({**config, "seed": 9, "device": "cuda"})
    assert replicate_key(config) != replicate_key({**config, "epochs": 99})


def test_new_seeds_are_the_smallest_unused_and_configs_are_validated() -> None:
    assert free_seeds([0, 1, 3, None], 3) == [2, 4, 5]
    config = TrainConfig(dataset="moons", seed=0).to_dict()
    assert replicate_config(config, 4) == TrainConfig(dataset="moons", seed=4)
    with pytest.raises(ValueError, match="lr"):
        replicate_config({**config, "lr": -1.0}, 1)
