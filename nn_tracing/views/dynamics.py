"""What the Dynamics page shows, built from a trace and plain settings: no Streamlit.

The page's module in the app (``ui/dynamics.py``) keeps the widgets and the layout. What it
shows that is computed is built here: which estimator runs with which parameters (the small frozen
classes :class:`MapParams`, :class:`NeuronParams` and :class:`EntropyParams`, whose
``fit_params`` are also what a stored result is keyed by), the k a choice of states means (the
estimator's own rule, :meth:`nn_tracing.analysis.hmm.StateModel.choose_k`), the curves a map
can be drawn on, the neuron tables with each neuron's signature, the summary figures of the
neuron-level model, its state raster, and decision entropy per layer at one epoch.

The choices the page offers (and a URL may carry) are declared here once: :data:`K_CHOICES`,
:data:`SEQUENCES`, :data:`MAP_STANDARDIZE`, :data:`TIME_SHUFFLES`, :data:`NEURON_STANDARDIZE`,
:data:`NEURON_ORDERS`, :data:`BINNINGS`, :data:`ENTROPY_LABELS`, :data:`PERMUTATIONS`,
:data:`ALPHAS`, :data:`FDR_SCOPES`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import altair as alt
import numpy as np
import pandas as pd

from ..analysis.entropy import LABELS, DecisionEntropy
from ..analysis.hmm import (
    NEURON_FEATURES,
    ModelFeatures,
    NeuronHMM,
    PhaseReading,
    TrainingMap,
    boundary_k,
    model_features,
    read_phases,
    step_features,
)
from ..analysis.sampling import DEFAULT_MAX_NEURONS, SAMPLE_SEED
from ..progress import Progress
from ..timeaxis import time_key, time_word
from ..trace import NetworkTrace
from ..viz import dynamics as vd
from .neuron_states import modelled_layers

__all__ = [
    "ALPHAS",
    "BINNINGS",
    "CURVES",
    "DEFAULT_K_MAX",
    "ENTROPY_LABELS",
    "FDR_SCOPES",
    "K_CHOICES",
    "MAP_STANDARDIZE",
    "MAX_K",
    "NEURON_K_CHOICES",
    "NEURON_ORDERS",
    "NEURON_STANDARDIZE",
    "PERMUTATIONS",
    "SEQUENCES",
    "TIME_SHUFFLES",
    "EntropyParams",
    "KBoundary",
    "MapParams",
    "NeuronParams",
    "NeuronRows",
    "NeuronSummary",
    "binning_label",
    "entropy_layer_table",
    "entropy_ranking",
    "every_neuron",
    "has_steps",
    "hidden_layers",
    "k_boundary",
    "k_label",
    "map_state_table",
    "neuron_summary",
    "seed_stem",
    "sequence_features",
    "significance_caption",
    "state_raster",
    "trace_config",
    "training_curves",
    "unusual_neurons",
    "with_states",
]

# -- the choices -------------------------------------------------------------------------------
#: Choices of k: by a criterion, or a number of states (text, as a URL and a widget hold it).
K_CHOICES: tuple[str, ...] = ("bic", "aic", *(str(k) for k in range(1, 9)))
#: The largest k fitted unless the page is asked for more (BIC at the boundary offers more).
DEFAULT_K_MAX = 8
#: The largest k the page offers to fit.
MAX_K = 32
#: The neuron-level model needs at least two states.
NEURON_K_CHOICES: tuple[str, ...] = tuple(c for c in K_CHOICES if c != "1")
#: What the training map is fitted over.
SEQUENCES: dict[str, str] = {"epochs": "recorded epochs", "steps": "training steps"}
#: How the training map's features are z-scored when several runs are fitted.
MAP_STANDARDIZE: dict[str, str] = {
    "global": "over all runs together (Hu et al.: runs that differ in level visit "
    "different states)",
    "run": "within each run (states are phases the runs share)",
}
#: Bounds of the training map's restarts per k.
MAP_RESTARTS: tuple[int, int] = (1, 20)
#: Numbers of time-shuffled refits offered for the map's p-value.
TIME_SHUFFLES: tuple[int, ...] = (19, 49, 99)
#: Curves the map's states are drawn on (validation accuracy only where it was recorded).
CURVES: dict[str, str] = {
    "loss": "training loss",
    "weight_norm": "L2 norm of the weights",
    "val_acc": "validation accuracy",
}
#: How each neuron's trajectory is standardised.
NEURON_STANDARDIZE: dict[str, str] = {
    "layer": "within each layer",
    "global": "over all neurons",
    "neuron": "per neuron",
}
#: Row orders of the state raster (cluster labels belong to the Clusters page).
NEURON_ORDERS: dict[str, str] = {o: t for o, t in vd.ROW_ORDERS.items() if o != "cluster"}
#: Bounds of the quantile bins per neuron.
ENTROPY_BINS: tuple[int, int] = (2, 16)
#: Where the quantile bins are chosen.
BINNINGS: dict[str, str] = {"E_0": "on E_0 (untrained)", "epoch": "at each epoch"}


def binning_label(binning: str) -> str:
    """How a binning choice reads on the trace's axis (``"on S_0 (untrained)"`` for a step
    trace); the choices' values stay :data:`BINNINGS`' keys."""
    if binning == "E_0":
        return f"on {time_key(0)} (untrained)"
    return f"at each {time_word()}" if binning == "epoch" else BINNINGS.get(binning, binning)


_LABEL_TEXTS = {"predicted": "the decision (predicted)", "true": "the true class"}
#: The labels decision entropy can be measured against (the estimator's ``LABELS``).
ENTROPY_LABELS: dict[str, str] = {label: _LABEL_TEXTS[label] for label in LABELS}
#: Label permutations offered for the null.
PERMUTATIONS: tuple[int, ...] = (20, 100, 200, 500)
#: False-discovery rates offered.
ALPHAS: tuple[float, ...] = (0.01, 0.05, 0.1)
#: Over what the false-discovery rate is controlled.
FDR_SCOPES: dict[str, str] = {"all": "all epochs at once", "epoch": "each epoch"}

Fitted = TypeVar("Fitted", TrainingMap, NeuronHMM)


def k_label(choice: str | int) -> str:
    """How a choice of k reads: ``"by BIC"``, ``"by AIC"``, ``"3 states"``."""
    return {"bic": "by BIC", "aic": "by AIC"}.get(str(choice), f"{choice} states")


@dataclass(frozen=True)
class KBoundary:
    """The criterion chose the largest k fitted: ``sentence`` says so, ``next_k_max`` is the
    next range's largest k (``None``: none to offer)."""

    k: int
    sentence: str
    next_k_max: int | None


