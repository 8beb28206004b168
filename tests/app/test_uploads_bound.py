"""The upload folder is bounded: a server-wide size limit (NN_TRACING_UPLOAD_LIMIT) with
eviction of uploads no session holds, then of the session's own older ones, else a clear
refusal; uploads of sessions that ended are swept; the folder is emptied on server start; and
Streamlit's upload limit fits traces, not gigabytes."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apptest_support import ROOT, assert_healthy, texts
from streamlit.testing.v1 import AppTest

from nn_tracing import load_trace
from nn_tracing.ui import state, uploads

DIGEST_NAME = "0" * 64 + ".nntrace"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test is a fresh server: no holders, and the start-up clean already done."""
    monkeypatch.setattr(uploads, "_holders", {})
    monkeypatch.setattr(uploads, "_started", True)
    monkeypatch.setattr(uploads, "_last_sweep", 0.0)
    yield


def _upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.sidebar.file_uploader(key=state.UPLOADER).set_value((name, data, "application/octet-stream"))
    return at.run()


def _files(runs_dir: Path) -> list[str]:
    folder = runs_dir.parent / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _digest(path: Path) -> str:
    return str(load_trace(path).digest)


def _limit_for(monkeypatch: pytest.MonkeyPatch, n_bytes: int) -> None:
    monkeypatch.setenv(uploads.LIMIT_ENV, str(n_bytes))


def test_streamlit_upload_limit_fits_traces_not_gigabytes() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    limit_mb = config["server"]["maxUploadSize"]
    # the largest trace of docs/performance.md's benchmarks (4 x 1024 neurons, 51 epochs): 229 MiB
    assert 229 < limit_mb <= 512


