"""The shared sidebar: pick, upload and download traces; train a new run and watch it.

Drawn on every page by the app shell. The training panel reads the session's job snapshot in
an ``st.fragment(run_every=...)`` while a run trains, so that progress updates without
redrawing the page; when a new epoch has been recorded (and the page shows that run) or the
run has ended, it asks for one full rerun.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import jobs
from ..runs import RunEntry, runs_dir
from ..store import trace_to_bytes
from . import cache, state
from .text import fmt_duration, md_escape, show_message
from .traces import (
    ActiveTrace,
    accept_upload,
    catalogue,
    save_upload_to_runs,
    set_active,
)
from .training_form import load_settings, render_form

__all__ = ["poll_job", "render_sidebar"]

#: Seconds between two refreshes of the training panel while a run trains.
REFRESH_SECONDS = 1.0
_STATUS_MARK = {"complete": "✓", "stopped": "■ stopped", "diverged": "⚠ diverged"}


# -- the job -------------------------------------------------------------------------------------
def poll_job() -> bool:
    """Finish the session's job if it has ended; returns whether it just did.

    A finished run's trace becomes active when the session was looking at the live run
    (otherwise the user chose another trace meanwhile; the message says where to find it).
    """
    job = jobs.get_job(state.get(state.JOB_ID))
    if job is None:
        return False
    snap = job.snapshot()
    if not snap.done:
        return False
    state.pop(state.JOB_ID)
    watching = state.get(state.ACTIVE_TRACE) == f"job:{job.job_id}"
    if snap.state == "failed":
        state.put(state.JOB_MESSAGE, ("error", f"Training failed: {snap.error}"))
        if watching:
            state.pop(state.ACTIVE_TRACE)
        return True
    name = snap.saved_name or job.name
    if snap.status == "complete":
        text = f"Run {name} finished; saved in the runs folder as {name}.nntrace."
        kind = "success"
    else:
        text = (
            f"Run {name} {snap.status}: {snap.message or 'training ended early'}. The trace so "
            f"far is saved in the runs folder as {name}.nntrace (status '{snap.status}')."
        )
        kind = "warning"
    if watching:
        set_active(f"run:{name}")
    else:
        text += " Pick it in the trace list above to open it."
    state.put(state.JOB_MESSAGE, (kind, text))
    return True


def _job_panel() -> None:
    """Progress of the session's run: epoch k of n, loss, elapsed and remaining, Stop."""
    if poll_job():
        st.rerun()
    job = jobs.get_job(state.get(state.JOB_ID))
    if job is None:
        show_message(state.get(state.JOB_MESSAGE))
        return
    snap = job.snapshot()
    st.caption(f"Training **{md_escape(job.name)}**")
    loss = f"{snap.loss:.4g}" if snap.loss == snap.loss else "–"
    starting = snap.epoch == 0 and not snap.recorded_epochs
    st.progress(
        min(max(snap.fraction, 0.0), 1.0),
        text="Preparing the data and measuring the untrained network (E_0)…"
        if starting
        else f"Epoch {snap.epoch} of {snap.epochs} · loss {loss}",
    )
    st.caption(
        f"Elapsed {fmt_duration(snap.elapsed)} · about {fmt_duration(snap.remaining)} left · "
        f"{len(snap.recorded_epochs)} epochs recorded"
        + (" · stopping after this batch…" if snap.stop_requested else "")
    )
    st.button(
        "Stop",
        key="nnt.stop",
        on_click=job.stop,
        disabled=snap.stop_requested,
        help="Stop after the current batch; the trace so far is saved (status 'stopped').",
    )
    watching = state.get(state.ACTIVE_TRACE) == f"job:{job.job_id}"
    if watching and snap.trace_version > state.get(state.JOB_SEEN_VERSION, 0):
        st.rerun()  # a new epoch was recorded: redraw the page that shows it


def _training_section(active: ActiveTrace | None) -> None:
    st.subheader("Train")
    job = jobs.get_job(state.get(state.JOB_ID))
    running = job is not None and not job.snapshot().done
    if running:
        st.fragment(run_every=REFRESH_SECONDS)(_job_panel)()
    else:
        _job_panel()
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
    status = _STATUS_MARK.get(entry.status or "", entry.status or "?")
    return f"{entry.name} · {entry.dataset} · {entry.architecture} · {entry.epochs} ep · {status}"


def _picked() -> None:
    ref = state.get(state.TRACE_PICKER)
    if ref:
        set_active(ref)


def _uploaded() -> None:
    upload = state.get(state.UPLOADER)
    if upload is None:
        return
    result = accept_upload(upload.name, upload.getvalue())
    state.put(state.UPLOAD_MESSAGE, ("success" if result.ok else "error", result.message))


def _save_upload(digest: str) -> None:
    result = save_upload_to_runs(digest)
    state.put(state.UPLOAD_MESSAGE, ("success" if result.ok else "error", result.message))


def _runs_table(entries: list[RunEntry]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [e.name for e in entries],
            "dataset": [e.dataset or "" for e in entries],
            "architecture": [e.architecture or "" for e in entries],
            "epochs": [e.epochs for e in entries],
            "recorded": [e.n_recorded for e in entries],
            "status": [e.status or "unreadable" for e in entries],
            "date": [e.date for e in entries],
            "MB": [round(e.size / 2**20, 2) for e in entries],
            "problem": [e.error or "" for e in entries],
        }
    )


def _trace_section(active: ActiveTrace | None, problem: str | None) -> None:
    st.subheader("Trace")
    entries = catalogue()
    labels: dict[str, str] = {}
    job_id = state.get(state.JOB_ID)
    if job_id and jobs.get_job(job_id) is not None:
        labels[f"job:{job_id}"] = f"● training now: {jobs.get_job(job_id).name}"  # type: ignore[union-attr]
    for upload in state.get(state.UPLOADS, []):
        labels[f"upload:{upload['digest']}"] = f"{upload['name']} · uploaded in this session"
    for entry in entries:
        if entry.readable:
            labels[f"run:{entry.name}"] = _run_label(entry)
    if active is not None and active.ref not in labels:
        labels[active.ref] = active.label
    if labels:
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
    else:
        st.info("No trace yet: train one below, or upload a .nntrace file.")
    if problem:
        st.error(md_escape(problem, max_length=600))
    show_message(state.pop(state.TRACE_MESSAGE))
    if active is not None:
        status = active.trace.status
        detail = next((e.describe() for e in entries if f"run:{e.name}" == active.ref), None)
        st.caption(md_escape(detail or f"{active.label} · {status}", max_length=300))

    with st.expander(f"Runs folder ({len(entries)})"):
        st.caption(md_escape(str(runs_dir()), max_length=300))
        if entries:
            st.dataframe(
                _runs_table(entries), hide_index=True, height=min(36 * len(entries) + 40, 300)
            )

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

    if active is not None:
        with st.expander("Download"):
            _downloads(active)


def _downloads(active: ActiveTrace) -> None:
    trace = active.trace
    stem = active.name or "live-trace"
    path = active.path

    def trace_bytes() -> bytes:
        return path.read_bytes() if path is not None else trace_to_bytes(trace)

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
        f"{trace.n_neurons} neurons × {len(trace.epochs)} recorded epochs = "
        f"{trace.n_neurons * len(trace.epochs):,} rows (epoch, layer, neuron, "
        "one column per metric)."
    )


def render_sidebar(active: ActiveTrace | None, problem: str | None) -> None:
    """Draw the sidebar of every page."""
    with st.sidebar:
        _trace_section(active, problem)
        st.divider()
        _training_section(active)
