"""The Breadcrumbs page: which neurons made this output, and what happens without them.

Four tabs over one model state (a recorded epoch with weights):

* **Attribution & trail** — per-neuron attribution of a class (or one probe sample) by the
  chosen Captum method; the breadcrumb trail from the output back to the input features as a
  layered graph and a table; the trail checked by ablation against random neurons; "since
  when" (the trail neurons' scores over the recorded epochs, when the run kept weights); and
  how far the four methods agree.
* **Ablation** — zero or mean-replace any set of neurons: accuracy per class, class logits,
  confusion matrices, flipped samples; ablation curves of a layer in four orders with the
  random band and the selectivity–importance correlation.
* **Pruning** — remove the k least important neurons of every hidden layer (structured) against
  k random ones; download the pruned model and its trace.
* **Intervention** — clamp or scale a neuron, or edit one weight: accuracy, flipped
  predictions, what changed downstream, and for 2-D inputs the decision boundary.

Every computation is :mod:`nn_tracing.analysis.attribution`'s or
:mod:`~nn_tracing.analysis.intervention`'s, cached with ``st.cache_data`` by the trace's key and
the parameters, and shows a progress bar while it runs. Session state holds parameters only.
A trace whose model cannot be rebuilt (a custom model, no probe) gets an explanation instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from .. import viz
from ..analysis.attribution import (
    METHOD_TITLES,
    METHODS,
    OBJECTIVES,
    Attribution,
    Trail,
    attribute,
    attribution_history,
    breadcrumb_trail,
    method_agreement,
)
from ..analysis.intervention import (
    FILLS,
    AblationCurves,
    AblationResult,
    Intervention,
    InterventionResult,
    Pruning,
    ablate,
    intervene,
    prunable,
    trail_check,
)
from ..analysis.neuron_model import NeuronModel
from ..export import pruned_config, pruned_files, pruned_trace
from ..progress import Progress
from ..store import trace_to_bytes
from ..trace import NetworkTrace
from ..viz import breadcrumbs as crumbs
from . import state
from .app import require_shell
from .charts import neuron_table, show_chart
from .overview import open_picked  # the Overview's click-to-open, shared
from .text import guarded, md_escape
from .traces import ActiveTrace, no_trace_message, resolve_active

__all__ = ["render_breadcrumbs"]

TABS = ("Attribution & trail", "Ablation", "Pruning", "Intervention")
#: Random sets of the trail check, random orders of the curves, random prunings.
TRAIL_REPEATS = 50
DEFAULT_REPEATS = 20
#: Decision-boundary grid (cells per side): 40² = 1600 cells per panel.
BOUNDARY_RESOLUTION = 40
#: How the page names each objective in a sentence.
_SCORE_NAMES = {
    "logit": "the logit",
    "margin": "the logit margin (the logit minus the mean of the other logits)",
}
#: What a Compute/Prune button's callback leaves in the run key; the run that follows replaces
#: it with the parameters the widgets hold then (so a value typed just before the click counts).
REQUESTED = "requested"
FINAL = -1  # the epoch value that stands for "final weights of no recorded epoch"
_ENTRIES = 32


# -- progress inside cached computations ---------------------------------------------------------
@contextmanager
def _progress(what: str) -> Iterator[Progress]:
    """A progress bar for a computation (replayed, then emptied, on a cache hit)."""
    bar = st.progress(0.0, text=what)
    last = [0.0]

    def update(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] < 0.25 and fraction < 1:
            return
        last[0] = now
        bar.progress(float(min(max(fraction, 0.0), 1.0)), text=f"{what}: {message}")

    try:
        yield update
    finally:
        bar.empty()


def _model(trace: NetworkTrace, epoch: int, objective: str = "logit") -> NeuronModel:
    return NeuronModel.from_trace(trace, None if epoch == FINAL else epoch, objective=objective)


def _probe(trace: NetworkTrace) -> tuple[np.ndarray, np.ndarray]:
    assert trace.probe is not None
    return trace.probe[0], np.asarray(trace.probe[1]).astype(np.int64)


# -- cached computations (``key`` identifies the trace; ``_trace`` is not hashed) ----------------
@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _model_problem(key: str, _trace: NetworkTrace) -> str | None:
    """Why the model of this trace cannot be rebuilt, or ``None``."""
    trace = _trace
    if trace.probe is None:
        return "no-probe"
    if not trace.final_weights:
        return "no-weights"
    try:
        NeuronModel.from_trace(trace)
    except ValueError as exc:
        return f"custom: {exc}" if "custom model" in str(exc) else f"other: {exc}"
    return None


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _attribution(
    key: str,
    epoch: int,
    target_class: int | None,
    sample: int | None,
    method: str,
    objective: str,
    _trace: NetworkTrace,
) -> Attribution:
    with _progress(f"Attributing with {METHOD_TITLES[method]}") as report:
        model = _model(_trace, epoch, objective)
        return attribute(
            _trace,
            epoch=None if epoch == FINAL else epoch,
            target_class=target_class,
            sample=sample,
            method=method,
            model=model,
            progress=report,
        )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _trail(
    key: str,
    epoch: int,
    target_class: int | None,
    sample: int | None,
    method: str,
    objective: str,
    k: int,
    _trace: NetworkTrace,
) -> Trail:
    result = _attribution(key, epoch, target_class, sample, method, objective, _trace)
    model = _model(_trace, epoch, objective)
    return breadcrumb_trail(model, result, _probe(_trace)[0], k=k)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _trail_check(
    key: str,
    epoch: int,
    target_class: int | None,
    sample: int | None,
    method: str,
    objective: str,
    k: int,
    _trace: NetworkTrace,
) -> pd.DataFrame:
    trail = _trail(key, epoch, target_class, sample, method, objective, k, _trace)
    with _progress("Ablating the trail against random neurons") as report:
        x, y = _probe(_trace)
        return trail_check(
            _model(_trace, epoch, objective), x, y, trail, n_repeats=TRAIL_REPEATS, progress=report
        )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _since_when(
    key: str,
    neurons: tuple[int, ...],
    target_class: int | None,
    sample: int | None,
    method: str,
    objective: str,
    _trace: NetworkTrace,
) -> pd.DataFrame:
    with _progress("Attributing at every recorded epoch") as report:
        return attribution_history(
            _trace,
            list(neurons),
            target_class=target_class,
            sample=sample,
            method=method,
            objective=objective,
            progress=report,
        )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _agreement(
    key: str,
    epoch: int,
    target_class: int | None,
    sample: int | None,
    objective: str,
    _trace: NetworkTrace,
) -> pd.DataFrame:
    results = {
        method: _attribution(key, epoch, target_class, sample, method, objective, _trace)
        for method in METHODS
    }
    return method_agreement(results)


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _ablation(
    key: str, epoch: int, neurons: tuple[int, ...], fill: str, _trace: NetworkTrace
) -> AblationResult:
    with _progress(f"Ablating {len(neurons)} neurons"):
        x, y = _probe(_trace)
        return ablate(
            _model(_trace, epoch), x, y, list(neurons), fill=fill, class_names=_trace.class_names
        )


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _curves(
    key: str, epoch: int, layer: str, fill: str, n_repeats: int, method: str, _trace: NetworkTrace
) -> AblationCurves:
    with _progress(f"Ablation curves of {layer}") as report:
        x, y = _probe(_trace)
        return AblationCurves(layer, n_repeats=n_repeats, fill=fill, method=method).fit(
            _model(_trace, epoch), x, y, progress=report
        )


@dataclass(frozen=True)
class _Pruned:
    """What the page shows of a pruning run (the model itself stays out of the cache)."""

    pruning: Pruning
    weights: bytes
    config: bytes
    trace: bytes


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _pruning(
    key: str,
    epoch: int,
    k: tuple[tuple[str, int], ...],
    fill: str,
    n_repeats: int,
    method: str,
    _trace: NetworkTrace,
) -> _Pruned:
    with _progress("Pruning") as report:
        x, y = _probe(_trace)
        pruning = Pruning(dict(k), fill=fill, n_repeats=n_repeats, method=method).fit(
            _model(_trace, epoch), x, y, progress=report
        )
        report(0.97, "tracing the pruned model on the probe set")
        config = pruned_config(_trace, pruning, epoch=None if epoch == FINAL else epoch)
        weights, text = pruned_files(pruning.pruned_, config)
        small = pruned_trace(pruning.pruned_, _trace, config)
        return _Pruned(pruning, weights, text, trace_to_bytes(small))


@st.cache_data(max_entries=_ENTRIES, show_spinner=False)
def _intervention(
    key: str, epoch: int, intervention: Intervention, _trace: NetworkTrace
) -> InterventionResult:
    with _progress(f"Intervening: {intervention.describe()}"):
        x, y = _probe(_trace)
        return intervene(
            _model(_trace, epoch), x, y, intervention, boundary_resolution=BOUNDARY_RESOLUTION
        )


# -- helpers -------------------------------------------------------------------------------------
def _dataset(trace: NetworkTrace) -> dict[str, Any]:
    dataset = trace.meta.get("dataset")
    return dataset if isinstance(dataset, dict) else {}


def _class_phrase(trace: NetworkTrace, label: int) -> str:
    """``class setosa``, or ``class 3`` for a class the dataset does not name."""
    name = trace.class_name(label)
    return name if name.startswith("class ") else f"class {name}"


def _labels(trace: NetworkTrace) -> dict[int, str]:
    """Names of input features and classes by global id (for the trail graph)."""
    labels = dict(enumerate(trace.feature_names))
    output = trace.layers[-1]
    labels.update({output.first_id + i: _class_phrase(trace, i) for i in range(output.n_neurons)})
    return labels


def _signature(trace: NetworkTrace, epoch: int, neuron: int) -> str:
    label = epoch if epoch != FINAL else trace.epochs[-1]
    return trace.signature(label, neuron)


def _hidden_options(trace: NetworkTrace, epoch: int, *, with_inputs: bool) -> list[int]:
    layers = trace.layers[:-1] if with_inputs else trace.layers[1:-1]
    return [i for info in layers for i in info.ids]


def _run_key(base: str, active: ActiveTrace) -> str:
    return state.epoch_key(base, active.ref)


# -- what cannot run -----------------------------------------------------------------------------
def _explain_problem(active: ActiveTrace, problem: str) -> None:
    trace = active.trace
    model = trace.meta.get("model") if isinstance(trace.meta.get("model"), dict) else {}
    if problem == "no-probe":
        st.warning(
            "This trace has no probe set: its statistics were streamed over training batches, "
            "so there are no fixed inputs to attribute, ablate or intervene on. Trace with a "
            "probe (`TraceableNN(..., probe=(x, y))`; the built-in training always has one)."
        )
        return
    if problem == "no-weights":
        st.warning("This trace holds no model weights, so its network cannot be rebuilt.")
        return
    if problem.startswith("custom"):
        st.warning(
            f"This trace comes from a custom model ({md_escape(model.get('class', 'unknown'))}). "
            "Attribution, ablation, pruning and intervention run the network itself, and a "
            "trace file holds its weights but not its code — the app never imports or unpickles "
            "code from a file. Attach the module in Python and run the same analyses there:"
        )
        st.code(
            f"""import nn_tracing as nt
