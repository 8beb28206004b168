"""The first visit: a complete demo (weights kept), and every page opening with its findings.

The app runs through its real entrypoint on an empty runs folder, so it trains the demo
itself. Every page must open with its findings box right under the title, before any control;
no page may ask for ``keep_weights``; the Overview gathers the findings of the pages visited,
each linking to its page; and a claim whose real test did not beat chance is worded as "not
distinguishable from chance".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from apptest_support import assert_healthy, new_app, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import load_trace
from nn_tracing.analysis import baselines as bl
from nn_tracing.analysis import embedding as emb
from nn_tracing.work import WORKER, result_key

PAGES = {
    "pages/overview.py": "Overview",
    "pages/neurons.py": "Neurons",
    "pages/clusters.py": "Clusters",
    "pages/dynamics.py": "Dynamics",
    "pages/breadcrumbs.py": "Breadcrumbs",
}
CHANCE = "not distinguishable from chance"


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty runs folder, shared by the module's sessions (the first one makes the demo)."""
    return tmp_path_factory.mktemp("first-visit") / "runs"


@pytest.fixture
def demo_app(
    demo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], AppTest]]:
    monkeypatch.setenv("NN_TRACING_RUNS_DIR", str(demo_folder))
    monkeypatch.setenv("NN_TRACING_UPLOAD_DIR", str(tmp_path / "uploads"))
    yield new_app


def in_order(node: object) -> list[object]:
    """Every element of ``node``'s tree in the order the page shows them (blocks left out)."""
    out: list[object] = []
    for child in getattr(node, "children", {}).values():
        if getattr(child, "children", None) is not None and type(child).__name__ in (
            "Block",
            "Column",
            "Tab",
            "Expander",
        ):
            out += in_order(child)
        else:
            out.append(child)
    return out


def test_the_first_visit_trains_a_complete_demo(
    demo_app: Callable[[], AppTest], demo_folder: Path
) -> None:
    at = demo_app().run()
    assert_healthy(at)
    # the digits demo follows in the background, dated before the moons one (which opens)
    assert (demo_folder / "demo-moons.nntrace").is_file()
    made = {p.name for p in demo_folder.iterdir()}
    assert made <= {"demo-moons.nntrace", "demo-digits.nntrace", "demo-moons-seed1.nntrace"}
    assert at.query_params["trace"] == "demo-moons"
    trace = load_trace(demo_folder / "demo-moons.nntrace")
    assert trace.meta["demo"] is True and trace.meta["config"]["keep_weights"] is True
    assert trace.epochs_with_weights == trace.epochs  # every recorded epoch's weights
    # the Overview offers the other demo, made meanwhile in the background, dated before the
    # moons demo: a new visitor still opens the moons demo (the newest run)
    assert [b.label for b in at.button if b.key.endswith(":digits")] == ["Load the digits demo"]
    digits = demo_folder / "demo-digits.nntrace"
    deadline = time.monotonic() + 120
    while not digits.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # its date is set right after it is written
    assert digits.stat().st_mtime < (demo_folder / "demo-moons.nntrace").stat().st_mtime
    assert load_trace(digits).epochs_with_weights == load_trace(digits).epochs
    # a second moons seed for the Compare page, made once the first page was drawn, older too
    seed = demo_folder / "demo-moons-seed1.nntrace"
    while not seed.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    assert seed.stat().st_mtime < (demo_folder / "demo-moons.nntrace").stat().st_mtime
    assert load_trace(seed).meta["config"]["seed"] == 1
    assert demo_app().run().query_params["trace"] == "demo-moons"


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_opens_with_its_findings(
    demo_app: Callable[[], AppTest], demo_folder: Path, page: str
) -> None:
    at = demo_app().run()
    at.switch_page(page).run()
    assert_healthy(at)
    shown = in_order(at.main)
    assert type(shown[0]).__name__ == "Title" and shown[0].value == PAGES[page]
    assert type(shown[1]).__name__ == "Markdown" and shown[1].value.startswith("**Findings")
    # the demo keeps its weights: no page asks for them
    everything = texts(at.main.info) + texts(at.main.caption) + texts(at.main.markdown)
    assert "keep_weights" not in everything


def test_the_overview_gathers_what_the_pages_tested(demo_app: Callable[[], AppTest]) -> None:
    at = demo_app().run()
    for page in ("pages/clusters.py", "pages/dynamics.py", "pages/breadcrumbs.py"):
        at.switch_page(page).run()
        assert_healthy(at)
    at.switch_page("pages/overview.py").run()
    assert_healthy(at)
    links = {link.proto.page: link.proto.query_string for link in at.get("page_link")}
    for page in ("clusters", "dynamics", "breadcrumbs"):
        assert links[page] == "trace=demo-moons"
    box = texts(at.main.markdown)
    for phrase in ("clusters", "phases", "carry class"):
        assert phrase in box.lower()


def structureless_test() -> bl.ChanceTest:
    """A real test against chance on neurons with no structure at all: it fails."""
    X = np.random.default_rng(3).normal(size=(80, 4)).astype(np.float32)
    features = emb.NeuronFeatures(
        values=X,
        raw=X,
        neuron_ids=np.arange(80),
        epochs=np.ones(80, dtype=np.int64),
        layers=np.array(["hidden_1"] * 80, dtype=object),
        columns=["a", "b", "c", "d"],
        positions=np.arange(4, dtype=np.float64),
        excluded=pd.DataFrame(columns=["neuron", "layer", "epoch", "signature", "reason"]),
        spec=emb.FeatureSpec("metrics", epoch=1, layers=("hidden_1",)),
    )
    test = bl.ChanceTest(19, nulls=("shuffled", "gaussian"), random_state=0)
    return test.fit(features, emb.NeuronClusterer("kmeans", n_clusters=3))


def test_a_claim_that_failed_its_test_is_said_as_chance(
    demo_app: Callable[[], AppTest], demo_folder: Path
) -> None:
    at = demo_app().run()
    trace_key = load_trace(demo_folder / "demo-moons.nntrace").digest  # the page's key
    assert trace_key
    test = structureless_test()
    assert not test.clustered_
    # as if a visitor had run this test on the Clusters page: the worker's store holds it
    params = ["structureless"]
    WORKER.store.put(result_key("chance", trace_key, params), test)
    WORKER.store.note("chance", trace_key, params)
    at.switch_page("pages/overview.py").run()
    assert_healthy(at)
    box = texts(at.main.markdown)
    assert f"The clusters are {CHANCE}" in box
    assert "Clusters beyond chance" not in box


def test_the_digits_demo_is_one_click_away_and_complete(
    demo_app: Callable[[], AppTest], demo_folder: Path
) -> None:
    at = demo_app().run()
    (button,) = [b for b in at.button if b.key.endswith(":digits")]
    button.click().run()
    assert_healthy(at)
    assert at.query_params["trace"] == "demo-digits"
    trace = load_trace(demo_folder / "demo-digits.nntrace")
    assert trace.meta["dataset"]["name"] == "digits" and trace.meta["demo"] is True
    assert trace.epochs_with_weights == trace.epochs
    # from the digits demo, the moons demo is offered back; every page opens with findings
    assert [b.label for b in at.button if b.key.endswith(":moons")] == ["Load the moons demo"]
    for page in PAGES:
        at.switch_page(page).run()
        assert_healthy(at)
        assert in_order(at.main)[1].value.startswith("**Findings")
        assert "keep_weights" not in texts(at.main.info) + texts(at.main.caption)
