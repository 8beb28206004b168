"""The Compare page through the real entrypoint: two seeds of the tiny moons MLP side by side,
matched and compared; one run only, other probe sets and other widths give clear messages."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from apptest_support import assert_healthy, chart_rows, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import TrainConfig, load_trace, save_trace, train
from nn_tracing.views import compare as view

PAGE = "pages/compare.py"


def _train(base: Path, name: str, **changes: object) -> Path:
    config = TrainConfig.from_dict(load_trace(base).meta["config"]).replace(**changes)
    run = train(config)
    assert run.trace is not None
    return save_trace(run.trace, base.parent / f"{name}.nntrace")


@pytest.fixture(scope="module")
def others(tmp_path_factory: pytest.TempPathFactory, tiny_trace_file: Path) -> dict[str, Path]:
    """The fixture run's configuration with seed 1; with another probe set (data_seed); with
    other widths."""
    folder = tmp_path_factory.mktemp("others")
    base = shutil.copy(tiny_trace_file, folder / "base.nntrace")
    return {
        "seed1": _train(Path(base), "tiny-seed1", seed=1),
        "probe": _train(Path(base), "tiny-probe", seed=2, data_seed=5),
        "wide": _train(Path(base), "tiny-wide", seed=3, hidden_sizes=(12, 8)),
    }


def open_page(app: Callable[[], AppTest], **params: str) -> AppTest:
    at = app()
    at.query_params["trace"] = "tiny"
    at.run()
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(PAGE).run()
    return at


def chart(at: AppTest, title: str) -> object:
    found = [c for c in shown_charts(at) if title in c.proto.spec]
    assert found, f"no chart titled {title!r}"
    return found[0]


def test_two_seeds_render_curves_matching_and_similarity(app, runs_dir, others):
    shutil.copy(others["seed1"], runs_dir / "tiny-seed1.nntrace")
    at = open_page(app)
    assert_healthy(at)
    assert at.title[0].value == "Compare"
    assert [h.value for h in at.header] == [
        "Runs side by side",
        "Neurons matched across runs",
        "Representational similarity",
    ]
    # the other seed is proposed by the seed finder and compared
    assert at.multiselect[0].value == ["run:tiny-seed1"]
    a, b = load_trace(runs_dir / "tiny.nntrace"), load_trace(others["seed1"])
    rows = chart_rows(chart(at, "loss, every run"))
    for name, trace in (("tiny", a), ("tiny-seed1", b)):
        shown = [r["raw"] for r in rows if r["run"] == name and r["split"] == "train"]
        np.testing.assert_allclose(shown, trace.history["train_loss"].dropna())
    assert "seed" in at.dataframe[0].value["setting"].tolist()
    # matching: the page shows the library's result on the last common epoch
    matched = view.match_layer(a, b, "hidden_1", a.epochs[-1])
    assert at.metric[0].value == f"{matched.share:.0%}"
    pairs = chart_rows(chart(at, "Matched pairs"))
    assert {r["a_signature"] for r in pairs} <= set(matched.pairs["a_signature"])
    assert pairs[0]["a_signature"].startswith("E_4/L_hidden_1/n_")
    assert pairs[0]["b_signature"].startswith("E_4/L_hidden_1/n_")
    chart(at, "Matched correlations against the null")
    chart(at, "When each neuron's partner stopped changing")
    heat = chart_rows(chart(at, "every layer of A against every layer of B"))
    assert len(heat) == 9 and all(0 <= r["similarity"] <= 1 for r in heat)
    chart(at, "Each layer against its own final representation")
    assert "Lower layers first?" in texts(at.markdown)
    assert at.query_params["with"] == "run:tiny-seed1"


def test_a_pair_from_the_url_is_shown_side_by_side(app, runs_dir, others):
    shutil.copy(others["seed1"], runs_dir / "tiny-seed1.nntrace")
    a, b = load_trace(runs_dir / "tiny.nntrace"), load_trace(others["seed1"])
    matched = view.match_layer(a, b, "hidden_2", a.epochs[-1])
    row = matched.pairs.iloc[0]
    pair = view.format_pair("hidden_2", int(row["a_index"]), int(row["b_index"]))
    at = open_page(app, layer="hidden_2", pair=pair)
    assert_healthy(at)
    assert f"{row['a_signature']} (A) and {row['b_signature']} (B)" in texts(at.subheader)
    scatter = chart_rows(chart(at, "The pair on each probe sample"))
    info = a.layer("hidden_2")
    acts = a.probe_activations(a.epochs[-1])[:, info.first_id + int(row["a_index"])]
    np.testing.assert_allclose([r["a"] for r in scatter], acts, rtol=1e-6)
    history = chart_rows(chart(at, "The pair over training: act_mean"))
    a_id = info.first_id + int(row["a_index"])
    shown = [r["value"] for r in history if r["run"] == "tiny"]
    np.testing.assert_allclose(shown, a.metric("act_mean")[:, a_id], rtol=1e-6)
    assert {r["signature"] for r in history if r["run"] == "tiny-seed1"} >= {row["b_signature"]}
    assert at.query_params["pair"] == pair


def test_one_run_only_asks_for_another(app):
    at = open_page(app)
    assert_healthy(at)
    assert "Compare needs two runs or more" in texts(at.main.info)
    assert not at.header


def test_other_probe_sets_rerun_b_or_say_why_not(app, runs_dir, others):
    shutil.copy(others["probe"], runs_dir / "tiny-probe.nntrace")
    at = open_page(app, **{"with": "run:tiny-probe"})
    assert_healthy(at)
    assert "The probe sets differ" in texts(at.main.info)
    assert "rerun on run A's probe" in texts(at.main.info)
    assert "Partners over training are not available" in texts(at.caption)
    chart(at, "Matched pairs")
    at = open_page(app, **{"with": "run:tiny-probe", "epoch": "0"})
    assert_healthy(at)
    assert "kept no weights at E_0" in texts(at.main.warning)


def test_other_layer_widths_are_said_and_matched_rectangular(app, runs_dir, others):
    shutil.copy(others["wide"], runs_dir / "tiny-wide.nntrace")
    at = open_page(app, **{"with": "run:tiny-wide"})
    assert_healthy(at)
    assert "Layer hidden_1 has 8 neurons in run A and 12 in run B" in texts(at.main.info)
    assert "hidden_sizes" in at.dataframe[0].value["setting"].tolist()
    heat = chart_rows(chart(at, "every layer of A against every layer of B"))
    assert len(heat) == 9


def test_an_unexpected_error_is_a_message_in_place(app, monkeypatch):
    from nn_tracing.ui import compare

    def broken() -> None:
        raise RuntimeError("a planted failure")

    at = app().run()
    monkeypatch.setattr(compare, "resolve_active", broken)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value for e in at.main.error)
    assert "a planted failure" in errors and "Something went wrong" in errors


def test_the_untrained_null_and_svcca_from_the_url(app, runs_dir, others):
    shutil.copy(others["seed1"], runs_dir / "tiny-seed1.nntrace")
    at = open_page(app, null="untrained", method="svcca", layer="hidden_2")
    assert_healthy(at)
    a, b = load_trace(runs_dir / "tiny.nntrace"), load_trace(others["seed1"])
    matched = view.match_layer(a, b, "hidden_2", a.epochs[-1], null="untrained")
    assert at.metric[0].value == f"{matched.share:.0%}"
    assert matched.sentence in texts(at.markdown)
    heat = chart_rows(chart(at, "SVCCA, every layer of A against every layer of B"))
    expected = view.similarity_between(a, b, a.epochs[-1], b.epochs[-1], method="svcca")
    np.testing.assert_allclose(
        sorted(r["similarity"] for r in heat), sorted(expected["similarity"]), atol=1e-9
    )
    assert at.query_params["null"] == "untrained" and at.query_params["method"] == "svcca"
