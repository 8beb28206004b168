"""Every page opens with what it found on this trace: the findings block under the title.

A page script draws itself inside :func:`findings_first`::

    with ui.findings_first("clusters"):
        ui.render_clusters()

It draws the page's title and, under it, a box of findings (:mod:`nn_tracing.views.findings`)
from what is already computed — the trace, its health, and the analyses any visitor ran on it,
read back from the analysis worker's store (:meth:`nn_tracing.work.ResultStore.latest`). The
box is drawn first from what the store holds, then again when the page has run, with what the
page computed meanwhile (a test run on the first visit shows in the box at once). Each finding
links to where it is shown. The Overview's box gathers the strongest findings of every page,
and on a demo trace offers the other demo (:mod:`nn_tracing.demos`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from ..analysis.dormancy import DEFAULT_TAU, hidden_layers
from ..demos import DEMOS, demo_message, make_demo
from ..views import findings as views
from ..views.findings import PAGES, Finding
from ..views.neurons import PICKER_MAX
from ..views.text import md_escape
from ..work import WORKER
from . import cache, state
from .app import require_shell
from .overview import deferred
from .text import guarded
from .traces import (
    ActiveTrace,
    resolve_active,
    run_ref,
    scrub_paths,
    set_active,
    shown_runs_dir,
)

__all__ = ["findings_first", "page_findings"]

#: How each status is marked (a Streamlit Markdown icon).
_MARKS: dict[str, str] = {
    "passed": ":green[:material/check_circle:]",
    "chance": ":orange[:material/block:]",
    "untested": ":blue[:material/help:]",
    "fact": ":gray[:material/info:]",
}
#: What the Overview's box shows at most.
OVERVIEW_MOST = 8


def _latest(what: str, active: ActiveTrace) -> tuple[Any, Any] | None:
    return WORKER.store.latest(what, active.key)


def _value(what: str, active: ActiveTrace) -> Any:
    found = _latest(what, active)
    return None if found is None else found[1]


def _selectivity(active: ActiveTrace) -> tuple[int, Any] | None:
    found = _latest("neurons:selectivity", active)
    if found is None:
        return None
    params, table = found
    return int(params[0]), table


def _health(active: ActiveTrace, *, always: bool = False) -> Any:
    """Every neuron's health on a trace small enough that the pages draw it at once, or
    (``always``) when the page computes it anyway — never on a large trace just for the
    findings."""
    if always or active.trace.n_neurons <= PICKER_MAX:
        return cache.health(active.key, active.trace)
    return None


def _dormant(active: ActiveTrace) -> dict[str, Any]:
    """The Overview's τ-dormant flags at the default τ (the page computes them anyway)."""
    trace = active.trace
    if not hidden_layers(trace):
        return {}
    dormant, applies = cache.dormancy_of(active.key, trace).flags(DEFAULT_TAU, trace.n_neurons)
    return {
        "dormant": dormant,
        "dormant_applies": applies,
        "dormant_definition": (
            f"τ-dormant at τ = {DEFAULT_TAU:g}: mean |activation| on the probe at most τ × its "
            "layer's average (Sokar et al. 2023)."
        ),
    }


def page_findings(page: str, active: ActiveTrace) -> list[Finding]:
    """The findings of ``page`` on ``active`` (the Overview's: the strongest of every page)."""
    trace = active.trace
    if page == "neurons":
        return views.neurons_findings(trace, _health(active), _selectivity(active))
    if page == "clusters":
        return views.clusters_findings(_value("chance", active))
    if page == "dynamics":
        # the training map may have been fitted on this run and its seeds together
        found = WORKER.store.latest_among("dynamics:map", active.key)
        fitted = None if found is None else found[1]
        return views.dynamics_findings(trace, fitted, _value("dynamics:entropy", active))
    if page == "breadcrumbs":
        return views.breadcrumbs_findings(trace, _latest("breadcrumbs:trail-check", active))
    selectivity = _selectivity(active)
    by_page = {
        "overview": views.overview_findings(
            trace,
            _health(active, always=bool(state.get(state.OVERVIEW_OWN_HEALTH))),
            **_dormant(active),
        ),
        "neurons": views.neurons_findings(trace, None, selectivity) if selectivity else [],
        **{
            other: page_findings(other, active) for other in ("clusters", "dynamics", "breadcrumbs")
        },
    }
    return views.strongest(by_page, OVERVIEW_MOST)