from nn_tracing.analysis.attribution import attribute, breadcrumb_trail
from nn_tracing.analysis.intervention import AblationCurves, ablate, intervene, Intervention
from nn_tracing.analysis.neuron_model import NeuronModel

trace = nt.load_trace("runs/{active.name or "your-trace"}.nntrace")
nt.attach_model(trace, MyModel())        # same architecture; the trace's weights are loaded
model = NeuronModel.from_trace(trace)    # final weights (or epoch=E with keep_weights)
x, y = trace.probe

result = attribute(trace, target_class=0, method="integrated_gradients", model=model)
trail = breadcrumb_trail(model, result, x, k=5)
print(trail.nodes)
print(ablate(model, x, y, trail.neurons()).per_class())""",
            language="python",
        )
        return
    st.error(f"The network of this trace cannot be rebuilt: {md_escape(problem[7:], 600)}")


# -- controls ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    epoch: int
    target_class: int | None
    sample: int | None
    method: str
    objective: str
    k: int

    def describe(self, trace: NetworkTrace, n_samples: int) -> str:
        epoch = f"E_{self.epoch}" if self.epoch != FINAL else "the final weights"
        method = METHOD_TITLES[self.method]
        score = _SCORE_NAMES[self.objective]
        if self.sample is not None:
            cls = (
                _class_phrase(trace, self.target_class)
                if self.target_class is not None
                else "its predicted class"
            )
            return (
                f"Explaining {score} of {cls} for probe sample {self.sample} at {epoch}, "
                f"by {method}."
            )
        return (
            f"Explaining {score} of {_class_phrase(trace, int(self.target_class or 0))} over its "
            f"{n_samples} probe samples at {epoch}, by {method}."
        )


def _controls(active: ActiveTrace) -> _Target:
    trace = active.trace
    epochs = trace.epochs_with_weights or [FINAL]
    names = trace.class_names
    n_probe = len(trace.probe[1]) if trace.probe is not None else 0
    left, middle, right = st.columns([3, 3, 2])
    with left:
        epoch_key = _run_key(state.BREADCRUMBS_EPOCH, active)
        if state.get(epoch_key) not in epochs:
            state.put(epoch_key, epochs[-1])
        if len(epochs) > 1:
            epoch = int(
                st.select_slider(
                    "Epoch (model state)",
                    options=epochs,
                    key=epoch_key,
                    format_func=lambda e: f"E_{e}",
                    help="Every recorded epoch: this run kept its weights.",
                )
            )
        else:
            epoch = epochs[0]
            shown = f"E_{epoch}" if epoch != FINAL else "the final weights"
            st.caption(
                f"Model state: {shown}. This run kept only the final weights; train with "
                "keep_weights=True (--keep-weights) to attribute at every recorded epoch."
            )
        method = st.selectbox(
            "Attribution method",
            list(METHODS),
            key=state.BREADCRUMBS_METHOD,
            format_func=lambda m: METHOD_TITLES[m],
            help=" · ".join(f"{METHOD_TITLES[m]}: {d}" for m, d in METHODS.items()),
        )
    with middle:
        mode = st.segmented_control(
            "Explain",
            ["a class", "one probe sample"],
            key=state.BREADCRUMBS_MODE,
            default="a class",
            required=True,
        )
        sample = None
        if mode == "one probe sample":
            sample = int(
                st.number_input(
                    "Probe sample", 0, max(n_probe - 1, 0), 0, key=state.BREADCRUMBS_SAMPLE
                )
            )
            options: list[int | None] = [None, *range(len(names))]
        else:
            options = list(range(len(names)))
        if state.get(state.BREADCRUMBS_CLASS) not in options:
            state.put(state.BREADCRUMBS_CLASS, options[0])
        target_class = st.selectbox(
            "Class",
            options,
            key=state.BREADCRUMBS_CLASS,
            format_func=lambda c: "its predicted class" if c is None else names[int(c)],
        )
    with right:
        objective = st.radio(
            "Score",
            list(OBJECTIVES),
            key=state.BREADCRUMBS_OBJECTIVE,
            format_func=lambda o: {"logit": "class logit", "margin": "logit margin"}[o],
            help=" · ".join(f"{o}: {d}" for o, d in OBJECTIVES.items()),
        )
        widest = max(info.n_neurons for info in trace.layers[:-1])
        k = int(
            st.slider(
                "Trail neurons per layer",
                1,
                max(2, min(12, widest)),
                min(4, widest),
                key=state.BREADCRUMBS_K,
            )
        )
    return _Target(
        epoch, None if target_class is None else int(target_class), sample, method, objective, k
    )


# -- tab 1: attribution and the trail ------------------------------------------------------------
def _attribution_tab(active: ActiveTrace, target: _Target) -> None:
    trace = active.trace
    args = (target.epoch, target.target_class, target.sample, target.method, target.objective)
    result = _attribution(active.key, *args, trace)
    st.markdown(md_escape(target.describe(trace, len(result.samples)), 400))
    frame = result.frame()
    chart = crumbs.attribution_chart(
        frame,
        title=f"{METHOD_TITLES[target.method]} per neuron",
        subtitle=[f"score: {OBJECTIVES[target.objective]}, mean over the explained samples"],
    )
    event = show_chart(chart, select=viz.PICK, key=state.BREADCRUMBS_ATTRIBUTION_CHART)
    open_picked(active, event)
    shape = _dataset(trace).get("image_shape")
    inputs = frame[frame["layer"] == trace.layers[0].name]
    if isinstance(shape, list) and len(shape) == 2 and shape[0] * shape[1] == len(inputs):
        image = crumbs.input_image_chart(
            inputs, shape, title=f"{METHOD_TITLES[target.method]} of each pixel"
        )
        event = show_chart(
            image, select=viz.PICK, key=state.BREADCRUMBS_IMAGE_CHART, width="content"
        )
        open_picked(active, event)

    st.subheader("The breadcrumb trail")
    trail = _trail(active.key, *args, target.k, trace)
    with guarded("drawing the trail"):
        st.graphviz_chart(crumbs.trail_dot(trail.nodes, trail.edges, labels=_labels(trace)))
        st.caption(
            "From the output (right) back to the input features (left): the "
            f"{target.k} neurons of each layer with the largest |score|. Node border: the "
            "neuron's share of its layer's |score|; edge width: contribution flow = weight × "
            "upstream activation × downstream attribution (relative to the strongest between "
            "the same layers); blue positive, orange negative."
        )
        for note in trail.notes:
            st.caption(md_escape(note, 400))
    nodes = trail.nodes[trail.nodes["depth"] > 0].reset_index(drop=True)
    labels = _labels(trace)
    table = nodes[["signature", "layer", "rank", "score", "share", "activation"]].assign(
        name=[labels.get(int(n), "") for n in nodes["neuron"]]
    )
    st.markdown("**Trail neurons** — select a row to open the neuron")
    neuron_table(
        active.name,
        table,
        list(table["signature"]),
        key=state.BREADCRUMBS_TRAIL_TABLE,
        column_config={
            "score": st.column_config.NumberColumn(format="%+.4g"),
            "share": st.column_config.NumberColumn("share of layer", format="percent"),
            "activation": st.column_config.NumberColumn("mean activation", format="%.4g"),
            "name": st.column_config.TextColumn("feature"),
        },
    )

    with guarded("checking the trail by ablation"):
        _trail_check_section(active, target)
    with guarded("following the trail over training"):
        _since_when_section(active, target, trail)
    with st.expander("Do the four methods agree?"):
        if st.toggle(
            "Compute all four methods and compare their rankings",
            key=state.BREADCRUMBS_COMPARE,
        ):
            with guarded("comparing the methods"):
                agreement = _agreement(
                    active.key,
                    target.epoch,
                    target.target_class,
                    target.sample,
                    target.objective,
                    trace,
                )
                st.dataframe(
                    agreement.assign(
                        method_a=agreement["method_a"].map(METHOD_TITLES),
                        method_b=agreement["method_b"].map(METHOD_TITLES),
                    ),
                    hide_index=True,
                    column_config={
                        "spearman": st.column_config.NumberColumn(
                            "Spearman ρ of scores", format="%+.2f"
                        ),
                        "top_match": st.column_config.CheckboxColumn("same top neuron"),
                    },
                )


def _trail_check_section(active: ActiveTrace, target: _Target) -> None:
    st.subheader("Is the trail real? Ablate it against random neurons")
    args = (target.epoch, target.target_class, target.sample, target.method, target.objective)
    check = _trail_check(active.key, *args, target.k, active.trace)
    lines = []
    for row in check.itertuples():
        if row.layer == "input" and row.k == active.trace.layers[0].n_neurons:
            continue
        verdict = "more than" if row.p_value <= 0.05 else "not clearly more than"
        lines.append(
            f"- **L_{md_escape(row.layer)}**: zeroing its {row.k} trail neurons lowers the score "
            f"by {row.trail_drop:+.3g}, {verdict} {TRAIL_REPEATS} random sets of {row.k} "
            f"(mean {row.random_drop_mean:+.3g}, 95th percentile {row.random_drop_p95:+.3g}; "
            f"p = {row.p_value:.3f}); accuracy on the explained samples "
            f"{row.accuracy_before:.2f} → {row.accuracy_trail:.2f} "
            f"(random: {row.accuracy_random_mean:.2f})."
        )
    st.markdown("\n".join(lines) if lines else "Nothing to check: every layer is in the trail.")


def _since_when_section(active: ActiveTrace, target: _Target, trail: Trail) -> None:
    st.subheader("Since when?")
    trace = active.trace
    epochs = trace.epochs_with_weights
    if len(epochs) < 2:
        st.info(
            "Following the trail over training needs the weights of every recorded epoch; this "
            "run kept only the final weights. Train with keep_weights=True (--keep-weights)."
        )
        return
    neurons = tuple(int(n) for n in trail.nodes.loc[trail.nodes["depth"] > 0, "neuron"])
    history = _since_when(
        active.key,
        neurons,
        target.target_class,
        target.sample,
        target.method,
        target.objective,
        trace,
    )
    chart = crumbs.since_when_chart(
        history, title="The trail neurons' scores at every recorded epoch"
    )
    event = show_chart(chart, select=viz.PICK, key=state.BREADCRUMBS_SINCE_CHART)
    open_picked(active, event)


# -- tab 2: ablation -----------------------------------------------------------------------------
def _ablation_tab(active: ActiveTrace, target: _Target) -> None:
    trace = active.trace
    epoch = target.epoch
    options = _hidden_options(trace, epoch, with_inputs=True)
    signatures = {n: _signature(trace, epoch, n) for n in options}
    key = _run_key(state.BREADCRUMBS_ABLATE, active)
    chosen = [n for n in state.get(key, []) if n in signatures]
    state.put(key, chosen)
    st.markdown(
        "Zero (or mean-replace) any set of neurons and see what the network does without them "
        "on the probe set. One forward pass per set, many sets per pass."
    )
    left, right = st.columns([4, 1])
    with left:
        picked = st.multiselect(
            "Neurons to ablate",
            options,
            key=key,
            format_func=lambda n: signatures[n],
            placeholder="type a layer (L_hidden_1) or an id (n_12)",
        )
    with right:
        fill = st.radio(
            "Replace by",
            list(FILLS),
            key=state.BREADCRUMBS_ABLATE_FILL,
            format_func=lambda f: FILLS[f],
        )
        st.button(
            "Use the trail",
            key=state.BREADCRUMBS_USE_TRAIL,
            on_click=_use_trail,
            args=(active, target, key),
            help="Ablate the trail's neurons of every hidden layer.",
        )
    if picked:
        with guarded("ablating the neurons"):
            _ablation_result(active, epoch, tuple(sorted(int(n) for n in picked)), str(fill))
    else:
        st.caption("Pick neurons above (or take the trail's) to see what ablating them changes.")
    st.divider()
    with guarded("computing ablation curves"):
        _curves_section(active, target)


def _use_trail(active: ActiveTrace, target: _Target, key: str) -> None:
    """Button callback: put the trail's hidden neurons into the ablation selection."""
    trace = active.trace
    trail = _trail(
        active.key,
        target.epoch,
        target.target_class,
        target.sample,
        target.method,
        target.objective,
        target.k,
        trace,
    )
    hidden = [info.name for info in trace.layers[1:-1]]
    state.put(key, [int(n) for n in trail.nodes.loc[trail.nodes["layer"].isin(hidden), "neuron"]])


