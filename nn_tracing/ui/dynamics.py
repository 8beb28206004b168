"""The Dynamics page: hidden-Markov training maps, neuron-level states and decision entropy.

Three sections, one tab each, each a fragment (a control redraws only its section), each
guarded (an analysis that cannot run on this trace says why in place and the rest of the page
works); each opens with its verdict, and its settings and details are folded:

1. **Training map** (Hu et al. 2023): model-level weight statistics per recorded epoch (or per
   training step), an HMM with k chosen by BIC/AIC (or by hand), the states along the training
   curves, the posteriors and their entropy, the map of states and observed transitions,
   detour states when several runs of the configuration are fitted jointly, and the
   shuffled-time test. Runs of the same configuration are found in the runs folder
   (:mod:`nn_tracing.seeds`); more seeds can be trained in the background from here.
   Before the map, :func:`~nn_tracing.analysis.hmm.map_structure` says whether the states
   look like phases or there is little structure (and then the map is folded).
2. **Neuron-level latent states** (``ui/dynamics_neurons.py``): one HMM shared by every
   neuron (:class:`NeuronHMM`), its raster of paths, per-neuron tables (a row opens the
   neuron) and its own shuffled-time test.
3. **Decision entropy** (``ui/dynamics_entropy.py``): entropy and mutual information of every
   neuron's binned activation with the decision, against label permutations with FDR control
   (:class:`DecisionEntropy`).

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
from dataclasses import dataclass

import streamlit as st

from ..analysis.hmm import (
    FEATURE_DESCRIPTIONS,
    NEURON_FEATURES,
    MapStructure,
    ModelFeatures,
    TrainingMap,
    map_structure,
)
from ..analysis.standardise import ALIASES
from ..timeaxis import time_word, use_axis
from ..trace import METRICS, NetworkTrace
from ..views import dynamics as view
from ..viz import dynamics as vd
from . import state, url
from .app import require_shell
from .charts import show_chart
from .dynamics_entropy import decision_entropy
from .dynamics_k import k_boundary_note, k_max_setting
from .dynamics_neurons import MAX_NEURONS, ORDER_DEFAULT, neuron_states_section
from .dynamics_parts import compute, convergence, ensure, state_list, time_test
from .dynamics_phases import phase_reading
from .dynamics_runs import MAX_SEED_JOBS, runs_picker
from .follow import live_note
from .neuron_states import neuron_states  # the shared fit, kept importable from here
from .text import guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active

__all__ = ["NEURON_FEATURES", "URL", "Settings", "neuron_states", "render_dynamics"]

#: Choices of k: by a criterion, or a number of states.
K_CHOICES = view.K_CHOICES
#: The defaults of the three analyses (the settings' defaults are theirs).
_MAP = view.MapParams(features=())
_NEURONS = view.NeuronParams(layers=())
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
        "order", state.DYNAMICS_NEURON_ORDER, default=ORDER_DEFAULT, choices=view.NEURON_ORDERS
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


# -- the page's seed --------------------------------------------------------------------------
def _random_state() -> int:
    """The page's random seed (restarts, time shuffles, label permutations)."""
    return int(
        ensure(state.DYNAMICS_RANDOM_STATE, lambda v: isinstance(v, int) and v >= 0, DEFAULTS.seed)
    )


