"""What the Breadcrumbs page shows, built from a trace and plain values (no Streamlit).

The Breadcrumbs page of the app draws the widgets and lays out what these return:

* the model state and the probe set the analyses run on (:func:`model_at`, :func:`probe`),
  and why a trace's network cannot be rebuilt (:func:`model_problem`);
* the computations, plain functions the page runs on the analysis worker or caches
  (:func:`attribution`, :func:`trail`, :func:`check_trail`, :func:`since_when`,
  :func:`ablation`, :func:`ablation_curves`, :func:`prune`, :func:`intervention`);
* names: of classes and input features (with fallbacks when the trace's meta has none) and
  neuron signatures at a model state;
* what each tab shows of a result: tables, sentences, metrics (:class:`Metric`) and charts.

``epoch`` everywhere is a recorded epoch with weights, or :data:`FINAL` (the final weights of a
run that kept no others). Every attribution is explained by a :class:`Target`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import altair as alt
import numpy as np
import pandas as pd

from ..analysis.attribution import (
    METHOD_TITLES,
    OBJECTIVES,
    Attribution,
    Trail,
    attribute,
    attribution_history,
    breadcrumb_trail,
    method_agreement,
)
from ..analysis.intervention import (
    AblationCurves,
    AblationResult,
    Intervention,
    InterventionResult,
    Pruning,
    ablate,
    intervene,
    trail_check,
)
from ..analysis.neuron_model import NeuronModel
from ..analysis.profiles import destandardise
from ..export import pruned_config, pruned_files, pruned_trace
from ..progress import Progress
from ..store import trace_to_bytes
from ..timeaxis import time_key
from ..trace import LayerInfo, NetworkTrace
from ..viz import breadcrumbs as crumbs
from .text import change_words, difference_words

__all__ = [
    "BOUNDARY_RESOLUTION",
    "FINAL",
    "TRAIL_REPEATS",
    "Metric",
    "Pruned",
    "Target",
    "ablation",
    "ablation_curves",
    "ablation_metrics",
    "agreement_table",
    "attribution",
    "attribution_charts",
    "boundary_chart",
    "chance_accuracy",
    "check_trail",
    "clamp_default",
    "class_phrase",
    "column_labels",
    "confusion_chart",
    "curves_charts",
    "default_prune_k",
    "graph_labels",
    "hidden_layers",
    "intervention",
    "intervention_metrics",
    "model_at",
    "model_problem",
    "model_state",
    "neuron_options",
    "probe",
    "prune",
    "pruning_chart",
    "pruning_metrics",
    "pruning_sentence",
    "removed_signatures",
    "round_value",
    "signature",
    "since_when",
    "since_when_chart",
    "trail",
    "trail_check_sentences",
    "trail_dot",
    "trail_hidden_neurons",
    "trail_neurons",
    "trail_table",
    "weight_layers",
    "weight_value",
]

#: The epoch value that stands for "the final weights of no recorded epoch".
FINAL = -1
#: Random neuron sets of the trail check.
TRAIL_REPEATS = 50
#: Decision-boundary grid (cells per side): 40² = 1600 cells per panel.
BOUNDARY_RESOLUTION = 40
#: How the page names each objective in a sentence.
SCORE_NAMES = {
    "logit": "the logit",
    "margin": "the logit margin (the logit minus the mean of the other logits)",
}


# -- the model state and the probe ---------------------------------------------------------------
def model_at(trace: NetworkTrace, epoch: int, objective: str = "logit") -> NeuronModel:
    """The network at ``epoch`` (:data:`FINAL`: the final weights) scoring ``objective``."""
    return NeuronModel.from_trace(trace, None if epoch == FINAL else epoch, objective=objective)


def probe(trace: NetworkTrace) -> tuple[np.ndarray, np.ndarray]:
    """The probe inputs, array of shape (n_samples, ...), and labels, int64 array of shape
    (n_samples,)."""
    assert trace.probe is not None
    return trace.probe[0], np.asarray(trace.probe[1]).astype(np.int64)


def model_problem(trace: NetworkTrace) -> str | None:
    """Why the network of ``trace`` cannot be rebuilt, or ``None``: ``"no-probe"``,
    ``"no-weights"``, ``"custom: <why>"`` (a custom model), ``"refused: <why>"`` (an entry
    point that ``NN_TRACING_MODELS`` does not allow: nothing was imported) or
    ``"other: <why>"``."""
    from ..model_entry import EntryPointRefused

    if trace.probe is None:
        return "no-probe"
    if not trace.final_weights:
        return "no-weights"
    try:
        NeuronModel.from_trace(trace)
    except EntryPointRefused as exc:
        return f"refused: {exc}"
    except ValueError as exc:
        return f"custom: {exc}" if "custom model" in str(exc) else f"other: {exc}"
    return None


def model_state(trace: NetworkTrace, epoch: int) -> int:
    """The recorded epoch ``epoch`` stands for (:data:`FINAL`: the last one)."""
    return epoch if epoch != FINAL else trace.epochs[-1]


def chance_accuracy(labels: np.ndarray) -> float:
    """The accuracy of always answering the commonest class (``labels``: int array of shape
    (n_samples,))."""
    return float(np.bincount(labels).max() / len(labels))


# -- names ---------------------------------------------------------------------------------------
def _dataset(trace: NetworkTrace) -> dict[str, Any]:
    dataset = trace.meta.get("dataset")
    return dataset if isinstance(dataset, dict) else {}


def class_phrase(trace: NetworkTrace, label: int) -> str:
    """``class setosa``: the class ``label`` in a sentence (``class 3`` for a class the dataset
    does not name; names from :attr:`NetworkTrace.class_names`)."""
    name = trace.class_name(label)
    return name if name.startswith("class ") else f"class {name}"


def graph_labels(trace: NetworkTrace) -> dict[int, str]:
    """Names of input features and classes by global id (for the trail graph)."""
    labels = dict(enumerate(trace.feature_names))
    output = trace.layers[-1]
    labels.update({output.first_id + i: class_phrase(trace, i) for i in range(output.n_neurons)})
    return labels


def signature(trace: NetworkTrace, epoch: int, neuron: int) -> str:
    """The signature of global neuron id ``neuron`` at the model state ``epoch``."""
    return trace.signature(model_state(trace, epoch), neuron)


def neuron_options(trace: NetworkTrace, *, with_inputs: bool) -> list[int]:
    """The global ids of the hidden neurons (and of the inputs, ``with_inputs``)."""
    layers = trace.layers[:-1] if with_inputs else trace.layers[1:-1]
    return [i for info in layers for i in info.ids]


def hidden_layers(trace: NetworkTrace) -> list[LayerInfo]:
    """The hidden layers (neither the input nor the output)."""
    return list(trace.layers[1:-1])


# -- what is explained ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What an attribution explains, and how.

    ``target_class`` ``None`` (with a ``sample``): the sample's predicted class. ``sample``
    ``None``: every probe sample of ``target_class``. ``k``: trail neurons per layer.
    """

    epoch: int
    target_class: int | None
    sample: int | None
    method: str
    objective: str
    k: int

    def explained(self) -> list[Any]:
        """What the attribution depends on: epoch, class, sample, method, objective."""
        return [self.epoch, self.target_class, self.sample, self.method, self.objective]

    def describe(self, trace: NetworkTrace, n_samples: int) -> str:
        """One sentence: what is explained, at which state, by which method."""
        epoch = time_key(self.epoch) if self.epoch != FINAL else "the final weights"
        method = METHOD_TITLES[self.method]
        score = SCORE_NAMES[self.objective]
        if self.sample is not None:
            cls = (
                class_phrase(trace, self.target_class)
                if self.target_class is not None
                else "its predicted class"
            )
            return (
                f"Explaining {score} of {cls} for probe sample {self.sample} at {epoch}, "
                f"by {method}."
            )
        return (
            f"Explaining {score} of {class_phrase(trace, int(self.target_class or 0))} over its "
            f"{n_samples} probe samples at {epoch}, by {method}."
        )


