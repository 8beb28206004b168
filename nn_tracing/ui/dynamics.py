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

Every computation is :mod:`nn_tracing.analysis.hmm`'s or ``entropy``'s. Results are kept in a
small process-wide store keyed by (trace digests, what, parameters) — not ``st.cache_data``,
whose replay of elements cannot coexist with a progress bar drawn while the work runs — and
analyses run one at a time under a process-wide lock (two cores: parallel fits only slow each
other). Stored results are shared between sessions and never modified; a manual choice of k
is a copy.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import streamlit as st

from .. import jobs
from ..analysis.entropy import LABELS, DecisionEntropy
from ..analysis.hmm import (
    FEATURE_DESCRIPTIONS,
    NEURON_FEATURES,
    ModelFeatures,
    NeuronHMM,
    TimeShuffleTest,
    TrainingMap,
    model_features,
    step_features,
)
from ..runs import run_files, runs_dir
from ..seeds import Replicate, find_replicates, free_seeds, replicate_config
from ..store import TraceFormatError
from ..trace import METRICS, NetworkTrace
from ..viz import dynamics as vd
from . import cache, state, work
from .app import require_shell
from .charts import neuron_table, show_chart
from .overview import (
    epoch_picker,
    open_picked,  # the Overview's click-to-open, shared
)
from .text import guarded, md_escape, show_message
from .traces import ActiveTrace, load_trace_file, no_trace_message, resolve_active

__all__ = ["neuron_states", "render_dynamics"]

T = TypeVar("T")

#: Choices of k: by a criterion, or a number of states.
K_CHOICES: tuple[str | int, ...] = ("bic", "aic", 1, 2, 3, 4, 5, 6, 7, 8)
#: Most other runs fitted jointly with the active one.
MAX_JOINT_RUNS = 8
#: Runs trained from here at once (the job registry allows a few more for the sidebar).
MAX_SEED_JOBS = 3
SEED_REFRESH_SECONDS = 1.0


# -- the store: the server's analysis worker (nn_tracing.ui.work) -------------------------------
def _key(what: str, *parts: Any) -> str:
    return work.key(f"dynamics:{what}", "", parts)


def _compute(key: str, label: str, run: Callable[[work.Progress], T]) -> T:
    """The stored result under ``key``, else ``run(progress)`` on the server's analysis worker
    with a progress bar (``progress(fraction, what)``). Errors pass to the caller."""
    return work.compute(key, run, label=label)  # type: ignore[return-value]


def _chosen_k(selection: pd.DataFrame, choice: str | int) -> int:
    """The k a choice means: the criterion's minimum, or the fitted k nearest a number."""
    fitted = selection[selection["restarts"] > 0]
    if choice in ("bic", "aic"):
        return int(fitted.loc[fitted[str(choice)].idxmin(), "k"])
    ks = fitted["k"].astype(int).tolist()
    return min(ks, key=lambda k: (abs(k - int(choice)), k))


def _k_label(choice: str | int) -> str:
    return {"bic": "by BIC", "aic": "by AIC"}.get(str(choice), f"{choice} states")


def _random_state() -> int:
    """The page's random seed (restarts, time shuffles, label permutations)."""
    return int(_ensure(state.DYNAMICS_RANDOM_STATE, lambda v: isinstance(v, int) and v >= 0, 0))


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


# -- 1. the training map ---------------------------------------------------------------------------
def _stamps() -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in run_files():
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(out))


@st.cache_data(max_entries=64, show_spinner=False)
def _replicates(config_json: str, exclude: str, stamps: tuple[Any, ...]) -> list[Replicate]:
    """Runs of the folder with this config but another seed (manifests only; cached by the
    folder's file stamps, so a new run shows up at once)."""
    return find_replicates(
        json.loads(config_json), runs_dir(), exclude=[exclude] if exclude else []
    )


def _features(trace: NetworkTrace, key: str, sequence: str) -> ModelFeatures:
    what = "weight statistics per epoch" if sequence == "epochs" else "per-step statistics"
    return _compute(
        _key("features", key, sequence),
        f"Computing {what}",
        lambda progress: (
            model_features(trace, progress) if sequence == "epochs" else step_features(trace)
        ),
    )


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
        state.put(state.DYNAMICS_SEED_JOBS, [])
        message = (
            ("warning", f"{len(failed)} run(s) failed: {failed[0].snapshot().error}")
            if failed
            else ("success", f"{len(running)} more seed(s) trained and saved in the runs folder.")
        )
        state.put(state.DYNAMICS_SEED_MESSAGE, message)
        st.rerun()


