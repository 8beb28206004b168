"""The Dynamics page: hidden-Markov training maps, neuron-level states and decision entropy.

Three sections, each a fragment (a control redraws only its section), each guarded (an
analysis that cannot run on this trace says why in place and the rest of the page works):

1. **Training map** (Hu et al. 2023): model-level weight statistics per recorded epoch (or per
   training step), an HMM with k chosen by BIC/AIC (or by hand), the states along the training
   curves, the posteriors and their entropy, the map of states and observed transitions,
   detour states when several runs of the configuration are fitted jointly, and the
   shuffled-time test. Runs of the same configuration are found in the runs folder
   (:mod:`nn_tracing.seeds`); more seeds can be trained in the background from here.
2. **Neuron-level latent states**: one HMM shared by every neuron (:class:`NeuronHMM`), its
   raster of paths, per-neuron tables (a row opens the neuron) and its own shuffled-time test.
3. **Decision entropy**: entropy and mutual information of every neuron's binned activation
   with the decision, against label permutations with FDR control (:class:`DecisionEntropy`).

This module holds the widgets and the layout only: what the page shows is built by
:mod:`nn_tracing.views.dynamics` from the trace and plain parameters, and every computation is
:mod:`nn_tracing.analysis.hmm`'s or ``entropy``'s. They run on the server's analysis worker
through :func:`nn_tracing.ui.compute.run_analysis` (one at a time, a progress bar; results kept
by (what, trace digests, parameters) and shared between sessions). Stored results are never
modified; a manual choice of k is a copy.

Every control of the page lives in the address bar (:data:`URL`, made with
:mod:`nn_tracing.ui.url`): the URL is restored into the widgets first, and each section writes
the settings back when it has drawn its widgets, so a shared link opens the same view.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from ..analysis.hmm import (
    FEATURE_DESCRIPTIONS,
    NEURON_FEATURES,
    ModelFeatures,
    NeuronHMM,
    TimeShuffleTest,
    TrainingMap,
)
from ..analysis.standardise import ALIASES
from ..progress import Progress
from ..timeaxis import time_word, use_axis
from ..trace import METRICS, NetworkTrace
from ..views import dynamics as view
from ..viz import dynamics as vd
from . import cache, state, url
from .app import require_shell
from .charts import neuron_table, show_chart
from .compute import computed, run_analysis
from .dynamics_entropy import decision_entropy
from .dynamics_k import k_boundary_note, k_max_setting
from .dynamics_runs import MAX_SEED_JOBS, runs_picker
from .follow import live_note
from .links import open_picked
from .neuron_states import neuron_states  # the shared fit, kept importable from here
from .text import guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active

__all__ = ["NEURON_FEATURES", "URL", "Settings", "neuron_states", "render_dynamics"]

T = TypeVar("T")

#: Choices of k: by a criterion, or a number of states.
K_CHOICES = view.K_CHOICES
#: The defaults of the three analyses (the settings' defaults are theirs).
_MAP = view.MapParams(features=())
_NEURONS = view.NeuronParams(layers=())
#: The largest sample of neurons the page's number input allows.
MAX_NEURONS = 10_000_000
_ENTROPY = view.EntropyParams()


# -- settings ----------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every control of the page — also what the URL carries (see :data:`URL`): each field
    names its query parameter and its widget's key. A field is ``None`` where its widget holds
    nothing (it is not drawn on this trace); the defaults are the page's. The checks here are
    the ones a URL can fail without the trace; the widgets check the rest (runs, features,
    layers, epochs) against it."""

    seed: int | None = url.param("seed", state.DYNAMICS_RANDOM_STATE, default=0, low=0)
    # the training map (the runs of the same configuration fitted with the active one)
    runs: tuple[str, ...] | None = url.param(
        "runs", state.DYNAMICS_RUNS, default=None, per_trace=True, keep_empty=True
    )
    sequence: str | None = url.param(
        "seq", state.DYNAMICS_SEQUENCE, default=_MAP.sequence, choices=view.SEQUENCES
    )
    features: tuple[str, ...] | None = url.param(
        "features", state.DYNAMICS_MAP_FEATURES, default=None, per_trace=True
    )
    step_features: tuple[str, ...] | None = url.param(
        "step_features", state.DYNAMICS_MAP_STEP_FEATURES, default=None, per_trace=True
    )
    k: str | None = url.param("k", state.DYNAMICS_MAP_K, default=_MAP.k, choices=K_CHOICES)
    k_max: int | None = url.param(
        "kmax", state.DYNAMICS_MAP_KMAX, default=_MAP.k_max, low=2, high=view.MAX_K
    )
    restarts: int | None = url.param(
        "restarts",
        state.DYNAMICS_MAP_RESTARTS,
        default=_MAP.restarts,
        low=view.MAP_RESTARTS[0],
        high=view.MAP_RESTARTS[1],
    )
    shuffles: int | None = url.param(
        "shuffles",
        state.DYNAMICS_MAP_SHUFFLES,
        default=_MAP.n_permutations,
        choices=view.TIME_SHUFFLES,
    )
    zscore: str | None = url.param(
        "zscore",
        state.DYNAMICS_MAP_STANDARDIZE,
        default=_MAP.standardize,
        choices=view.MAP_STANDARDIZE,
        aliases=ALIASES,  # "pooled", the old name of "global"
    )
    curve: str | None = url.param(
        "curve", state.DYNAMICS_MAP_CURVE, default="loss", choices=view.CURVES
    )
    new_seeds: int | None = url.param(
        "new_seeds", state.DYNAMICS_SEED_COUNT, default=1, low=1, high=MAX_SEED_JOBS
    )
    # neuron-level states
    neuron_features: tuple[str, ...] | None = url.param(
        "nfeatures", state.DYNAMICS_NEURON_FEATURES, default=_NEURONS.features, choices=METRICS
    )
    neuron_layers: tuple[str, ...] | None = url.param(
        "nlayers", state.DYNAMICS_NEURON_LAYERS, default=None, per_trace=True
    )
    neuron_standardize: str | None = url.param(
        "nstd",
        state.DYNAMICS_NEURON_STANDARDIZE,
        default=_NEURONS.standardize,
        choices=view.NEURON_STANDARDIZE,
    )
    neuron_k: str | None = url.param(
        "nk", state.DYNAMICS_NEURON_K, default=_NEURONS.k, choices=view.NEURON_K_CHOICES
    )
    neuron_k_max: int | None = url.param(
        "nkmax", state.DYNAMICS_NEURON_KMAX, default=_NEURONS.k_max, low=2, high=view.MAX_K
    )
    neuron_max: int | None = url.param(
        "nmax", state.DYNAMICS_NEURON_MAX, default=_NEURONS.max_neurons, low=100, high=MAX_NEURONS
    )
    order: str | None = url.param(
        "order", state.DYNAMICS_NEURON_ORDER, default="layer", choices=view.NEURON_ORDERS
    )
    # decision entropy
    bins: int | None = url.param(
        "bins",
        state.DYNAMICS_ENTROPY_BINS,
        default=_ENTROPY.n_bins,
        low=view.ENTROPY_BINS[0],
        high=view.ENTROPY_BINS[1],
    )
    binning: str | None = url.param(
        "binning", state.DYNAMICS_ENTROPY_BINNING, default=_ENTROPY.binning, choices=view.BINNINGS
    )
    label: str | None = url.param(
        "label", state.DYNAMICS_ENTROPY_LABEL, default=_ENTROPY.label, choices=view.ENTROPY_LABELS
    )
    permutations: int | None = url.param(
        "perms",
        state.DYNAMICS_ENTROPY_PERMUTATIONS,
        default=_ENTROPY.n_permutations,
        choices=view.PERMUTATIONS,
    )
    alpha: float | None = url.param(
        "alpha", state.DYNAMICS_ENTROPY_ALPHA, default=_ENTROPY.alpha, choices=view.ALPHAS
    )
    fdr: str | None = url.param(
        "fdr", state.DYNAMICS_ENTROPY_FDR, default=_ENTROPY.fdr, choices=view.FDR_SCOPES
    )
    epoch: int | None = url.param(
        "epoch", state.DYNAMICS_ENTROPY_EPOCH, default=None, per_trace=True
    )

    def hidden(self) -> set[str]:
        """The settings that do not apply to these choices (left out of the URL)."""
        hidden = {"step_features"} if self.sequence != "steps" else {"features"}
        if not self.runs:  # one run: nothing to z-score across
            hidden.add("zscore")
        return hidden


