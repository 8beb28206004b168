"""The Dynamics page's decision-entropy section: are neurons less random when the network decides?

Per neuron and recorded epoch, the entropy of its binned probe activation, its conditional
entropy given the predicted (or the true) class and the mutual information, against label
permutations with FDR control (:class:`~nn_tracing.analysis.entropy.DecisionEntropy`, run on
the server's analysis worker through :func:`nn_tracing.ui.compute.run_analysis`): the
information per layer over training, the share of significant neurons, the layers at one
epoch and the neurons ranked at that epoch (a row opens the neuron). Widgets and layout only:
the frames and texts come from :mod:`nn_tracing.views.dynamics`; the Dynamics page
(``ui/dynamics.py``) owns the settings and their place in the URL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from ..analysis.entropy import DecisionEntropy
from ..progress import Progress
from ..timeaxis import time_key, time_prefix, time_title, time_word
from ..views import dynamics as view
from ..viz import dynamics as vd
from . import state
from .charts import neuron_table, show_chart
from .compute import run_analysis
from .text import md_escape
from .traces import ActiveTrace
from .widgets import epoch_picker

__all__ = ["decision_entropy"]

#: The page's defaults.
DEFAULTS = view.EntropyParams()


def _ensure(key: str, valid: Callable[[Any], bool], default: Any) -> None:
    if not valid(state.get(key)):
        state.put(key, default)


def _controls(random_state: int) -> view.EntropyParams:
    """The estimator's parameters, one widget each."""
    low, high = view.ENTROPY_BINS
    _ensure(
        state.DYNAMICS_ENTROPY_BINS,
        lambda v: isinstance(v, int) and low <= v <= high,
        DEFAULTS.n_bins,
    )
    _ensure(state.DYNAMICS_ENTROPY_BINNING, lambda v: v in view.BINNINGS, DEFAULTS.binning)
    _ensure(state.DYNAMICS_ENTROPY_LABEL, lambda v: v in view.ENTROPY_LABELS, DEFAULTS.label)
    _ensure(
        state.DYNAMICS_ENTROPY_PERMUTATIONS,
        lambda v: v in view.PERMUTATIONS,
        DEFAULTS.n_permutations,
    )
    _ensure(state.DYNAMICS_ENTROPY_ALPHA, lambda v: v in view.ALPHAS, DEFAULTS.alpha)
    _ensure(state.DYNAMICS_ENTROPY_FDR, lambda v: v in view.FDR_SCOPES, DEFAULTS.fdr)
    columns = [*st.columns(3), *st.columns(3)]  # two rows: six in one cut their labels
    columns[0].slider(
        "Bins", low, high, key=state.DYNAMICS_ENTROPY_BINS, help="quantile bins per neuron"
    )
    columns[1].selectbox(
        "Bins chosen",
        tuple(view.BINNINGS),
        key=state.DYNAMICS_ENTROPY_BINNING,
        format_func=view.binning_label,
        help=f"On {time_key(0)}: the same grid at every {time_word()}, so a neuron whose scale "
        f"changes also changes H(A). At each {time_word()}: H(A) stays near log2(bins) and only "
        "the information moves.",
    )
    columns[2].selectbox(
        "Label tested",
        tuple(view.ENTROPY_LABELS),
        key=state.DYNAMICS_ENTROPY_LABEL,
        format_func=view.ENTROPY_LABELS.__getitem__,
    )
    columns[3].selectbox("Permutations", view.PERMUTATIONS, key=state.DYNAMICS_ENTROPY_PERMUTATIONS)
    columns[4].selectbox("FDR", view.ALPHAS, key=state.DYNAMICS_ENTROPY_ALPHA)
    columns[5].selectbox(
        "Corrected over",
        tuple(view.FDR_SCOPES),
        key=state.DYNAMICS_ENTROPY_FDR,
        format_func=view.FDR_SCOPES.__getitem__,
    )
    return view.EntropyParams(
        n_bins=int(state.get(state.DYNAMICS_ENTROPY_BINS)),
        binning=str(state.get(state.DYNAMICS_ENTROPY_BINNING)),
        label=str(state.get(state.DYNAMICS_ENTROPY_LABEL)),
        n_permutations=int(state.get(state.DYNAMICS_ENTROPY_PERMUTATIONS)),
        alpha=float(state.get(state.DYNAMICS_ENTROPY_ALPHA)),
        fdr=str(state.get(state.DYNAMICS_ENTROPY_FDR)),
        random_state=random_state,
    )