def _runs_picker(active: ActiveTrace) -> list[tuple[str, str, NetworkTrace]]:
    """The runs to fit: the active one and the replicates the user keeps ticked."""
    trace = active.trace
    config = trace.meta.get("config") if isinstance(trace.meta.get("config"), dict) else None
    me = (active.name or "this run", active.key, trace)
    if config is None:
        st.caption(
            "This trace carries no training configuration (a custom model), so runs of the same "
            "configuration cannot be found: the map is fitted on this run alone."
        )
        return [me]
    found = _replicates(json.dumps(config, sort_keys=True), active.name or "", _stamps())
    names = [r.name for r in found]
    key = state.epoch_key(state.DYNAMICS_RUNS, active.ref)
    _ensure(key, lambda v: isinstance(v, list) and set(v) <= set(names), names[:MAX_JOINT_RUNS])
    left, right = st.columns([3, 2])
    with left:
        if names:
            st.multiselect(
                "Fit jointly with these runs of the same configuration (another seed)",
                names,
                key=key,
                max_selections=MAX_JOINT_RUNS,
                format_func=lambda n: f"{n} (seed {next(r.seed for r in found if r.name == n)})",
                help="One HMM over every run (hmmlearn's lengths): states are shared, and a "
                "state only some runs visit is a detour.",
            )
        else:
            st.info(
                "No other run of this configuration in the runs folder. A joint fit over "
                "seeds shows which states every run goes through and which are detours; train "
                "a few more seeds on the right."
            )
    with right:
        busy = any(not job.snapshot().done for job in _seed_jobs())
        st.number_input(
            "More seeds to train", 1, MAX_SEED_JOBS, key=state.DYNAMICS_SEED_COUNT, step=1
        )
        taken = [config.get("seed"), *(r.seed for r in found)]
        stem = (active.name or "run").split("-seed")[0]
        st.button(
            "Train more seeds in the background",
            key=state.DYNAMICS_SEED_BUTTON,
            on_click=_start_seeds,
            args=(config, taken, stem),
            disabled=busy,
            help="Same configuration, the next unused seeds; saved to the runs folder.",
        )
        st.fragment(run_every=SEED_REFRESH_SECONDS if busy else None)(_guarded_seed_panel)()
    chosen = [me]
    for name in state.get(key, []):
        replicate = next(r for r in found if r.name == name)
        try:
            other = load_trace_file(replicate.path)
        except (TraceFormatError, OSError) as exc:
            st.warning(f"{md_escape(name)} cannot be opened and is left out: {md_escape(exc, 300)}")
            continue
        chosen.append((name, other.digest or name, other))
    return chosen


