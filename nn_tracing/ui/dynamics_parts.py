"""What the Dynamics page's sections share: computing on the server's analysis worker, EM's
notes, the shuffled-time test and fitted states in words.

Widgets and layout only; the sections are ``ui/dynamics.py`` (the page, the training map),
``ui/dynamics_neurons.py`` and ``ui/dynamics_entropy.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from ..analysis.hmm import TimeShuffleTest
from ..progress import Progress
from . import state
from .compute import run_analysis
from .text import md_escape

__all__ = ["WHAT", "compute", "convergence", "ensure", "state_list", "time_test"]

T = TypeVar("T")

#: Prefix of this page's results in the worker's store.
WHAT = "dynamics:"


def compute(what: str, trace_key: str, params: Any, label: str, run: Callable[[Progress], T]) -> T:
    """``run(progress)`` for ``(what, trace_key, params)`` through :func:`run_analysis` (a
    progress bar; ``progress(fraction, what)``). Errors pass to the caller."""
    return run_analysis(WHAT + what, trace_key, params, run, label=label)  # type: ignore[return-value]


def ensure(key: str, valid: Callable[[Any], bool], default: Any) -> Any:
    if not valid(state.get(key)):
        state.put(key, default)
    return state.get(key)


def convergence(note: str | None, messages: list[str]) -> None:
    """Say when EM did not converge, and what hmmlearn reported (never on the console)."""
    if note:
        st.warning(
            f"{md_escape(note, 400)} Its states may still move with more iterations; read them "
            "with care.",
            icon=":material/warning:",
        )
    if messages:
        with st.expander(f"What hmmlearn reported while fitting ({len(messages)})"):
            for message in messages[:20]:
                st.text(message)


def time_test(test: TimeShuffleTest | None, *, quiet: bool = False) -> None:
    """The shuffled-time test: its p as a metric and its description (a coloured box, or a
    caption when a verdict above already says what it means)."""
    if test is None:
        return
    left, right = st.columns([1, 4])
    left.metric(
        "p, shuffled time",
        f"{test.p_value:.3g}",
        help=f"{test.n_permutations} refits on copies with time shuffled within each sequence; the "
        f"smallest possible p is {test.smallest_p:.3g}.",
    )
    if quiet:
        right.caption(md_escape(test.describe(), 600))
    else:
        (right.success if test.p_value <= 0.05 else right.warning)(md_escape(test.describe(), 600))


def state_list(labels: list[str], descriptions: list[str], detours: list[bool]) -> None:
    """Every state in words, one bullet each (a detour says so)."""
    st.markdown(
        "\n".join(
            f"- **{label}**{' (detour)' if detour else ''} — {md_escape(description, 400)}"
            for label, description, detour in zip(labels, descriptions, detours, strict=True)
        )
    )