#: The page's settings in the address bar, bound to the widgets' keys.
URL = url.PageURL(Settings, page="dynamics")
#: The page's defaults (the widgets fall back to them).
DEFAULTS = Settings()


def _held(ref: str) -> Settings:
    """The settings the widgets hold now (``None`` where a widget holds nothing)."""
    values = {}
    for item in dataclasses.fields(Settings):
        value = state.get(URL.key(item.name, ref))
        values[item.name] = tuple(value) if isinstance(value, list) else value
    return Settings(**values)


def _publish(ref: str) -> None:
    """The settings the widgets hold into the address bar (after a section drew its own)."""
    with guarded("writing the settings into the address bar"):
        settings = _held(ref)
        URL.publish(settings, ref, hidden=settings.hidden())


# -- computations: the server's analysis worker (nn_tracing.ui.compute) ------------------------
#: Prefix of this page's results in the worker's store.
_WHAT = "dynamics:"


def _compute(what: str, trace_key: str, params: Any, label: str, run: Callable[[Progress], T]) -> T:
    """``run(progress)`` for ``(what, trace_key, params)`` through :func:`run_analysis` (a
    progress bar; ``progress(fraction, what)``). Errors pass to the caller."""
    return run_analysis(_WHAT + what, trace_key, params, run, label=label)  # type: ignore[return-value]


