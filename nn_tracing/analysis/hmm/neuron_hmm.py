"""Neuron-level latent states: one HMM shared by every neuron (:class:`NeuronHMM`).

Each neuron's standardised trajectory of a few metrics (:data:`NEURON_FEATURES`, built by
:func:`neuron_sequences`) is one sequence, and the model is fitted once over all of them
(``fit(X, lengths)``; one shared model beats a loop of per-neuron fits: 18 s for 5000 neurons ×
100 epochs at k = 4, measured on a 2-core CPU machine); each neuron gets a Viterbi path
(``states_``, neurons × epochs), a dominant state, its occupancy, switches and occupancy
entropy, and the chain its entropy rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ..._renamed import renamed_keyword
from ...progress import Progress
from ...timeaxis import time_key
from ...trace import METRICS, NetworkTrace
from ..entropy import entropy_bits, entropy_rate, stationary_distribution
from ..sampling import sample_neurons
from ..standardise import canonical_mode, zscore
from ._em import Sequences, forward_backward, from_model, viterbi
from .describe import describe_levels, state_label, when_words
from .nulls import TimeShuffleTest, shuffled_time_test
from .states import StateModel, _FittedStates

__all__ = [
    "LOG_FEATURES",
    "NAN_FILL",
    "NEURON_FEATURES",
    "NeuronHMM",
    "NeuronSequences",
    "neuron_sequences",
]

#: The neuron-level features offered by default (all columns of ``trace.frame``).
NEURON_FEATURES: tuple[str, ...] = (
    "act_mean",
    "act_std",
    "act_active",
    "w_norm",
    "grad_norm",
    "selectivity",
)
#: Non-negative, heavy-tailed metrics that are standardised on a log scale.
LOG_FEATURES: frozenset[str] = frozenset(
    {"w_norm", "grad_norm", "act_std", "w_drift", "w_absmax", "w_std"}
)
#: Values that stand for "undefined" where the trace has NaN: a neuron never active on the
#: probe has no class selectivity; it counts as unselective.
NAN_FILL: dict[str, float] = {"selectivity": 0.0}


@dataclass(frozen=True)
class NeuronSequences:
    """Every neuron's standardised trajectory, ready for one shared HMM.

    ``values``: array of shape (n_neurons, n_epochs, n_features), standardised; ``raw``: the
    same before standardising; ``neuron_ids``, ``layers``: (n_neurons,); ``epochs``: the
    recorded epochs; ``features``; ``dropped``: ``{neuron id: reason}`` for neurons left out;
    ``notes``: how the values were prepared.
    """

    values: np.ndarray
    raw: np.ndarray
    neuron_ids: np.ndarray
    layers: np.ndarray
    epochs: list[int]
    features: list[str]
    dropped: dict[int, str]
    notes: list[str]


def neuron_sequences(
    trace: NetworkTrace,
    features: Sequence[str] = NEURON_FEATURES,
    *,
    layers: Sequence[str] | None = None,
    standardize: str = "layer",
    max_neurons: int | None = None,
) -> NeuronSequences:
    """Each neuron's trajectory of ``features`` over the recorded epochs, standardised.

    Parameters
    ----------
    features
        Columns of ``trace.frame``. Non-negative heavy-tailed ones (:data:`LOG_FEATURES`) are
        taken as ``log10(x + ε)``, ε a thousandth of the feature's median positive value, so
        that a dead neuron's zero is far below but not infinitely far from the rest.
    layers
        Layers to include (default: every layer but ``input``).
    standardize
        ``"layer"``: each feature z-scored over the neurons and epochs of each layer (layers on
        different scales compare), ``"global"``: over all neurons, ``"neuron"``: over each
        neuron's own epochs (states then mean "above / below its own average"); the modes of
        :mod:`nn_tracing.analysis.standardise`.
    max_neurons
        Above this many neurons, a seeded sample of this many
        (:func:`~nn_tracing.analysis.sampling.sample_neurons`, said in ``notes``); ``None``:
        every neuron.
    """
    unknown = [f for f in features if f not in METRICS]
    if unknown or not features:
        raise ValueError(f"unknown feature(s) {unknown}; features: {', '.join(METRICS)}")
    standardize = canonical_mode(standardize, ("layer", "global", "neuron"), "standardize")
    names = list(layers) if layers else [i.name for i in trace.layers if i.kind != "input"]
    infos = [trace.layer(name) for name in names]
    ids = np.concatenate([np.asarray(i.ids) for i in infos])
    layer_of = np.concatenate([[i.name] * i.n_neurons for i in infos]).astype(object)
    sample = sample_neurons(ids, max_neurons)
    ids, layer_of = sample.ids, layer_of[sample.positions]
    raw = np.stack([trace.metric(f)[:, ids].T for f in features], axis=2).astype(np.float64)
    notes = [sample.describe(len(trace.epochs) * len(features))] if sample.sampled else []
    for j, name in enumerate(features):
        if name in NAN_FILL and np.isnan(raw[:, :, j]).any():
            raw[:, :, j] = np.where(np.isnan(raw[:, :, j]), NAN_FILL[name], raw[:, :, j])
            notes.append(
                f"{name} is undefined for a neuron never active on the probe: taken as "
                f"{NAN_FILL[name]:g}."
            )
    bad = ~np.isfinite(raw).all(axis=(1, 2))
    dropped = {int(i): "a feature is undefined (NaN) at some epoch" for i in ids[bad]}
    raw, ids, layer_of = raw[~bad], ids[~bad], layer_of[~bad]
    if ids.size == 0:
        raise ValueError(
            f"no neuron has every feature ({', '.join(features)}) defined at every epoch"
        )
    values = raw.copy()
    logged = [f for f in features if f in LOG_FEATURES]
    for j, name in enumerate(features):
        if name in LOG_FEATURES:
            column = values[:, :, j]
            positive = column[column > 0]
            eps = 1e-3 * float(np.median(positive)) if positive.size else 1e-12
            values[:, :, j] = np.log10(np.maximum(column, 0.0) + eps)
    if logged:
        notes.append(f"on a log scale: {', '.join(logged)}.")
    groups = (
        [layer_of == name for name in dict.fromkeys(layer_of)]
        if standardize == "layer"
        else [np.ones(ids.size, dtype=bool)]
    )
    values = zscore(values, axis=(1,) if standardize == "neuron" else (0, 1), groups=groups)
    notes.append(
        {
            "layer": "each feature z-scored within each layer (over its neurons and epochs).",
            "global": "each feature z-scored over every neuron and epoch.",
            "neuron": "each feature z-scored over each neuron's own epochs.",
        }[standardize]
    )
    return NeuronSequences(
        values, raw, ids, layer_of, list(trace.epochs), list(features), dropped, notes
    )


class NeuronHMM(_FittedStates):
    """One Gaussian HMM shared by every neuron's standardised trajectory.

    Every neuron is one sequence (its recorded epochs); the model is fitted once over all of
    them (``fit(X, lengths)``) for each k, and k is chosen by BIC. Each neuron then has a
    Viterbi path through the shared states.

    Parameters
    ----------
    features, layers, standardize, max_neurons
        As for :func:`neuron_sequences` (used when ``fit`` is given a trace).
    n_states, k_range, criterion, n_restarts, sticky, tol_per_obs, n_iter, engine
        As for :class:`StateModel` (default k = 2…8 by BIC, one restart).
    random_state
        Seeds the restarts.

    Attributes
    ----------
    state_model_ : StateModel; ``model_`` : its GaussianHMM; ``n_states_``; ``selection_``;
        ``converged_``; ``log_messages_``
    n_neurons_ : int — neurons of the trace (rows of the arrays below); for array input, the
        rows of ``X``
    neuron_ids_ : array of shape (n_modelled,) — the neurons modelled (global ids; the input
        layer and neurons with an undefined feature are not); ``layers_`` : their layers;
        ``modelled_`` : bool array of shape (n_neurons,); ``epochs_`` : the epochs
    feature_names_ : list of str; ``notes_`` : how the data were prepared; ``dropped_``
    X_ : array of shape (n_modelled, n_epochs, n_features) — the standardised data fitted
    paths_ : int array of shape (n_modelled, n_epochs) — the Viterbi paths, modelled neurons
    states_ : int array of shape (n_neurons, n_epochs) — each neuron's Viterbi path, by global
        id; −1 for a neuron not modelled
    posteriors_ : array of shape (n_neurons, n_epochs, n_states) (NaN: not modelled)
    dominant_state_ : int array of shape (n_neurons,) — the state each neuron spends most
        epochs in (ties: the lower state; −1: not modelled)
    occupancy_ : array of shape (n_neurons, n_states) — share of epochs in each state
    n_switches_ : int array of shape (n_neurons,) — changes of state along the path (−1)
    occupancy_entropy_ : array of shape (n_neurons,) — entropy of the occupancy, bits
    sequence_loglik_ : array of shape (n_neurons,) — log-likelihood of each neuron's
        trajectory under the shared model (low: an unusual path)
    state_occupancy_ : array of shape (n_states,) — share of neuron-epochs (all but the last)
        in each state
    entropy_rate_ : float — entropy rate of the fitted chain in bits per epoch,
        ``−Σ_i o_i Σ_j A_ij log2 A_ij`` weighted by that occupancy ``o`` (the uncertainty of
        a neuron's next state given its current one; 0 = neurons never switch, log2 k = they
        jump at random)
    stationary_ : array of shape (n_states,) — a stationary distribution of the chain
    state_means_ : array of shape (n_states, n_features) — state means, standardised units
    descriptions_ : list of str — each state in words
    """

    def __init__(
        self,
        features: Sequence[str] = NEURON_FEATURES,
        n_states: int | None = None,
        *,
        k_range: tuple[int, int] = (2, 8),
        criterion: str = "bic",
        layers: Sequence[str] | None = None,
        standardize: str = "layer",
        n_restarts: int = 1,
        sticky: float = 0.9,
        tol_per_obs: float = 1e-4,
        n_iter: int = 100,
        engine: str = "auto",
        random_state: int | None = 0,
        max_neurons: int | None = None,
    ) -> None:
        self.features = features
        self.n_states = n_states
        self.k_range = k_range
        self.criterion = criterion
        self.layers = layers
        self.standardize = standardize
        self.n_restarts = n_restarts
        self.sticky = sticky
        self.tol_per_obs = tol_per_obs
        self.n_iter = n_iter
        self.engine = engine
        self.random_state = random_state
        self.max_neurons = max_neurons

    def fit(
        self,
        X: NetworkTrace | np.ndarray,
        lengths: Sequence[int] | np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> NeuronHMM:
        """Fit the shared model.

        Parameters
        ----------
        X
            A :class:`NetworkTrace` (its neurons' trajectories are built with
            :func:`neuron_sequences`), or an array of shape (n_neurons, n_epochs, n_features),
            or the sequences concatenated, (n_neurons · n_epochs, n_features), with
            ``lengths`` (every neuron has the same epochs, so all lengths must be equal).
        """
        if isinstance(X, NetworkTrace):
            seqs = neuron_sequences(
                X,
                self.features,
                layers=self.layers,
                standardize=self.standardize,
                max_neurons=self.max_neurons,
            )
            data = seqs.values
            self.neuron_ids_ = seqs.neuron_ids
            self.layers_ = seqs.layers
            self.epochs_ = seqs.epochs
            self.feature_names_ = seqs.features
            self.notes_ = seqs.notes
            self.dropped_ = seqs.dropped
            self.raw_ = seqs.raw
            self.n_neurons_ = X.n_neurons
        else:
            data = np.asarray(X, dtype=np.float64)
            if data.ndim == 2:
                if lengths is None:
                    raise ValueError("a 2-D X needs lengths (one per neuron)")
                lengths = np.asarray(lengths)
                if (lengths != lengths[0]).any():
                    raise ValueError("every neuron must have the same number of epochs")
                data = data.reshape(lengths.size, int(lengths[0]), data.shape[1])
            if data.ndim != 3:
                raise ValueError(
                    "X must be a trace, (n_neurons, n_epochs, n_features) or 2-D with lengths"
                )
            self.neuron_ids_ = np.arange(data.shape[0])
            self.layers_ = np.full(data.shape[0], "", dtype=object)
            self.epochs_ = list(range(data.shape[1]))
            self.feature_names_ = [f"feature_{j}" for j in range(data.shape[2])]
            self.notes_ = []
            self.dropped_ = {}
            self.raw_ = data
            self.n_neurons_ = data.shape[0]
        n, t, d = data.shape
        if t < 2:
            raise ValueError(f"a neuron-level HMM needs at least 2 recorded epochs, not {t}")
        flat = data.reshape(n * t, d)
        flat_lengths = np.full(n, t)
        model = StateModel(self.n_states, k_range=self.k_range, **self._model_params())
        model.fit(flat, flat_lengths, progress=progress)
        self.X_ = data
        self.state_model_ = model
        self._derive()
        return self

    def _derive(self) -> None:
        n, t, d = self.X_.shape
        seqs = Sequences(self.X_.reshape(n * t, d), np.full(n, t))
        params = from_model(self.state_model_.model_)
        k = params.means.shape[0]
        states, _ = viterbi(seqs, params)
        loglik, gamma, _ = forward_backward(seqs, params)
        assert gamma is not None
        paths = states.reshape(n, t)
        occupancy = np.stack([(paths == j).mean(axis=1) for j in range(k)], axis=1)
        rows = self.neuron_ids_
        total = self.n_neurons_

        def full(values: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((total, *values.shape[1:]), fill, dtype=values.dtype)
            out[rows] = values
            return out

        self.paths_ = paths
        self.modelled_ = full(np.ones(n, dtype=bool), False)
        self.states_ = full(paths, -1)
        self.posteriors_ = full(np.transpose(gamma, (2, 1, 0)), np.nan)
        self.occupancy_ = full(occupancy, np.nan)
        self.dominant_state_ = full(occupancy.argmax(axis=1), -1)
        self.n_switches_ = full((np.diff(paths, axis=1) != 0).sum(axis=1), -1)
        self.occupancy_entropy_ = full(entropy_bits(occupancy, axis=1), np.nan)
        self.sequence_loglik_ = full(loglik, np.nan)
        # a fitted chain often has states it never leaves (reducible: no unique stationary
        # distribution), so the rate is weighted by where the neurons actually are
        occupied = np.bincount(paths[:, :-1].reshape(-1), minlength=k) / max(n * (t - 1), 1)
        self.state_occupancy_ = occupied
        self.entropy_rate_ = entropy_rate(params.transmat, occupied)
        self.stationary_ = stationary_distribution(params.transmat)
        self.state_means_ = params.means
        positions = np.linspace(0, 1, t) if t > 1 else np.zeros(1)
        self.descriptions_ = []
        for j in range(k):
            here = paths == j
            when = (
                when_words(float((here * positions).sum() / here.sum())) if here.any() else "unused"
            )
            self.descriptions_.append(
                f"{when}: {describe_levels(params.means[j], self.feature_names_)}"
            )

    # -- tables ------------------------------------------------------------------------------
    def state_table(self) -> pd.DataFrame:
        """Per state: share of neuron-epochs, neurons that visit it, neurons for which it is
        dominant, probability of staying, stationary share, description."""
        check_is_fitted(self)
        k = self.n_states_
        paths = self.paths_
        transmat = self.model_.transmat_
        visited = np.stack([(paths == j).any(axis=1) for j in range(k)], axis=1)
        dominant = self.dominant_state_[self.neuron_ids_]
        return pd.DataFrame(
            {
                "state": np.arange(k),
                "label": [state_label(j) for j in range(k)],
                "share of neuron-epochs": [float((paths == j).mean()) for j in range(k)],
                "neurons visiting": visited.sum(axis=0),
                "dominant for": np.bincount(dominant, minlength=k),
                "stay": np.diag(transmat),
                "stationary": self.stationary_,
                "description": self.descriptions_,
            }
        )

    def neuron_table(self) -> pd.DataFrame:
        """Per modelled neuron: ``neuron``, ``layer``, ``dominant``, ``switches``, ``occupancy
        entropy``, ``log-likelihood per epoch``, and the occupancy of each state (``S0`` …)."""
        check_is_fitted(self)
        ids = self.neuron_ids_
        t = self.paths_.shape[1]
        frame = pd.DataFrame(
            {
                "neuron": ids,
                "layer": self.layers_,
                "dominant": [state_label(s) for s in self.dominant_state_[ids]],
                "switches": self.n_switches_[ids],
                "occupancy entropy": self.occupancy_entropy_[ids],
                "log-likelihood per epoch": self.sequence_loglik_[ids] / t,
            }
        )
        for j in range(self.n_states_):
            frame[state_label(j)] = self.occupancy_[ids, j]
        return frame

    def path_summary(self, neuron: int) -> str:
        """``"S0 (E_0–E_12) → S2 (E_13–E_30)"``: the path of neuron ``neuron`` (global id)."""
        check_is_fitted(self)
        path = self.states_[neuron]
        if path[0] < 0:
            return "not modelled"
        epochs = self.epochs_
        change = np.flatnonzero(np.diff(path) != 0) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change - 1, [path.size - 1]])
        return " → ".join(
            f"{state_label(path[a])} ({time_key(epochs[a])}–{time_key(epochs[b])})"
            if a != b
            else f"{state_label(path[a])} ({time_key(epochs[a])})"
            for a, b in zip(starts, ends)
        )

    def unusual_neurons(self, rare_share: float = 0.05, top: int = 50) -> pd.DataFrame:
        """Neurons whose paths are unusual: they visit a state that fewer than ``rare_share`` of
        the neurons visit, or their trajectory is among the 5 % least likely under the shared
        model. Most unusual first (rare visits, then log-likelihood)."""
        check_is_fitted(self)
        paths = self.paths_
        n, t = paths.shape
        k = self.n_states_
        visited = np.stack([(paths == j).any(axis=1) for j in range(k)], axis=1)
        rare = visited.mean(axis=0) < rare_share
        rare_visits = (visited & rare[None, :]).sum(axis=1)
        per_epoch = self.sequence_loglik_[self.neuron_ids_] / t
        rank = pd.Series(per_epoch).rank(method="average").to_numpy()
        percentile = 100.0 * (rank - 0.5) / n
        unusual = (rare_visits > 0) | (percentile < 5.0)
        rows = np.flatnonzero(unusual)
        order = rows[np.lexsort((per_epoch[rows], -rare_visits[rows]))][:top]
        ids = self.neuron_ids_[order]
        return pd.DataFrame(
            {
                "neuron": ids,
                "layer": self.layers_[order],
                "path": [self.path_summary(int(i)) for i in ids],
                "rare states visited": [
                    ", ".join(state_label(j) for j in np.flatnonzero(visited[r] & rare))
                    for r in order
                ],
                "switches": self.n_switches_[ids],
                "log-likelihood per epoch": per_epoch[order],
                "likelihood percentile": percentile[order],
            }
        )

    def time_test(
        self, n_permutations: int = 19, progress: Progress | None = None, **old: Any
    ) -> TimeShuffleTest:
        """The shuffled-time test of the fitted model's k (at least 2) on the fitted data, with
        ``n_permutations`` time-shuffled refits (``n_shuffles``, its old name, still works)."""
        n_permutations = renamed_keyword(
            old, "n_shuffles", "n_permutations", n_permutations, "NeuronHMM.time_test"
        )
        check_is_fitted(self)
        n, t, d = self.X_.shape
        return shuffled_time_test(
            self.X_.reshape(n * t, d),
            np.full(n, t),
            max(self.n_states_, 2),
            n_permutations=n_permutations,
            progress=progress,
            **self._model_params(),
        )
