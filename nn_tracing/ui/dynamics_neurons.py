"""The Dynamics page's neuron-level section: one HMM shared by every neuron.

One Gaussian HMM over every neuron's standardised trajectory (:class:`NeuronHMM`, fitted on
the server's analysis worker): its figures and shuffled-time test first, the raster of every
neuron's path (a click opens the neuron), then the settings and the per-neuron tables, folded.
Widgets and layout only; the Dynamics page (``ui/dynamics.py``) owns the settings' place in
the URL.
"""

from __future__ import annotations

import dataclasses
import json

import streamlit as st

from ..analysis.hmm import NEURON_FEATURES, NeuronHMM
from ..timeaxis import time_word
from ..trace import METRICS
from ..views import dynamics as view
from ..viz import dynamics as vd
from . import cache, state
from .charts import neuron_table, show_chart
from .compute import computed
from .dynamics_k import k_boundary_note, k_max_setting
from .dynamics_parts import WHAT, compute, convergence, ensure, state_list, time_test
from .links import open_picked
from .text import md_escape
from .traces import ActiveTrace

__all__ = ["MAX_NEURONS", "ORDER_DEFAULT", "neuron_states_section"]

#: The defaults of the neuron-level model (the page's settings' defaults are these).
_NEURONS = view.NeuronParams(layers=())
#: The largest sample of neurons the page's number input allows.
MAX_NEURONS = 10_000_000
#: How the raster's rows are ordered by default.
ORDER_DEFAULT = "layer"


def _neuron_controls(active: ActiveTrace, layers_key: str, random_state: int) -> view.NeuronParams:
    layers = view.hidden_layers(active.trace)
    ensure(
        state.DYNAMICS_NEURON_FEATURES,
        lambda v: isinstance(v, list) and v and set(v) <= set(METRICS),
        list(NEURON_FEATURES),
    )
    ensure(layers_key, lambda v: isinstance(v, list) and v and set(v) <= set(layers), layers)
    ensure(
        state.DYNAMICS_NEURON_STANDARDIZE,
        lambda v: v in view.NEURON_STANDARDIZE,
        _NEURONS.standardize,
    )
    ensure(state.DYNAMICS_NEURON_K, lambda v: v in view.NEURON_K_CHOICES, _NEURONS.k)
    ensure(
        state.DYNAMICS_NEURON_MAX,
        lambda v: isinstance(v, int) and 100 <= v <= MAX_NEURONS,
        _NEURONS.max_neurons,
    )
    columns = st.columns([3, 2, 1.6, 1, 1.2])  # room for "within each layer"
    columns[0].multiselect(
        "Features of each neuron's trajectory",
        list(METRICS),
        key=state.DYNAMICS_NEURON_FEATURES,
        help="Standardised; gradient and weight norms and the activation spread on a log "
        "scale. A neuron never active has no selectivity: it counts as 0.",
    )
    columns[1].multiselect("Layers", layers, key=layers_key)
    columns[2].selectbox(
        "Standardise",
        tuple(view.NEURON_STANDARDIZE),
        key=state.DYNAMICS_NEURON_STANDARDIZE,
        format_func=view.NEURON_STANDARDIZE.__getitem__,
    )
    columns[3].selectbox(
        "States", view.NEURON_K_CHOICES, key=state.DYNAMICS_NEURON_K, format_func=view.k_label
    )
    columns[4].number_input(
        "Most neurons",
        min_value=100,
        max_value=MAX_NEURONS,
        step=1000,
        key=state.DYNAMICS_NEURON_MAX,
        help="The model holds every neuron's trajectory in memory: above this many neurons, a "
        "random sample of this many (seed 0, the same every time) is modelled.",
    )
    return view.NeuronParams(
        layers=tuple(state.get(layers_key)),
        features=tuple(state.get(state.DYNAMICS_NEURON_FEATURES)),
        standardize=str(state.get(state.DYNAMICS_NEURON_STANDARDIZE)),
        k=str(state.get(state.DYNAMICS_NEURON_K)),
        random_state=random_state,
        max_neurons=int(state.get(state.DYNAMICS_NEURON_MAX)),
        k_max=k_max_setting(state.DYNAMICS_NEURON_KMAX, view.NeuronParams(layers=()).k_max),
    )