def k_boundary(selection: pd.DataFrame, criterion: str, k_max: int) -> KBoundary | None:
    """Whether the criterion's k sits at the boundary of the k tried (``k_max`` the largest
    asked for), in a sentence that offers the next range; ``None`` when it lies inside.

    A smooth trend has no natural number of states: every extra state cuts it finer and BIC
    keeps improving, so it chooses the largest k tried. That choice says "at least this many",
    not "this many".
    """
    k = boundary_k(selection, criterion)
    if k is None:
        return None
    fitted = selection[selection["restarts"] > 0]["k"].astype(int)
    name = criterion.upper()
    said = (
        f"{name} chose k = {k}, the largest k tried ({fitted.min()}–{k}): the choice sits at "
        f"the boundary of the range, so the data may support more states (a smooth trend "
        f"does: every extra state cuts it finer). Read it as “at least {k}”."
    )
    if k < k_max:  # larger k were skipped: too little data for them
        return KBoundary(k, said + f" Larger k ({k + 1}–{k_max}) need more data.", None)
    if k_max >= MAX_K:
        return KBoundary(k, said + f" The page fits at most k = {MAX_K}.", None)
    following = min(2 * k_max, MAX_K)
    return KBoundary(
        k,
        said + f" Fit k up to {following} to see whether {name} turns back up.",
        following,
    )


def _criterion(choice: str) -> str:
    """The criterion whose curve a selection chart highlights for a choice of k."""
    return "aic" if choice == "aic" else "bic"


def with_states(fitted: Fitted, k: int) -> Fitted:
    """A copy of a fitted model that uses its fit with ``k`` states (the original, a stored
    result, is never modified)."""
    return copy.deepcopy(fitted).select(k)


# -- 1. the training map -----------------------------------------------------------------------
def has_steps(trace: NetworkTrace) -> bool:
    """Whether the trace has per-step statistics (a map over training steps)."""
    return trace.steps is not None and len(trace.steps) > 0


def trace_config(trace: NetworkTrace) -> dict[str, Any] | None:
    """The training configuration the trace carries (``None``: a custom model's trace)."""
    config = trace.meta.get("config")
    return config if isinstance(config, dict) else None