def _link(finding: Finding, page: str, active: ActiveTrace) -> None:
    """The link to where ``finding`` is shown (its page, its neuron), or where on this page."""
    params = {"trace": active.name} if active.name else {}
    if finding.neuron is not None:
        st.page_link(
            "pages/neurons.py",
            label=f"Open {finding.neuron.rsplit('/', 1)[-1]}",
            icon=":material/neurology:",
            query_params={**params, "neuron": finding.neuron},
        )
    elif finding.page != page:
        st.page_link(
            f"pages/{finding.page}.py",
            label=PAGES[finding.page],
            icon=":material/arrow_forward:",
            help=f"Shown on the {PAGES[finding.page]} page, under “{finding.section}”",
            query_params=params,
        )
    else:
        st.caption(f"Below: {md_escape(finding.section)}")


def _draw(page: str, active: ActiveTrace) -> None:
    found = page_findings(page, active)
    with st.container(border=True):
        st.markdown("**Findings on this trace**" if page != "overview" else "**Findings**")
        for finding in found:
            text, link = st.columns([5, 1], vertical_alignment="center")
            text.markdown(f"{_MARKS[finding.status]} {finding.text}")
            with link:
                _link(finding, page, active)
        st.caption(
            "Only claims that beat their test against chance are stated as findings; the rest "
            "say “not distinguishable from chance”, or where to run the test."
        )


def _load_demo(key: str) -> None:
    """The demo button's callback (it runs before the page, so no rerun can lose the click):
    make the demo if needed, make it the session's trace; a failure goes to the sidebar."""
    demo = DEMOS[key]
    try:
        with st.spinner(demo_message(demo), show_time=True):
            path = make_demo(key)
    except OSError as exc:
        text = (
            f"Could not write the {demo.title} to {shown_runs_dir()}: "
            f"{exc.strerror or scrub_paths(str(exc))}."
        )
        state.put(state.TRACE_MESSAGE, ("error", text))
        return
    set_active(run_ref(path.stem))


def _demo_picker(active: ActiveTrace) -> None:
    """On a demo trace: a button for each other demo (made once, in seconds)."""
    if not active.trace.meta.get("demo"):
        return
    others = [(key, demo) for key, demo in DEMOS.items() if demo.name != active.name]
    # one row, each button as wide as its label (equal columns cut the longer labels)
    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"This is a demo trace ({md_escape(active.name or '')}).", width="content")
        for key, demo in others:
            st.button(
                f"Load the {demo.title}",
                key=f"{state.DEMO_BUTTON}:{key}",
                on_click=_load_demo,
                args=(key,),
            )


@contextmanager
def findings_first(page: str) -> Iterator[None]:
    """Draw ``page``'s title and its findings box, then the page (the body of the ``with``),
    then the box again with what the page computed. Nothing but the title without a trace. On
    a trace above ``PICKER_MAX`` neurons the box is written only after the page, so that the
    page's first chart does not wait for the health the Overview's findings need."""
    require_shell()  # first: a page run alone (no shell yet) must not resolve the trace
    st.title(PAGES[page])
    active, _ = resolve_active()
    if active is None:
        yield
        return
    slot = st.empty()
    with guarded("writing the findings"), slot.container():
        if active.trace.n_neurons <= PICKER_MAX:
            _draw(page, active)
        else:  # a big trace: the page's own first chart comes before the health it would need
            st.caption("The findings on this trace appear here once the page below is drawn.")
    if page == "overview":
        with guarded("offering the demos"):
            _demo_picker(active)
    yield
    again, _ = resolve_active()
    if page == "overview" and again is not None and deferred(again):
        return  # the Overview's sections come in the next run, and the findings with them
    if again is not None and again.key == active.key:
        with guarded("writing the findings"), slot.container():
            _draw(page, active)