def _random_state() -> int:
    """The page's random seed (restarts, time shuffles, label permutations)."""
    return int(
        _ensure(state.DYNAMICS_RANDOM_STATE, lambda v: isinstance(v, int) and v >= 0, DEFAULTS.seed)
    )


def _ensure(key: str, valid: Callable[[Any], bool], default: Any) -> Any:
    if not valid(state.get(key)):
        state.put(key, default)
    return state.get(key)


def _convergence(note: str | None, messages: list[str]) -> None:
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


def _time_test(test: TimeShuffleTest | None) -> None:
    if test is None:
        return
    left, right = st.columns([1, 4])
    left.metric(
        "p, shuffled time",
        f"{test.p_value:.3g}",
        help=f"{test.n_permutations} refits on copies with time shuffled within each sequence; the "
        f"smallest possible p is {test.smallest_p:.3g}.",
    )
    (right.success if test.p_value <= 0.05 else right.warning)(md_escape(test.describe(), 600))


def _state_list(labels: list[str], descriptions: list[str], detours: list[bool]) -> None:
    """Every state in words, one bullet each (a detour says so)."""
    st.markdown(
        "\n".join(
            f"- **{label}**{' (detour)' if detour else ''} — {md_escape(description, 400)}"
            for label, description, detour in zip(labels, descriptions, detours, strict=True)
        )
    )


# -- 1. the training map ------------------------------------------------------------------------
def _features(trace: NetworkTrace, key: str, sequence: str) -> ModelFeatures:
    what = "weight statistics per epoch" if sequence == "epochs" else "per-step statistics"
    return _compute(
        "features",
        key,
        sequence,
        f"Computing {what}",
        lambda progress: view.sequence_features(trace, sequence, progress),
    )


def _sequence(active: ActiveTrace) -> str:
    """The sequence the map is fitted over (per-step only where the trace has steps)."""
    steps = view.has_steps(active.trace)
    return str(
        _ensure(
            state.DYNAMICS_SEQUENCE,
            lambda v: v == "epochs" or (v == "steps" and steps),
            DEFAULTS.sequence,
        )
    )