# -- computations ----------------------------------------------------------------------------------
def attribution(
    trace: NetworkTrace, target: Target, method: str | None = None, progress: Progress | None = None
) -> Attribution:
    """The attribution ``target`` asks for (by ``method`` instead of its own, if given)."""
    return attribute(
        trace,
        epoch=None if target.epoch == FINAL else target.epoch,
        target_class=target.target_class,
        sample=target.sample,
        method=method or target.method,
        model=model_at(trace, target.epoch, target.objective),
        progress=progress,
    )


def trail(trace: NetworkTrace, target: Target, explained: Attribution) -> Trail:
    """The breadcrumb trail of ``explained`` (``target``'s attribution): ``target.k`` neurons a
    layer."""
    model = model_at(trace, target.epoch, target.objective)
    return breadcrumb_trail(model, explained, probe(trace)[0], k=target.k)


def check_trail(
    trace: NetworkTrace, target: Target, path: Trail, progress: Progress | None = None
) -> pd.DataFrame:
    """The trail ablated against :data:`TRAIL_REPEATS` random neuron sets, layer by layer."""
    x, y = probe(trace)
    model = model_at(trace, target.epoch, target.objective)
    return trail_check(model, x, y, path, n_repeats=TRAIL_REPEATS, progress=progress)


def since_when(
    trace: NetworkTrace, target: Target, neurons: Sequence[int], progress: Progress | None = None
) -> pd.DataFrame:
    """The scores of ``neurons`` for ``target`` at every recorded epoch with weights."""
    return attribution_history(
        trace,
        list(neurons),
        target_class=target.target_class,
        sample=target.sample,
        method=target.method,
        objective=target.objective,
        progress=progress,
    )