def _fit_neurons(active: ActiveTrace, params: view.NeuronParams) -> NeuronHMM:
    trace = active.trace
    fit_params = params.fit_params()
    base = compute(
        "neurons",
        active.key,
        fit_params,
        f"Fitting one HMM to {params.n_neurons(trace):,} neurons × {len(trace.epochs)} "
        f"{time_word(plural=True)} "
        f"(k = 2…{params.k_max} by BIC)",
        lambda progress: params.estimator().fit(trace, progress=progress),
    )
    k = base.choose_k(params.k)
    if k == base.n_states_:
        return base
    return compute(
        "neurons-k", active.key, [fit_params, k], "Choosing k", lambda _: view.with_states(base, k)
    )


def _neuron_summary(model: NeuronHMM) -> None:
    """What the model was fitted on, its convergence, and its figures."""
    st.caption(
        f"One Gaussian HMM over {len(model.neuron_ids_):,} neurons' trajectories of "
        f"{len(model.epochs_)} {time_word(plural=True)} "
        f"({md_escape(', '.join(model.feature_names_), 300)}), "
        f"fitted once per k with hmmlearn-style lengths. "
        + " ".join(md_escape(n, 300) for n in model.notes_)
        + (
            f" {len(model.dropped_)} neuron(s) left out: a feature undefined at some epoch."
            if model.dropped_
            else ""
        )
    )
    convergence(model.state_model_.convergence_note(), model.log_messages_)
    summary = view.neuron_summary(model)
    columns = st.columns(4)
    columns[0].metric(
        "States",
        summary.n_states,
        help=f"by BIC over k = {model.k_range[0]}…{model.k_range[1]} unless chosen by hand",
    )
    columns[1].metric(
        f"Entropy rate (bits/{time_word()})",
        f"{summary.entropy_rate:.3f}",
        help=f"Uncertainty of a neuron's next state given its current one, weighted by where "
        f"neurons are; 0 = they never switch, {summary.max_entropy_rate:.2f} = they jump at "
        "random.",
    )
    columns[2].metric("Switches per neuron", f"{summary.switches:.2f}", help="mean over neurons")
    columns[3].metric(
        "Occupancy entropy",
        f"{summary.occupancy_entropy:.2f} bits",
        help="mean over neurons of the entropy of the share of epochs each spends in each state",
    )


def _neuron_raster(active: ActiveTrace, model: NeuronHMM, params: view.NeuronParams) -> None:
    """The choice of k, and every neuron's path as a raster (a click opens the neuron)."""
    k = model.n_states_
    left, right = st.columns([2, 3])
    with left:
        show_chart(vd.selection_chart(model.selection_, params.criterion, k))
        k_boundary_note(model.selection_, params, state.DYNAMICS_NEURON_KMAX)
    with right:
        ensure(state.DYNAMICS_NEURON_ORDER, lambda v: v in view.NEURON_ORDERS, ORDER_DEFAULT)
        order = st.radio(
            "Order the rows by",
            tuple(view.NEURON_ORDERS),
            key=state.DYNAMICS_NEURON_ORDER,
            format_func=view.NEURON_ORDERS.__getitem__,
            horizontal=True,
        )
        chart = cache.chart(
            "dynamics-raster",
            f"{active.key}:{json.dumps(dataclasses.asdict(params), sort_keys=True, default=str)}",
            (order, k),
            lambda: view.state_raster(model, str(order)),
        )
        event = show_chart(chart, select=vd.PICK, key=state.DYNAMICS_RASTER_CHART)
        open_picked(active, event)