def _map_controls(
    active: ActiveTrace, sequence: str, usable: list[str], n_runs: int, default: list[str]
) -> view.MapParams:
    has_steps = view.has_steps(active.trace)
    columns = st.columns([2, 3, 1, 1, 1])
    columns[0].radio(
        "Sequence",
        tuple(view.SEQUENCES),
        key=state.DYNAMICS_SEQUENCE,
        format_func=view.SEQUENCES.__getitem__,
        horizontal=True,
        disabled=not has_steps,
        help="Training steps need per-step statistics (drop_batches=False: 'Keep per-batch "
        "statistics' in the training form)."
        if not has_steps
        else "Per-step tables give long sequences from a single run.",
    )
    features_key = URL.key("features" if sequence == "epochs" else "step_features", active.ref)
    _ensure(
        features_key,
        lambda v: isinstance(v, list) and v and set(v) <= set(usable),
        default or usable,
    )
    columns[1].multiselect(
        "Features",
        usable,
        key=features_key,
        format_func=lambda f: (
            f"{f} ({FEATURE_DESCRIPTIONS[f]})" if f in FEATURE_DESCRIPTIONS else f
        ),
        help="z-scored before fitting; a feature constant over training is left out. The "
        "accuracies are not fitted by default (Hu et al. fit weight statistics); with the L2 "
        "norm they separate grokking's phases.",
    )
    _ensure(state.DYNAMICS_MAP_K, lambda v: v in K_CHOICES, DEFAULTS.k)
    columns[2].selectbox("States", K_CHOICES, key=state.DYNAMICS_MAP_K, format_func=view.k_label)
    low, high = view.MAP_RESTARTS
    _ensure(
        state.DYNAMICS_MAP_RESTARTS,
        lambda v: isinstance(v, int) and low <= v <= high,
        DEFAULTS.restarts,
    )
    columns[3].number_input("Restarts", low, high, key=state.DYNAMICS_MAP_RESTARTS, step=1)
    _ensure(state.DYNAMICS_MAP_SHUFFLES, lambda v: v in view.TIME_SHUFFLES, DEFAULTS.shuffles)
    columns[4].selectbox(
        "Time shuffles",
        view.TIME_SHUFFLES,
        key=state.DYNAMICS_MAP_SHUFFLES,
        help="Refits on time-shuffled copies for the p-value (smallest p = 1/(n + 1)).",
    )
    standardize = DEFAULTS.zscore
    if n_runs > 1:
        standardize = st.radio(
            "z-score the features",
            tuple(view.MAP_STANDARDIZE),
            key=state.DYNAMICS_MAP_STANDARDIZE,
            format_func=view.MAP_STANDARDIZE.__getitem__,
            horizontal=True,
        )
    return view.MapParams(
        features=tuple(state.get(features_key)),
        sequence=sequence,
        k=str(state.get(state.DYNAMICS_MAP_K)),
        restarts=int(state.get(state.DYNAMICS_MAP_RESTARTS)),
        n_permutations=int(state.get(state.DYNAMICS_MAP_SHUFFLES)),
        standardize=str(standardize),
        random_state=_random_state(),
        k_max=k_max_setting(state.DYNAMICS_MAP_KMAX, DEFAULTS.k_max),
    )


def _fit_map(runs: list[tuple[str, str, NetworkTrace]], params: view.MapParams) -> TrainingMap:
    features = [_features(trace, key, params.sequence) for _, key, trace in runs]
    names = [name for name, _, _ in runs]
    keys = ",".join(key for _, key, _ in runs)
    fit_params = params.fit_params()
    base = _compute(
        "map",
        keys,
        [names, fit_params],
        f"Fitting the training map (k = 1…{params.k_max}, {params.restarts} restarts each, then "
        f"{params.n_permutations} time-shuffled refits)",
        lambda progress: params.fit(features, names, progress),
    )
    k = base.choose_k(params.k)
    if k == base.n_states_:
        return base
    return _compute(
        "map-k", keys, [names, fit_params, k], "Choosing k", lambda _: view.with_states(base, k)
    )


