"""The numba cache folder of ``nn_tracing.analysis.numba_guard``: where it is, and that it is
private.

Numba's cache unpickles the files it finds, so a cache folder another user could write to (one
they created first in a shared temp folder, or a symlink they planted) would let them run code
in this process. Those folders must be passed over for a fresh private one.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest

from nn_tracing.analysis import numba_guard


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The process's temp folder (``tempfile.gettempdir()``), moved under ``tmp_path``."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``NUMBA_CACHE_DIR`` yet, and numba's own config out of reach (restored after)."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.delenv("NN_TRACING_CACHE_DIR", raising=False)
    monkeypatch.delitem(sys.modules, "numba", raising=False)


def assert_private(folder: Path) -> None:
    info = folder.lstat()
    assert stat.S_ISDIR(info.st_mode)
    assert info.st_uid == os.getuid()
    assert info.st_mode & 0o022 == 0


def test_configure_points_numba_at_the_configured_cache(monkeypatch, tmp_path, unconfigured):
    monkeypatch.setenv("NN_TRACING_CACHE_DIR", str(tmp_path))
    folder = numba_guard.configure()
    assert folder == str(tmp_path / "numba")
    assert os.environ["NUMBA_CACHE_DIR"] == folder
    assert os.access(folder, os.W_OK)


def test_a_missing_folder_is_created_private(tmp_path, temp_root):
    candidate = tmp_path / "cache" / "numba"
    assert numba_guard.private_cache_dir(candidate) == candidate
    assert_private(candidate)
    assert stat.S_IMODE(candidate.stat().st_mode) & 0o077 == 0


def test_an_existing_folder_of_this_user_is_kept(tmp_path, temp_root):
    candidate = tmp_path / "numba"
    candidate.mkdir(mode=0o755)
    candidate.chmod(0o755)  # written by an earlier version, under the usual umask
    (candidate / "index.nbi").write_bytes(b"cached")
    assert numba_guard.private_cache_dir(candidate) == candidate
    assert (candidate / "index.nbi").exists()


def test_a_folder_others_can_write_to_is_not_used(tmp_path, temp_root):
    candidate = tmp_path / "nn_tracing-numba-shared"
    candidate.mkdir()
    candidate.chmod(0o777)  # as if another user had created it first, open to all
    chosen = numba_guard.private_cache_dir(candidate)
    assert chosen != candidate
    assert chosen.parent == temp_root
    assert_private(chosen)


def test_a_symlink_is_not_followed(tmp_path, temp_root):
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir(mode=0o700)
    candidate = tmp_path / "nn_tracing-numba-link"
    candidate.symlink_to(elsewhere, target_is_directory=True)
    chosen = numba_guard.private_cache_dir(candidate)
    assert chosen not in (candidate, elsewhere)
    assert_private(chosen)


def test_a_file_in_its_place_is_not_used(tmp_path, temp_root):
    candidate = tmp_path / "nn_tracing-numba-file"
    candidate.write_text("not a folder")
    chosen = numba_guard.private_cache_dir(candidate)
    assert chosen != candidate
    assert_private(chosen)


def test_configure_passes_over_cache_folders_others_can_write_to(
    monkeypatch, tmp_path, temp_root, unconfigured
):
    """Both default places pre-created open to everyone: numba gets a fresh private folder."""
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    home_cache = xdg / "nn_tracing" / "numba"
    home_cache.mkdir(parents=True)
    home_cache.chmod(0o777)
    shared = temp_root / f"nn_tracing-numba-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)
    folder = Path(numba_guard.configure())
    assert folder not in (home_cache, shared)
    assert folder.parent == temp_root
    assert_private(folder)


def test_configure_uses_the_private_default_folders(monkeypatch, tmp_path, temp_root, unconfigured):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_guard.configure() == str(tmp_path / "xdg" / "nn_tracing" / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder: ~/.cache cannot be made")
    shared = temp_root / f"nn_tracing-numba-{os.getuid()}"
    assert numba_guard.configure() == str(shared)
    assert_private(shared)


def test_numba_guard_imports_no_analysis_module():
    """It is the leaf: the embedding package and the cost models import it, never the reverse
    (the UMAP warm-up fits through :func:`numba_guard.fit_umap`, as ``NeuronProjector`` does)."""
    source = Path(numba_guard.__file__).read_text()
    assert "from ." not in source
    assert "import nn_tracing" not in source