def _layers(result: DecisionEntropy, epoch: int) -> None:
    """Information per layer over training, the share significant, and the layers at
    ``epoch``."""
    summary = result.layer_summary()
    left, right = st.columns([3, 2])
    with left:
        show_chart(vd.mi_layer_chart(summary, result.label, epoch))
    with right:
        show_chart(vd.significant_share_chart(summary, result.alpha))
    at_epoch = view.entropy_layer_table(summary, result.label, epoch)
    st.dataframe(
        at_epoch,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in at_epoch.columns
            if c.startswith(("median", "null"))
        },
    )


def _ranking(active: ActiveTrace, result: DecisionEntropy, epoch: int) -> None:
    """The neurons at ``epoch``, most informative first (a row opens the neuron)."""
    st.markdown(
        f"**Neurons at {time_key(epoch)}, most informative first** — select a row to open it"
    )
    ranking = view.entropy_ranking(active.trace, result, epoch)
    three_digits = (
        "H",
        "H|predicted",
        "H|true",
        "MI predicted",
        "MI true",
        "MI above null",
        f"MI at {time_key(0)}",
        f"H|{result.label} change since {time_key(0)}",
    )
    neuron_table(
        active.name,
        ranking.frame,
        ranking.signatures,
        key=state.DYNAMICS_ENTROPY_TABLE,
        max_height=360,
        column_config={
            **{c: st.column_config.NumberColumn(format="%.3f") for c in three_digits},
            "p": st.column_config.NumberColumn(format="%.3g"),
            "q": st.column_config.NumberColumn(format="%.3g"),
            "G-test p": st.column_config.NumberColumn(format="%.2g"),
            "significant since": st.column_config.NumberColumn(format=time_prefix() + "%d"),
        },
    )
    st.caption(view.significance_caption(result, epoch))


def decision_entropy(active: ActiveTrace, *, epoch_key: str, random_state: int) -> None:
    """Draw the section on ``active``: its controls, then the measurement (on the worker,
    with a progress bar) and what it shows; ``epoch_key``: the widget key of the epoch of the
    ranking (one per trace); ``random_state``: seeds the label permutations."""
    trace = active.trace
    if trace.probe is None:
        st.info(
            "Decision entropy needs the probe set's activations, and this trace was recorded "
            "without a probe (statistics streamed over training batches)."
        )
        return
    verdict = st.container()
    with st.expander("Settings: bins, label tested, permutations, FDR"):
        params = _controls(random_state)

    def measure(progress: Progress) -> DecisionEntropy:
        return params.estimator().fit(trace, progress=progress)

    try:
        result = run_analysis(
            "dynamics:entropy",
            active.key,
            params.fit_params(),
            measure,
            label=f"Binning every neuron at {len(trace.epochs)} {time_word(plural=True)} against "
            f"{params.n_permutations} label permutations",
        )
    except ValueError as exc:
        st.info(f"Decision entropy cannot be measured: {md_escape(exc, 500)}")
        return
    assert result is not None  # no estimate: never waits for a click
    verdict.info(md_escape(result.describe(), 600), icon=":material/insights:")
    epoch = epoch_picker(f"{time_title()} of the ranking", trace.epochs, epoch_key)
    _layers(result, epoch)
    with st.expander(f"Neurons at {time_key(epoch)}, most informative first", expanded=True):
        _ranking(active, result, epoch)