def seed_stem(name: str | None) -> str:
    """The run name more seeds are named after: ``moons-seed3`` → ``moons``."""
    return (name or "run").split("-seed")[0]


def sequence_features(
    trace: NetworkTrace, sequence: str, progress: Progress | None = None
) -> ModelFeatures:
    """The model-level features of ``trace`` per recorded epoch, or per training step."""
    return model_features(trace, progress) if sequence == "epochs" else step_features(trace)


@dataclass(frozen=True)
class MapParams:
    """What the training map is fitted with (see :class:`~nn_tracing.analysis.hmm.TrainingMap`).

    ``k``: one of :data:`K_CHOICES` — every k is fitted, the choice only picks one of them.
    """

    features: tuple[str, ...]
    sequence: str = "epochs"
    k: str = "bic"
    restarts: int = 5
    n_permutations: int = 19
    standardize: str = "global"
    random_state: int = 0
    k_max: int = DEFAULT_K_MAX

    @property
    def criterion(self) -> str:
        """The criterion the selection chart shows."""
        return _criterion(self.k)

    def fit_params(self) -> dict[str, Any]:
        """Everything the fit depends on but ``k`` (JSON-like: a stored result's key)."""
        return {
            "random_state": self.random_state,
            "sequence": self.sequence,
            "features": list(self.features),
            "restarts": self.restarts,
            "n_permutations": self.n_permutations,
            "standardize": self.standardize,
            **({"k_max": self.k_max} if self.k_max != DEFAULT_K_MAX else {}),
        }

    def estimator(self) -> TrainingMap:
        """The unfitted training map (k from 1 to ``k_max``)."""
        return TrainingMap(
            list(self.features),
            sequence=self.sequence,
            k_range=(1, self.k_max),
            standardize=self.standardize,
            n_restarts=self.restarts,
            n_permutations=self.n_permutations,
            random_state=self.random_state,
        )

    def fit(
        self,
        features: Sequence[ModelFeatures],
        names: Sequence[str],
        progress: Progress | None = None,
    ) -> TrainingMap:
        """The map fitted jointly on the runs' features (one per run, named ``names``)."""
        return self.estimator().fit(list(features), names=list(names), progress=progress)


def training_curves(path: pd.DataFrame) -> dict[str, str]:
    """The curves a fitted map's ``path_`` can be drawn on: ``{column: title}``."""
    curves = {c: CURVES[c] for c in ("loss", "weight_norm")}
    if "val_acc" in path and path["val_acc"].notna().any():
        curves["val_acc"] = CURVES["val_acc"]
    return curves


def phase_reading(trace: NetworkTrace, fitted: TrainingMap) -> PhaseReading | None:
    """The map's states read as grokking's phases from ``trace``'s accuracies
    (:func:`~nn_tracing.analysis.hmm.read_phases`, on the trace's own run); ``None`` for a map
    over per-step tables (the accuracies are per recorded point) or a trace without training
    and validation accuracy. Chance is 1 / the number of outputs."""
    history = trace.history
    if fitted.time_column_ != "epoch" or not {"train_acc", "val_acc"} <= set(history):
        return None
    if history["train_acc"].notna().sum() < 2 or history["val_acc"].notna().sum() < 2:
        return None
    n_classes = max(len(trace.class_names), 1)
    run = fitted.run_names_[0] if fitted.run_names_ else None
    try:
        return read_phases(fitted.path_, history, chance=1.0 / n_classes, run=run)
    except ValueError:
        return None


def phase_boundary_table(reading: PhaseReading) -> pd.DataFrame:
    """The boundaries between phases, each beside the jump in the accuracies near it:
    ``from`` (the last point of one phase), ``to`` (the first of the next), ``phases``,
    ``jump`` (which accuracy, by how much, at which key), ``epochs away``."""
    rows = []
    phases = reading.phases
    for i in range(1, len(phases)):
        start = int(phases["first"].iloc[i])
        found = reading.boundaries[reading.boundaries["time"] == start]
        jump, away = "", None
        if len(found) and found["jump_curve"].iloc[0] is not None:
            edge = found.iloc[0]
            name = "training" if edge["jump_curve"] == "train_acc" else "validation"
            jump = (
                f"{name} accuracy {edge['jump_change']:+.3f} at {time_key(int(edge['jump_time']))}"
            )
            away = int(edge["distance"])
        rows.append(
            {
                "from": time_key(int(phases["last"].iloc[i - 1])),
                "to": time_key(start),
                "phases": f"{phases['phase'].iloc[i - 1]} → {phases['phase'].iloc[i]}",
                "nearest jump": jump,
                f"{time_word(plural=True)} away": away,
            }
        )
    return pd.DataFrame(rows)


