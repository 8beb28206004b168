"""Uploading traces: validated by load_trace, a bad file is refused with a specific message
and the app goes on; a good one opens without being saved to runs/ unless asked."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import assert_healthy, shown_charts, texts
from streamlit.testing.v1 import AppTest

from nn_tracing.ui import state

BAD_FILES = {
    "not-a-zip.nntrace": (b"this is not a trace", "does not start like a zip file"),
    "pickle.nntrace": (pickle.dumps({"weights": [1, 2, 3]}), "never unpickles"),
    "truncated.nntrace": (b"PK\x03\x04\x14\x00\x00\x00", "not a .nntrace (zip) archive"),
}


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.sidebar.file_uploader(key=state.UPLOADER).set_value((name, data, "application/octet-stream"))
    return at.run()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_upload_shows_why_and_the_app_keeps_working(
    app: Callable[[], AppTest], runs_dir: Path, name: str
) -> None:
    data, reason = BAD_FILES[name]
    at = _upload(app().run(), name, data)
    errors = texts(at.sidebar.error)
    assert reason in errors and name.removesuffix(".nntrace") in errors
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"
    assert shown_charts(at)
    at.switch_page("pages/neurons.py").run()
    assert_healthy(at)


def test_a_good_upload_opens_but_is_not_saved_until_asked(
    app: Callable[[], AppTest], runs_dir: Path, tanh_trace_file: Path
) -> None:
    at = _upload(app().run(), "my tanh run.nntrace", tanh_trace_file.read_bytes())
    assert_healthy(at)
    assert at.session_state[state.ACTIVE_TRACE].startswith("upload:")
    assert "Opened my-tanh-run" in texts(at.sidebar.success)
    assert sorted(p.name for p in runs_dir.iterdir()) == ["tiny.nntrace"]
    assert "trace" in at.query_params and at.query_params["trace"] == "my-tanh-run"
    assert any(m.label.startswith("Saturated at E_6") for m in at.metric)
    at.sidebar.button(key="nnt.save_upload").click().run()
    assert sorted(p.name for p in runs_dir.iterdir()) == ["my-tanh-run.nntrace", "tiny.nntrace"]
    assert at.session_state[state.ACTIVE_TRACE] == "run:my-tanh-run"
    assert_healthy(at)


def test_accept_upload_refuses_empty_bytes(runs_dir: Path) -> None:
    from nn_tracing.ui.traces import accept_upload

    result = accept_upload("empty.nntrace", b"")
    assert not result.ok and "empty" in result.message
