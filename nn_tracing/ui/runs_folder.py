"""The runs folder in the sidebar: every run with its state, and deleting or renaming one.

The table lists trace files and run directories alike — name, kind, state (``● live · E_12
· 3 s ago``, ``stalled``, ``interrupted``, ``● starting`` for a run directory whose writer
has not recorded ``E_0`` yet), dataset, architecture, epochs, status, date, size and, for a
run that cannot be read, why. Under it, *Manage a run*: pick one, then *Rename…* or
*Delete…*. Neither acts at once: each asks for confirmation in place (the new name and a
*Rename* button; a warning and a *Delete … for good* button, or *Cancel*), and only then calls
:func:`~nn_tracing.runs.rename_run` / :func:`~nn_tracing.runs.delete_run`, which act inside
the runs folder only (a symbolic link is removed as a link, never its target) and refuse a run
whose writer lives — the buttons are disabled for such a run, and the library checks again.
A renamed active trace stays active under its new name; a deleted one gives way to the
newest run.

A run being written by ``nn-tracing train`` on this machine — the sidebar's runs, also those
started before the server restarted — offers *Stop training…* instead: once confirmed it sends
the graceful stop (:func:`~nn_tracing.run_process.stop_run`, which signals only the verified
writer: pid, process start time and command line), and the run records the epoch in progress
and ends ``stopped``.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ..run_process import stop_run, writer_pid
from ..runs import RunEntry, RunRefused, delete_run, display_name, parse_display_name, rename_run
from . import state
from .text import md_escape, show_message
from .traces import run_ref, scrub_paths, set_active, shown_runs_dir

__all__ = ["render_runs_folder", "runs_table"]


def _state_text(entry: RunEntry) -> str:
    if entry.error is not None:
        return "unreadable"
    return entry.mark() or ("finished" if entry.is_directory else "file")


#: The runs table's columns, what tells runs apart first (the sidebar shows three or four).
_COLUMN_ORDER = (
    "name",
    "status",
    "epochs",
    "state",
    "dataset",
    "architecture",
    "recorded",
    "date",
    "MB",
    "kind",
    "problem",
)
#: Narrow columns, so that the sidebar shows more than the name.
_NARROW = {
    "name": st.column_config.TextColumn("name", width="small"),
    "status": st.column_config.TextColumn("status", width="small"),
    "epochs": st.column_config.NumberColumn("epochs", width=60),
    "recorded": st.column_config.NumberColumn("recorded", width=60),
    "MB": st.column_config.NumberColumn("MB", width=60),
    "kind": st.column_config.TextColumn("kind", width="small"),
}


def runs_table(entries: list[RunEntry]) -> pd.DataFrame:
    """One row per run of the folder, as the table shows it (names and manifest strings with
    invisible characters escaped)."""
    return pd.DataFrame(
        {
            "name": [e.shown_name for e in entries],
            "kind": ["folder" if e.is_directory else "file" for e in entries],
            "state": [_state_text(e) for e in entries],
            "dataset": [display_name(e.dataset or "") for e in entries],
            "architecture": [display_name(e.architecture or "") for e in entries],
            "epochs": [e.epochs for e in entries],
            "recorded": [e.n_recorded for e in entries],
            "status": [
                display_name(e.status or ("starting" if e.starting else "unreadable"))
                for e in entries
            ],
            "date": [e.date for e in entries],
            "MB": [round(e.size / 2**20, 2) for e in entries],
            "problem": [scrub_paths(display_name(e.error or "")) for e in entries],
        }
    )


# -- actions (callbacks: they run before the app is drawn again) ---------------------------------
def _name_of(ref: str) -> str | None:
    return parse_display_name(ref.partition(":")[2])


def _ask(action: str) -> None:
    ref = state.get(state.RUNS_MANAGED)
    if ref:
        state.put(state.RUNS_PENDING, (action, ref))
        state.put(state.RUNS_NEW_NAME, _name_of(ref) or "")
    state.pop(state.RUNS_MESSAGE)


def _cancel() -> None:
    state.pop(state.RUNS_PENDING)


def _delete(ref: str) -> None:
    state.pop(state.RUNS_PENDING)
    name = _name_of(ref)
    try:
        delete_run(name or "")
    except RunRefused as exc:
        state.put(state.RUNS_MESSAGE, ("error", scrub_paths(str(exc))))
        return
    if state.get(state.ACTIVE_TRACE) == ref:
        state.pop(state.ACTIVE_TRACE)  # the newest run that opens becomes active
    state.pop(state.RUNS_MANAGED)
    state.put(state.RUNS_MESSAGE, ("success", f"Deleted {display_name(name or '')}."))


def _stop(ref: str, path: str) -> None:
    state.pop(state.RUNS_PENDING)
    name = display_name(_name_of(ref) or "")
    if stop_run(path):
        state.put(
            state.RUNS_MESSAGE,
            ("success", f"Asked {name} to stop after its current batch (status 'stopped')."),
        )
    else:
        state.put(
            state.RUNS_MESSAGE,
            (
                "error",
                f"{name} could not be stopped from here: its training process has ended "
                "or is not an nn-tracing run on this machine.",
            ),
        )


def _rename(ref: str) -> None:
    name = _name_of(ref) or ""
    new_name = str(state.get(state.RUNS_NEW_NAME) or "").strip()
    try:
        rename_run(name, new_name)
    except RunRefused as exc:  # the form stays open, with the reason
        state.put(state.RUNS_MESSAGE, ("error", scrub_paths(str(exc))))
        return
    state.pop(state.RUNS_PENDING)
    new_ref = run_ref(new_name)
    if state.get(state.ACTIVE_TRACE) == ref:
        set_active(new_ref)
    state.put(state.RUNS_MANAGED, new_ref)
    state.put(
        state.RUNS_MESSAGE,
        ("success", f"Renamed {display_name(name)} to {display_name(new_name)}."),
    )


# -- drawing -------------------------------------------------------------------------------------
def _confirm(entry: RunEntry, action: str) -> None:
    """The confirmation step of ``action`` on ``entry``."""
    ref = run_ref(entry.name)
    what = "folder" if entry.is_directory else "file"
    if action == "stop":
        st.warning(
            md_escape(
                f"Stop training {entry.shown_name}? It finishes its current batch, records the "
                "epoch in progress and ends with status 'stopped'.",
                max_length=600,
            )
        )
        left, right = st.columns(2)
        left.button(
            "Stop training",
            key="nnt.runs.confirm_stop",
            type="primary",
            on_click=_stop,
            args=(ref, str(entry.path)),
        )
        right.button("Cancel", key="nnt.runs.cancel", on_click=_cancel)
        return
    if action == "delete":
        st.warning(
            md_escape(
                f"Delete {entry.shown_name} ({what}, {entry.n_recorded} recorded epochs, "
                f"{entry.size / 2**20:.2f} MB) from the runs folder? This cannot be undone.",
                max_length=600,
            )
        )
        left, right = st.columns(2)
        left.button(
            f"Delete {entry.shown_name} for good",
            key="nnt.runs.confirm_delete",
            type="primary",
            on_click=_delete,
            args=(ref,),
        )
        right.button("Cancel", key="nnt.runs.cancel", on_click=_cancel)
        return
    st.text_input(
        "New name",
        key=state.RUNS_NEW_NAME,
        max_chars=200,
        help="Letters of any script, digits, spaces and punctuation; no '/', no leading dot. "
        "A name in use is refused.",
    )
    left, right = st.columns(2)
    left.button(
        "Rename", key="nnt.runs.confirm_rename", type="primary", on_click=_rename, args=(ref,)
    )
    right.button("Cancel", key="nnt.runs.cancel", on_click=_cancel)


def _manage(entries: list[RunEntry]) -> None:
    """Pick a run, then Rename… or Delete… (each confirmed before it acts)."""
    by_ref = {run_ref(e.name): e for e in entries}
    if state.get(state.RUNS_MANAGED) not in by_ref:
        state.put(state.RUNS_MANAGED, next(iter(by_ref)))
    st.selectbox(
        "Manage a run",
        list(by_ref),
        key=state.RUNS_MANAGED,
        format_func=lambda ref: by_ref[ref].shown_name,
        on_change=_cancel,
    )
    entry = by_ref[state.get(state.RUNS_MANAGED)]
    busy = entry.writing
    if busy:
        st.caption(
            md_escape(
                f"{entry.shown_name} is being written ({entry.detail}): stop its training first "
                "to rename or delete it.",
                max_length=400,
            )
        )
    stoppable = busy and entry.is_directory and writer_pid(entry.path) is not None
    left, right = st.columns(2)
    left.button("Rename…", key="nnt.runs.rename", on_click=_ask, args=("rename",), disabled=busy)
    right.button("Delete…", key="nnt.runs.delete", on_click=_ask, args=("delete",), disabled=busy)
    if stoppable:
        st.button("Stop training…", key="nnt.runs.stop", on_click=_ask, args=("stop",))
    pending = state.get(state.RUNS_PENDING)
    allowed = stoppable if pending and pending[0] == "stop" else not busy
    if pending and pending[1] == run_ref(entry.name) and allowed:
        _confirm(entry, pending[0])
    elif pending:
        state.pop(state.RUNS_PENDING)


def render_runs_folder(entries: list[RunEntry]) -> None:
    """The runs folder's table and housekeeping, in an expander."""
    message = state.pop(state.RUNS_MESSAGE)
    busy = message is not None or state.get(state.RUNS_PENDING) is not None
    with st.expander(f"Runs folder ({len(entries)})", expanded=busy):
        st.caption(md_escape(shown_runs_dir(), max_length=300))
        if entries:
            st.dataframe(
                runs_table(entries),
                hide_index=True,
                height=min(36 * len(entries) + 40, 300),
                column_order=_COLUMN_ORDER,
                column_config=_NARROW,
            )
            _manage(entries)
        show_message(message)
