"""The demos (nn_tracing/demos.py): the second moons seed is queued on a first start and made
only when the page is done (start_queued), dated before the moons demo so that a new visitor
still opens the moons demo; it is the moons demo's configuration but for its seed."""

from __future__ import annotations

from pathlib import Path

from nn_tracing import load_trace
from nn_tracing.demos import DEMOS, make_after_page, make_demo, start_queued
from nn_tracing.seeds import find_replicates


def test_the_second_seed_waits_for_the_page_then_joins_the_moons_demo(tmp_path: Path) -> None:
    moons = make_demo("moons", tmp_path)
    make_after_page("moons-seed1", tmp_path, before=moons)
    seed = tmp_path / "demo-moons-seed1.nntrace"
    assert not seed.exists()  # queued, not made: the page is still being drawn
    threads = start_queued()
    assert len(threads) == 1 and start_queued() == []  # started once
    threads[0].join(timeout=300)
    assert seed.is_file() and seed.stat().st_mtime < moons.stat().st_mtime
    trace = load_trace(seed)
    moons_config = load_trace(moons).meta["config"]
    assert trace.meta["config"] == {**moons_config, "seed": 1}
    assert trace.epochs_with_weights == trace.epochs  # complete, like every demo
    # the seed finder the Compare page uses proposes it for the moons demo
    found = find_replicates(moons_config, tmp_path, exclude=["demo-moons"])
    assert [(r.name, r.seed) for r in found] == [("demo-moons-seed1", 1)]
    assert DEMOS["moons-seed1"].config.seed == 1 != DEMOS["moons"].config.seed