def _map_controls(active: ActiveTrace, usable: list[str], n_runs: int) -> dict[str, Any]:
    ref = active.ref
    has_steps = active.trace.steps is not None and len(active.trace.steps) > 0
    sequence = _ensure(
        state.DYNAMICS_SEQUENCE, lambda v: v == "epochs" or (v == "steps" and has_steps), "epochs"
    )
    columns = st.columns([2, 3, 1, 1, 1])
    with columns[0]:
        st.radio(
            "Sequence",
            ("epochs", "steps"),
            key=state.DYNAMICS_SEQUENCE,
            format_func={"epochs": "recorded epochs", "steps": "training steps"}.__getitem__,
            horizontal=True,
            disabled=not has_steps,
            help="Training steps need per-step statistics (drop_batches=False: 'Keep per-batch "
            "statistics' in the training form)."
            if not has_steps
            else "Per-step tables give long sequences from a single run.",
        )
    features_key = state.epoch_key(state.DYNAMICS_MAP_FEATURES, f"{ref}:{sequence}")
    _ensure(features_key, lambda v: isinstance(v, list) and v and set(v) <= set(usable), usable)
    with columns[1]:
        st.multiselect(
            "Features",
            usable,
            key=features_key,
            format_func=lambda f: (
                f"{f} ({FEATURE_DESCRIPTIONS[f]})" if f in FEATURE_DESCRIPTIONS else f
            ),
            help="z-scored before fitting; a feature constant over training is left out.",
        )
    with columns[2]:
        _ensure(state.DYNAMICS_MAP_K, lambda v: v in K_CHOICES, "bic")
        st.selectbox("States", K_CHOICES, key=state.DYNAMICS_MAP_K, format_func=_k_label)
    with columns[3]:
        _ensure(state.DYNAMICS_MAP_RESTARTS, lambda v: isinstance(v, int) and 1 <= v <= 20, 5)
        st.number_input("Restarts", 1, 20, key=state.DYNAMICS_MAP_RESTARTS, step=1)
    with columns[4]:
        _ensure(state.DYNAMICS_MAP_SHUFFLES, lambda v: v in (19, 49, 99), 19)
        st.selectbox(
            "Time shuffles",
            (19, 49, 99),
            key=state.DYNAMICS_MAP_SHUFFLES,
            help="Refits on time-shuffled copies for the p-value (smallest p = 1/(n + 1)).",
        )
    standardize = "pooled"
    if n_runs > 1:
        standardize = st.radio(
            "z-score the features",
            ("pooled", "run"),
            key=state.DYNAMICS_MAP_STANDARDIZE,
            format_func={
                "pooled": "over all runs together (Hu et al.: runs that differ in level visit "
                "different states)",
                "run": "within each run (states are phases the runs share)",
            }.__getitem__,
            horizontal=True,
        )
    return {
        "random_state": _random_state(),
        "sequence": sequence,
        "features": list(state.get(features_key)),
        "k": state.get(state.DYNAMICS_MAP_K),
        "restarts": int(state.get(state.DYNAMICS_MAP_RESTARTS)),
        "shuffles": int(state.get(state.DYNAMICS_MAP_SHUFFLES)),
        "standardize": standardize,
    }


def _fit_map(runs: list[tuple[str, str, NetworkTrace]], params: dict[str, Any]) -> TrainingMap:
    features = [_features(trace, key, params["sequence"]) for _, key, trace in runs]
    names = [name for name, _, _ in runs]
    keys = [key for _, key, _ in runs]
    fit_params = {k: v for k, v in params.items() if k != "k"}
    base = _compute(
        _key("map", keys, names, fit_params),
        f"Fitting the training map (k = 1…8, {params['restarts']} restarts each, then "
        f"{params['shuffles']} time-shuffled refits)",
        lambda progress: TrainingMap(
            params["features"],
            sequence=params["sequence"],
            standardize=params["standardize"],
            n_restarts=params["restarts"],
            n_permutations=params["shuffles"],
            random_state=params["random_state"],
        ).fit(features, names=names, progress=progress),
    )
    k = _chosen_k(base.selection_, params["k"])
    if k == base.n_states_:
        return base
    return _compute(
        _key("map-k", keys, names, fit_params, k),
        "Choosing k",
        lambda _: copy.deepcopy(base).select(k),
    )


def _training_map(active: ActiveTrace) -> None:
    runs = _runs_picker(active)
    sequence = state.get(state.DYNAMICS_SEQUENCE, "epochs")
    try:
        usable = _features(
            active.trace, active.key, sequence if sequence in ("epochs", "steps") else "epochs"
        ).usable
    except ValueError as exc:
        st.info(md_escape(exc, 400))
        return
    params = _map_controls(active, usable, len(runs))
    if not params["features"]:
        st.info("Pick at least one feature.")
        return
    try:
        fitted = _fit_map(runs, params)
    except ValueError as exc:
        st.info(f"The training map cannot be fitted: {md_escape(exc, 500)}")
        return
    time_column = fitted.time_column_
    st.caption(
        f"Fitted on {len(runs)} run{'s' if len(runs) > 1 else ''} "
        f"({md_escape(', '.join(fitted.run_names_), 300)}): {int(fitted.lengths_.sum())} "
        f"{time_column}s, features from {md_escape(fitted.feature_source_, 300)}. "
        + " ".join(md_escape(n, 400) for n in fitted.feature_notes_)
    )
    _convergence(fitted.state_model_.convergence_note(), fitted.log_messages_)
    k = fitted.n_states_
    left, right = st.columns([2, 3])
    with left:
        show_chart(
            vd.selection_chart(fitted.selection_, "aic" if params["k"] == "aic" else "bic", k)
        )
    with right:
        curves = {"loss": "training loss", "weight_norm": "L2 norm of the weights"}
        if "val_acc" in fitted.path_ and fitted.path_["val_acc"].notna().any():
            curves["val_acc"] = "validation accuracy"
        _ensure(state.DYNAMICS_MAP_CURVE, lambda v: v in curves, "loss")
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
    st.markdown(
        "\n".join(
            f"- **{row.label}**{' (detour)' if row.detour else ''} — "
            f"{md_escape(row.description, 400)}"
            for row in fitted.states_.itertuples(index=False)
        )
    )
    table = fitted.states_[["label", "observations", "runs", "first", "last", "stay", "detour"]]
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "stay": st.column_config.NumberColumn(format="%.2f"),
            "first": st.column_config.NumberColumn(f"first {time_column}", format="%d"),
            "last": st.column_config.NumberColumn(f"last {time_column}", format="%d"),
        },
    )
    if len(runs) > 1:
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
                    f"descriptive, with {len(runs)} runs (Hu et al. relate detours to slower "
                    "convergence over many seeds)."
                )
        with right:
            st.dataframe(fitted.convergence_, hide_index=True)
            st.caption(md_escape(f"Convergence epoch: {fitted.convergence_definition_}.", 300))
    st.markdown("**Is there temporal structure at all?**")
    _time_test(fitted.time_test_)


