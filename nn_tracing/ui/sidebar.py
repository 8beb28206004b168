"""The shared sidebar: pick, upload and download traces; train a new run and watch it.

Drawn on every page by the app shell: first the live panel of the session's running runs
(:mod:`nn_tracing.ui.live_runs`), then the trace picker, upload and download, then the
training section (how recent runs ended, and the form).
"""

from __future__ import annotations

import streamlit as st

from ..runs import RunEntry, display_name
from ..store import trace_to_bytes
from ..timeaxis import time_word
from . import cache, state
from .live_runs import poll_jobs, render_ended, render_live, running_jobs
from .runs_folder import render_runs_folder
from .text import md_escape, show_message
from .traces import (
    ActiveTrace,
    accept_upload,
    catalogue,
    run_ref,
    save_upload_to_runs,
    set_active,
)
from .training_form import load_settings, render_form

__all__ = ["poll_job", "render_sidebar"]

_STATUS_MARK = {
    "complete": "✓",
    "stopped": "■ stopped",
    "diverged": "⚠ diverged",
    "running": "running",
    "interrupted": "⚠ interrupted",
}

#: Kept for the app shell: take notice of the session's runs that ended.
poll_job = poll_jobs


def _training_section(active: ActiveTrace | None) -> None:
    st.subheader("Train")
    running = bool(running_jobs())
    render_ended()
    with st.expander("New training run", expanded=not running and active is None):
        config = active.trace.meta.get("config") if active is not None else None
        if isinstance(config, dict):
            st.button(
                "Use the settings of the active trace",
                key="nnt.form.load",
                on_click=load_settings,
                args=(config,),
                help="Fill the form with the settings this trace was trained with.",
            )
        render_form(busy=running)


# -- traces -------------------------------------------------------------------------------------
def _run_label(entry: RunEntry) -> str:
    """The picker's line for a run: its name, then its status (``✓`` complete, ``■ stopped``,
    …) or, for a run directory being written, its live mark (``● live · E_12 · 3 s ago``,
    ``stalled …``, ``interrupted · E_12``), then what it is — so that a narrow sidebar cuts
    the description, never the status.
    Names and manifest strings with invisible characters are escaped
    (:func:`~nn_tracing.runs.display_name`), so every line reads as it is."""
    mark = entry.mark()
    status = _STATUS_MARK.get(entry.status or "", display_name(entry.status or "?"))
    described = (
        f"{display_name(entry.dataset or '?')} · {display_name(entry.architecture or '?')} · "
        f"{entry.epochs} ep"
    )
    # the mark or status right after the name: a narrow sidebar cuts the end of the line
    return f"{entry.shown_name} · {mark or status} · {described}"


def _picked() -> None:
    ref = state.get(state.TRACE_PICKER)
    if ref:
        set_active(ref)


def _uploaded() -> None:
    upload = state.get(state.UPLOADER)
    if upload is None:
        return
    result = accept_upload(upload.name, upload)  # copied to disk from Streamlit's buffer
    state.put(state.UPLOAD_MESSAGE, ("success" if result.ok else "error", result.message))


def _save_upload(digest: str) -> None:
    result = save_upload_to_runs(digest)
    state.put(state.UPLOAD_MESSAGE, ("success" if result.ok else "error", result.message))


def _trace_labels(active: ActiveTrace | None, entries: list[RunEntry]) -> dict[str, str]:
    """The traces one can pick, ``{ref: label}``: runs training now, this session's uploads,
    the readable runs of the folder, and the active trace if it is none of those."""
    labels: dict[str, str] = {}
    listed = {entry.name for entry in entries if entry.readable}
    for job in running_jobs():  # until its run directory opens; then it is listed as a run
        if job.snapshot().saved_name not in listed:
            labels[f"job:{job.job_id}"] = f"● training now: {job.name}"
    for upload in state.get(state.UPLOADS, []):
        labels[f"upload:{upload['digest']}"] = f"{upload['name']} · uploaded in this session"
    for entry in entries:
        if entry.readable:
            labels[run_ref(entry.name)] = _run_label(entry)
    if active is not None and active.ref not in labels:
        labels[active.ref] = active.label
    return labels