def ablation(trace: NetworkTrace, epoch: int, neurons: Sequence[int], fill: str) -> AblationResult:
    """The probe set's outputs with ``neurons`` (global ids) ablated by ``fill``."""
    x, y = probe(trace)
    model = model_at(trace, epoch)
    return ablate(model, x, y, list(neurons), fill=fill, class_names=trace.class_names)


def ablation_curves(
    trace: NetworkTrace,
    epoch: int,
    layer: str,
    fill: str,
    n_repeats: int,
    method: str,
    progress: Progress | None = None,
) -> AblationCurves:
    """The fitted ablation curves of ``layer`` (four orders, ``n_repeats`` random ones)."""
    x, y = probe(trace)
    curves = AblationCurves(layer, n_repeats=n_repeats, fill=fill, method=method)
    return curves.fit(model_at(trace, epoch), x, y, progress=progress)


@dataclass(frozen=True)
class Pruned:
    """What the page shows of a pruning run (the model itself stays out of the result store):
    the fitted :class:`Pruning` and the three downloads (weights, config, trace)."""

    pruning: Pruning
    weights: bytes
    config: bytes
    trace: bytes


def prune(
    trace: NetworkTrace,
    epoch: int,
    k: Sequence[tuple[str, int]],
    fill: str,
    n_repeats: int,
    method: str,
    progress: Progress,
) -> Pruned:
    """Prune ``k`` (``(layer, neurons removed)`` pairs) least important neurons, against
    ``n_repeats`` random prunings; the pruned model's files and its trace on the probe."""
    x, y = probe(trace)
    pruning = Pruning(dict(k), fill=fill, n_repeats=n_repeats, method=method).fit(
        model_at(trace, epoch), x, y, progress=progress
    )
    progress(0.97, "tracing the pruned model on the probe set")
    config = pruned_config(trace, pruning, epoch=None if epoch == FINAL else epoch)
    weights, text = pruned_files(pruning.pruned_, config)
    small = pruned_trace(pruning.pruned_, trace, config)
    return Pruned(pruning, weights, text, trace_to_bytes(small))


def intervention(
    trace: NetworkTrace, epoch: int, change: Intervention, *, resolution: int = BOUNDARY_RESOLUTION
) -> InterventionResult:
    """What ``change`` does on the probe set (and, for 2-D inputs, to the decision boundary
    on a ``resolution`` × ``resolution`` grid)."""
    x, y = probe(trace)
    return intervene(model_at(trace, epoch), x, y, change, boundary_resolution=resolution)


# -- attribution and the trail -------------------------------------------------------------------
def attribution_charts(
    trace: NetworkTrace, frame: pd.DataFrame, target: Target
) -> tuple[alt.TopLevelMixin, alt.TopLevelMixin | None]:
    """The attribution per neuron, and per pixel when the inputs are an image (else ``None``).

    ``frame``: :meth:`Attribution.frame`, one row per neuron.
    """
    title = METHOD_TITLES[target.method]
    chart = crumbs.attribution_chart(
        frame,
        title=f"{title} per neuron",
        subtitle=[f"score: {OBJECTIVES[target.objective]}, mean over the explained samples"],
    )
    shape = _dataset(trace).get("image_shape")
    inputs = frame[frame["layer"] == trace.layers[0].name]
    if isinstance(shape, list) and len(shape) == 2 and shape[0] * shape[1] == len(inputs):
        return chart, crumbs.input_image_chart(inputs, shape, title=f"{title} of each pixel")
    return chart, None