def _map_fit_summary(fitted: TrainingMap, params: view.MapParams, n_runs: int) -> None:
    """What the map was fitted on, its convergence, the choice of k and the states along a
    training curve, the posteriors and their entropy."""
    time_column = fitted.time_column_
    st.caption(
        f"Fitted on {n_runs} run{'s' if n_runs > 1 else ''} "
        f"({md_escape(', '.join(fitted.run_names_), 300)}): {int(fitted.lengths_.sum())} "
        f"{time_word(plural=True) if time_column == 'epoch' else time_column + 's'}, features "
        f"from {md_escape(fitted.feature_source_, 300)}. "
        + " ".join(md_escape(n, 400) for n in fitted.feature_notes_)
    )
    _convergence(fitted.state_model_.convergence_note(), fitted.log_messages_)
    k = fitted.n_states_
    left, right = st.columns([2, 3])
    with left:
        show_chart(vd.selection_chart(fitted.selection_, params.criterion, k))
        k_boundary_note(fitted.selection_, params, state.DYNAMICS_MAP_KMAX)
    with right:
        curves = view.training_curves(fitted.path_)
        _ensure(state.DYNAMICS_MAP_CURVE, lambda v: v in curves, DEFAULTS.curve)
        curve = st.radio(
            "Curve",
            list(curves),
            key=state.DYNAMICS_MAP_CURVE,
            format_func=curves.__getitem__,
            horizontal=True,
        )
        show_chart(
            vd.state_path_chart(
                fitted.path_, k, time_column=time_column, y=curve, y_title=curves[curve]
            )
        )
    left, right = st.columns(2)
    with left:
        show_chart(vd.posterior_chart(fitted.path_, k, time_column=time_column))
    with right:
        show_chart(vd.posterior_entropy_chart(fitted.path_, k, time_column=time_column))


def _map_graph(fitted: TrainingMap) -> None:
    """The map as a graph, its states in words and as a table."""
    time_column = fitted.time_column_
    st.subheader("The training map")
    st.graphviz_chart(
        vd.training_map_dot(fitted.states_, fitted.transitions_, time_column=time_column),
        width="stretch",
    )
    st.caption(
        "Only the transitions that occur on the Viterbi paths, labelled with the fitted "
        "probability (and how often they occur); in each state, the chance of staying. "
        "Dashed: a detour (visited by some runs only)."
    )
    states = fitted.states_
    _state_list(list(states["label"]), list(states["description"]), list(states["detour"]))
    st.dataframe(
        view.map_state_table(fitted),
        hide_index=True,
        column_config={
            "stay": st.column_config.NumberColumn(format="%.2f"),
            "first": st.column_config.NumberColumn(f"first {time_column}", format="%d"),
            "last": st.column_config.NumberColumn(f"last {time_column}", format="%d"),
        },
    )


def _map_detours(fitted: TrainingMap, n_runs: int) -> None:
    """Detour states and each run's convergence (several runs only)."""
    st.markdown("**Detours and convergence**")
    left, right = st.columns([3, 2])
    with left:
        if fitted.detours_.empty:
            st.caption("Every state is visited by every run: no detour.")
        else:
            st.dataframe(fitted.detours_.drop(columns=["state"]), hide_index=True)
            st.caption(
                "A detour state is visited by some runs only. 'slower by': the mean "
                "convergence epoch of the runs that visit it minus that of the others — "
                f"descriptive, with {n_runs} runs (Hu et al. relate detours to slower "
                "convergence over many seeds)."
            )
    with right:
        st.dataframe(fitted.convergence_, hide_index=True)
        st.caption(md_escape(f"Convergence epoch: {fitted.convergence_definition_}.", 300))


def _training_map(active: ActiveTrace) -> None:
    runs = runs_picker(active, URL.key("runs", active.ref))
    sequence = _sequence(active)
    try:
        features = _features(active.trace, active.key, sequence)
    except ValueError as exc:
        st.info(md_escape(exc, 400))
        return
    default = [f for f in (features.default or features.usable) if f in features.usable]
    params = _map_controls(active, sequence, features.usable, len(runs), default)
    if not params.features:
        st.info("Pick at least one feature.")
        return
    try:
        fitted = _fit_map(runs, params)
    except ValueError as exc:
        st.info(f"The training map cannot be fitted: {md_escape(exc, 500)}")
        return
    _map_fit_summary(fitted, params, len(runs))
    _map_graph(fitted)
    if len(runs) > 1:
        _map_detours(fitted, len(runs))
    st.markdown("**Is there temporal structure at all?**")
    _time_test(fitted.time_test_)