def _trace_picker(labels: dict[str, str]) -> None:
    """The "Active trace" picker (or a note that there is no trace yet)."""
    if not labels:
        st.info("No trace yet: train one below, or upload a .nntrace file.")
        return
    if state.get(state.ACTIVE_TRACE) in labels:
        state.put(state.TRACE_PICKER, state.get(state.ACTIVE_TRACE))
    st.selectbox(
        "Active trace",
        list(labels),
        format_func=labels.__getitem__,
        key=state.TRACE_PICKER,
        on_change=_picked,
        help="Traces in the runs folder, newest first, and those uploaded in this session.",
    )


def _upload(active: ActiveTrace | None) -> None:
    """The uploader, its message, and saving the active upload to the runs folder."""
    with st.expander("Upload a trace", expanded=state.get(state.UPLOAD_MESSAGE) is not None):
        st.file_uploader(
            "A .nntrace file",
            type=["nntrace"],
            key=state.UPLOADER,
            on_change=_uploaded,
            help="Checked before it is opened; it is not added to runs/ unless you save it.",
        )
        show_message(state.pop(state.UPLOAD_MESSAGE))
        if active is not None and active.source == "upload":
            digest = active.ref.partition(":")[2]
            st.button(
                "Save upload to runs/", key="nnt.save_upload", on_click=_save_upload, args=(digest,)
            )


def _trace_section(active: ActiveTrace | None, problem: str | None) -> None:
    st.subheader("Trace")
    entries = catalogue()
    _trace_picker(_trace_labels(active, entries))
    if problem:
        st.error(md_escape(problem, max_length=600))
    show_message(state.pop(state.TRACE_MESSAGE))
    if active is not None:
        status = active.trace.status
        detail = next((e.describe() for e in entries if run_ref(e.name) == active.ref), None)
        st.caption(md_escape(detail or f"{active.label} · {status}", max_length=300))
    render_runs_folder(entries)
    _upload(active)
    if active is not None:
        with st.expander("Download"):
            _downloads(active)


def _downloads(active: ActiveTrace) -> None:
    trace = active.trace
    stem = active.name or "live-trace"  # display_name's spelling: no control characters
    path = active.path

    def trace_bytes() -> bytes:
        # a file as it is; a run directory (or a job's trace) packed into one .nntrace
        return path.read_bytes() if path is not None and path.is_file() else trace_to_bytes(trace)

    downloads = (
        ("Trace (.nntrace)", trace_bytes, ".nntrace", "application/zip"),
        ("Neuron frame (CSV)", lambda: cache.neurons_csv(trace), ".neurons.csv", "text/csv"),
        (
            "Neuron frame (Parquet)",
            lambda: cache.neurons_parquet(trace),
            ".neurons.parquet",
            "application/vnd.apache.parquet",
        ),
    )
    for label, data, suffix, mime in downloads:
        # data is a callable: the file is made when the button is clicked, not on every rerun
        st.download_button(
            label,
            data=data,
            file_name=stem + suffix,
            mime=mime,
            key=f"nnt.download{suffix}",
            on_click="ignore",
            width="stretch",
        )
    st.caption(
        f"{trace.n_neurons} neurons × {len(trace.epochs)} recorded {time_word(plural=True)} = "
        f"{trace.n_neurons * len(trace.epochs):,} rows (epoch, layer, neuron, "
        "one column per metric)."
    )


def render_sidebar(active: ActiveTrace | None, problem: str | None) -> None:
    """Draw the sidebar of every page."""
    with st.sidebar:
        render_live()
        _trace_section(active, problem)
        st.divider()
        _training_section(active)
