"""The Dynamics page's phase reading: the training map's states as grokking's phases.

Drawn before the map (:func:`phase_reading`) on a run whose curves go through grokking's
phases (memorisation, then a plateau or a transition; otherwise one caption says so): a strip of
the phases (memorisation, plateau, transition, clean-up, other) with the key where each starts,
the phases' table (their states and what the curves do in them), each boundary beside the jump
in the accuracies near it, and the rules in words. What it shows is
:func:`nn_tracing.views.dynamics.phase_reading`'s (the library's
:func:`~nn_tracing.analysis.hmm.read_phases`); a map over per-step tables or a trace without
accuracies draws nothing here.
"""

from __future__ import annotations

import streamlit as st

from ..analysis.hmm import PHASE_RULES, TrainingMap
from ..timeaxis import time_key
from ..trace import NetworkTrace
from ..views import dynamics as view
from ..viz import dynamics as vd
from .charts import show_chart
from .text import md_escape

__all__ = ["phase_reading"]


def _rules() -> None:
    st.markdown(
        "\n".join(f"- **{phase}**: {md_escape(rule, 300)}" for phase, rule in PHASE_RULES.items())
    )
    st.caption(
        "Each span of the map's path (consecutive points in one state) is read by these rules, "
        "in this order, from the training and validation accuracy inside it; consecutive spans of "
        "one phase are one phase. The weight norm is reported, not used (an MLP's weight decay "
        "holds it flat where a transformer's falls in clean-up). Descriptive thresholds, no test "
        "against chance."
    )


def phase_reading(trace: NetworkTrace, fitted: TrainingMap) -> None:
    """The phases of the map's states on ``trace``'s curves (nothing when they cannot be read)."""
    reading = view.phase_reading(trace, fitted)
    if reading is None:
        return
    phases = reading.phases
    if not reading.grokking_like:  # one line: the strip is for runs that grok
        st.caption(f"Phases: {md_escape(reading.headline(), 600)}")
        return
    st.markdown(f"**Phases.** {md_escape(reading.headline(), 600)}")
    show_chart(vd.phase_strip_chart(phases, time_column=reading.time_column))
    table = phases[["phase", "first", "last", "states", "description"]].assign(
        first=[time_key(int(v)) for v in phases["first"]],
        last=[time_key(int(v)) for v in phases["last"]],
    )
    st.dataframe(
        table.rename(columns={"first": "from", "last": "to", "states": "map states"}),
        hide_index=True,
    )
    boundaries = view.phase_boundary_table(reading)
    if len(boundaries):
        st.dataframe(boundaries, hide_index=True)
        st.caption(
            "Each phase boundary beside the jump near it: the largest change of training or "
            "validation accuracy between two recorded points, over the states on either side."
        )
    with st.expander("How the states are read as phases"):
        _rules()