def test_an_upload_larger_than_the_folder_limit_is_refused(
    app: Callable[[], AppTest],
    runs_dir: Path,
    tanh_trace_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tanh_trace_file.read_bytes()
    _limit_for(monkeypatch, len(data) // 2)
    at = _upload(app().run(), "big.nntrace", data)
    assert_healthy(at)
    message = texts(at.sidebar.error)
    assert "big was not opened" in message
    assert "larger than this server's space for uploads" in message
    assert uploads.LIMIT_ENV in message
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"
    assert _files(runs_dir) == []  # nothing written, not even a temporary file


def test_uploads_no_session_holds_make_room_first(
    app: Callable[[], AppTest],
    runs_dir: Path,
    tiny_trace_file: Path,
    tanh_trace_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes = tiny_trace_file.stat().st_size, tanh_trace_file.stat().st_size
    _limit_for(monkeypatch, max(sizes) * 3 // 2)  # room for one trace at a time
    first = _upload(app().run(), "first.nntrace", tiny_trace_file.read_bytes())
    assert _files(runs_dir) == [f"{_digest(tiny_trace_file)}.nntrace"]
    # the first session ends (Streamlit no longer knows it) and its grace period is over
    monkeypatch.setattr(uploads, "_session_alive", lambda session: False)
    monkeypatch.setattr(uploads, "GRACE_SECONDS", 0.0)
    second = _upload(app().run(), "second.nntrace", tanh_trace_file.read_bytes())
    assert_healthy(second)
    assert "Opened second" in texts(second.sidebar.success)
    assert _files(runs_dir) == [f"{_digest(tanh_trace_file)}.nntrace"]
    first.run()  # the first session's upload is gone: it says so and shows another trace
    assert not first.exception
    assert "no longer on the server" in texts(first.sidebar.error)


def test_a_folder_full_of_uploads_open_sessions_hold_refuses_with_a_message(
    app: Callable[[], AppTest],
    runs_dir: Path,
    tiny_trace_file: Path,
    tanh_trace_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes = tiny_trace_file.stat().st_size, tanh_trace_file.stat().st_size
    _limit_for(monkeypatch, max(sizes) * 3 // 2)
    _upload(app().run(), "first.nntrace", tiny_trace_file.read_bytes())
    at = _upload(app().run(), "second.nntrace", tanh_trace_file.read_bytes())
    assert_healthy(at)
    message = texts(at.sidebar.error)
    assert "second was not opened" in message and "space for uploads is full" in message
    assert "held by open sessions" in message
    assert _files(runs_dir) == [f"{_digest(tiny_trace_file)}.nntrace"]
    assert at.session_state[state.ACTIVE_TRACE] == "run:tiny"


def test_a_session_s_new_upload_replaces_its_own_older_one_when_full(
    app: Callable[[], AppTest],
    runs_dir: Path,
    tiny_trace_file: Path,
    tanh_trace_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes = tiny_trace_file.stat().st_size, tanh_trace_file.stat().st_size
    _limit_for(monkeypatch, max(sizes) * 3 // 2)
    at = _upload(app().run(), "first.nntrace", tiny_trace_file.read_bytes())
    at = _upload(at, "second.nntrace", tanh_trace_file.read_bytes())
    assert_healthy(at)
    assert "Opened second" in texts(at.sidebar.success)
    assert _files(runs_dir) == [f"{_digest(tanh_trace_file)}.nntrace"]


def test_the_uploads_of_a_session_that_ended_are_swept(
    app: Callable[[], AppTest],
    runs_dir: Path,
    tiny_trace_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _upload(app().run(), "mine.nntrace", tiny_trace_file.read_bytes())
    kept = [f"{_digest(tiny_trace_file)}.nntrace"]
    uploads.sweep()
    assert _files(runs_dir) == kept  # the session is open
    monkeypatch.setattr(uploads, "_session_alive", lambda session: False)
    uploads.sweep()
    assert _files(runs_dir) == kept  # closed, but it may come back within the grace period
    monkeypatch.setattr(uploads, "GRACE_SECONDS", 0.0)
    uploads.sweep()
    assert _files(runs_dir) == []


def test_an_upload_unused_for_the_keep_hours_is_swept_even_if_its_session_is_open(
    app: Callable[[], AppTest],
    runs_dir: Path,
    tiny_trace_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    _upload(app().run(), "mine.nntrace", tiny_trace_file.read_bytes())
    monkeypatch.setattr(uploads, "GRACE_SECONDS", 0.0)
    uploads.sweep(time.time() + 23 * 3600)
    assert len(_files(runs_dir)) == 1  # within the default 24 hours
    uploads.sweep(time.time() + 25 * 3600)
    assert _files(runs_dir) == []
    monkeypatch.setenv(uploads.KEEP_HOURS_ENV, "1")
    _upload(app().run(), "mine.nntrace", tiny_trace_file.read_bytes())
    uploads.sweep(time.time() + 2 * 3600)
    assert _files(runs_dir) == []


def test_sessions_are_alive_while_the_streamlit_runtime_knows_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit import runtime

    class FakeRuntime:
        def is_active_session(self, session_id: str) -> bool:
            return session_id == "open"

    assert uploads._session_alive("anything")  # no server (AppTest): only the clock decides
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", FakeRuntime)
    assert uploads._session_alive("open")
    assert not uploads._session_alive("closed")


def test_the_first_run_of_a_server_empties_the_upload_folder(
    app: Callable[[], AppTest], runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = runs_dir.parent / "uploads"
    folder.mkdir()
    (folder / DIGEST_NAME).write_bytes(b"left by the last server")
    (folder / ".upload-abc123.tmp").write_bytes(b"half an upload")
    (folder / "notes.txt").write_text("not ours: never deleted")
    monkeypatch.setattr(uploads, "_started", False)
    at = app().run()
    assert_healthy(at)
    assert _files(runs_dir) == ["notes.txt"]


def test_a_limit_that_is_a_share_of_the_free_disk(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    free = shutil.disk_usage(uploads.upload_dir()).free
    monkeypatch.setenv(uploads.LIMIT_ENV, "10%")
    limit, source = uploads.upload_limit()
    assert limit is not None and abs(limit - free // 10) < free // 1000
    assert source == f"{uploads.LIMIT_ENV}=10%"
    monkeypatch.setenv(uploads.LIMIT_ENV, "off")
    assert uploads.upload_limit()[0] is None
    monkeypatch.delenv(uploads.LIMIT_ENV)
    assert uploads.upload_limit()[0] == min(uploads.DEFAULT_LIMIT, free // 2)


def test_accept_upload_reads_a_file_object_without_copying_it_to_bytes(
    runs_dir: Path, tiny_trace_file: Path
) -> None:
    from nn_tracing.ui.traces import accept_upload

    class NoGetvalue:
        def __init__(self, path: Path) -> None:
            self._handle = path.open("rb")
            self.size = path.stat().st_size

        def read(self, n: int = -1) -> bytes:
            return self._handle.read(n)

        def seek(self, offset: int, whence: int = 0) -> int:
            return self._handle.seek(offset, whence)

        def tell(self) -> int:
            return self._handle.tell()

    result = accept_upload("streamed.nntrace", NoGetvalue(tiny_trace_file))  # type: ignore[arg-type]
    assert result.ok, result.message
    assert _files(runs_dir) == [f"{_digest(tiny_trace_file)}.nntrace"]
