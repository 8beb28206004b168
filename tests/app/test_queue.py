"""The analysis queue on a page (nn_tracing/ui/compute.py): a job that had to wait says where
it stood and when it was to start; a short job runs while a long one holds the long lane."""

from __future__ import annotations

import threading
import time

from streamlit.testing.v1 import AppTest

from nn_tracing.work import WORKER


def _long_script() -> None:
    from nn_tracing.ui.compute import run_analysis

    value = run_analysis(
        "queue-test:long", "t", {"n": 1}, lambda progress: 42, label="Waiting analysis"
    )
    import streamlit as st

    st.write(f"value {value}")


def _short_script() -> None:
    from nn_tracing.ui.compute import run_analysis

    value = run_analysis(
        "queue-test:short", "t", {"n": 1}, lambda progress: 7, label="Profile", short=True
    )
    import streamlit as st

    st.write(f"value {value}")


def _block_long_lane(release: threading.Event) -> object:
    started = threading.Event()

    def blocking(progress):  # type: ignore[no-untyped-def]
        progress(0.5, "half way")
        started.set()
        release.wait(60)
        return "done"

    job = WORKER.submit(f"queue-test:block:{time.time()}", "Blocking test", blocking, estimate=99)
    assert started.wait(10)
    return job


def _release_when_queued(label: str, release: threading.Event) -> threading.Thread:
    def watch() -> None:
        for _ in range(400):
            if any(job.label == label for job in WORKER.jobs("long")[1:]):
                time.sleep(0.6)  # the page polls every 0.25 s: let it see the queue
                release.set()
                return
            time.sleep(0.05)
        release.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_queued_analysis_says_its_place_in_line_and_when_it_starts() -> None:
    release = threading.Event()
    blocker = _block_long_lane(release)
    watcher = _release_when_queued("Waiting analysis", release)
    try:
        at = AppTest.from_function(_long_script, default_timeout=60).run()
    finally:
        release.set()
        watcher.join(10)
    assert not at.exception
    assert "value 42" in [m.value for m in at.markdown]
    caption = " ".join(c.value for c in at.caption)
    assert "Waiting analysis waited about" in caption
    assert "1st in line for long analyses on this server, behind Blocking test" in caption
    assert "starts in about" in caption
    assert blocker.result(timeout=10) == "done"  # type: ignore[attr-defined]


def test_a_short_analysis_does_not_wait_behind_a_long_one() -> None:
    release = threading.Event()
    blocker = _block_long_lane(release)
    try:
        at = AppTest.from_function(_short_script, default_timeout=30).run()
        assert not blocker.done  # type: ignore[attr-defined]
    finally:
        release.set()
    assert not at.exception
    assert "value 7" in [m.value for m in at.markdown]
    assert not at.caption  # it never queued