# -- 1. the training map ------------------------------------------------------------------------
def _features(trace: NetworkTrace, key: str, sequence: str) -> ModelFeatures:
    what = "weight statistics per epoch" if sequence == "epochs" else "per-step statistics"
    return compute(
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
        ensure(
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
    ensure(
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
    ensure(state.DYNAMICS_MAP_K, lambda v: v in K_CHOICES, DEFAULTS.k)
    columns[2].selectbox("States", K_CHOICES, key=state.DYNAMICS_MAP_K, format_func=view.k_label)
    low, high = view.MAP_RESTARTS
    ensure(
        state.DYNAMICS_MAP_RESTARTS,
        lambda v: isinstance(v, int) and low <= v <= high,
        DEFAULTS.restarts,
    )
    columns[3].number_input("Restarts", low, high, key=state.DYNAMICS_MAP_RESTARTS, step=1)
    ensure(state.DYNAMICS_MAP_SHUFFLES, lambda v: v in view.TIME_SHUFFLES, DEFAULTS.shuffles)
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
    base = compute(
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
    return compute(
        "map-k", keys, [names, fit_params, k], "Choosing k", lambda _: view.with_states(base, k)
    )


def _fitted_on(fitted: TrainingMap, n_runs: int) -> None:
    """What the map was fitted on, in one caption."""
    time_column = fitted.time_column_
    st.caption(
        f"Fitted on {n_runs} run{'s' if n_runs > 1 else ''} "
        f"({md_escape(', '.join(fitted.run_names_), 300)}): {int(fitted.lengths_.sum())} "
        f"{time_word(plural=True) if time_column == 'epoch' else time_column + 's'}, features "
        f"from {md_escape(fitted.feature_source_, 300)}. "
        + " ".join(md_escape(n, 400) for n in fitted.feature_notes_)
    )


def _states_along_training(fitted: TrainingMap) -> None:
    """The states along a training curve: what the map says, drawn over what it describes."""
    curves = view.training_curves(fitted.path_)
    ensure(state.DYNAMICS_MAP_CURVE, lambda v: v in curves, DEFAULTS.curve)
    curve = st.radio(
        "Curve",
        list(curves),
        key=state.DYNAMICS_MAP_CURVE,
        format_func=curves.__getitem__,
        horizontal=True,
    )
    show_chart(
        vd.state_path_chart(
            fitted.path_,
            fitted.n_states_,
            time_column=fitted.time_column_,
            y=curve,
            y_title=curves[curve],
        )
    )


def _map_fit_summary(fitted: TrainingMap, params: view.MapParams) -> None:
    """How the map was fitted: EM's convergence, the choice of k, the posteriors and their
    entropy (one under the other)."""
    time_column = fitted.time_column_
    convergence(fitted.state_model_.convergence_note(), fitted.log_messages_)
    k = fitted.n_states_
    show_chart(vd.selection_chart(fitted.selection_, params.criterion, k))
    k_boundary_note(fitted.selection_, params, state.DYNAMICS_MAP_KMAX)
    show_chart(vd.posterior_chart(fitted.path_, k, time_column=time_column))
    show_chart(vd.posterior_entropy_chart(fitted.path_, k, time_column=time_column))


def _map_verdict(fitted: TrainingMap, structure: MapStructure, n_runs: int) -> None:
    """The verdict before the map: phases, or little structure and why; the shuffled-time
    test; what the map was fitted on."""
    (st.warning if structure.little else st.success)(
        md_escape(structure.headline(), 1500),
        icon=":material/warning:" if structure.little else ":material/check_circle:",
    )
    time_test(fitted.time_test_, quiet=True)
    _fitted_on(fitted, n_runs)


def _map_graph(fitted: TrainingMap) -> None:
    """The map as a graph and its states in words."""
    time_column = fitted.time_column_
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
    state_list(list(states["label"]), list(states["description"]), list(states["detour"]))


def _map_state_table(fitted: TrainingMap) -> None:
    """The states as a table."""
    time_column = fitted.time_column_
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


def _map_settings(
    active: ActiveTrace,
) -> tuple[list[tuple[str, str, NetworkTrace]], view.MapParams | None]:
    """The runs to fit and the map's parameters, in a folded section (``None``: nothing to
    fit, said in place)."""
    with st.expander("Settings: runs of this configuration, features, number of states"):
        runs = runs_picker(active, URL.key("runs", active.ref))
        sequence = _sequence(active)
        try:
            features = _features(active.trace, active.key, sequence)
        except ValueError as exc:
            st.info(md_escape(exc, 400))
            return runs, None
        default = [f for f in (features.default or features.usable) if f in features.usable]
        params = _map_controls(active, sequence, features.usable, len(runs), default)
    if not params.features:
        st.info("Pick at least one feature (in the settings).")
        return runs, None
    return runs, params


def _training_map(active: ActiveTrace) -> None:
    """The verdict first, then the map (folded when there is little structure), then the
    settings and the details of the fit, folded."""
    verdict = st.container()
    runs, params = _map_settings(active)
    if params is None:
        return
    try:
        fitted = _fit_map(runs, params)
    except ValueError as exc:
        st.info(f"The training map cannot be fitted: {md_escape(exc, 500)}")
        return
    structure = map_structure(fitted)
    with verdict:
        _map_verdict(fitted, structure, len(runs))
        with guarded("reading the states as phases"):
            phase_reading(active.trace, fitted)
        if structure.little:
            with st.expander("The map drawn anyway (read it with the warning above)"):
                _map_graph(fitted)
        else:
            _map_graph(fitted)
        _states_along_training(fitted)
    with st.expander("How the map was fitted: k chosen, posteriors and their entropy"):
        _map_fit_summary(fitted, params)
        _map_state_table(fitted)
    if len(runs) > 1:
        with st.expander("Detours and each run's convergence"):
            _map_detours(fitted, len(runs))


# -- the page --------------------------------------------------------------------------------------
#: The page's tabs, in order.
SECTIONS = ("Training map of the network", "Neuron-level latent states", "Decision entropy")


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
        neuron_states_section(
            active, layers_key=URL.key("neuron_layers", active.ref), random_state=_random_state()
        )
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
    # each section writes the settings into the address bar when it has drawn its widgets;
    # one tab each, its verdict first and its details folded
    tabs = st.tabs(list(SECTIONS))
    with tabs[0]:
        _map_section(active)
    with tabs[1]:
        _neuron_section(active)
    with tabs[2]:
        _entropy_section(active)
