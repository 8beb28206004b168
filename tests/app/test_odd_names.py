"""Traces with odd file names: each one the sidebar lists opens from the picker and by deep
link, its name shown with invisible characters escaped; a link never opens a file outside the
runs folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import ROOT, assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing.runs import display_name
from nn_tracing.ui import state

ODD_NAMES = [
    "my run",
    "ünïcødé",
    "-dash-first",
    "semi;colon'quote",
    "x" * 100,
    'double"quote <b>html',
    "#hash?query=1&x=%20",
    "**markdown** [link](x)",
    " leading and trailing ",
    "new\nline",
    "tab\there",
    "rtl\u202egnp.exe",
    "zero\u200bwidth",
    "back\\nslash",
    "back\nslash",
    "name.nntrace",
    os.fsdecode(b"latin-1 caf\xe9"),  # a file name whose bytes are not UTF-8
]


@pytest.fixture
def odd_runs(runs_dir: Path) -> Path:
    for name in ODD_NAMES:
        shutil.copy(runs_dir / "tiny.nntrace", runs_dir / f"{name}.nntrace")
    return runs_dir


def _sidebar_text(at: AppTest) -> str:
    return " ".join(
        str(e.value)
        for kind in ("caption", "markdown", "error", "warning", "info", "success")
        for e in getattr(at.sidebar, kind)
    )


def _assert_open(at: AppTest, name: str) -> None:
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE] == f"run:{display_name(name)}"
    assert at.query_params["trace"] == display_name(name)
    assert not at.sidebar.error, texts(at.sidebar.error)
    assert "no longer" not in texts(at.sidebar.warning)
    picker = at.sidebar.selectbox(key=state.TRACE_PICKER)
    assert picker.options[picker.index].startswith(f"{display_name(name)} · ✓ · moons · ")
    assert shown_charts(at)  # the Overview drew the trace


def test_every_odd_name_in_the_picker_opens(app: Callable[[], AppTest], odd_runs: Path) -> None:
    at = app().run()
    assert_healthy(at)
    options = at.sidebar.selectbox(key=state.TRACE_PICKER).options
    assert len(options) == len(ODD_NAMES) + 1
    assert all(option.isprintable() for option in options), [ascii(o) for o in options]
    for name in ODD_NAMES:
        label = next(o for o in options if o.startswith(f"{display_name(name)} · "))
        at.sidebar.selectbox(key=state.TRACE_PICKER).select_index(options.index(label)).run()
        _assert_open(at, name)


def test_the_runs_table_and_captions_show_names_escaped(
    app: Callable[[], AppTest], odd_runs: Path
) -> None:
    at = app().run()
    table = at.sidebar.dataframe[0].value
    assert sorted(table["name"]) == sorted([display_name(n) for n in ODD_NAMES] + ["tiny"])
    assert all(name.isprintable() for name in table["name"])
    at.sidebar.selectbox(key=state.TRACE_PICKER).set_value("run:rtl\\u202egnp.exe").run()
    _assert_open(at, "rtl\u202egnp.exe")
    shown = _sidebar_text(at)
    assert "\u202e" not in shown and "\udce9" not in shown


@pytest.mark.parametrize("name", ODD_NAMES, ids=ascii)
def test_a_deep_link_opens_an_odd_name(
    app: Callable[[], AppTest], odd_runs: Path, name: str
) -> None:
    at = app()
    at.query_params["trace"] = display_name(name)
    _assert_open(at.run(), name)


def test_a_deep_link_with_the_name_itself_opens_it_too(
    app: Callable[[], AppTest], odd_runs: Path
) -> None:
    at = app()
    at.query_params["trace"] = "new\nline"  # typed by hand: a raw newline (%0A in the URL)
    _assert_open(at.run(), "new\nline")


def test_a_deep_link_to_a_neuron_of_an_odd_name_opens_the_neurons_page(
    app: Callable[[], AppTest], odd_runs: Path
) -> None:
    at = app()
    at.query_params["trace"] = display_name("back\nslash")
    at.query_params["neuron"] = "E_3/L_hidden_2/n_12"
    at.run()
    assert_healthy(at)
    assert at.title[0].value == "Neurons"
    assert at.session_state[state.ACTIVE_TRACE] == "run:back\\nslash"
    assert at.query_params["trace"] == "back\\nslash"


@pytest.mark.parametrize(
    "link",
    ["../outside/secret", "leak", "sub/nested", ".hidden", "..", "/"],
)
def test_a_deep_link_never_opens_a_file_outside_the_runs_folder(
    app: Callable[[], AppTest], runs_dir: Path, tmp_path: Path, link: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(runs_dir / "tiny.nntrace", outside / "secret.nntrace")
    (runs_dir / "leak.nntrace").symlink_to(outside / "secret.nntrace")
    (runs_dir / "sub").mkdir()
    shutil.copy(runs_dir / "tiny.nntrace", runs_dir / "sub" / "nested.nntrace")
    shutil.copy(runs_dir / "tiny.nntrace", runs_dir / ".hidden.nntrace")
    for requested in (link, str(outside / "secret")):
        at = app()
        at.query_params["trace"] = requested
        at.run()
        assert_healthy(at)
        assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"
        assert "not in" in texts(at.sidebar.warning)
        options = at.sidebar.selectbox(key=state.TRACE_PICKER).options
        assert len(options) == 1 and options[0].startswith("tiny · ")


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "pages").glob("*.py")))
def test_every_page_draws_a_trace_whose_name_is_not_even_utf8(
    app: Callable[[], AppTest], runs_dir: Path, page: str
) -> None:
    # tiny.nntrace stays: the Dynamics page lists it as a run of the same configuration
    name = os.fsdecode(b"caf\xe9 \xff") + "\n\u202e'q"
    shutil.copy(runs_dir / "tiny.nntrace", runs_dir / f"{name}.nntrace")
    at = app()
    at.query_params["trace"] = display_name(name)
    at.run()
    assert_healthy(at)
    at.switch_page(f"pages/{page}").run()
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE] == f"run:{display_name(name)}"