def trail_dot(trace: NetworkTrace, path: Trail) -> str:
    """The trail as Graphviz DOT text, inputs and classes named."""
    return crumbs.trail_dot(path.nodes, path.edges, labels=graph_labels(trace))


def trail_table(trace: NetworkTrace, path: Trail) -> pd.DataFrame:
    """The trail's neurons (not the output): signature, layer, rank, score, share, mean
    activation, the input feature's name (``""`` for a hidden neuron) and, for an input, its
    mean in the dataset's own units (``value``; NaN for a hidden neuron) — ``activation`` is
    what the network read, standardised."""
    nodes = path.nodes[path.nodes["depth"] > 0].reset_index(drop=True)
    labels = graph_labels(trace)
    table = nodes[["signature", "layer", "rank", "score", "share", "activation"]].assign(
        name=[labels.get(int(n), "") for n in nodes["neuron"]]
    )
    first = trace.layers[0]
    value = np.full(len(table), np.nan)
    if first.kind == "input":
        columns = nodes["neuron"].to_numpy(np.int64) - first.first_id
        inputs = np.flatnonzero(table["layer"].to_numpy() == first.name)
        if inputs.size:
            standardised = np.zeros((inputs.size, first.n_neurons))
            standardised[np.arange(inputs.size), columns[inputs]] = table["activation"].iloc[inputs]
            raw = destandardise(trace, standardised)
            value[inputs] = raw[np.arange(inputs.size), columns[inputs]]
    return table.assign(value=value)


def trail_neurons(path: Trail) -> tuple[int, ...]:
    """The global ids of the trail's neurons, output excluded."""
    return tuple(int(n) for n in path.nodes.loc[path.nodes["depth"] > 0, "neuron"])


def trail_hidden_neurons(trace: NetworkTrace, path: Trail) -> list[int]:
    """The global ids of the trail's neurons in hidden layers (what "Use the trail" ablates)."""
    hidden = [info.name for info in hidden_layers(trace)]
    return [int(n) for n in path.nodes.loc[path.nodes["layer"].isin(hidden), "neuron"]]


def trail_check_sentences(trace: NetworkTrace, check: pd.DataFrame) -> list[tuple[str, str]]:
    """``(layer, sentence)`` per layer of the trail check (the input layer left out when the
    trail holds all of it); the sentence follows the layer's name and holds numbers only."""
    lines = []
    for row in check.itertuples():
        if row.layer == "input" and row.k == trace.layers[0].n_neurons:
            continue
        verdict = "more than" if row.p_value <= 0.05 else "not clearly more than"
        lines.append(
            (
                str(row.layer),
                f"zeroing its {row.k} trail neurons {change_words(row.trail_drop, 'the score')}, "
                f"{verdict} {TRAIL_REPEATS} random sets of {row.k} "
                f"(their drop: mean {row.random_drop_mean:+.3g}, 95th percentile "
                f"{row.random_drop_p95:+.3g}; "
                f"p = {row.p_value:.3f}); accuracy on the explained samples "
                f"{row.accuracy_before:.2f} → {row.accuracy_trail:.2f} "
                f"(random: {row.accuracy_random_mean:.2f}).",
            )
        )
    return lines


def since_when_chart(history: pd.DataFrame) -> alt.TopLevelMixin:
    """The trail neurons' scores at every recorded epoch (``history``: :func:`since_when`)."""
    return crumbs.since_when_chart(
        history, title="The trail neurons' scores at every recorded epoch"
    )


def agreement_table(attributions: dict[str, Attribution]) -> pd.DataFrame:
    """How far the methods agree (one row per layer and pair of methods), methods by title."""
    agreement = method_agreement(attributions)
    return agreement.assign(
        method_a=agreement["method_a"].map(METHOD_TITLES),
        method_b=agreement["method_b"].map(METHOD_TITLES),
    )


# -- metrics -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One ``st.metric``: label, value, and optionally delta, help and delta colour."""

    label: str
    value: str
    delta: str | None = None
    help: str | None = None
    delta_color: Literal["normal", "inverse", "off"] = "normal"


