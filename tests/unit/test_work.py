"""The analysis worker and its result store (nn_tracing/work.py)."""

from __future__ import annotations

import threading
import traceback

import numpy as np
import pytest

from nn_tracing.work import AnalysisWorker, Failed, ResultStore, result_key


def test_a_result_key_depends_on_what_trace_and_params_not_on_dict_order() -> None:
    key = result_key("projection", "abc", {"method": "pca", "seed": 0})
    assert key == result_key("projection", "abc", {"seed": 0, "method": "pca"})
    assert key != result_key("projection", "abd", {"method": "pca", "seed": 0})
    assert key != result_key("clusters", "abc", {"method": "pca", "seed": 0})
    assert key != result_key("projection", "abc", {"method": "pca", "seed": 1})
    assert key.startswith("projection:abc:")


def test_the_store_forgets_the_least_recently_used_first() -> None:
    store = ResultStore(max_entries=2)
    store.put("a", 1)
    store.put("b", 2)
    assert store.get("a") == 1  # a is now the most recently used
    store.put("c", 3)
    assert "b" not in store and store.get("a") == 1 and store.get("c") == 3
    assert len(store) == 2


def test_the_store_is_bounded_in_bytes_of_arrays() -> None:
    store = ResultStore(max_entries=10, max_bytes=10_000)
    store.put("a", np.zeros(1000))  # 8000 bytes
    store.put("b", np.zeros(1000))
    assert "a" not in store and "b" in store
    store.put("big", np.zeros(5000))  # larger than the bound: kept, alone
    assert list(key for key in ("a", "b", "big") if key in store) == ["big"]
    store.clear()
    assert len(store) == 0 and store.nbytes == 0


def test_the_worker_computes_once_and_reports_progress() -> None:
    worker = AnalysisWorker()
    calls = []

    def square(progress):  # type: ignore[no-untyped-def]
        calls.append(1)
        progress(0.5, "half way")
        return 9

    job = worker.submit("k", "Squaring", square)
    assert job.result(timeout=10) == 9
    snapshot = job.snapshot()
    assert snapshot.done and snapshot.fraction == 0.5 and snapshot.message == "half way"
    assert snapshot.elapsed is not None and snapshot.label == "Squaring"
    assert worker.lookup("k") == 9
    assert worker.run("k", "Squaring", square) == 9
    assert calls == [1]


def test_asking_again_while_it_runs_joins_the_job_in_flight() -> None:
    worker = AnalysisWorker()
    release = threading.Event()
    calls = []

    def slow(progress):  # type: ignore[no-untyped-def]
        calls.append(1)
        release.wait(10)
        return "done"

    first = worker.submit("k", "Waiting", slow)
    second = worker.submit("k", "Waiting", slow)
    assert second is first and worker.running("k") is first
    release.set()
    assert first.result(timeout=10) == "done"
    assert calls == [1] and worker.running("k") is None


def test_one_analysis_at_a_time() -> None:
    worker = AnalysisWorker()
    release = threading.Event()
    worker.submit("a", "first", lambda progress: release.wait(10))
    queued = worker.submit("b", "second", lambda progress: "b")
    snapshot = queued.snapshot()
    assert snapshot.elapsed is None and not snapshot.done
    assert "queued" in snapshot.message
    release.set()
    assert queued.result(timeout=10) == "b"


def test_an_error_is_stored_as_the_result_and_raised_to_every_caller() -> None:
    worker = AnalysisWorker()
    calls = []

    def fail(progress):  # type: ignore[no-untyped-def]
        calls.append(1)
        raise ValueError("too few epochs")

    job = worker.submit("k", "Failing", fail)
    with pytest.raises(ValueError, match="too few epochs"):
        job.result(timeout=10)
    assert isinstance(worker.store.get("k"), Failed)
    for _ in range(3):
        with pytest.raises(ValueError, match="too few epochs") as caught:
            worker.run("k", "Failing", fail)
    assert calls == [1]
    frames = traceback.extract_tb(caught.value.__traceback__)
    assert len(frames) < 10  # raising it again does not grow its traceback


def test_a_store_swapped_in_takes_the_next_results() -> None:
    worker = AnalysisWorker()
    assert worker.run("k", "One", lambda progress: 1) == 1
    worker.store = ResultStore()
    assert worker.lookup("k") is None
    assert worker.run("k", "Two", lambda progress: 2) == 2