def _ablation_result(active: ActiveTrace, epoch: int, neurons: tuple[int, ...], fill: str) -> None:
    trace = active.trace
    result = _ablation(active.key, epoch, neurons, fill, trace)
    columns = st.columns(3)
    columns[0].metric(
        "Probe accuracy",
        f"{result.accuracy_after:.3f}",
        delta=f"{result.accuracy_after - result.accuracy_before:+.3f} "
        f"(from {result.accuracy_before:.3f})",
    )
    columns[1].metric("Predictions flipped", f"{len(result.flipped)} of {len(result.labels)}")
    columns[2].metric("Neurons ablated", f"{len(neurons)}", help=f"replaced by {FILLS[fill]}")
    st.markdown("**Per class** — accuracy, and the mean class logit on its own and on all samples")
    _per_class_table(result)
    chart = crumbs.confusion_chart(
        result.confusion(after=False), result.confusion(after=True), result.class_names
    )
    if chart is None:
        st.caption("Too many classes for a confusion chart; the per-class table says it all.")
    else:
        show_chart(chart, width="content")
    if len(result.flipped):
        st.markdown(f"**The {len(result.flipped)} probe samples whose prediction flipped**")
        st.dataframe(result.flipped_frame(), hide_index=True, height=220)


def _curves_section(active: ActiveTrace, target: _Target) -> None:
    trace = active.trace
    st.subheader("Ablation curves")
    st.markdown(
        "Accuracy as more and more neurons of one layer are ablated: most important first (by "
        "mean |attribution| to each sample's class), least important first, most class-"
        "selective first (Morcos et al. 2018), and in random order — the null."
    )
    layers = [info.name for info in trace.layers[1:-1]]
    if not layers:
        st.info("This network has no hidden layer.")
        return
    if state.get(state.BREADCRUMBS_CURVES_LAYER) not in layers:
        state.put(state.BREADCRUMBS_CURVES_LAYER, layers[0])
    a, b, c, d = st.columns([2, 2, 2, 1])
    layer = a.selectbox("Layer", layers, key=state.BREADCRUMBS_CURVES_LAYER)
    repeats = b.slider("Random orders", 5, 200, DEFAULT_REPEATS, key=state.BREADCRUMBS_REPEATS)
    fill = c.radio(
        "Replace by",
        list(FILLS),
        key=state.BREADCRUMBS_CURVES_FILL,
        format_func=lambda f: FILLS[f],
        horizontal=True,
    )
    run_key = _run_key(state.BREADCRUMBS_CURVES_RUN, active)
    params = (target.epoch, str(layer), str(fill), int(repeats), target.method)
    d.button(
        "Compute",
        key=state.BREADCRUMBS_CURVES_BUTTON,
        type="primary",
        on_click=state.put,
        args=(run_key, REQUESTED),
    )
    if state.get(run_key) == REQUESTED:
        state.put(run_key, params)
    if state.get(run_key) != params:
        st.caption("Choose a layer and press Compute.")
        return
    curves = _curves(active.key, *params, trace)
    _, y = _probe(trace)
    chance = float(np.bincount(y).max() / len(y))
    show_chart(
        crumbs.ablation_curves_chart(
            curves.curves_, layer=str(layer), chance=chance, n_repeats=int(repeats)
        )
    )
    st.info(curves.correlation_["sentence"])
    epoch = target.epoch if target.epoch != FINAL else trace.epochs[-1]
    chart = crumbs.selectivity_effect_chart(curves.neurons_, layer=str(layer), epoch=epoch)
    event = show_chart(chart, select=viz.PICK, key=state.BREADCRUMBS_CURVES_CHART)
    open_picked(active, event)