def _accuracy(label: str, before: float, after: float) -> Metric:
    return Metric(label, f"{after:.3f}", delta=f"{after - before:+.3f} (from {before:.3f})")


def ablation_metrics(result: AblationResult, fill_name: str) -> list[Metric]:
    """Probe accuracy, flipped predictions and how many neurons an ablation replaced (by
    ``fill_name``)."""
    return [
        _accuracy("Probe accuracy", result.accuracy_before, result.accuracy_after),
        Metric("Predictions flipped", f"{len(result.flipped)} of {len(result.labels)}"),
        Metric("Neurons ablated", f"{len(result.neurons)}", help=f"replaced by {fill_name}"),
    ]


def intervention_metrics(result: InterventionResult) -> list[Metric]:
    """Probe accuracy, flipped predictions and (2-D inputs) the share of the plane whose class
    changed."""
    metrics = [
        _accuracy("Probe accuracy", result.accuracy_before, result.accuracy_after),
        Metric("Predictions flipped", f"{len(result.flipped)} of {len(result.labels)}"),
    ]
    if result.boundary is not None:
        metrics.append(Metric("Plane whose class changed", f"{result.boundary.changed_share:.1%}"))
    return metrics


def confusion_chart(result: AblationResult, names: Sequence[str]) -> alt.TopLevelMixin | None:
    """The confusion matrices before and after (``None``: too many classes to draw)."""
    return crumbs.confusion_chart(
        result.confusion(after=False), result.confusion(after=True), list(names)
    )


# -- ablation curves -----------------------------------------------------------------------------
def curves_charts(
    trace: NetworkTrace, curves: AblationCurves, *, epoch: int, n_repeats: int
) -> tuple[alt.TopLevelMixin, alt.TopLevelMixin]:
    """The fitted curves of a layer against the random band, and each neuron's selectivity
    against its effect."""
    layer = curves.layer
    chance = chance_accuracy(probe(trace)[1])
    chart = crumbs.ablation_curves_chart(
        curves.curves_, layer=layer, chance=chance, n_repeats=n_repeats
    )
    effect = crumbs.selectivity_effect_chart(
        curves.neurons_, layer=layer, epoch=model_state(trace, epoch)
    )
    return chart, effect


