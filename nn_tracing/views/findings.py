"""What each page found on a trace, in one or two sentences each, before its controls.

A page's findings come from what is already computed — the trace itself, its neuron health,
and the analyses a visitor ran, read back from the analysis worker's store — never from a long
analysis started just to write a sentence. Each :class:`Finding` has a status:

``passed``
    A claim that beat its test against chance (the Clusters page's null models, the training
    map's time shuffles, decision entropy's label permutations, the trail's random neurons,
    a neuron's shuffled-label band): stated as a finding, with its p-value.
``chance``
    The test ran and the claim did not beat it: said as "not distinguishable from chance".
``untested``
    The test has not run on this trace: the sentence says where to run it ("… to know").
``fact``
    A description that makes no claim against chance (counts of flagged neurons, the epoch a
    curve plateaued), with the definition it rests on one click away.

Every finding names the page and section where it is shown (:attr:`Finding.page`,
:attr:`Finding.section`) and, where it is about one neuron, that neuron
(:attr:`Finding.neuron`); the app turns those into links. ``docs/findings.md`` lists every
finding and the test behind it. No Streamlit here; texts are Markdown (a name from the trace
reaches them only through :func:`~nn_tracing.views.text.md_escape`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..analysis.health import FLAG_TITLES, FLAGS, NeuronHealth
from ..analysis.hmm.structure import map_structure
from ..analysis.milestones import RISE_SHARE, flagged_since, plateau_index
from ..timeaxis import time_key
from ..trace import METRICS, NetworkTrace
from .text import md_escape

__all__ = [
    "ALPHA",
    "PAGES",
    "STATUSES",
    "Finding",
    "breadcrumbs_findings",
    "clusters_findings",
    "dynamics_findings",
    "neuron_population",
    "neurons_findings",
    "overview_findings",
    "strongest",
]

#: The pages, in the app's order, and their titles.
PAGES: dict[str, str] = {
    "overview": "Overview",
    "neurons": "Neurons",
    "clusters": "Clusters",
    "dynamics": "Dynamics",
    "breadcrumbs": "Breadcrumbs",
}
#: The statuses, strongest first (the order of a page's list).
STATUSES: tuple[str, ...] = ("passed", "fact", "chance", "untested")
#: The significance level of every test a finding reports (the pages' default).
ALPHA = 0.05
#: The phrase a claim that did not beat its test is said with.
CHANCE = "not distinguishable from chance"


@dataclass(frozen=True)
class Finding:
    """One finding: ``text`` (Markdown, one or two sentences), its ``status`` (one of
    :data:`STATUSES`), the ``page`` and ``section`` that show it, the ``neuron`` it is about
    (a signature, or ``None``) and the p-value of its test (``None`` without one)."""

    page: str
    section: str
    text: str
    status: str
    p_value: float | None = None
    neuron: str | None = None


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "no p-value"
    return f"p = {p:.2g}" if p >= 0.001 else "p < 0.001"


# -- who is counted ---------------------------------------------------------------------------
def _hidden(trace: NetworkTrace) -> np.ndarray:
    """Bool array of shape (n_neurons,): the neurons of every layer but the inputs and the
    last (output) layer."""
    mask = np.zeros(trace.n_neurons, dtype=bool)
    for info in trace.layers[:-1]:
        if info.kind != "input":
            mask[info.first_id : info.last_id + 1] = True
    return mask


def neuron_population(trace: NetworkTrace, mask: np.ndarray) -> str:
    """What the neurons selected by ``mask`` (bool, shape (n_neurons,)) are, for a count's
    "of N …": "hidden neurons", "hidden and output neurons", or "neurons" of named layers."""
    mask = np.asarray(mask, dtype=bool)
    hidden = _hidden(trace)
    output = np.zeros_like(mask)
    last = trace.layers[-1]
    output[last.first_id : last.last_id + 1] = last.kind != "input"
    if np.array_equal(mask, hidden):
        return "hidden neurons"
    if np.array_equal(mask, hidden | output):
        return "hidden and output neurons"
    layers = [i.name for i in trace.layers if mask[i.first_id : i.last_id + 1].any()]
    return "neurons of " + ", ".join(f"L_{md_escape(name)}" for name in layers)


def _by_layer(trace: NetworkTrace, ids: np.ndarray) -> str:
    """ "all in L_hidden_2" or "5 in L_hidden_2, 1 in L_hidden_1" (most first)."""
    counts = []
    for info in trace.layers:
        n = int(((ids >= info.first_id) & (ids <= info.last_id)).sum())
        if n:
            counts.append((n, info.name))
    if len(counts) == 1:
        return f"all in L_{md_escape(counts[0][1])}"
    counts.sort(key=lambda item: -item[0])
    return ", ".join(f"{n} in L_{md_escape(name)}" for n, name in counts)


# -- Overview ---------------------------------------------------------------------------------
def _since_finding(
    trace: NetworkTrace, flags: np.ndarray, applies: np.ndarray, word: str, definition: str
) -> Finding:
    """ "6 of 48 hidden neurons dead at E_30, since E_12 (the first since E_3), all in …"."""
    epochs = trace.epochs
    last = time_key(epochs[-1])
    population = neuron_population(trace, applies)
    total = int(applies.sum())
    since = flagged_since(flags)
    flagged = np.flatnonzero((since >= 0) & applies)
    if flagged.size == 0:
        text = f"None of the {total} {population} is {word} at {last}. {definition}"
        return Finding("overview", "Neuron health", text, "fact")
    first, latest = int(since[flagged].min()), int(since[flagged].max())
    when = (
        f"since {time_key(epochs[latest])}"
        if first == latest
        else f"all since {time_key(epochs[latest])} (the first since {time_key(epochs[first])})"
    )
    text = (
        f"**{flagged.size} of {total} {population} {'is' if flagged.size == 1 else 'are'} "
        f"{word}** at {last}, {when}; "
        f"{_by_layer(trace, flagged)}. {definition}"
    )
    return Finding("overview", "Neuron health", text, "fact")


def _plateau_finding(trace: NetworkTrace) -> Finding | None:
    history = trace.history
    column = next((c for c in ("val_acc", "train_acc") if c in history), None)
    if column is None or "epoch" not in history:
        return None
    frame = history[["epoch", column]].dropna()
    if len(frame) < 2:
        return None
    name = "validation accuracy" if column == "val_acc" else "training accuracy"
    values = frame[column].to_numpy(dtype=np.float64)
    epochs = frame["epoch"].to_numpy()
    index = plateau_index(values)
    best = float(values.max())
    tolerance = RISE_SHARE * (best - float(values.min()))
    if index is None and values[-1] < best - tolerance:
        text = (
            f"{name.capitalize()} ended at {values[-1]:.3f}, below its best ({best:.3f} at "
            f"epoch {int(epochs[int(values.argmax())])}): it did not hold a plateau."
        )
    elif index is None:
        text = (
            f"{name.capitalize()} was still rising at the last epoch ({int(epochs[-1])}), "
            f"at {values[-1]:.3f}: no plateau yet."
        )
    else:
        text = (
            f"**{name.capitalize()} plateaued at epoch {int(epochs[index])}**: from then on it "
            f"stays within {tolerance:.3f} ({RISE_SHARE:.0%} of its rise) of its best, {best:.3f}."
        )
    return Finding("overview", "Training curves", text, "fact")


def overview_findings(
    trace: NetworkTrace,
    health: NeuronHealth | None,
    *,
    dormant: np.ndarray | None = None,
    dormant_applies: np.ndarray | None = None,
    dormant_definition: str = "",
) -> list[Finding]:
    """The Overview's own findings: dead neurons and since when, the other health flags at
    the last epoch, and where validation accuracy plateaued.

    ``dormant`` is the hook for dormancy (τ-dormant neurons): a bool array of shape
    (n_epochs, n_neurons) like a health flag, summarised the same way ("… dormant since
    E_k"), with ``dormant_definition`` after it; ``dormant_applies`` says which neurons it is
    defined for (:meth:`nn_tracing.analysis.dormancy.Dormancy.flags`; every neuron but the
    input layer's when not given).
    """
    found: list[Finding] = []
    if health is not None and health.applies["dead"].any():
        found.append(
            _since_finding(
                trace,
                health.flags["dead"],
                health.applies["dead"],
                "dead",
                "The definitions of each flag are under *Neuron health* (one popover).",
            )
        )
    if dormant is not None:
        applies = dormant_applies
        if applies is None:
            applies = np.ones(trace.n_neurons, dtype=bool)
            applies[: trace.layers[0].n_neurons] = trace.layers[0].kind != "input"
        found.append(_since_finding(trace, dormant, applies, "dormant", dormant_definition))
    if health is not None:
        other = _other_flags(trace, health)
        if other is not None:
            found.append(other)
    plateau = _plateau_finding(trace)
    if plateau is not None:
        found.append(plateau)
    return found


def _other_flags(trace: NetworkTrace, health: NeuronHealth) -> Finding | None:
    """The flags other than dead raised at the last epoch, each with its population."""
    parts = []
    for flag in FLAGS:
        if flag == "dead" or not health.applies[flag].any():
            continue
        n = int((health.flags[flag][-1] & health.applies[flag]).sum())
        if n:
            total = int(health.applies[flag].sum())
            population = neuron_population(trace, health.applies[flag])
            parts.append(f"{n} of {total} {population} {FLAG_TITLES[flag]}")
    if not parts:
        return None
    return Finding(
        "overview",
        "Neuron health",
        f"Also flagged at {time_key(trace.epochs[-1])}: " + "; ".join(parts) + ".",
        "fact",
    )


# -- Neurons ----------------------------------------------------------------------------------
def neurons_findings(
    trace: NetworkTrace,
    health: NeuronHealth | None,
    selectivity: tuple[int, pd.DataFrame] | None = None,
) -> list[Finding]:
    """The Neurons page's findings: the health of every neuron at the last epoch, and the
    last class-selectivity test a visitor ran (``(neuron id, its table)``, see
    :func:`~nn_tracing.analysis.profiles.selectivity_over_epochs`) — or, untested, the most
    selective hidden neuron, with where to test it."""
    found = []
    if health is not None:
        last = trace.epochs[-1]
        parts = []
        for flag in FLAGS:
            if health.applies[flag].any():
                n = int((health.flags[flag][-1] & health.applies[flag]).sum())
                total = int(health.applies[flag].sum())
                parts.append(
                    f"{n} of {total} {neuron_population(trace, health.applies[flag])} "
                    f"{FLAG_TITLES[flag]}"
                )
        if parts:
            text = f"At {time_key(last)}: " + "; ".join(parts) + "."
            found.append(Finding("neurons", "Health of every neuron", text, "fact"))
    found.append(_selectivity_finding(trace, selectivity))
    return found


def _selectivity_finding(
    trace: NetworkTrace, selectivity: tuple[int, pd.DataFrame] | None
) -> Finding:
    last = trace.epochs[-1]
    if selectivity is not None:
        neuron, table = selectivity
        tested = table[table["tested"].astype(bool)]
        if not tested.empty:
            row = tested.iloc[-1]
            epoch = int(row["epoch"])
            signature = trace.signature(epoch, neuron)
            p = float(row["p_value"])
            if not math.isfinite(p) or not math.isfinite(float(row["observed"])):
                text = (
                    f"n_{neuron}'s class selectivity cannot be tested at {time_key(epoch)}: "
                    "it is not active on the probe set."
                )
                return Finding("neurons", "Selectivity", text, "fact", None, signature)
            name = str(row["preferred_class"])  # the class's name (its number, unnamed)
            preferred = md_escape(f"class {name}" if name.isdigit() else name)
            what = (
                f"n_{neuron}'s class selectivity at {time_key(epoch)} "
                f"({float(row['observed']):.2f}, preferring {preferred})"
            )
            if p <= ALPHA:
                text = f"**{what} beats shuffled labels** ({_fmt_p(p)})."
                return Finding("neurons", "Selectivity", text, "passed", p, signature)
            text = f"{what} is {CHANCE}: shuffled labels reach it ({_fmt_p(p)})."
            return Finding("neurons", "Selectivity", text, "chance", p, signature)
    values = np.asarray(trace.metrics_at(last)[:, METRICS.index("selectivity")], np.float64)
    values = np.where(_hidden(trace) & np.isfinite(values), values, -np.inf)
    if not np.isfinite(values.max()):
        text = "Class selectivity: open a neuron to test it against shuffled labels."
        return Finding("neurons", "Selectivity", text, "untested")
    neuron, value = int(values.argmax()), float(values.max())
    signature = trace.signature(last, neuron)
    text = (
        f"The most class-selective hidden neuron at {time_key(last)} is n_{neuron} "
        f"(index {value:.2f}); whether that beats shuffled labels is untested: open it to "
        "know."
    )
    return Finding("neurons", "Selectivity", text, "untested", None, signature)


# -- Clusters ---------------------------------------------------------------------------------
def clusters_findings(test: Any | None) -> list[Finding]:
    """The Clusters page's verdict: the last test against chance a visitor ran (a fitted
    :class:`~nn_tracing.analysis.baselines.ChanceTest`), or where to run it."""
    section = "Against chance"
    if test is None:
        text = (
            "Whether the neurons form clusters beyond chance is untested: run the test on the "
            "Clusters page to know."
        )
        return [Finding("clusters", section, text, "untested")]
    sentence = md_escape(test.sentence_, 600)
    p_values = [r.p_values["silhouette"] for r in test.results_.values()]
    p = max(p_values) if p_values else None
    if test.clustered_:
        return [
            Finding("clusters", section, f"**Clusters beyond chance.** {sentence}", "passed", p)
        ]
    if test.undecided_:
        text = f"Undecided: too few null versions to reach p ≤ {test.alpha:g}. {sentence}"
        return [Finding("clusters", section, text, "untested", p)]
    return [Finding("clusters", section, f"The clusters are {CHANCE}. {sentence}", "chance", p)]


# -- Dynamics ---------------------------------------------------------------------------------
def dynamics_findings(
    trace: NetworkTrace, training_map: Any | None, entropy: Any | None
) -> list[Finding]:
    """The Dynamics page's findings: the training map's phases against shuffled time (a
    fitted :class:`~nn_tracing.analysis.hmm.TrainingMap`), and the neurons whose activation
    tells the decision beyond label permutations (a fitted
    :class:`~nn_tracing.analysis.entropy.DecisionEntropy`); each "untested" when not run."""
    return [_map_finding(training_map), _entropy_finding(trace, entropy)]


def _map_finding(fitted: Any | None) -> Finding:
    section = "Is there temporal structure at all?"
    test = None if fitted is None else fitted.time_test_
    if test is None:
        text = (
            "Phases of training: untested — fit the training map on the Dynamics page (its "
            "time-shuffle test) to know."
        )
        return Finding("dynamics", section, text, "untested")
    k, p = int(fitted.n_states_), float(test.p_value)
    visited = int((fitted.states_["observations"] > 0).sum())
    shuffles = f"{test.n_permutations} time shuffles"
    structure = map_structure(fitted, alpha=ALPHA)
    if p <= ALPHA and structure.little:  # order beyond chance, yet no phases to claim
        text = (
            f"Temporal order beyond chance ({_fmt_p(p)}, {shuffles}), but the map's {k} "
            "states are not phases: "
            + "; ".join(md_escape(r, 300) for r in structure.reasons)
            + "."
        )
        return Finding("dynamics", section, text, "chance", p)
    if p <= ALPHA:
        text = (
            f"**Training went through {visited} phases** ({visited} of the map's {k} "
            f"hidden-Markov states on its path); temporal structure beyond chance "
            f"({_fmt_p(p)}, {shuffles})."
        )
        return Finding("dynamics", section, text, "passed", p)
    if p <= test.smallest_p + 1e-12:  # beats every shuffle, but too few of them for α
        text = (
            f"Phases of training: undecided — the real order beats all {shuffles}, but so "
            f"few cannot give p ≤ {ALPHA:g}; run more on the Dynamics page to know."
        )
        return Finding("dynamics", section, text, "untested", p)
    text = (
        f"The training map's {k} states are {CHANCE}: time-shuffled sequences fit as well "
        f"({_fmt_p(p)}, {shuffles})."
    )
    return Finding("dynamics", section, text, "chance", p)


def _entropy_finding(trace: NetworkTrace, result: Any | None) -> Finding:
    section = "Decision entropy"
    if result is None:
        text = (
            "Which neurons tell the decision: untested — measure decision entropy on the "
            "Dynamics page to know."
        )
        return Finding("dynamics", section, text, "untested")
    significant = np.asarray(result.significant_)[-1]
    n, total = int(significant.sum()), int(significant.size)
    epoch = time_key(int(result.epochs_[-1]))
    measured = np.zeros(trace.n_neurons, dtype=bool)
    measured[np.asarray(result.neuron_ids_, dtype=np.int64)] = True
    population = neuron_population(trace, measured)
    if n:
        text = (
            f"**At {epoch}, {n} of {total} {population} carry information about the "
            f"decision** beyond label permutations (false discovery rate {result.alpha:g})."
        )
        return Finding("dynamics", section, text, "passed", float(result.alpha))
    text = (
        f"At {epoch}, what each of the {total} {population} tells about the decision is {CHANCE}."
    )
    return Finding("dynamics", section, text, "chance")


# -- Breadcrumbs ------------------------------------------------------------------------------
def breadcrumbs_findings(
    trace: NetworkTrace, trail_check: tuple[Sequence[Any], pd.DataFrame] | None
) -> list[Finding]:
    """The Breadcrumbs page's findings: the last trail a visitor ablated against random
    neurons (``(params, table)``: params ``[epoch, class, sample, method, objective, k]``,
    table of :func:`~nn_tracing.analysis.intervention.trail_check`)."""
    section = "Is the trail real?"
    if trail_check is None:
        text = (
            "Which neurons carry a class: untested — open the trail on the Breadcrumbs page "
            "(ablated against random neurons) to know."
        )
        return [Finding("breadcrumbs", section, text, "untested")]
    params, table = trail_check
    target, sample, k = params[1], params[2], int(params[5])
    inputs = trace.layers[0]
    whole = (table["layer"] == inputs.name) & (table["k"] >= inputs.n_neurons)
    table = table[~whole]  # every input is in the trail: nothing to compare with
    what = _target_phrase(trace, target, sample)
    passed = table[table["p_value"] <= ALPHA]
    failed = table[table["p_value"] > ALPHA]
    found = []
    if not passed.empty:
        worst = passed.loc[passed["accuracy_trail"].idxmin()]
        text = (
            f"**{_carriers(passed, inputs.name, k)} carry {what}**: ablating those of "
            f"L_{md_escape(worst['layer'])} drops accuracy from {worst['accuracy_before']:.2f} "
            f"to {worst['accuracy_trail']:.2f} (random neurons: "
            f"{worst['accuracy_random_mean']:.2f}; {_fmt_p(float(passed['p_value'].max()))})."
        )
        found.append(
            Finding("breadcrumbs", section, text, "passed", float(passed["p_value"].max()))
        )
    if not failed.empty:
        layers = ", ".join(f"L_{md_escape(n)}" for n in failed["layer"])
        text = (
            f"In {layers}, ablating the trail of {what} is {CHANCE}: random neurons of the "
            f"layer do as much ({_fmt_p(float(failed['p_value'].min()))})."
        )
        found.append(
            Finding("breadcrumbs", section, text, "chance", float(failed["p_value"].min()))
        )
    return found


def _carriers(passed: pd.DataFrame, input_layer: str, k: int) -> str:
    """ "The top 2 input features and 2 neurons of each of L_hidden_1 and L_hidden_2"."""
    hidden = [f"L_{md_escape(n)}" for n in passed["layer"] if n != input_layer]
    parts = [f"{k} input features"] if (passed["layer"] == input_layer).any() else []
    if hidden:
        layers = hidden[0] if len(hidden) == 1 else f"{', '.join(hidden[:-1])} and {hidden[-1]}"
        parts.append(f"{k} neurons of {'each of ' if len(hidden) > 1 else ''}{layers}")
    return "The top " + " and ".join(parts)


def _target_phrase(trace: NetworkTrace, target: Any, sample: Any) -> str:
    if sample is not None:
        return f"sample {int(sample)}'s output"
    if target is None:
        return "the predicted class"
    name = trace.class_name(int(target))
    return md_escape(name if name.startswith("class ") else f"class {name}")


# -- across pages -----------------------------------------------------------------------------
def strongest(by_page: Mapping[str, Sequence[Finding]], n: int = 6) -> list[Finding]:
    """The Overview's "Findings" list across pages: tested results first (those that passed,
    smallest p first; then those that did not), then the facts, then what is untested; at
    most ``n``, the Overview's own facts included."""
    every = [f for findings in by_page.values() for f in findings]
    order = {status: i for i, status in enumerate(("passed", "chance", "fact", "untested"))}

    def rank(finding: Finding) -> tuple[int, float]:
        p = finding.p_value
        return order[finding.status], p if p is not None and math.isfinite(p) else 1.0

    return sorted(every, key=rank)[:n]
