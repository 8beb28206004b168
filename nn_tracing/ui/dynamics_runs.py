"""Other runs of the active trace's configuration, for the Dynamics page's joint training map.

Runs of the same configuration with another seed are found in the runs folder
(:func:`nn_tracing.seeds.find_replicates`, reading manifests only); the user ticks the ones to
fit jointly with the active run (:func:`runs_picker`), and can train more seeds of the
configuration in the background from here (:func:`nn_tracing.jobs.start_job`, the next unused
seeds), with their progress followed in a fragment and one full rerun when the last one ends,
so the new runs join the list. Widgets and layout only; the Dynamics page
(``ui/dynamics.py``) owns the picker's key, which its settings carry in the URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import streamlit as st

from .. import jobs
from ..runs import display_name, parse_display_name, run_paths, runs_dir
from ..seeds import Replicate, find_replicates, free_seeds, replicate_config
from ..store import TraceFormatError
from ..trace import NetworkTrace
from ..views import dynamics as view
from . import state
from .text import guarded, md_escape, show_message
from .traces import ActiveTrace, load_trace_file, run_stamp

__all__ = ["MAX_JOINT_RUNS", "MAX_SEED_JOBS", "replicates", "runs_picker"]

#: Most other runs fitted jointly with the active one.
MAX_JOINT_RUNS = 8
#: Runs trained from here at once (the job registry allows a few more for the sidebar).
MAX_SEED_JOBS = 3
SEED_REFRESH_SECONDS = 1.0


def _ensure(key: str, valid: Callable[[Any], bool], default: Any) -> None:
    if not valid(state.get(key)):
        state.put(key, default)


def _stamps() -> tuple[tuple[bytes, int, int, int], ...]:
    """What changes when a run of the folder changes (a file or a run directory's manifest)."""
    out = []
    for path in run_paths():
        stamp = run_stamp(path)
        if stamp is not None:
            # bytes: a file name that is not UTF-8 is a str Streamlit's cache key cannot hash
            out.append((os.fsencode(path), *stamp))
    return tuple(sorted(out))


@st.cache_data(max_entries=64, show_spinner=False)
def _replicates(config_json: str, exclude: str, stamps: tuple[Any, ...]) -> list[Replicate]:
    """Runs of the folder with this config but another seed (manifests only; cached by the
    folder's file stamps, so a new run shows up at once)."""
    # exclude is a name as display_name spells it (a cache key must be valid UTF-8)
    stem = parse_display_name(exclude) or exclude
    return find_replicates(json.loads(config_json), runs_dir(), exclude=[stem] if stem else [])


def replicates(config: dict[str, Any], exclude: str) -> list[Replicate]:
    """Runs of the folder with ``config`` but another seed, ``exclude`` (a name as
    :func:`~nn_tracing.runs.display_name` spells it) left out; cached by the folder's stamps
    (the Compare page proposes them too)."""
    return _replicates(json.dumps(config, sort_keys=True), exclude, _stamps())


def _seed_jobs() -> list[jobs.TrainingJob]:
    found = [jobs.get_job(job_id) for job_id in state.get(state.DYNAMICS_SEED_JOBS, [])]
    return [job for job in found if job is not None]


def _start_seeds(config: dict[str, Any], taken: list[int | None], stem: str) -> None:
    """Button callback: train ``n`` more seeds of ``config`` in the background."""
    count = int(state.get(state.DYNAMICS_SEED_COUNT, 2))
    started, problems = [], []
    for seed in free_seeds(taken, count):
        try:
            job = jobs.start_job(
                replicate_config(config, seed), runs_dir(), name=f"{stem}-seed{seed}"
            )
        except (jobs.JobLimitError, ValueError) as exc:
            problems.append(str(exc))
            break
        started.append(job.job_id)
    state.put(state.DYNAMICS_SEED_JOBS, [*state.get(state.DYNAMICS_SEED_JOBS, []), *started])
    if problems:
        state.put(
            state.DYNAMICS_SEED_MESSAGE, ("error", f"Could not start every run: {problems[0]}")
        )
    else:
        state.put(
            state.DYNAMICS_SEED_MESSAGE,
            (
                "info",
                f"Training {len(started)} more seed(s) in the background; they join the "
                "list of runs below when they finish.",
            ),
        )


def _seed_panel() -> None:
    """Progress of the seeds this page started; one full rerun when the last one ends."""
    running = _seed_jobs()
    if not running:
        show_message(state.get(state.DYNAMICS_SEED_MESSAGE))
        return
    active = [job for job in running if not job.snapshot().done]
    for job in running:
        snap = job.snapshot()
        text = (
            f"{job.name}: {snap.state}"
            if snap.done
            else f"{job.name}: epoch {snap.epoch} of {snap.epochs}"
        )
        st.progress(min(max(snap.fraction, 0.0), 1.0), text=md_escape(text, 200))
    if not active:
        failed = [job for job in running if job.snapshot().state == "failed"]
        trained = [job.name for job in running if job.snapshot().state != "failed"]
        state.put(
            state.DYNAMICS_SEED_TRAINED, [*state.get(state.DYNAMICS_SEED_TRAINED, []), *trained]
        )
        state.put(state.DYNAMICS_SEED_JOBS, [])
        message = (
            ("warning", f"{len(failed)} run(s) failed: {failed[0].snapshot().error}")
            if failed
            else ("success", f"{len(running)} more seed(s) trained and saved in the runs folder.")
        )
        state.put(state.DYNAMICS_SEED_MESSAGE, message)
        st.rerun()


def _guarded_seed_panel() -> None:
    with guarded("following the seed runs"):
        _seed_panel()


def _seed_controls(active: ActiveTrace, config: dict[str, Any], found: list[Replicate]) -> None:
    """How many more seeds, the button that trains them, and their progress."""
    busy = any(not job.snapshot().done for job in _seed_jobs())
    st.number_input("More seeds to train", 1, MAX_SEED_JOBS, key=state.DYNAMICS_SEED_COUNT, step=1)
    taken = [config.get("seed"), *(r.seed for r in found)]
    st.button(
        "Train more seeds in the background",
        key=state.DYNAMICS_SEED_BUTTON,
        on_click=_start_seeds,
        args=(config, taken, view.seed_stem(active.name)),
        disabled=busy,
        help="Same configuration, the next unused seeds; saved to the runs folder.",
    )
    st.fragment(run_every=SEED_REFRESH_SECONDS if busy else None)(_guarded_seed_panel)()


def _tick_trained(key: str, names: list[str]) -> None:
    """Tick the runs this session trained from here as soon as they are in the folder, so
    that they join the fit without a reload (room permitting)."""
    waiting = state.get(state.DYNAMICS_SEED_TRAINED) or []
    arrived = [display_name(n) for n in waiting if display_name(n) in names]
    if not arrived:
        return
    ticked = list(state.get(key) or [])
    room = MAX_JOINT_RUNS - len(ticked)
    state.put(key, ticked + [n for n in arrived if n not in ticked][: max(room, 0)])
    state.put(state.DYNAMICS_SEED_TRAINED, [n for n in waiting if display_name(n) not in arrived])


def _replicate_picker(found: list[Replicate], key: str) -> None:
    """The runs of the same configuration to fit jointly (the widget ``key``)."""
    by_name = {display_name(r.name): r for r in found}
    names = list(by_name)
    if not names:  # no picker: nothing in the URL either
        state.pop(key)
        st.info(
            "No other run of this configuration in the runs folder. A joint fit over "
            "seeds shows which states every run goes through and which are detours; train "
            "a few more seeds on the right."
        )
        return
    _ensure(
        key,
        lambda v: isinstance(v, list) and len(v) <= MAX_JOINT_RUNS and set(v) <= set(names),
        names[:MAX_JOINT_RUNS],
    )
    _tick_trained(key, names)
    st.multiselect(
        "Fit jointly with these runs of the same configuration (another seed)",
        names,
        key=key,
        max_selections=MAX_JOINT_RUNS,
        format_func=lambda n: f"{n} (seed {by_name[n].seed})",
        help="One HMM over every run (hmmlearn's lengths): states are shared, and a "
        "state only some runs visit is a detour.",
    )


def runs_picker(active: ActiveTrace, key: str) -> list[tuple[str, str, NetworkTrace]]:
    """The runs to fit: ``(name, trace key, trace)`` of the active one and of the replicates
    the user keeps ticked (the multiselect ``key``, one per trace; unset when there is no
    other run). Draws the picker and the seed controls side by side."""
    trace = active.trace
    config = view.trace_config(trace)
    me = (active.name or "this run", active.key, trace)
    if config is None:
        st.caption(
            "This trace carries no training configuration (a custom model), so runs of the same "
            "configuration cannot be found: the map is fitted on this run alone."
        )
        return [me]
    found = _replicates(json.dumps(config, sort_keys=True), active.name or "", _stamps())
    left, right = st.columns([3, 2])
    with left:
        _replicate_picker(found, key)
    with right:
        _seed_controls(active, config, found)
    chosen = [me]
    by_name = {display_name(r.name): r for r in found}
    for name in state.get(key) or []:
        replicate = by_name.get(name)
        if replicate is None:
            continue
        try:
            other = load_trace_file(replicate.path)
        except (TraceFormatError, OSError) as exc:
            st.warning(f"{md_escape(name)} cannot be opened and is left out: {md_escape(exc, 300)}")
            continue
        chosen.append((name, other.digest or name, other))
    return chosen