def map_state_table(fitted: TrainingMap) -> pd.DataFrame:
    """The map's states: label, observations, runs, first and last time, stay, detour."""
    return fitted.states_[["label", "observations", "runs", "first", "last", "stay", "detour"]]


# -- 2. neuron-level states -------------------------------------------------------------------
#: The layers the neuron-level model covers by default (one definition, shared with the pages
#: that colour neurons by its states).
hidden_layers = modelled_layers


@dataclass(frozen=True)
class NeuronParams:
    """What the neuron-level HMM is fitted with (see
    :class:`~nn_tracing.analysis.hmm.NeuronHMM`); ``k`` one of :data:`NEURON_K_CHOICES`."""

    layers: tuple[str, ...]
    features: tuple[str, ...] = NEURON_FEATURES
    standardize: str = "layer"
    k: str = "bic"
    random_state: int = 0
    #: Above this many neurons, a seeded sample of this many is modelled.
    max_neurons: int = DEFAULT_MAX_NEURONS
    k_max: int = DEFAULT_K_MAX

    @classmethod
    def default(cls, trace: NetworkTrace) -> NeuronParams:
        """The page's defaults on ``trace`` (what other pages colour neurons by)."""
        return cls(layers=tuple(hidden_layers(trace)))

    @property
    def criterion(self) -> str:
        """The criterion the selection chart shows."""
        return _criterion(self.k)

    def fit_params(self) -> dict[str, Any]:
        """Everything the fit depends on but ``k`` (JSON-like: a stored result's key)."""
        return {
            "random_state": self.random_state,
            "features": list(self.features),
            "layers": list(self.layers),
            "standardize": self.standardize,
            "max_neurons": self.max_neurons,
            **({"k_max": self.k_max} if self.k_max != DEFAULT_K_MAX else {}),
        }

    def n_neurons(self, trace: NetworkTrace) -> int:
        """How many neurons the model covers (a sample of ``max_neurons`` above it)."""
        return min(self.n_total(trace), self.max_neurons)

    def n_total(self, trace: NetworkTrace) -> int:
        """How many neurons the chosen layers hold."""
        return sum(trace.layer(name).n_neurons for name in self.layers)

    def load_text(self, trace: NetworkTrace) -> str:
        """What the fit holds in memory: neurons × epochs × features, in MiB (float64)."""
        n, t, d = self.n_neurons(trace), len(trace.epochs), len(self.features)
        mib = n * t * d * 8 / 2**20
        loaded = (
            f"Loads {n:,} neurons × {t} {time_word(plural=True)} × {d} features "
            f"({mib:,.1f} MiB as float64)"
        )
        total = self.n_total(trace)
        if n == total:
            return f"{loaded}: every neuron of the chosen layers."
        return (
            f"{loaded}: a random sample (seed {SAMPLE_SEED}) of the {total:,} neurons of the "
            f"chosen layers, above the limit of {self.max_neurons:,}; raise it to model more."
        )

    def estimator(self) -> NeuronHMM:
        """The unfitted model."""
        return NeuronHMM(
            list(self.features),
            k_range=(2, max(self.k_max, 2)),
            layers=list(self.layers),
            standardize=self.standardize,
            random_state=self.random_state,
            max_neurons=self.max_neurons,
        )


@dataclass(frozen=True)
class NeuronSummary:
    """The neuron-level model in four figures (means over the modelled neurons)."""

    n_states: int
    entropy_rate: float
    max_entropy_rate: float
    switches: float
    occupancy_entropy: float


def neuron_summary(model: NeuronHMM) -> NeuronSummary:
    """States, the chain's entropy rate (and its maximum, ``log2 k``), the mean number of
    switches and the mean occupancy entropy of the modelled neurons."""
    modelled = model.neuron_ids_
    k = model.n_states_
    return NeuronSummary(
        n_states=k,
        entropy_rate=float(model.entropy_rate_),
        max_entropy_rate=float(np.log2(k)),
        switches=float(model.n_switches_[modelled].mean()),
        occupancy_entropy=float(np.nanmean(model.occupancy_entropy_[modelled])),
    )


