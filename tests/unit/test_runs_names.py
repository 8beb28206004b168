"""Odd file names in the runs folder (nn_tracing.runs): every trace listed opens by its name,
names are shown with invisible characters escaped, and nothing outside the folder opens."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nn_tracing import load_trace
from nn_tracing.runs import (
    display_name,
    find_run,
    list_runs,
    parse_display_name,
    run_files,
)

#: Names a trace file can have on Linux: the ones users make by hand, and the ones nobody
#: should (control characters, a bidirectional override, a zero-width space, a backslash that
#: looks like an escape, bytes that are not UTF-8).
ODD_NAMES = [
    "my run",
    "ünïcødé",
    "-dash-first",
    "semi;colon'quote",
    "x" * 100,
    'double"quote <b>html',
    "#hash?query=1&x=%20",
    "**markdown** [link](x)",
    "🧠 emoji",
    " leading and trailing ",
    "new\nline",
    "carriage\rreturn",
    "tab\there",
    "bell\x07",
    "rtl\u202egnp.exe",
    "zero\u200bwidth",
    "no\u00a0break",
    "back\\nslash",  # a backslash and an n: not the same name as "back<newline>slash"
    "back\nslash",
    "dots..in..name",
    "name.nntrace",
    os.fsdecode(b"latin-1 caf\xe9"),  # a file name whose bytes are not UTF-8
]


@pytest.fixture
def odd_runs(runs_dir: Path) -> Path:
    for name in ODD_NAMES:
        shutil.copy(runs_dir / "tiny.nntrace", runs_dir / f"{name}.nntrace")
    return runs_dir


@pytest.mark.parametrize("name", ODD_NAMES, ids=ascii)
def test_every_listed_name_opens_by_its_name(odd_runs: Path, name: str) -> None:
    listed = {entry.name: entry for entry in list_runs(odd_runs)}
    assert name in listed and listed[name].readable, sorted(map(ascii, listed))
    path = find_run(name, odd_runs)
    assert path == odd_runs / f"{name}.nntrace"
    assert load_trace(path).n_neurons == load_trace(odd_runs / "tiny.nntrace").n_neurons


def test_the_listing_and_find_run_agree(odd_runs: Path) -> None:
    files = run_files(odd_runs)
    assert len(files) == len(ODD_NAMES) + 1
    assert all(find_run(path.stem, odd_runs) == path for path in files)


@pytest.mark.parametrize("name", ODD_NAMES, ids=ascii)
def test_shown_names_are_visible_text_and_read_back(odd_runs: Path, name: str) -> None:
    shown = display_name(name)
    assert shown.isprintable(), ascii(shown)  # no control, format or odd space character
    assert parse_display_name(shown) == name
    assert shown.encode("utf-8")  # a surrogate (non-UTF-8 byte) is spelled, not kept
    if name.isprintable() and "\\" not in name:
        assert shown == name  # ordinary names, of any script, are shown as they are
    entry = next(e for e in list_runs(odd_runs) if e.name == name)
    assert entry.shown_name == shown


def test_invisible_characters_are_spelled_visibly() -> None:
    assert display_name("new\nline") == "new\\nline"
    assert display_name("rtl\u202egnp.exe") == "rtl\\u202egnp.exe"
    assert display_name("bell\x07") == "bell\\x07"
    assert display_name("back\\nslash") == "back\\\\nslash"
    assert display_name(os.fsdecode(b"caf\xe9")) == "caf\\udce9"
    assert len({display_name(n) for n in ODD_NAMES}) == len(ODD_NAMES)  # one-to-one


def test_text_that_is_no_spelling_reads_as_none() -> None:
    assert parse_display_name("plain name") == "plain name"
    assert parse_display_name("a\\qb") is None
    assert parse_display_name("trailing\\") is None
    assert parse_display_name("a\\x4") is None


def test_names_that_leave_the_folder_resolve_to_nothing(runs_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(runs_dir / "tiny.nntrace", outside / "secret.nntrace")
    (runs_dir / "sub").mkdir()
    shutil.copy(runs_dir / "tiny.nntrace", runs_dir / "sub" / "nested.nntrace")
    shutil.copy(runs_dir / "tiny.nntrace", runs_dir / ".hidden.nntrace")
    for name in (
        "../outside/secret",
        str(outside / "secret"),
        "sub/nested",
        "./tiny",
        ".hidden",
        "..",
        ".",
        "",
        "tiny\0",
        "tiny\ud800",  # not encodable as a file name
        "x" * 300,  # longer than a file name can be
    ):
        assert find_run(name, runs_dir) is None, ascii(name)
    assert {p.stem for p in run_files(runs_dir)} == {"tiny"}


def test_symbolic_links_open_only_inside_the_folder(runs_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(runs_dir / "tiny.nntrace", outside / "secret.nntrace")
    (runs_dir / "leak.nntrace").symlink_to(outside / "secret.nntrace")
    (runs_dir / "dotdot.nntrace").symlink_to(Path("..") / "outside" / "secret.nntrace")
    (runs_dir / "alias.nntrace").symlink_to("tiny.nntrace")
    (runs_dir / "loop.nntrace").symlink_to("loop.nntrace")
    (runs_dir / "dangling.nntrace").symlink_to("nothing.nntrace")
    assert find_run("leak", runs_dir) is None
    assert find_run("dotdot", runs_dir) is None
    assert find_run("loop", runs_dir) is None
    assert find_run("dangling", runs_dir) is None
    assert find_run("alias", runs_dir) == runs_dir / "alias.nntrace"
    assert sorted(e.name for e in list_runs(runs_dir)) == ["alias", "tiny"]


def test_a_runs_folder_reached_through_a_link_still_opens(runs_dir: Path, tmp_path: Path) -> None:
    link = tmp_path / "linked-runs"
    link.symlink_to(runs_dir)
    shutil.copy(runs_dir / "tiny.nntrace", runs_dir / "my run.nntrace")
    (runs_dir / "alias.nntrace").symlink_to("my run.nntrace")
    assert find_run("my run", link) == link / "my run.nntrace"
    assert find_run("alias", link) == link / "alias.nntrace"
