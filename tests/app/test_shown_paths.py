"""Visitors do not see the server's absolute paths: the runs folder is shown relative to the
working directory (or by its name), the absolute path only to a visitor on the server's own
machine."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from apptest_support import assert_healthy
from streamlit.testing.v1 import AppTest

from nn_tracing.ui import state, traces


def _everything(at: AppTest) -> str:
    """Every text the session shows, in the sidebar and on the page."""
    kinds = ("caption", "markdown", "error", "warning", "info", "success", "text", "code")
    parts = [
        str(e.value) for root in (at.sidebar, at.main) for k in kinds for e in getattr(root, k)
    ]
    parts += [str(e.label) for e in at.sidebar.expander]
    return " ".join(parts).replace("\\", "")  # Markdown escapes removed


def _runs_caption(at: AppTest) -> str:
    expander = next(e for e in at.sidebar.expander if e.label.startswith("Runs folder"))
    return str(expander.caption[0].value).replace("\\", "")


def test_a_visitor_sees_the_runs_folder_by_name_only(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    at = app().run()
    assert_healthy(at)
    assert _runs_caption(at) == "runs"
    assert str(runs_dir) not in _everything(at)


def test_a_runs_folder_under_the_working_directory_is_shown_relative_to_it(
    app: Callable[[], AppTest], runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = tmp_path / "data" / "traces"
    nested.mkdir(parents=True)
    shutil.copy(runs_dir / "tiny.nntrace", nested / "tiny.nntrace")
    monkeypatch.setenv("NN_TRACING_RUNS_DIR", str(nested))
    monkeypatch.chdir(tmp_path)
    at = app().run()
    assert _runs_caption(at) == "data/traces"
    assert str(nested) not in _everything(at)


def test_messages_name_the_runs_folder_without_its_absolute_path(
    app: Callable[[], AppTest], runs_dir: Path
) -> None:
    shutil.copy(runs_dir / "tiny.nntrace", runs_dir / "doomed.nntrace")
    at = app()
    at.query_params["trace"] = "no-such-trace"
    at.run()
    assert "not in runs" in _everything(at)
    at.sidebar.selectbox(key=state.TRACE_PICKER).set_value("run:doomed").run()
    (runs_dir / "doomed.nntrace").unlink()
    at.run()
    assert not at.exception
    shown = _everything(at)
    assert "doomed is no longer in runs" in shown
    assert str(runs_dir) not in shown


def test_a_visitor_on_the_server_s_machine_sees_the_absolute_path(
    app: Callable[[], AppTest], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traces, "_visitor_is_local", lambda: True)
    at = app().run()
    assert _runs_caption(at) == str(runs_dir)


@pytest.mark.parametrize(
    ("ip_address", "headers", "local"),
    [
        (None, {"Host": "localhost:8501"}, True),
        ("192.168.1.20", {"Host": "box:8501"}, False),
        (None, {"Host": "example.org", "X-Forwarded-For": "203.0.113.9"}, False),
        (None, {"Host": "example.org", "Forwarded": "for=203.0.113.9"}, False),
        (None, {}, False),  # no browser session (a test, bare mode): not known to be local
    ],
)
def test_a_visitor_is_local_only_on_loopback_without_a_proxy(
    monkeypatch: pytest.MonkeyPatch, ip_address: str | None, headers: dict, local: bool
) -> None:
    proxy = type(st.context)
    monkeypatch.setattr(proxy, "ip_address", property(lambda self: ip_address))
    monkeypatch.setattr(proxy, "headers", property(lambda self: headers))
    assert traces._visitor_is_local() is local