def test_the_store_answers_the_analysis_asked_for_last_on_a_trace() -> None:
    store = ResultStore(max_entries=3)
    assert store.latest("chance", "t1") is None
    store.put(result_key("chance", "t1", [19]), "P=19")
    store.put(result_key("chance", "t1", [99]), "P=99")
    store.note("chance", "t1", [19])
    store.note("chance", "t1", [99])
    assert store.latest("chance", "t1") == ([99], "P=99")
    store.note("chance", "t1", [19])  # asked again for the first: it is the latest now
    assert store.latest("chance", "t1") == ([19], "P=19")
    assert store.latest("chance", "t2") is None and store.latest("map", "t1") is None
    # an error is no finding; a result the store dropped is none either
    store.put(result_key("map", "t1", 0), Failed(ValueError("no"), None))
    store.note("map", "t1", 0)
    assert store.latest("map", "t1") is None
    for i in range(3):
        store.put(f"other{i}", i)
    assert store.latest("chance", "t1") is None
    store.clear()
    assert store.latest("chance", "t1") is None


def test_a_short_job_runs_while_a_long_one_is_still_running() -> None:
    """Real threads, no timing: the long job holds until the short one has finished."""
    worker = AnalysisWorker()
    release, started = threading.Event(), threading.Event()

    def long_job(progress):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(30)
        return "long"

    long = worker.submit("long", "A test against chance", long_job, estimate=120.0)
    assert started.wait(10)
    short = worker.submit("pca", "PCA", lambda progress: "pca", estimate=0.5)
    assert short.snapshot().lane == "short" and long.snapshot().lane == "long"
    assert short.result(timeout=10) == "pca"
    assert not long.done  # the short job finished while the long one still ran
    release.set()
    assert long.result(timeout=10) == "long"


def test_jobs_without_an_estimate_go_to_the_long_lane_unless_told() -> None:
    worker = AnalysisWorker(short_seconds=5)
    assert worker.lane_of(None) == "long"
    assert worker.lane_of(4.9) == "short" and worker.lane_of(5.0) == "long"
    release = threading.Event()
    worker.submit("a", "blocking", lambda progress: release.wait(30))
    profile = worker.submit("b", "a neuron's profile", lambda progress: "b", lane="short")
    assert profile.result(timeout=10) == "b"
    release.set()


def test_queued_jobs_know_their_position_and_when_they_start() -> None:
    worker = AnalysisWorker()
    release, halfway = threading.Event(), threading.Event()

    def running(progress):  # type: ignore[no-untyped-def]
        progress(0.5, "half way")
        halfway.set()
        release.wait(30)
        return 0

    first = worker.submit("run", "Running", running, estimate=60.0)
    assert halfway.wait(10)
    second = worker.submit("q1", "Queued first", lambda progress: 1, estimate=30.0)
    third = worker.submit("q2", "Queued second", lambda progress: 2, estimate=10.0)
    unknown = worker.submit("q3", "Queued without estimate", lambda progress: 3)
    last = worker.submit("q4", "Queued last", lambda progress: 4, estimate=10.0)
    assert first.snapshot().position is None and first.snapshot().elapsed is not None
    snaps = [job.snapshot() for job in (second, third, unknown, last)]
    assert [s.position for s in snaps] == [1, 2, 3, 4]
    assert all(s.elapsed is None and s.ahead == "Running" for s in snaps)
    # half way after t seconds: the running job has about t seconds left
    remaining = first.remaining()
    assert remaining is not None and snaps[0].starts_in is not None
    assert snaps[0].starts_in == pytest.approx(remaining, abs=0.5)
    assert snaps[1].starts_in == pytest.approx(snaps[0].starts_in + 30.0, abs=0.5)
    assert snaps[2].starts_in == pytest.approx(snaps[1].starts_in + 10.0, abs=0.5)
    assert snaps[3].starts_in is None  # a job ahead of it has no estimate
    assert [job.label for job in worker.jobs("long")] == [
        "Running",
        "Queued first",
        "Queued second",
        "Queued without estimate",
        "Queued last",
    ]
    release.set()
    assert [job.result(timeout=10) for job in (second, third, unknown, last)] == [1, 2, 3, 4]
    assert worker.jobs() == []


def test_an_analysis_of_several_traces_is_found_from_each_of_them() -> None:
    store = ResultStore()
    store.put(result_key("map", "t1", 0), "alone")
    store.note("map", "t1", 0)
    store.put(result_key("map", "t1,t10", 0), "with its seed")
    store.note("map", "t1,t10", 0)
    assert store.latest_among("map", "t1") == (0, "with its seed")  # asked for last
    assert store.latest_among("map", "t10") == (0, "with its seed")
    assert store.latest_among("map", "t") is None  # whole keys only, not prefixes
    store.note("map", "t1", 0)
    assert store.latest_among("map", "t1") == (0, "alone")
    assert store.latest_among("chance", "t1") is None