# -- 2. neuron-level states ------------------------------------------------------------------------
def _neuron_controls(active: ActiveTrace) -> view.NeuronParams:
    layers = view.hidden_layers(active.trace)
    layers_key = URL.key("neuron_layers", active.ref)
    _ensure(
        state.DYNAMICS_NEURON_FEATURES,
        lambda v: isinstance(v, list) and v and set(v) <= set(METRICS),
        list(NEURON_FEATURES),
    )
    _ensure(layers_key, lambda v: isinstance(v, list) and v and set(v) <= set(layers), layers)
    _ensure(
        state.DYNAMICS_NEURON_STANDARDIZE,
        lambda v: v in view.NEURON_STANDARDIZE,
        DEFAULTS.neuron_standardize,
    )
    _ensure(state.DYNAMICS_NEURON_K, lambda v: v in view.NEURON_K_CHOICES, DEFAULTS.neuron_k)
    _ensure(
        state.DYNAMICS_NEURON_MAX,
        lambda v: isinstance(v, int) and 100 <= v <= MAX_NEURONS,
        DEFAULTS.neuron_max,
    )
    columns = st.columns([3, 2, 1, 1, 1])
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
        random_state=_random_state(),
        max_neurons=int(state.get(state.DYNAMICS_NEURON_MAX)),
        k_max=k_max_setting(state.DYNAMICS_NEURON_KMAX, DEFAULTS.neuron_k_max),
    )


def _fit_neurons(active: ActiveTrace, params: view.NeuronParams) -> NeuronHMM:
    trace = active.trace
    fit_params = params.fit_params()
    base = _compute(
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
    return _compute(
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
    _convergence(model.state_model_.convergence_note(), model.log_messages_)
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
        _ensure(state.DYNAMICS_NEURON_ORDER, lambda v: v in view.NEURON_ORDERS, DEFAULTS.order)
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
    _state_list(list(states["label"]), list(states["description"]), [False] * len(states))
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
    if not asked and not computed(_WHAT + "neurons-test", active.key, test_params):
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
    test = _compute(
        "neurons-test",
        active.key,
        test_params,
        "Shuffled-time test (19 refits)",
        lambda progress: model.time_test(19, progress),
    )
    _time_test(test)


def _neuron_states(active: ActiveTrace) -> None:
    if len(active.trace.epochs) < 2:
        st.info("A neuron-level HMM needs at least 2 recorded epochs; this trace has 1.")
        return
    params = _neuron_controls(active)
    if not params.features or not params.layers:
        st.info("Pick at least one feature and one layer.")
        return
    st.caption(md_escape(params.load_text(active.trace), 400))
    try:
        model = _fit_neurons(active, params)
    except ValueError as exc:
        st.info(f"The neuron-level model cannot be fitted: {md_escape(exc, 500)}")
        return
    _neuron_summary(model)
    _neuron_raster(active, model, params)
    _neuron_tables(active, model)
    _neuron_time_test(active, model, params)


# -- the page --------------------------------------------------------------------------------------
@st.fragment
def _map_section(active: ActiveTrace) -> None:
    use_axis(active.trace)  # a fragment's rerun may run in a fresh context
    with guarded("fitting the training map"):
        _training_map(active)
    _publish(active.ref)


@st.fragment
def _neuron_section(active: ActiveTrace) -> None:
    use_axis(active.trace)
    with guarded("fitting the neuron-level model"):
        _neuron_states(active)
    _publish(active.ref)


@st.fragment
def _entropy_section(active: ActiveTrace) -> None:
    use_axis(active.trace)
    with guarded("measuring decision entropy"):
        decision_entropy(
            active, epoch_key=URL.key("epoch", active.ref), random_state=_random_state()
        )
    _publish(active.ref)


def render_dynamics() -> None:
    """Draw the Dynamics page."""
    require_shell()
    st.title("Dynamics")
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    URL.restore(active.ref)  # first: a shared link fills the widgets
    st.caption(
        "Phases of training and of single neurons as hidden-Markov states, and whether neurons "
        "are less random when the network decides — each against a null: shuffled time, "
        "label permutations."
    )
    live_note(active, "the analyses use the epochs recorded so far")
    with st.columns([4, 1])[1]:
        _random_state()
        st.number_input(
            "Random seed",
            min_value=0,
            step=1,
            key=state.DYNAMICS_RANDOM_STATE,
            help="Seeds the HMM restarts, the time shuffles and the label permutations; results "
            "are kept per trace, settings and seed.",
        )
    # each section writes the settings into the address bar when it has drawn its widgets
    st.header("Training map of the network")
    _map_section(active)
    st.header("Neuron-level latent states")
    _neuron_section(active)
    st.header("Decision entropy")
    _entropy_section(active)