# -- pruning -------------------------------------------------------------------------------------
def default_prune_k(info: LayerInfo) -> int:
    """Neurons removed from a hidden layer by default: a quarter, at least one."""
    return max(1, info.n_neurons // 4)


def pruning_metrics(pruning: Pruning) -> list[Metric]:
    """Accuracy after, parameters, random pruning, hidden widths."""
    random = pruning.random_accuracy_
    saved = pruning.parameters_saved_ / max(pruning.parameters_before_, 1)
    return [
        _accuracy("Probe accuracy after", pruning.accuracy_before_, pruning.accuracy_after_),
        Metric(
            "Parameters",
            f"{pruning.parameters_after_:,}",
            delta=f"-{pruning.parameters_saved_:,} ({saved:.0%} saved)",
            delta_color="off",
        ),
        Metric(
            "Random pruning (same sizes)",
            f"{np.mean(random):.3f}",
            help=f"mean over {len(random)} random prunings; 5th–95th percentile "
            f"{np.percentile(random, 5):.3f}–{np.percentile(random, 95):.3f}",
        ),
        Metric(
            "Hidden widths",
            " · ".join(str(s) for s in pruning.sizes_after_),
            help="before: " + " · ".join(str(s) for s in pruning.sizes_before_),
        ),
    ]


def pruning_sentence(pruning: Pruning) -> str:
    """What the pruning kept, against the random prunings (Markdown, numbers only)."""
    random = pruning.random_accuracy_
    share_better = float(np.mean(random >= pruning.accuracy_after_)) if len(random) else np.nan
    return (
        f"Pruning the least important neurons keeps **{pruning.accuracy_after_:.3f}** probe "
        f"accuracy; {share_better:.0%} of {len(random)} random prunings of the same sizes do at "
        f"least as well (their mean: {np.mean(random):.3f}). Check: "
        + difference_words(
            pruning.max_output_difference_,
            "the pruned model's outputs",
            "the ablated network's",
        )
        + " (float rounding)."
    )


def pruning_chart(trace: NetworkTrace, pruning: Pruning, k: dict[str, int]) -> alt.TopLevelMixin:
    """Accuracy against neurons pruned per layer, least important first against random; the
    pruned model marked when every layer lost the same ``k``."""
    uniform = len(set(k.values())) == 1
    return crumbs.pruning_chart(
        pruning.curve_,
        chosen_k=next(iter(k.values())) if uniform else None,
        accuracy_after=pruning.accuracy_after_,
        n_repeats=len(pruning.random_accuracy_),
        chance=chance_accuracy(probe(trace)[1]),
    )


def removed_signatures(trace: NetworkTrace, epoch: int, pruning: Pruning) -> list[str]:
    """The signatures of the neurons the pruning removed."""
    return [signature(trace, epoch, n) for ids in pruning.removed_.values() for n in ids]


# -- intervention --------------------------------------------------------------------------------
def round_value(value: float, digits: int = 2) -> float:
    """``value`` to ``digits`` significant digits (a default a person would type).

    >>> round_value(19.41), round_value(0.04637), round_value(0.0)
    (19.0, 0.046, 0.0)
    """
    if value == 0 or not np.isfinite(value):
        return 0.0 if value == 0 else float(value)
    return float(f"{value:.{digits}g}")


def clamp_default(
    trace: NetworkTrace, epoch: int, neuron: int, kind: str
) -> tuple[float, float, str]:
    """``(default value, largest probe activation, where the default comes from)`` of a clamp
    (twice the largest activation, rounded to two significant digits) or a scale (2) of
    ``neuron`` at ``epoch``."""
    state = model_state(trace, epoch)
    activations = trace.probe_activations(state)
    high = float(np.max(activations[:, neuron])) if activations is not None else 1.0
    if kind != "clamp":
        return 2.0, high, "twice its activation"
    default = round_value(2 * high)
    origin = (
        f"twice the neuron's largest activation on the probe at {time_key(state)} "
        f"({high:.3g}), rounded"
        if activations is not None
        else "no probe activations recorded: an arbitrary start"
    )
    return default, high, origin


def weight_layers(trace: NetworkTrace) -> list[LayerInfo]:
    """The layers whose incoming weights can be edited (Linear layers with weights)."""
    return [info for info in trace.layers[1:] if info.kind == "linear" and info.weight_key]


def column_labels(trace: NetworkTrace, epoch: int, layer: LayerInfo) -> list[str]:
    """A name for each column of ``layer``'s weight matrix: the upstream neuron's signature
    when the layer reads the previous one directly, else ``"input <j>"``."""
    upstream = trace.layers[trace.layers.index(layer) - 1]
    if upstream.n_neurons == layer.fan_in:
        return [signature(trace, epoch, upstream.first_id + j) for j in range(layer.fan_in)]
    return [f"input {j}" for j in range(layer.fan_in)]


def weight_value(trace: NetworkTrace, epoch: int, layer: LayerInfo, row: int, column: int) -> float:
    """The weight ``[row, column]`` of ``layer`` at ``epoch`` (0 when the trace has none)."""
    weights = trace.weights(epoch) if epoch != FINAL else trace.final_weights
    return float(weights[layer.weight_key][row, column]) if weights else 0.0


def boundary_chart(trace: NetworkTrace, result: InterventionResult) -> alt.TopLevelMixin | None:
    """The decision boundary before and after, probe samples on top (``None``: the inputs
    are not 2-D)."""
    b = result.boundary
    if b is None:
        return None
    x = np.asarray(probe(trace)[0], dtype=np.float64)
    # the plane in the dataset's own units, as the rest of the page (an affine map per axis)
    origin = destandardise(trace, np.zeros((1, 2)))[0]
    unit = destandardise(trace, np.ones((1, 2)))[0] - origin
    own_units = bool(np.any(unit != 1.0) or np.any(origin != 0.0))
    return crumbs.decision_boundary_chart(
        np.asarray(b.xs) * unit[0] + origin[0],
        np.asarray(b.ys) * unit[1] + origin[1],
        b.before,
        b.after,
        b.confidence_before,
        b.confidence_after,
        destandardise(trace, x),
        result.labels,
        result.flipped,
        trace.class_names,
        feature_names=trace.feature_names,
        standardised_points=x if own_units else None,
    )
