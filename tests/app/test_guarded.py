"""A page section's unexpected error (``nn_tracing/ui/text.py`` ``guarded``): logged with its
traceback and named to the user; while the server shuts down, one plain log line instead (a
script run that outlives Ctrl-C fails where the interpreter refuses new work)."""

from __future__ import annotations

import logging

import pytest

from nn_tracing.ui import text


def _fail_inside_guarded() -> None:
    with text.guarded("drawing a chart"):
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")


@pytest.mark.parametrize("stopping", [False, True], ids=["serving", "shutting down"])
def test_an_error_is_logged_with_its_traceback_unless_the_server_stops(
    caplog, monkeypatch, stopping: bool
) -> None:
    monkeypatch.setattr(text, "server_stopping", lambda: stopping)
    shown = []
    monkeypatch.setattr(text.st, "error", shown.append)
    with caplog.at_level(logging.INFO, logger="nn_tracing.ui"):
        _fail_inside_guarded()
    [record] = caplog.records
    if stopping:  # one plain line, nothing on the page
        assert record.levelno == logging.INFO and record.exc_info is None
        assert "shuts down" in record.getMessage() and not shown
    else:  # the traceback in the log, the error named to the user
        assert record.levelno == logging.ERROR and record.exc_info is not None
        assert "drawing a chart" in record.getMessage()
        assert len(shown) == 1 and "RuntimeError" in shown[0]


@pytest.mark.parametrize("state", ["STOPPING", "STOPPED", "ONE_OR_MORE_SESSIONS_CONNECTED"])
def test_the_server_is_stopping_in_the_runtimes_last_two_states(monkeypatch, state) -> None:
    class Runtime:
        @staticmethod
        def exists() -> bool:
            return True

        @staticmethod
        def instance() -> object:
            return type("R", (), {"state": text.RuntimeState[state]})()

    monkeypatch.setattr(text, "Runtime", Runtime)
    assert text.server_stopping() is (state != "ONE_OR_MORE_SESSIONS_CONNECTED")
