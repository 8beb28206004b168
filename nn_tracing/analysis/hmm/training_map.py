"""Hu et al.'s training map: :class:`TrainingMap`.

Hu, Chen, Saphra & Cho (TMLR 2023), "Latent State Models of Training Dynamics", on our traces:
model-level features per recorded epoch (:func:`~nn_tracing.analysis.hmm.model_features`),
z-scored, a :class:`~nn_tracing.analysis.hmm.StateModel` fitted for k = 1…8 with restarts, the
Viterbi path as a "training map" of the states visited and the transitions taken, the posterior
entropy per epoch (where the network is between phases), states described in words, and —
fitted jointly on several runs of one configuration (``lengths``) — the *detour* states only
some runs visit, with the epoch at which each run converged. Per-step tables
(``drop_batches=False``) give long sequences from a single run
(:func:`~nn_tracing.analysis.hmm.step_features`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..._renamed import renamed_keyword
from ...progress import Progress
from ...trace import NetworkTrace
from ..entropy import entropy_bits
from ..standardise import canonical_mode, constant_columns, zscore
from .describe import describe_levels, state_label, trend_words, when_words
from .features import ModelFeatures, model_features, step_features
from .nulls import shuffled_time_test
from .states import StateModel, _FittedStates

__all__ = ["TrainingMap"]


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


class TrainingMap(_FittedStates):
    """Hu et al.'s training map on one or several runs of the same configuration.

    Parameters
    ----------
    features
        Features to fit (default: every default feature usable in every run — the weight
        statistics, not the accuracies of :data:`~nn_tracing.analysis.hmm.CURVE_FEATURES`;
        see :func:`model_features`). In ``sequence="steps"`` mode: columns of
        :func:`step_features`.
    sequence
        ``"epochs"`` (one observation per recorded epoch) or ``"steps"`` (per training step).
    standardize
        ``"global"`` (Hu et al.; also accepted under its old name ``"pooled"``): every feature
        z-scored over all runs together, so that runs that differ in level (e.g. seeds with
        larger weights) visit different states; ``"run"``: z-scored within each run, so that
        states are phases the runs share (modes of :mod:`nn_tracing.analysis.standardise`).
    n_states, k_range, criterion, n_restarts, sticky, tol_per_obs, n_iter, engine
        As for :class:`StateModel` (default k = 1…8 by BIC, 5 restarts).
    n_permutations
        Refits on time-shuffled copies for the shuffled-time test (0: no test), at the chosen
        k (at least 2), with at most 2 restarts for the real order and every copy alike
        (``n_shuffles``, its old name, is still accepted).
    random_state
        Seeds the restarts and the shuffles.

    Attributes
    ----------
    run_names_ : list of str
    features_ : DataFrame — ``run``, ``epoch`` (or ``step``) and every feature, raw values
    feature_names_ : list of the features fitted
    feature_source_ : str — where the features come from; ``feature_notes_`` : list of str
    state_model_ : StateModel; ``model_`` its GaussianHMM; ``n_states_``; ``selection_``
    converged_ : bool; ``log_messages_`` : list of str
    path_ : DataFrame — per run and epoch: ``state``, ``label``, ``p_S0`` … (posteriors),
        ``entropy`` (bits), ``loss``, ``weight_norm`` and (epochs) ``val_acc``, ``val_loss``
    transitions_ : DataFrame — ``source``, ``target``, ``count`` (observed), ``probability``
        (the fitted transition matrix), for observed moves between different states
    states_ : DataFrame — per state: ``state``, ``label``, ``observations``, ``share``,
        ``runs``, ``first``, ``last``, ``stay``, ``detour``, ``description``
    convergence_ : DataFrame — per run: ``run``, ``convergence_epoch``; ``convergence_definition_``
    detours_ : DataFrame — states visited by some runs only, with the mean convergence epoch
        of the runs that visit it and of those that do not
    time_test_ : TimeShuffleTest or None
    """

    def __init__(
        self,
        features: Sequence[str] | None = None,
        *,
        sequence: str = "epochs",
        standardize: str = "global",
        n_states: int | None = None,
        k_range: tuple[int, int] = (1, 8),
        criterion: str = "bic",
        n_restarts: int = 5,
        sticky: float = 0.9,
        tol_per_obs: float = 1e-4,
        n_iter: int = 200,
        engine: str = "auto",
        n_permutations: int = 19,
        random_state: int | None = 0,
        **old: Any,
    ) -> None:
        self.features = features
        self.sequence = sequence
        self.standardize = standardize
        self.n_states = n_states
        self.k_range = k_range
        self.criterion = criterion
        self.n_restarts = n_restarts
        self.sticky = sticky
        self.tol_per_obs = tol_per_obs
        self.n_iter = n_iter
        self.engine = engine
        self.n_permutations = renamed_keyword(
            old, "n_shuffles", "n_permutations", n_permutations, "TrainingMap"
        )
        self.random_state = random_state

    def fit(
        self,
        traces: NetworkTrace | ModelFeatures | Sequence[NetworkTrace | ModelFeatures],
        names: Sequence[str] | None = None,
        progress: Progress | None = None,
    ) -> TrainingMap:
        """Fit the map on ``traces`` (one run, or several of one configuration, jointly).

        Each run is a :class:`NetworkTrace`, or its features already computed
        (:func:`model_features` or :func:`step_features`, matching ``sequence``).
        Raises :class:`ValueError` with a message for a person when a run is too short or
        lacks what the chosen sequence needs.
        """
        runs = [traces] if isinstance(traces, (NetworkTrace, ModelFeatures)) else list(traces)
        if not runs:
            raise ValueError("no trace to fit")
        names = list(names) if names is not None else [f"run {i + 1}" for i in range(len(runs))]
        if self.sequence not in ("epochs", "steps"):
            raise ValueError(f"sequence={self.sequence!r}: use 'epochs' or 'steps'")
        standardize = canonical_mode(self.standardize, ("global", "run"), "standardize")
        per_run = self._run_features(runs, names, progress)
        time_column = "epoch" if self.sequence == "epochs" else "step"
        notes = list(dict.fromkeys(n for f in per_run for n in f.notes))
        chosen = self._chosen_features(per_run, time_column, names, notes)
        lengths = np.array([len(f.frame) for f in per_run])
        values = np.concatenate([f.frame[chosen].to_numpy(dtype=np.float64) for f in per_run])
        ends = np.cumsum(lengths)
        runs_rows = [slice(end - n, end) for n, end in zip(lengths, ends, strict=True)]
        z = zscore(values, axis=0, groups=runs_rows if standardize == "run" else None)
        state_model = StateModel(self.n_states, k_range=self.k_range, **self._model_params())
        state_model.fit(z, lengths, progress=progress)
        self.run_names_ = names
        self.feature_names_ = chosen
        self.feature_source_ = (
            per_run[0].source
            if len(runs) == 1
            else "; ".join(dict.fromkeys(f.source for f in per_run))
        )
        self.feature_notes_ = notes
        self.z_ = z
        self.lengths_ = lengths
        self.time_column_ = time_column
        self._keep_runs(names, per_run)
        self.state_model_ = state_model
        self._derive()
        self.time_test_ = None
        if self.n_permutations > 0:
            # the real order and every shuffle are refitted the same way, with at most 2
            # restarts each (the test stays exact; it only costs less)
            params = {**self._model_params(), "n_restarts": min(self.n_restarts, 2)}
            self.time_test_ = shuffled_time_test(
                z,
                lengths,
                max(self.n_states_, 2),
                n_permutations=self.n_permutations,
                progress=progress,
                **params,
            )
        return self

    def _run_features(
        self,
        runs: list[NetworkTrace | ModelFeatures],
        names: list[str],
        progress: Progress | None,
    ) -> list[ModelFeatures]:
        """Each run's features (computed from its trace unless given)."""
        per_run = []
        for i, run in enumerate(runs):
            if isinstance(run, ModelFeatures):
                per_run.append(run)
                continue
            if progress is not None:
                progress(0.0, f"model-level features of {names[i]}")
            per_run.append(model_features(run) if self.sequence == "epochs" else step_features(run))
        return per_run

    def _chosen_features(
        self, per_run: list[ModelFeatures], time_column: str, names: list[str], notes: list[str]
    ) -> list[str]:
        """The features to fit: those asked for (or every one usable in every run), less those
        constant over every run (said in ``notes``). Refuses runs shorter than 3."""
        usable = [c for c in per_run[0].frame.columns if all(c in f.usable for f in per_run)]
        if self.features is not None:
            unknown = [c for c in self.features if c not in usable]
            if unknown:
                raise ValueError(
                    f"feature(s) {', '.join(unknown)} cannot be fitted on "
                    f"{'this run' if len(per_run) == 1 else 'every run'}; usable: "
                    f"{', '.join(usable)}"
                )
            chosen = list(self.features)
        else:  # the runs' defaults (the weight statistics of Hu et al.)
            chosen = [c for c in usable if all(c in (f.default or f.usable) for f in per_run)]
        for name, f in zip(names, per_run):
            if len(f.frame) < 3:
                raise ValueError(
                    f"{name} has {len(f.frame)} recorded {time_column}s; a training map needs at "
                    "least 3"
                )
        values = np.concatenate([f.frame[chosen].to_numpy(dtype=np.float64) for f in per_run])
        flat = constant_columns(values, 1e-12 * max(1.0, np.abs(values).max()))
        constant = [c for c, k in zip(chosen, flat, strict=True) if k]
        if constant:
            notes.append(f"constant over every {time_column}, left out: {', '.join(constant)}.")
        chosen = [c for c in chosen if c not in constant]
        if not chosen:
            raise ValueError("no feature varies over training; nothing to fit")
        return chosen

    def _keep_runs(self, names: list[str], per_run: list[ModelFeatures]) -> None:
        """What the fitted map keeps of the runs: their raw features, descriptors and
        convergence (no trace, so that it pickles small)."""
        features = []
        for name, f in zip(names, per_run):
            frame = f.frame.reset_index()
            frame.insert(0, "run", name)
            features.append(frame)
        self.features_ = pd.concat(features, ignore_index=True)
        self._descriptors = pd.concat([f.descriptors for f in per_run], ignore_index=True)
        self.convergence_ = pd.DataFrame(
            {"run": names, "convergence_epoch": [f.convergence[0] for f in per_run]}
        )
        self.convergence_definition_ = next(
            (f.convergence[1] for f in per_run if f.convergence[1]), ""
        )

    # -- derived views ---------------------------------------------------------------------------
    def _derive(self) -> None:
        model = self.state_model_
        z, lengths = self.z_, self.lengths_
        states = model.predict(z, lengths)
        posteriors = model.predict_proba(z, lengths)
        run_of = np.repeat(np.arange(len(self.run_names_)), lengths)
        self.path_ = self._path(states, posteriors, run_of)
        self.transitions_ = self._transitions(states, run_of)
        visits = np.zeros((model.n_states_, len(self.run_names_)), dtype=bool)
        visits[states, run_of] = True
        self.states_ = self._state_table(states, run_of, visits)
        self.descriptions_ = self.states_["description"].tolist()
        self.detours_ = self._detours(visits)

    def _path(self, states: np.ndarray, posteriors: np.ndarray, run_of: np.ndarray) -> pd.DataFrame:
        """Per run and epoch (or step): state, posteriors, their entropy and the descriptors."""
        path = pd.DataFrame({"run": np.asarray(self.run_names_, dtype=object)[run_of]})
        path[self.time_column_] = self.features_[self.time_column_].to_numpy()
        path["state"] = states
        path["label"] = [state_label(s) for s in states]
        for j in range(posteriors.shape[1]):
            path[f"p_{state_label(j)}"] = posteriors[:, j]
        path["entropy"] = entropy_bits(posteriors, axis=1)
        descriptors = self._descriptors
        for column in descriptors.columns:
            if column != self.time_column_:
                path[column] = descriptors[column].to_numpy()
        return path

    def _transitions(self, states: np.ndarray, run_of: np.ndarray) -> pd.DataFrame:
        """The observed moves between different states within runs, with the fitted
        transition probability of each."""
        same_run = run_of[1:] == run_of[:-1]
        source, target = states[:-1][same_run], states[1:][same_run]
        moved = source != target
        counts = pd.DataFrame({"source": source[moved], "target": target[moved]})
        if not len(counts):
            return pd.DataFrame(columns=["source", "target", "count", "probability"])
        transmat = self.state_model_.model_.transmat_
        counted = counts.value_counts().rename("count").reset_index()
        counted["probability"] = transmat[counted["source"], counted["target"]]
        return counted.sort_values(["source", "target"]).reset_index(drop=True)

    def _state_table(
        self, states: np.ndarray, run_of: np.ndarray, visits: np.ndarray
    ) -> pd.DataFrame:
        """One row per state: how often and when it is visited, by how many runs, and what it
        is, in words (``visits``: bool array of shape (n_states, n_runs))."""
        model = self.state_model_.model_
        n_runs = visits.shape[1]
        time_values = self.path_[self.time_column_].to_numpy(dtype=np.float64)
        positions = np.concatenate(
            [np.linspace(0, 1, n) if n > 1 else [0.0] for n in self.lengths_]
        )
        rate_w = self._rates(self.path_["weight_norm"].to_numpy(), run_of, time_values)
        rate_l = self._rates(self.path_["loss"].to_numpy(), run_of, time_values)
        scale_w = np.nanmedian(np.abs(rate_w)) if np.isfinite(rate_w).any() else np.nan
        scale_l = np.nanmedian(np.abs(rate_l)) if np.isfinite(rate_l).any() else np.nan
        rows = []
        for j in range(visits.shape[0]):
            here = states == j
            if here.any():
                weights = trend_words(
                    _finite_mean(rate_w[here]),
                    scale_w,
                    "weights growing",
                    "weights shrinking",
                    "weights steady",
                )
                loss = trend_words(
                    _finite_mean(rate_l[here]), scale_l, "loss rising", "loss falling", "loss flat"
                )
                when = when_words(float(positions[here].mean()))
            else:
                weights = loss = ""
                when = "never on the Viterbi path"
            dynamics = ", ".join(p for p in (weights, loss) if p)
            description = (
                f"{when}: "
                + (f"{dynamics}; " if dynamics else "")
                + describe_levels(model.means_[j], self.feature_names_)
            )
            rows.append(
                {
                    "state": j,
                    "label": state_label(j),
                    "observations": int(here.sum()),
                    "share": float(here.mean()),
                    "runs": int(visits[j].sum()),
                    "first": float(time_values[here].min()) if here.any() else np.nan,
                    "last": float(time_values[here].max()) if here.any() else np.nan,
                    "stay": float(model.transmat_[j, j]),
                    "detour": bool(n_runs > 1 and 0 < visits[j].sum() < n_runs),
                    "description": description,
                }
            )
        return pd.DataFrame(rows)

    def _detours(self, visits: np.ndarray) -> pd.DataFrame:
        """States visited by some runs only, with the mean convergence epoch of the runs that
        visit each and of those that do not."""
        n_states, n_runs = visits.shape
        detours = []
        conv = self.convergence_["convergence_epoch"].to_numpy(dtype=np.float64)
        for j in range(n_states):
            if not (n_runs > 1 and 0 < visits[j].sum() < n_runs):
                continue
            inside, outside = conv[visits[j]], conv[~visits[j]]
            mean_in = float(np.nanmean(inside)) if np.isfinite(inside).any() else np.nan
            mean_out = float(np.nanmean(outside)) if np.isfinite(outside).any() else np.nan
            detours.append(
                {
                    "state": j,
                    "label": state_label(j),
                    "runs visiting": ", ".join(np.asarray(self.run_names_)[visits[j]]),
                    "n visiting": int(visits[j].sum()),
                    "n runs": n_runs,
                    "convergence (visiting)": mean_in,
                    "convergence (others)": mean_out,
                    "slower by": mean_in - mean_out,
                }
            )
        return pd.DataFrame(
            detours,
            columns=[
                "state",
                "label",
                "runs visiting",
                "n visiting",
                "n runs",
                "convergence (visiting)",
                "convergence (others)",
                "slower by",
            ],
        )

    @staticmethod
    def _rates(values: np.ndarray, run_of: np.ndarray, time: np.ndarray) -> np.ndarray:
        """Change per unit of time into each observation from the previous one of its run."""
        out = np.full(values.shape, np.nan)
        same = run_of[1:] == run_of[:-1]
        dt = np.diff(time)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.diff(values) / np.where(dt > 0, dt, np.nan)
        out[1:] = np.where(same, rate, np.nan)
        return out