# -- tab 3: pruning ------------------------------------------------------------------------------
def _pruning_tab(active: ActiveTrace, target: _Target) -> None:
    trace = active.trace
    model = _model(trace, target.epoch)
    reason = prunable(model)
    if reason is not None:
        st.info(f"Structured pruning does not apply to this model: {md_escape(reason, 400)}.")
        return
    st.markdown(
        "Remove the k least important neurons of every hidden layer — the layers really get "
        "smaller (new, narrower Linear layers) — and compare with removing k random neurons "
        "(the same parameter savings)."
    )
    hidden = trace.layers[1:-1]
    columns = st.columns(len(hidden) + 2)
    k: dict[str, int] = {}
    for column, info in zip(columns, hidden, strict=False):
        key = f"{state.BREADCRUMBS_PRUNE_K}:{info.name}"
        default = max(1, info.n_neurons // 4)
        k[info.name] = int(
            column.number_input(
                f"Remove from L_{info.name}", 0, info.n_neurons - 1, default, key=key
            )
        )
    fill = columns[-2].radio(
        "Removed neurons give",
        list(FILLS),
        key=state.BREADCRUMBS_PRUNE_FILL,
        format_func=lambda f: {"zero": "nothing", "mean": "their mean (folded into biases)"}[f],
    )
    repeats = columns[-1].slider(
        "Random prunings", 5, 200, DEFAULT_REPEATS, key=state.BREADCRUMBS_PRUNE_REPEATS
    )
    run_key = _run_key(state.BREADCRUMBS_PRUNE_RUN, active)
    params = (target.epoch, tuple(sorted(k.items())), str(fill), int(repeats), target.method)
    st.button(
        "Prune",
        key=state.BREADCRUMBS_PRUNE_BUTTON,
        type="primary",
        on_click=state.put,
        args=(run_key, REQUESTED),
    )
    if state.get(run_key) == REQUESTED:
        state.put(run_key, params)
    if state.get(run_key) != params:
        st.caption("Choose how many neurons to remove and press Prune.")
        return
    done = _pruning(active.key, *params, trace)
    pruning = done.pruning
    random = pruning.random_accuracy_
    share_better = float(np.mean(random >= pruning.accuracy_after_)) if len(random) else np.nan
    cols = st.columns(4)
    cols[0].metric(
        "Probe accuracy after",
        f"{pruning.accuracy_after_:.3f}",
        delta=f"{pruning.accuracy_after_ - pruning.accuracy_before_:+.3f} "
        f"(from {pruning.accuracy_before_:.3f})",
    )
    cols[1].metric(
        "Parameters",
        f"{pruning.parameters_after_:,}",
        delta=f"-{pruning.parameters_saved_:,} "
        f"({pruning.parameters_saved_ / max(pruning.parameters_before_, 1):.0%} saved)",
        delta_color="off",
    )
    cols[2].metric(
        "Random pruning (same sizes)",
        f"{np.mean(random):.3f}",
        help=f"mean over {len(random)} random prunings; 5th–95th percentile "
        f"{np.percentile(random, 5):.3f}–{np.percentile(random, 95):.3f}",
    )
    cols[3].metric(
        "Hidden widths",
        " · ".join(str(s) for s in pruning.sizes_after_),
        help="before: " + " · ".join(str(s) for s in pruning.sizes_before_),
    )
    st.markdown(
        f"Pruning the least important neurons keeps **{pruning.accuracy_after_:.3f}** probe "
        f"accuracy; {share_better:.0%} of {len(random)} random prunings of the same sizes do at "
        f"least as well (their mean: {np.mean(random):.3f}). The pruned model's outputs equal "
        f"the ablated network's to {pruning.max_output_difference_:.1e} (float rounding)."
    )
    _, y = _probe(trace)
    chance = float(np.bincount(y).max() / len(y))
    uniform = len(set(k.values())) == 1
    show_chart(
        crumbs.pruning_chart(
            pruning.curve_,
            chosen_k=next(iter(k.values())) if uniform else None,
            accuracy_after=pruning.accuracy_after_,
            n_repeats=len(random),
            chance=chance,
        )
    )
    removed = [_signature(trace, target.epoch, n) for ids in pruning.removed_.values() for n in ids]
    st.caption("Removed: " + md_escape(", ".join(removed), 1500))
    stem = f"{active.name or 'trace'}-pruned"
    a, b, c = st.columns(3)
    a.download_button(
        "Pruned weights (.safetensors)",
        done.weights,
        file_name=f"{stem}.safetensors",
        mime="application/octet-stream",
        on_click="ignore",
        key=state.BREADCRUMBS_DOWNLOAD_WEIGHTS,
    )
    b.download_button(
        "Pruned config (.json)",
        done.config,
        file_name=f"{stem}.json",
        mime="application/json",
        on_click="ignore",
        key=state.BREADCRUMBS_DOWNLOAD_CONFIG,
    )
    c.download_button(
        "Pruned trace on the probe (.nntrace)",
        done.trace,
        file_name=f"{stem}.nntrace",
        mime="application/zip",
        on_click="ignore",
        key=state.BREADCRUMBS_DOWNLOAD_TRACE,
        help="E_0 of this trace is the pruned model; upload it in the sidebar to explore it.",
    )


# -- tab 4: intervention -------------------------------------------------------------------------
def _intervention_tab(active: ActiveTrace, target: _Target) -> None:
    trace = active.trace
    epoch = target.epoch
    st.markdown(
        "“Add the +1 ourselves”: change one neuron or one weight and see what the network does."
    )
    kind = st.segmented_control(
        "Change",
        ["clamp", "scale", "weight"],
        key=state.BREADCRUMBS_KIND,
        default="clamp",
        required=True,
        format_func=lambda k: {
            "clamp": "clamp a neuron",
            "scale": "scale a neuron",
            "weight": "edit a weight",
        }[k],
    )
    intervention = (
        _neuron_controls(active, target, str(kind))
        if kind in ("clamp", "scale")
        else _weight_controls(active, epoch)
    )
    if intervention is None:
        return
    result = _intervention(active.key, epoch, intervention, trace)
    cols = st.columns(3)
    cols[0].metric(
        "Probe accuracy",
        f"{result.accuracy_after:.3f}",
        delta=f"{result.accuracy_after - result.accuracy_before:+.3f} "
        f"(from {result.accuracy_before:.3f})",
    )
    cols[1].metric("Predictions flipped", f"{len(result.flipped)} of {len(result.labels)}")
    if result.boundary is not None:
        cols[2].metric("Plane whose class changed", f"{result.boundary.changed_share:.1%}")
    st.markdown("**What changed, layer by layer** (activations on the probe set)")
    st.dataframe(result.layer_changes(trace.layers), hide_index=True)
    comparison = result.comparison(trace.class_names)
    if result.boundary is not None:
        b = result.boundary
        chart = crumbs.decision_boundary_chart(
            b.xs,
            b.ys,
            b.before,
            b.after,
            b.confidence_before,
            b.confidence_after,
            _probe(trace)[0],
            result.labels,
            result.flipped,
            trace.class_names,
            feature_names=trace.feature_names,
        )
        show_chart(chart, width="content")
    else:
        st.caption("The decision boundary is drawn for datasets with two input features.")
    st.markdown("**Per class** — accuracy, and the mean class logit on its own and on all samples")
    _per_class_table(comparison)
    if result.boundary is None:
        chart = crumbs.confusion_chart(
            comparison.confusion(after=False), comparison.confusion(after=True), trace.class_names
        )
        if chart is not None:
            show_chart(chart, width="content")
    if len(result.flipped):
        st.markdown(f"**The {len(result.flipped)} probe samples whose prediction flipped**")
        st.dataframe(comparison.flipped_frame(), hide_index=True, height=220)


def _per_class_table(result: AblationResult) -> None:
    table = result.per_class()
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            column: st.column_config.NumberColumn(format="%+.3f" if "change" in column else "%.3f")
            for column in table.columns
            if column not in ("class", "n")
        },
    )


