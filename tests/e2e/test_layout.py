"""Nothing clipped or overlapping: every page of a moons run and of a digits run (both with
kept weights, as the demos are) in a real browser, a full-page screenshot each (under
pytest's tmp_path, never committed), no chart running into another element, no exception."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_server import TIMEOUT_MS, Server, start_server
from page_walk import settle, shoot, walk

from nn_tracing import TrainConfig, save_trace, train
from nn_tracing.runs import DEMO_CONFIG

pytestmark = pytest.mark.e2e

#: The moons demo's configuration, shorter, with kept weights.
MOONS = DEMO_CONFIG.replace(epochs=12, keep_weights=True)
#: A digits run (8×8 images) of the same kind.
DIGITS = TrainConfig(
    dataset="digits",
    hidden_sizes=(32, 16),
    epochs=10,
    batch_size=64,
    lr=0.01,
    seed=0,
    probe_size=256,
    keep_weights=True,
)


@pytest.fixture(scope="module")
def demo_traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("demos")
    out = {}
    for name, config in (("moons", MOONS), ("digits", DIGITS)):
        run = train(config)
        assert run.trace is not None
        if name == "moons":  # a demo, as on a first visit: the Overview offers the others
            run.trace.meta["demo"] = True
        out[name] = save_trace(run.trace, folder / f"{name}.nntrace")
    return out


@pytest.fixture
def demo_server(tmp_path: Path, demo_traces: dict[str, Path]) -> Iterator[Server]:
    running = start_server(tmp_path, demo_traces)
    try:
        yield running
    finally:
        running.stop()
        assert "Traceback" not in running.log()


@pytest.mark.parametrize("trace", ["moons", "digits"])
def test_no_page_overlaps_or_clips_a_chart(
    demo_server: Server, browser, tmp_path: Path, trace: str
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    shots = walk(page, demo_server.url, trace, tmp_path / "screenshots")
    names = {s.name for s in shots}
    pages = ("overview", "neurons", "clusters", "dynamics", "dynamics-tab2", "dynamics-tab3")
    assert {f"{trace}-{p}" for p in (*pages, "breadcrumbs")} <= names
    for shot in shots:
        assert shot.screenshot.stat().st_size > 10_000, shot.name
        assert shot.exceptions == 0, shot.name
    assert sum(s.charts for s in shots) > 20
    problems = [f"{s.name}: {o}" for s in shots for o in s.overlaps]
    assert problems == [], "\n".join(problems)
    # every legend label inside its chart's box (the digits brain scan once cut its −5), and
    # no button label cut short (the demo buttons once read "Load the moons demo …")
    cut = [f"{s.name}: {c}" for s in shots for c in s.clipped]
    assert cut == [], "\n".join(cut)
    # the Neurons page's grid of small charts: its element as tall as the grid, no gap below
    (neurons,) = [s for s in shots if s.name == f"{trace}-neurons"]
    assert neurons.gaps and all(0 <= gap < 16 for gap in neurons.gaps), neurons.gaps


@pytest.fixture
def two_seeds_server(tmp_path: Path, demo_traces: dict[str, Path]) -> Iterator[Server]:
    """The moons run and a second seed of it: what the Compare page compares."""
    run = train(MOONS.replace(seed=1))
    assert run.trace is not None
    other = save_trace(run.trace, tmp_path / "moons-seed1.nntrace")
    running = start_server(tmp_path, {"moons": demo_traces["moons"], "moons-seed1": other})
    try:
        yield running
    finally:
        running.stop()
        assert "Traceback" not in running.log()


def test_the_compare_page_draws_two_seeds_without_overlap(
    two_seeds_server: Server, browser, tmp_path: Path
) -> None:
    """Compare in a real browser: curves, quantile bands, matching and similarity drawn for two
    seeds (picked through the URL), nothing overlapping, no exception."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{two_seeds_server.url}/compare?trace=moons&with=moons-seed1")
    settle(page)
    shots = [shoot(page, "compare", tmp_path)]
    tabs = page.locator('[data-testid="stMain"] [data-testid="stTab"]')
    for i in range(1, tabs.count()):
        tabs.nth(i).click()
        settle(page)
        shots.append(shoot(page, f"compare-tab{i + 1}", tmp_path))
    assert all(s.exceptions == 0 for s in shots)
    assert sum(s.charts for s in shots) >= 3  # curves, bands, matching or similarity
    problems = [f"{s.name}: {o}" for s in shots for o in s.overlaps]
    assert problems == [], "\n".join(problems)