def state_raster(model: NeuronHMM, order: str) -> alt.Chart:
    """The raster of every modelled neuron's path (rows in ``order``, one of
    :data:`NEURON_ORDERS`)."""
    k = model.n_states_
    return vd.state_raster_chart(
        vd.state_raster_frame(
            model.paths_,
            model.neuron_ids_,
            model.layers_,
            model.epochs_,
            k,
            dominant=model.dominant_state_[model.neuron_ids_],
            order=order,
        )
    )


@dataclass(frozen=True)
class NeuronRows:
    """A table of neurons as the page shows it (``frame``, a ``signature`` column first) and
    the neuron of every row (``signatures``, in row order: a selected row opens it)."""

    frame: pd.DataFrame
    signatures: list[str]


def _rows(trace: NetworkTrace, table: pd.DataFrame, epoch: int, drop: Sequence[str]) -> NeuronRows:
    """``table`` (a ``neuron`` column of global ids) with each neuron's signature at ``epoch``
    in front and the ``drop`` columns left out."""
    signatures = [trace.signature(epoch, int(i)) for i in table["neuron"]]
    frame = table.drop(columns=list(drop))
    frame.insert(0, "signature", signatures)
    return NeuronRows(frame, signatures)


def unusual_neurons(trace: NetworkTrace, model: NeuronHMM) -> NeuronRows:
    """Neurons that visit a rare state or take an unlikely path (signatures at the last
    epoch)."""
    return _rows(trace, model.unusual_neurons(), trace.epochs[-1], ["neuron"])


def every_neuron(trace: NetworkTrace, model: NeuronHMM) -> NeuronRows:
    """Every modelled neuron with its path's summary (signatures at the last epoch)."""
    return _rows(trace, model.neuron_table(), trace.epochs[-1], ["neuron", "layer"])


# -- 3. decision entropy ----------------------------------------------------------------------
@dataclass(frozen=True)
class EntropyParams:
    """What decision entropy is measured with (see
    :class:`~nn_tracing.analysis.entropy.DecisionEntropy`)."""

    n_bins: int = 8
    binning: str = "E_0"
    label: str = "predicted"
    n_permutations: int = 100
    alpha: float = 0.05
    fdr: str = "all"
    random_state: int = 0

    def fit_params(self) -> dict[str, Any]:
        """The estimator's parameters (JSON-like: a stored result's key)."""
        return {
            "random_state": self.random_state,
            "n_bins": self.n_bins,
            "binning": self.binning,
            "label": self.label,
            "n_permutations": self.n_permutations,
            "alpha": self.alpha,
            "fdr": self.fdr,
        }

    def estimator(self) -> DecisionEntropy:
        """The unfitted estimator."""
        return DecisionEntropy(**self.fit_params())


def entropy_layer_table(summary: pd.DataFrame, label: str, epoch: int) -> pd.DataFrame:
    """Decision entropy per layer at ``epoch`` (from ``DecisionEntropy.layer_summary()``),
    columns named as the page shows them."""
    at_epoch = summary[summary["epoch"] == epoch]
    columns = ["layer", "entropy", "conditional", "median", "null_q95", "n_significant"]
    return at_epoch[[*columns, "n_neurons"]].rename(
        columns={
            "entropy": "median H(A)",
            "conditional": f"median H(A | {label})",
            "median": f"median I(A; {label})",
            "null_q95": "null 95th percentile",
            "n_significant": "significant",
            "n_neurons": "neurons",
        }
    )


def entropy_ranking(trace: NetworkTrace, result: DecisionEntropy, epoch: int) -> NeuronRows:
    """The neurons at ``epoch``, most informative first."""
    return _rows(trace, result.ranking(epoch), epoch, ["neuron", "layer"])


def significance_caption(result: DecisionEntropy, epoch: int) -> str:
    """How many neurons are more ordered than chance at ``epoch``, and how to read the
    ranking's columns."""
    n_sig = int(result.significant_[result.epochs_.index(epoch)].sum())
    return (
        f"{n_sig} of {len(result.neuron_ids_)} neurons are more ordered than chance at "
        f"{time_key(epoch)} (I(A; {result.label}) above its permutation null after FDR). "
        f"'significant since': the first {time_word()} from which a neuron stays significant to "
        "the end. 'MI above null' subtracts the null mean (the plug-in bias). The G-test p is an "
        "asymptotic "
        "second opinion below the permutation resolution."
    )