def _neuron_controls(active: ActiveTrace, target: _Target, kind: str) -> Intervention | None:
    trace = active.trace
    epoch = target.epoch
    options = _hidden_options(trace, epoch, with_inputs=False)
    if not options:
        st.info("This network has no hidden neuron to change.")
        return None
    if state.get(state.BREADCRUMBS_NEURON) not in options:
        trail = _trail(
            active.key,
            target.epoch,
            target.target_class,
            target.sample,
            target.method,
            target.objective,
            target.k,
            trace,
        )
        hidden = [n for n in trail.neurons() if n in options]
        state.put(state.BREADCRUMBS_NEURON, hidden[0] if hidden else options[0])
    left, right = st.columns([3, 2])
    neuron = int(
        left.selectbox(
            "Neuron",
            options,
            key=state.BREADCRUMBS_NEURON,
            format_func=lambda n: _signature(trace, epoch, n),
        )
    )
    label = epoch if epoch != FINAL else trace.epochs[-1]
    activations = trace.probe_activations(label)
    high = float(np.max(activations[:, neuron])) if activations is not None else 1.0
    default = round(2 * high, 3) if kind == "clamp" else 2.0
    value = right.number_input(
        "Clamp to" if kind == "clamp" else "Multiply by",
        value=float(default),
        step=0.1,
        key=f"{state.BREADCRUMBS_VALUE}:{kind}:{neuron}",
        help=f"its largest probe activation at E_{label}: {high:.4g}",
    )
    return Intervention(kind, float(value), neuron=neuron)