# -- 2. neuron-level states ------------------------------------------------------------------------
def _neuron_params(active: ActiveTrace) -> dict[str, Any]:
    trace = active.trace
    layers = [i.name for i in trace.layers if i.kind != "input"] or trace.layer_names()
    layers_key = state.epoch_key(state.DYNAMICS_NEURON_LAYERS, active.ref)
    _ensure(
        state.DYNAMICS_NEURON_FEATURES,
        lambda v: isinstance(v, list) and v and set(v) <= set(METRICS),
        list(NEURON_FEATURES),
    )
    _ensure(layers_key, lambda v: isinstance(v, list) and v and set(v) <= set(layers), layers)
    _ensure(
        state.DYNAMICS_NEURON_STANDARDIZE, lambda v: v in ("layer", "global", "neuron"), "layer"
    )
    _ensure(state.DYNAMICS_NEURON_K, lambda v: v in K_CHOICES and v != 1, "bic")
    columns = st.columns([3, 2, 1, 1])
    with columns[0]:
        st.multiselect(
            "Features of each neuron's trajectory",
            list(METRICS),
            key=state.DYNAMICS_NEURON_FEATURES,
            help="Standardised; gradient and weight norms and the activation spread on a log "
            "scale. A neuron never active has no selectivity: it counts as 0.",
        )
    with columns[1]:
        st.multiselect("Layers", layers, key=layers_key)
    with columns[2]:
        st.selectbox(
            "Standardise",
            ("layer", "global", "neuron"),
            key=state.DYNAMICS_NEURON_STANDARDIZE,
            format_func={
                "layer": "within each layer",
                "global": "over all neurons",
                "neuron": "per neuron",
            }.__getitem__,
        )
    with columns[3]:
        st.selectbox(
            "States",
            [c for c in K_CHOICES if c != 1],
            key=state.DYNAMICS_NEURON_K,
            format_func=_k_label,
        )
    return {
        "random_state": _random_state(),
        "features": list(state.get(state.DYNAMICS_NEURON_FEATURES)),
        "layers": list(state.get(layers_key)),
        "standardize": state.get(state.DYNAMICS_NEURON_STANDARDIZE),
        "k": state.get(state.DYNAMICS_NEURON_K),
    }


def _fit_neurons(active: ActiveTrace, params: dict[str, Any]) -> NeuronHMM:
    trace = active.trace
    fit_params = {k: v for k, v in params.items() if k != "k"}
    n = sum(trace.layer(name).n_neurons for name in params["layers"])
    base = _compute(
        _key("neurons", active.key, fit_params),
        f"Fitting one HMM to {n:,} neurons × {len(trace.epochs)} epochs (k = 2…8 by BIC)",
        lambda progress: NeuronHMM(
            params["features"],
            layers=params["layers"],
            standardize=params["standardize"],
            random_state=params["random_state"],
        ).fit(trace, progress=progress),
    )
    k = _chosen_k(base.selection_, params["k"])
    if k == base.n_states_:
        return base
    return _compute(
        _key("neurons-k", active.key, fit_params, k),
        "Choosing k",
        lambda _: copy.deepcopy(base).select(k),
    )


