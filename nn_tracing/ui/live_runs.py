"""The session's training runs in the sidebar: live progress while they train, how they ended.

Each run is a child process writing its run directory (:mod:`nn_tracing.jobs`); the panel
follows it through that directory (the manifest's ``stat``, the heartbeat's progress), so a
refresh costs a few small reads, and the trace is loaded again only when an epoch was recorded.
What a session has started is read from the process-wide job registry
(:func:`nn_tracing.jobs.jobs_of`, keyed by the Streamlit session id), not from session state: a
page switch in the same instant as a click, or a script run cut short, cannot make a run vanish
from its panel. The live panel is one module-level fragment drawn first in the sidebar, so its
identity (function and position) is the same on every page and every run; it refreshes every
:data:`REFRESH_SECONDS` and asks for one full rerun when a run ends or a watched run records
an epoch. A run that ended stays listed, with how it ended, until its owner dismisses it or
starts another.
"""

from __future__ import annotations

import streamlit as st

from .. import jobs
from ..runs import find_run
from . import state
from .text import fmt_duration, guarded, md_escape, show_message
from .traces import set_active

__all__ = ["REFRESH_SECONDS", "poll_jobs", "render_ended", "render_live", "session_jobs"]

#: Seconds between two refreshes of the live panel while a run trains.
REFRESH_SECONDS = 1.0
#: Ended runs listed at most (the newest).
MAX_ENDED_SHOWN = 3


def session_jobs() -> list[jobs.TrainingJob]:
    """The runs this session started and has not dismissed, oldest first."""
    return jobs.jobs_of(state.session_id())


def running_jobs() -> list[jobs.TrainingJob]:
    """The session's runs that are still training (their process runs)."""
    return [job for job in session_jobs() if job.is_running()]


def _watching(job: jobs.TrainingJob) -> bool:
    """Whether the session shows the run through its job (before its run directory opens);
    afterwards the page follows the run directory itself (:mod:`nn_tracing.ui.follow`)."""
    return state.get(state.ACTIVE_TRACE) == f"job:{job.job_id}"


def poll_jobs() -> bool:
    """Take notice of the session's runs that ended; returns whether one just did.

    A run the session was looking at stays shown when it ended with a trace (complete,
    stopped, diverged, or interrupted with the epochs it recorded): by its name in the runs
    folder where the folder lists it, else still through the job. One that recorded nothing
    is no longer shown.
    """
    ended = False
    for job in session_jobs():
        if not job.acknowledge_end():
            continue
        ended = True
        if _watching(job):
            name = job.snapshot().saved_name
            if name is None:
                state.pop(state.ACTIVE_TRACE)
            elif find_run(name) is not None:
                set_active(f"run:{name}")
    return ended


def ended_message(job: jobs.TrainingJob) -> tuple[str, str]:
    """How a run ended, as a ``(kind, text)`` message."""
    snap = job.snapshot()
    name = snap.saved_name or job.name
    if snap.state == "failed":
        kept = (
            f" Its run directory {name}/ keeps the {len(snap.recorded_epochs)} epochs it "
            f"recorded (status '{snap.status}')."
            if snap.saved_name
            else ""
        )
        return "error", f"Training {job.name} failed: {(snap.error or '').rstrip('.')}.{kept}"
    if snap.status == "complete":
        return "success", f"Run {name} finished; its run directory is {name}/ in the runs folder."
    return "warning", (
        f"Run {name} {snap.status}: {snap.message or 'training ended early'}. The trace so far "
        f"is kept in the runs folder as {name}/ (status '{snap.status}')."
    )


def _progress(job: jobs.TrainingJob, snap: jobs.JobSnapshot) -> None:
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
        key=f"nnt.stop.{job.job_id}",
        on_click=job.stop,
        disabled=snap.stop_requested,
        help="Stop after the current batch; the trace so far is saved (status 'stopped').",
    )


@st.fragment(run_every=REFRESH_SECONDS)
def _live_panel() -> None:
    """Progress of the session's running runs, refreshed on its own."""
    with guarded("following the training run"):
        _live_panel_body()


def _live_panel_body() -> None:
    if poll_jobs():
        st.rerun()  # a run ended: the whole app shows its saved trace and how it ended
    running = running_jobs()
    if not running:
        st.rerun()
    for job in running:
        watching = _watching(job)
        if watching:
            job.live_trace  # noqa: B018 (loads the run's new epochs, when there are any)
        snap = job.snapshot()
        _progress(job, snap)
        seen = state.get(state.JOB_SEEN_VERSION, 0)
        if watching and snap.trace_version > seen:
            st.rerun()  # a new epoch was loaded: redraw the page that shows it


def render_live() -> None:
    """The live panel, first in the sidebar, while one of the session's runs trains."""
    if running_jobs():
        with st.container(border=True):
            _live_panel()


def _dismiss(job_id: str) -> None:
    job = jobs.get_job(job_id)
    if job is not None:
        job.dismiss()


def render_ended() -> None:
    """How the session's recent runs ended, each with a button to dismiss it."""
    ended = [job for job in session_jobs() if not job.is_running()][-MAX_ENDED_SHOWN:]
    for job in ended:
        show_message(ended_message(job))
        st.button(
            "Dismiss",
            key=f"nnt.dismiss.{job.job_id}",
            on_click=_dismiss,
            args=(job.job_id,),
            type="tertiary",
        )