def _neuron_tables(active: ActiveTrace, model: NeuronHMM) -> None:
    """The states in words and as a table; the unusual paths and every neuron (a row opens
    the neuron)."""
    st.markdown("**The states**")
    states = model.state_table()
    state_list(list(states["label"]), list(states["description"]), [False] * len(states))
    st.dataframe(
        states.drop(columns=["state", "description", "stationary"]),
        hide_index=True,
        column_config={
            "share of neuron-epochs": st.column_config.NumberColumn(format="%.3f"),
            "stay": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    left, right = st.columns(2)
    with left:
        st.markdown("**Unusual paths** — select a row to open the neuron")
        unusual = view.unusual_neurons(active.trace, model)
        if unusual.frame.empty:
            st.caption("No neuron visits a rare state or has an unusually unlikely path.")
        else:
            neuron_table(
                active.name,
                unusual.frame,
                unusual.signatures,
                key=state.DYNAMICS_UNUSUAL_TABLE,
                max_height=320,
                column_config={
                    "log-likelihood per epoch": st.column_config.NumberColumn(format="%.2f"),
                    "likelihood percentile": st.column_config.NumberColumn(format="%.1f"),
                },
            )
            st.caption(
                "A rare state is visited by fewer than 5 % of the neurons; an unlikely path "
                "is among the 5 % of lowest log-likelihood under the shared model."
            )
    with right:
        st.markdown("**Every neuron** — select a row to open it")
        every = view.every_neuron(active.trace, model)
        formatted = ["occupancy entropy", "log-likelihood per epoch"]
        neuron_table(
            active.name,
            every.frame,
            every.signatures,
            key=state.DYNAMICS_NEURON_TABLE,
            max_height=320,
            column_config={
                c: st.column_config.NumberColumn(format="%.2f")
                for c in [*formatted, *(f"S{j}" for j in range(model.n_states_))]
            },
        )


def _neuron_time_test(active: ActiveTrace, model: NeuronHMM, params: view.NeuronParams) -> None:
    """The shuffled-time test of the neuron-level model, when asked for (or already run)."""
    st.markdown("**Is there temporal structure at all?**")
    test_params = [dataclasses.asdict(params), model.n_states_]
    test_key = json.dumps([active.key, test_params], sort_keys=True, default=str)
    asked = state.get(state.DYNAMICS_NEURON_TEST) == test_key
    if not asked and not computed(WHAT + "neurons-test", active.key, test_params):
        st.caption(
            f"19 refits of the same model on copies with each neuron's {time_word(plural=True)} "
            "shuffled: about "
            "20 fits of this size."
        )
        st.button(
            "Run the shuffled-time test",
            key=state.DYNAMICS_NEURON_TEST_BUTTON,
            on_click=state.put,
            args=(state.DYNAMICS_NEURON_TEST, test_key),
        )
        return
    test = compute(
        "neurons-test",
        active.key,
        test_params,
        "Shuffled-time test (19 refits)",
        lambda progress: model.time_test(19, progress),
    )
    time_test(test)


def neuron_states_section(active: ActiveTrace, *, layers_key: str, random_state: int) -> None:
    """Draw the section on ``active``: its verdict first (the model's figures and its
    shuffled-time test), the raster, then the settings (``layers_key``: the layers widget's
    key, one per trace) and the tables, folded."""
    if len(active.trace.epochs) < 2:
        st.info("A neuron-level HMM needs at least 2 recorded epochs; this trace has 1.")
        return
    verdict = st.container()
    with st.expander("Settings: features, layers, number of states"):
        params = _neuron_controls(active, layers_key, random_state)
    if not params.features or not params.layers:
        st.info("Pick at least one feature and one layer (in the settings).")
        return
    try:
        model = _fit_neurons(active, params)
    except ValueError as exc:
        st.info(f"The neuron-level model cannot be fitted: {md_escape(exc, 500)}")
        return
    with verdict:
        _neuron_summary(model)
        _neuron_time_test(active, model, params)
        st.caption(md_escape(params.load_text(active.trace), 400))
    _neuron_raster(active, model, params)
    with st.expander("The states in words, unusual paths and every neuron"):
        _neuron_tables(active, model)