def _weight_controls(active: ActiveTrace, epoch: int) -> Intervention | None:
    trace = active.trace
    layers = [info for info in trace.layers[1:] if info.kind == "linear" and info.weight_key]
    if not layers:
        st.info("Editing one weight needs a Linear layer; this network has none.")
        return None
    names = [info.name for info in layers]
    if state.get(state.BREADCRUMBS_WEIGHT_LAYER) not in names:
        state.put(state.BREADCRUMBS_WEIGHT_LAYER, names[0])
    a, b, c, d = st.columns([2, 3, 3, 2])
    layer = trace.layer(a.selectbox("Layer", names, key=state.BREADCRUMBS_WEIGHT_LAYER))
    row = (
        int(
            b.selectbox(
                "Neuron (row)",
                list(layer.ids),
                key=f"{state.BREADCRUMBS_WEIGHT_ROW}:{layer.name}",
                format_func=lambda n: _signature(trace, epoch, n),
            )
        )
        - layer.first_id
    )
    index = trace.layers.index(layer)
    upstream = trace.layers[index - 1]
    direct = upstream.n_neurons == layer.fan_in
    column = int(
        c.selectbox(
            "Reads from (column)",
            list(range(layer.fan_in)),
            key=f"{state.BREADCRUMBS_WEIGHT_COLUMN}:{layer.name}",
            format_func=(
                (lambda j: _signature(trace, epoch, upstream.first_id + j))
                if direct
                else (lambda j: f"input {j}")
            ),
        )
    )
    weights = trace.weights(epoch) if epoch != FINAL else trace.final_weights
    current = float(weights[layer.weight_key][row, column]) if weights else 0.0
    value = d.number_input(
        "Set to",
        value=round(current, 4),
        step=0.1,
        key=f"{state.BREADCRUMBS_VALUE}:weight:{layer.name}:{row}:{column}",
        help=f"now {current:.4g}",
    )
    return Intervention("weight", float(value), layer=layer.name, row=row, column=column)


# -- the page ------------------------------------------------------------------------------------
def render_breadcrumbs() -> None:
    """Draw the Breadcrumbs page."""
    require_shell()
    st.title("Breadcrumbs")
    st.caption(
        "Which neurons made this output — attribution (Captum), the trail from the output back "
        "to the inputs, and every claim tested by ablation, pruning and intervention against "
        "random neurons."
    )
    active, _ = resolve_active()
    if active is None:
        st.info(md_escape(no_trace_message(), max_length=400))
        return
    st.caption(md_escape(active.label, max_length=300))
    problem = _model_problem(active.key, active.trace)
    if problem is not None:
        _explain_problem(active, problem)
        return
    target = _controls(active)
    tabs = st.tabs(list(TABS), key=state.BREADCRUMBS_TAB, on_change="rerun")
    sections = (_attribution_tab, _ablation_tab, _pruning_tab, _intervention_tab)
    for tab, name, section in zip(tabs, TABS, sections, strict=True):
        if tab.open is False:
            continue
        with tab, guarded(f"drawing {name.lower()}"):
            try:
                section(active, target)
            except ValueError as exc:  # an analysis that cannot run on this trace/state
                st.warning(md_escape(str(exc), 600))
