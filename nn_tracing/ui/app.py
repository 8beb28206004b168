"""The app shell: page config, pages, the demo trace on first start, deep links, the sidebar.

``streamlit_app.py`` calls these in order::

    ui.configure_page()
    page = ui.navigation([ui.page("pages/overview.py", ...), ...])
    ui.shell(page)
    ui.run_page(page)
    ui.start_warm_up_once()  # after the page: the first visit is not slowed by it

On a first start the shell trains the demo trace (:mod:`nn_tracing.demos`) before anything
else; the UMAP warm-up starts only after the first page is drawn, so neither slows the other.

The shell imports no page: what a page needs started with the app (UMAP's compilation, for
the Clusters page) is handed to :func:`shell` by the entrypoint.

Deep links: ``?trace=<name>&neuron=E_30/L_hidden_1/n_20`` opens the trace ``<name>`` of the
runs folder (spelled as :func:`~nn_tracing.runs.display_name` spells it, so any file the
folder lists has a link) and, with ``neuron=``, the Neurons page on that neuron — whichever
page the URL names, on the first run of a session.

The shell's first run in a server process empties the upload folder (the sessions that held
those uploads ended with the previous server); later runs sweep it of uploads no session holds
(:func:`nn_tracing.ui.uploads.tidy`).

A stopped server exits promptly (:func:`freeze_heap_at_exit`): the interpreter's teardown does
not walk the heap of torch, numba and Streamlit with the garbage collector.
"""

from __future__ import annotations

import atexit
import gc
import threading
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from ..demos import DEMOS, demo_message, make_after_page, make_in_background, start_queued
from ..runs import ensure_demo_trace, runs_dir
from . import state, uploads
from .links import NEURONS_PAGE, open_neuron
from .sidebar import poll_job, render_sidebar
from .text import guarded, md_escape
from .traces import (
    catalogue,
    publish_trace_param,
    resolve_active,
    scrub_paths,
    shown_runs_dir,
    sync_trace_param,
)

__all__ = [
    "NEURONS_PAGE",
    "configure_page",
    "freeze_heap_at_exit",
    "navigation",
    "open_neuron",
    "page",
    "require_shell",
    "run_page",
    "shell",
]


_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def freeze_heap_at_exit() -> None:
    """Once per process: at interpreter exit, hand every object still alive to the garbage
    collector's permanent generation (:func:`gc.freeze`, a constant-time list splice).

    After Streamlit has stopped and the exit handlers ran, the interpreter's teardown runs
    full collections over the whole heap — the objects of torch, numba and Streamlit: about
    1.4 s of CPU (measured in ``docs/sharing.md``), many seconds on a busy
    machine, while the stopped server still holds its port and its terminal. Frozen, they
    are not traversed; modules are still torn down and objects freed by reference count, so
    only cyclic garbage left at exit goes uncollected, which the process's end frees anyway.
    Registered late, the hook runs before the handlers registered earlier (logging's flush,
    numba's and llvmlite's shut-down flags), which still run and collect what they make.
    """
    global _exit_hook_registered
    with _exit_hook_lock:
        if not _exit_hook_registered:
            atexit.register(gc.freeze)
            _exit_hook_registered = True


def configure_page() -> None:
    """``st.set_page_config`` for every page."""
    st.set_page_config(
        page_title="nn_tracing", page_icon="🧠", layout="wide", initial_sidebar_state="expanded"
    )


def page(path: str, title: str, icon: str, *, default: bool = False) -> Any:
    """An ``st.Page`` for a script in ``pages/``."""
    return st.Page(path, title=title, icon=icon, default=default)


def navigation(pages: Sequence[Any]) -> Any:
    """``st.navigation`` over an explicit list of pages; returns the current page."""
    return st.navigation(list(pages))


def require_shell() -> None:
    """Make sure a page runs inside the app shell (called first by every page).

    With a ``pages/`` folder next to the entrypoint, a fresh Streamlit server runs in its
    legacy "pages directory" mode until some run calls ``st.navigation``: the first visitor who
    opens a page URL directly (a deep link such as ``/neurons?trace=...``) would get that page
    script alone — no sidebar, no shell. This ends that mode and reruns, so the entrypoint
    runs and resolves the same URL through ``st.navigation``.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def _ensure_demo() -> None:
    if catalogue():
        return
    message = f"No traces in {md_escape(shown_runs_dir())} yet. " + md_escape(
        demo_message(DEMOS["moons"])
    )
    with st.spinner(message, show_time=True):
        try:
            made = ensure_demo_trace(runs_dir())
        except OSError as exc:
            st.error(
                f"Could not write the demo trace to {md_escape(shown_runs_dir())}: "
                f"{md_escape(exc.strerror or scrub_paths(str(exc)))}. Set NN_TRACING_RUNS_DIR "
                "to a folder you can write to."
            )
            return
    if made is not None:  # a first start: the digits demo follows, off the page's path
        make_in_background("digits", runs_dir(), before=made)
        # a second moons seed for the Compare page, once the first page is drawn
        make_after_page("moons-seed1", runs_dir(), before=made)


def _follow_deep_link(current: Any) -> None:
    """On a session's first run, ``neuron=`` in the URL opens the Neurons page."""
    if state.get(state.DEEP_LINK_DONE):
        return
    state.put(state.DEEP_LINK_DONE, True)
    if "neuron" in st.query_params and current.url_path == "":  # the default page
        st.switch_page(NEURONS_PAGE, query_params=st.query_params.to_dict())


def shell(current: Any, *, on_start: Sequence[Callable[[], None]] = ()) -> None:
    """Everything every page shares, drawn before the page itself.

    ``on_start``: functions called on every run (each cheap and idempotent, such as
    starting a background warm-up once per process); the entrypoint hands them over, so the
    shell never imports a page. They start after the demo trace is made (on a first start):
    a warm-up running beside the demo's training would slow it several times over.
    """
    freeze_heap_at_exit()
    with guarded("tidying the upload folder"):
        uploads.tidy()
    with guarded("preparing the demo trace"):
        _ensure_demo()
    for start in on_start:
        start()
    _follow_deep_link(current)
    sync_trace_param()
    poll_job()
    active, problem = resolve_active()
    publish_trace_param(active)
    if active is not None and active.source == "live":
        state.put(state.JOB_SEEN_VERSION, int(active.key.rsplit(":", 1)[1]))
    with guarded("drawing the sidebar"):
        render_sidebar(active, problem)


def run_page(current: Any) -> None:
    """Run the current page; an error no section of it caught becomes a message in place
    (never Streamlit's exception box), the traceback going to the server log."""
    with guarded(f"drawing the {getattr(current, 'title', 'current')} page"):
        current.run()
    start_queued()  # demos queued by a first start: made now that the page is drawn