def neuron_states(active: ActiveTrace) -> NeuronHMM:
    """The shared neuron-level HMM of ``active`` with the page's default settings (fitted
    once per trace, with a progress bar, and shared with the Dynamics page): other pages can
    colour neurons by ``dominant_state_`` or ``states_`` (indexed by global neuron id; −1 for
    neurons not modelled, such as inputs)."""
    layers = [
        i.name for i in active.trace.layers if i.kind != "input"
    ] or active.trace.layer_names()
    return _fit_neurons(
        active,
        {
            "random_state": 0,
            "features": list(NEURON_FEATURES),
            "layers": layers,
            "standardize": "layer",
            "k": "bic",
        },
    )


def _neuron_states(active: ActiveTrace) -> None:
    trace = active.trace
    if len(trace.epochs) < 2:
        st.info("A neuron-level HMM needs at least 2 recorded epochs; this trace has 1.")
        return
    params = _neuron_params(active)
    if not params["features"] or not params["layers"]:
        st.info("Pick at least one feature and one layer.")
        return
    try:
        model = _fit_neurons(active, params)
    except ValueError as exc:
        st.info(f"The neuron-level model cannot be fitted: {md_escape(exc, 500)}")
        return
    k = model.n_states_
    n_modelled = len(model.neuron_ids_)
    last = trace.epochs[-1]
    st.caption(
        f"One Gaussian HMM over {n_modelled:,} neurons' trajectories of "
        f"{len(model.epochs_)} epochs ({md_escape(', '.join(model.feature_names_), 300)}), "
        f"fitted once per k with hmmlearn-style lengths. "
        + " ".join(md_escape(n, 300) for n in model.notes_)
        + (
            f" {len(model.dropped_)} neuron(s) left out: a feature undefined at some epoch."
            if model.dropped_
            else ""
        )
    )
    _convergence(model.state_model_.convergence_note(), model.log_messages_)
    columns = st.columns(4)
    columns[0].metric("States", k, help="by BIC over k = 2…8 unless chosen by hand")
    columns[1].metric(
        "Entropy rate (bits/epoch)",
        f"{model.entropy_rate_:.3f}",
        help=f"Uncertainty of a neuron's next state given its current one, weighted by where "
        f"neurons are; 0 = they never switch, {np.log2(k):.2f} = they jump at random.",
    )
    modelled = model.neuron_ids_
    columns[2].metric(
        "Switches per neuron", f"{model.n_switches_[modelled].mean():.2f}", help="mean over neurons"
    )
    columns[3].metric(
        "Occupancy entropy",
        f"{np.nanmean(model.occupancy_entropy_[modelled]):.2f} bits",
        help="mean over neurons of the entropy of the share of epochs each spends in each state",
    )
    left, right = st.columns([2, 3])
    with left:
        show_chart(
            vd.selection_chart(model.selection_, "aic" if params["k"] == "aic" else "bic", k)
        )
    with right:
        orders = [o for o in vd.ROW_ORDERS if o != "cluster"]  # cluster labels: Clusters page
        _ensure(state.DYNAMICS_NEURON_ORDER, lambda v: v in orders, "layer")
        order = st.radio(
            "Order the rows by",
            orders,
            key=state.DYNAMICS_NEURON_ORDER,
            format_func=vd.ROW_ORDERS.__getitem__,
            horizontal=True,
        )
        chart = cache.chart(
            "dynamics-raster",
            _key("raster", active.key, params),
            (order, k),
            lambda: vd.state_raster_chart(
                vd.state_raster_frame(
                    model.paths_,
                    model.neuron_ids_,
                    model.layers_,
                    model.epochs_,
                    k,
                    dominant=model.dominant_state_[modelled],
                    order=order,
                )
            ),
        )
        event = show_chart(chart, select=vd.PICK, key=state.DYNAMICS_RASTER_CHART)
        open_picked(active, event)
    st.markdown("**The states**")
    states = model.state_table()
    st.markdown(
        "\n".join(
            f"- **{row.label}** — {md_escape(row.description, 400)}"
            for row in states.itertuples(index=False)
        )
    )
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
        unusual = model.unusual_neurons()
        if unusual.empty:
            st.caption("No neuron visits a rare state or has an unusually unlikely path.")
        else:
            unusual.insert(
                0, "signature", [trace.signature(last, int(i)) for i in unusual["neuron"]]
            )
            neuron_table(
                active.name,
                unusual.drop(columns=["neuron"]),
                list(unusual["signature"]),
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
        table = model.neuron_table()
        table.insert(0, "signature", [trace.signature(last, int(i)) for i in table["neuron"]])
        neuron_table(
            active.name,
            table.drop(columns=["neuron", "layer"]),
            list(table["signature"]),
            key=state.DYNAMICS_NEURON_TABLE,
            max_height=320,
            column_config={
                c: st.column_config.NumberColumn(format="%.2f")
                for c in [
                    "occupancy entropy",
                    "log-likelihood per epoch",
                    *(f"S{j}" for j in range(k)),
                ]
            },
        )
    st.markdown("**Is there temporal structure at all?**")
    test_key = _key("neurons-test", active.key, params, k)
    if work.stored(test_key) is None and state.get(state.DYNAMICS_NEURON_TEST) != test_key:
        st.caption(
            "19 refits of the same model on copies with each neuron's epochs shuffled: about "
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
        test_key, "Shuffled-time test (19 refits)", lambda progress: model.time_test(19, progress)
    )
    _time_test(test)


# -- 3. decision entropy ---------------------------------------------------------------------------
def _entropy_params() -> dict[str, Any]:
    _ensure(state.DYNAMICS_ENTROPY_BINS, lambda v: isinstance(v, int) and 2 <= v <= 16, 8)
    _ensure(state.DYNAMICS_ENTROPY_BINNING, lambda v: v in ("E_0", "epoch"), "E_0")
    _ensure(state.DYNAMICS_ENTROPY_LABEL, lambda v: v in LABELS, "predicted")
    _ensure(state.DYNAMICS_ENTROPY_PERMUTATIONS, lambda v: v in (20, 100, 200, 500), 100)
    _ensure(state.DYNAMICS_ENTROPY_ALPHA, lambda v: v in (0.01, 0.05, 0.1), 0.05)
    _ensure(state.DYNAMICS_ENTROPY_FDR, lambda v: v in ("all", "epoch"), "all")
    columns = st.columns(6)
    columns[0].slider(
        "Bins", 2, 16, key=state.DYNAMICS_ENTROPY_BINS, help="quantile bins per neuron"
    )
    columns[1].selectbox(
        "Bins chosen",
        ("E_0", "epoch"),
        key=state.DYNAMICS_ENTROPY_BINNING,
        format_func={"E_0": "on E_0 (untrained)", "epoch": "at each epoch"}.__getitem__,
        help="On E_0: the same grid at every epoch, so a neuron whose scale changes also changes "
        "H(A). At each epoch: H(A) stays near log2(bins) and only the information moves.",
    )
    columns[2].selectbox(
        "Label tested",
        LABELS,
        key=state.DYNAMICS_ENTROPY_LABEL,
        format_func={"predicted": "the decision (predicted)", "true": "the true class"}.__getitem__,
    )
    columns[3].selectbox(
        "Permutations", (20, 100, 200, 500), key=state.DYNAMICS_ENTROPY_PERMUTATIONS
    )
    columns[4].selectbox("FDR", (0.01, 0.05, 0.1), key=state.DYNAMICS_ENTROPY_ALPHA)
    columns[5].selectbox(
        "Corrected over",
        ("all", "epoch"),
        key=state.DYNAMICS_ENTROPY_FDR,
        format_func={"all": "all epochs at once", "epoch": "each epoch"}.__getitem__,
    )
    return {
        "random_state": _random_state(),
        "n_bins": int(state.get(state.DYNAMICS_ENTROPY_BINS)),
        "binning": state.get(state.DYNAMICS_ENTROPY_BINNING),
        "label": state.get(state.DYNAMICS_ENTROPY_LABEL),
        "n_permutations": int(state.get(state.DYNAMICS_ENTROPY_PERMUTATIONS)),
        "alpha": float(state.get(state.DYNAMICS_ENTROPY_ALPHA)),
        "fdr": state.get(state.DYNAMICS_ENTROPY_FDR),
    }


def _decision_entropy(active: ActiveTrace) -> None:
    trace = active.trace
    if trace.probe is None:
        st.info(
            "Decision entropy needs the probe set's activations, and this trace was recorded "
            "without a probe (statistics streamed over training batches)."
        )
        return
    params = _entropy_params()
    try:
        result = _compute(
            _key("entropy", active.key, params),
            f"Binning every neuron at {len(trace.epochs)} epochs against "
            f"{params['n_permutations']} label permutations",
            lambda progress: DecisionEntropy(**params).fit(trace, progress=progress),
        )
    except ValueError as exc:
        st.info(f"Decision entropy cannot be measured: {md_escape(exc, 500)}")
        return
    st.caption(md_escape(result.describe(), 600))
    summary = result.layer_summary()
    epoch = epoch_picker(
        "Epoch of the ranking",
        trace.epochs,
        state.epoch_key(state.DYNAMICS_ENTROPY_EPOCH, active.ref),
    )
    left, right = st.columns([3, 2])
    with left:
        show_chart(vd.mi_layer_chart(summary, result.label, epoch))
    with right:
        show_chart(vd.significant_share_chart(summary, result.alpha))
    at_epoch = summary[summary["epoch"] == epoch][
        ["layer", "entropy", "conditional", "median", "null_q95", "n_significant", "n_neurons"]
    ].rename(
        columns={
            "entropy": "median H(A)",
            "conditional": f"median H(A | {result.label})",
            "median": f"median I(A; {result.label})",
            "null_q95": "null 95th percentile",
            "n_significant": "significant",
            "n_neurons": "neurons",
        }
    )
    st.dataframe(
        at_epoch,
        hide_index=True,
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in at_epoch.columns
            if c.startswith(("median", "null"))
        },
    )
    st.markdown(f"**Neurons at E_{epoch}, most informative first** — select a row to open it")
    ranking = result.ranking(epoch)
    ranking.insert(0, "signature", [trace.signature(epoch, int(i)) for i in ranking["neuron"]])
    neuron_table(
        active.name,
        ranking.drop(columns=["neuron", "layer"]),
        list(ranking["signature"]),
        key=state.DYNAMICS_ENTROPY_TABLE,
        max_height=360,
        column_config={
            **{
                c: st.column_config.NumberColumn(format="%.3f")
                for c in (
                    "H",
                    "H|predicted",
                    "H|true",
                    "MI predicted",
                    "MI true",
                    "MI above null",
                    "MI at E_0",
                    f"H|{result.label} change since E_0",
                )
            },
            "p": st.column_config.NumberColumn(format="%.3g"),
            "q": st.column_config.NumberColumn(format="%.3g"),
            "G-test p": st.column_config.NumberColumn(format="%.2g"),
            "significant since": st.column_config.NumberColumn(format="E_%d"),
        },
    )
    n_sig = int(result.significant_[result.epochs_.index(epoch)].sum())
    st.caption(
        f"{n_sig} of {len(result.neuron_ids_)} neurons are more ordered than chance at E_{epoch} "
        f"(I(A; {result.label}) above its permutation null after FDR). 'significant since': "
        "the first epoch from which a neuron stays significant to the end. 'MI above null' "
        "subtracts the null mean (the plug-in bias). The G-test p is an asymptotic second "
        "opinion below the permutation resolution."
    )


def _guarded_seed_panel() -> None:
    with guarded("following the seed runs"):
        _seed_panel()


# -- the page --------------------------------------------------------------------------------------
@st.fragment
def _map_section(active: ActiveTrace) -> None:
    with guarded("fitting the training map"):
        _training_map(active)


@st.fragment
def _neuron_section(active: ActiveTrace) -> None:
    with guarded("fitting the neuron-level model"):
        _neuron_states(active)


@st.fragment
def _entropy_section(active: ActiveTrace) -> None:
    with guarded("measuring decision entropy"):
        _decision_entropy(active)


def render_dynamics() -> None:
    """Draw the Dynamics page."""
    require_shell()
    st.title("Dynamics")
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    st.caption(
        "Phases of training and of single neurons as hidden-Markov states, and whether neurons "
        "are less random when the network decides — each against a null: shuffled time, "
        "label permutations."
    )
    if active.live:
        st.info(
            "This run is still training: the analyses use the epochs recorded so far.", icon="⏳"
        )
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
    st.header("Training map of the network")
    _map_section(active)
    st.header("Neuron-level latent states")
    _neuron_section(active)
    st.header("Decision entropy")
    _entropy_section(active)
