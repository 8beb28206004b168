"""A Gaussian HMM whose number of states is chosen by BIC (or AIC): :class:`StateModel`.

How the fits are made, and why (measured on a 2-core CPU machine with hmmlearn 0.3.3):
hmmlearn's default initialisation (k-means means, a random, nearly deterministic transition
matrix) collapsed to identical state means in every shared-model case tried, and BIC then chose
the wrong k. :class:`StateModel` instead initialises the means at quantiles of the data along
its first principal component (restarts use other directions), the transition matrix sticky
(0.9 on the diagonal), the start uniform — which found the true states every time — and stops
EM when the gain in log-likelihood falls below a tolerance scaled to the number of observations
(``1e-4`` per observation; hmmlearn's ``tol`` is absolute, so with many observations models
with too many states ran to ``n_iter``: the scaled tolerance made a BIC sweep over k = 2…6 at
5000 neurons × 100 epochs take 24 s instead of 113 s, and chose the same k). Convergence is read
from the model's ``monitor_`` (hmmlearn's own ``monitor_.converged`` is also true when
``n_iter`` ran out, so the history is read instead) and reported.

:class:`_FittedStates` is what the two analyses built on it (:class:`TrainingMap`,
:class:`NeuronHMM`) share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from ...progress import Progress, reporter
from ._em import (
    Fit,
    Params,
    Sequences,
    check_sequences,
    em_default,
    em_hmmlearn,
    em_numpy,
    forward_backward,
    from_model,
    initial_params,
    n_free_parameters,
    order_by_time,
    restart_directions,
    to_model,
    viterbi,
)

__all__ = ["StateModel", "boundary_k", "choose_k"]

#: The criteria that choose k (the lowest value wins).
CRITERIA = ("bic", "aic")


def choose_k(selection: pd.DataFrame, choice: str | int) -> int:
    """The number of states a choice means, among the k a :class:`StateModel` fitted.

    Parameters
    ----------
    selection : DataFrame, ``StateModel.selection_`` (one row per k tried: ``k``,
        ``restarts`` — 0 for a k that was skipped — and the criteria ``bic``, ``aic``)
    choice : ``"bic"`` or ``"aic"``: the fitted k with the lowest criterion; a number (or its
        text, ``"3"``): the fitted k nearest it (the smaller one on a tie)

    Returns
    -------
    int, one of the fitted k
    """
    fitted = selection[selection["restarts"] > 0]
    if choice in CRITERIA:
        return int(fitted.loc[fitted[str(choice)].idxmin(), "k"])
    wanted = int(choice)
    return min(fitted["k"].astype(int).tolist(), key=lambda k: (abs(k - wanted), k))


def boundary_k(selection: pd.DataFrame, choice: str) -> int | None:
    """The k the criterion ``choice`` chose when it is the largest k fitted (and more than one
    k was): the criterion might prefer still more states than were tried, so the choice sits
    at the boundary of the range. ``None`` when the choice lies inside the range.

    Parameters
    ----------
    selection : DataFrame, ``StateModel.selection_``
    choice : ``"bic"`` or ``"aic"``
    """
    fitted = selection[selection["restarts"] > 0]
    if choice not in CRITERIA or len(fitted) < 2:
        return None
    chosen = choose_k(selection, choice)
    return chosen if chosen == int(fitted["k"].max()) else None


class StateModel(BaseEstimator):
    """A Gaussian HMM whose number of states is chosen by BIC (or AIC), fitted robustly.

    Parameters
    ----------
    n_states
        A fixed number of states, or ``None`` to choose it by ``criterion`` over ``k_range``.
    k_range
        ``(smallest, largest)`` k tried (inclusive). A k with more free parameters than scalar
        observations is skipped (the fit would be degenerate) and marked so in ``selection_``.
    criterion
        ``"bic"`` or ``"aic"``.
    n_restarts
        Fits per k; the best log-likelihood is kept. The first starts from quantiles along the
        first principal component, the others along random directions.
    sticky
        The initial probability of staying in a state.
    tol_per_obs
        EM stops when the log-likelihood gains less than ``tol_per_obs × n_observations``.
    n_iter
        Most EM iterations per fit.
    min_covar
        Floor of every variance (data are z-scored, so in units of a standard deviation²).
    covars_prior
        hmmlearn's covariance prior (its default, 0.01).
    init
        ``"quantile"`` (above) or ``"default"``: hmmlearn's own initialisation (k-means means,
        random start and transition matrices) — kept to show what it does.
    engine
        ``"numpy"`` (EM vectorised over sequences), ``"hmmlearn"`` (hmmlearn's ``fit``, one
        sequence at a time) or ``"auto"``: NumPy when there are many sequences for their
        length, hmmlearn for a few long ones. Both give the same fit.
    random_state
        Seeds the restart directions (and hmmlearn's default initialisation).

    Attributes
    ----------
    model_ : FlooredGaussianHMM — the chosen model; states ordered by when they occur (mean
        position within the sequences), so ``S0`` is the state typical of early training
    models_ : dict ``{k: model}`` — the best model of every k tried (for a manual override)
    n_states_ : int
    selection_ : DataFrame — one row per k: ``k``, ``log_likelihood``, ``n_parameters``,
        ``bic``, ``aic``, ``converged``, ``iterations``, ``restarts_converged``, ``restarts``,
        ``chosen``, ``note``
    converged_ : bool — whether the chosen model's EM converged
    fits_ : dict ``{k: {"converged", "iterations", "history", "decreased"}}`` of the best
        restart of every k
    log_messages_ : list of str — what hmmlearn logged during the fits (deduplicated)
    n_obs_, n_features_, n_sequences_ : int
    tol_ : float — the absolute tolerance used
    engine_ : str — the engine used
    """

    def __init__(
        self,
        n_states: int | None = None,
        *,
        k_range: tuple[int, int] = (1, 8),
        criterion: str = "bic",
        n_restarts: int = 3,
        sticky: float = 0.9,
        tol_per_obs: float = 1e-4,
        n_iter: int = 200,
        min_covar: float = 1e-3,
        covars_prior: float = 1e-2,
        init: str = "quantile",
        engine: str = "auto",
        random_state: int | None = 0,
    ) -> None:
        self.n_states = n_states
        self.k_range = k_range
        self.criterion = criterion
        self.n_restarts = n_restarts
        self.sticky = sticky
        self.tol_per_obs = tol_per_obs
        self.n_iter = n_iter
        self.min_covar = min_covar
        self.covars_prior = covars_prior
        self.init = init
        self.engine = engine
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------------
    def _candidates(self, seqs: Sequences) -> tuple[list[int], dict[int, str]]:
        if self.n_states is not None:
            ks = [int(self.n_states)]
        else:
            low, high = (int(v) for v in self.k_range)
            if not 1 <= low <= high:
                raise ValueError(f"k_range={self.k_range!r}: need 1 ≤ smallest ≤ largest")
            ks = list(range(low, high + 1))
        skipped = {}
        scalars = seqs.n_obs * seqs.n_features
        for k in ks:
            if k > seqs.n_obs:
                skipped[k] = f"more states than the {seqs.n_obs} observations"
            elif n_free_parameters(k, seqs.n_features) > scalars and len(ks) > 1:
                skipped[k] = (
                    f"{n_free_parameters(k, seqs.n_features)} free parameters for "
                    f"{scalars} observed values"
                )
        if len(skipped) == len(ks):
            raise ValueError(
                f"too little data for any k in {ks}: {seqs.n_obs} observations of "
                f"{seqs.n_features} features ({'; '.join(skipped.values())})"
            )
        return ks, skipped

    def _engine(self, seqs: Sequences) -> str:
        if self.engine in ("numpy", "hmmlearn"):
            return self.engine
        if self.engine != "auto":
            raise ValueError(f"engine={self.engine!r}: use 'numpy', 'hmmlearn' or 'auto'")
        # NumPy pays per time step, hmmlearn per sequence (measured: ~60 µs vs ~250 µs)
        return "numpy" if seqs.n_sequences * 4 >= seqs.max_length else "hmmlearn"

    def _fit_one(
        self, seqs: Sequences, k: int, direction: np.ndarray, engine: str, tol: float
    ) -> Fit:
        if self.init == "default":
            return em_default(seqs, k, n_iter=self.n_iter, tol=tol, random_state=self.random_state)
        init = initial_params(seqs, k, direction, self.sticky, self.min_covar)
        kwargs = {
            "n_iter": self.n_iter,
            "tol": tol,
            "covars_prior": self.covars_prior,
            "min_covar": self.min_covar,
        }
        if engine == "hmmlearn":
            # hmmlearn's M-step divides by a state's occupancy: a state that loses every
            # observation makes its parameters NaN and hmmlearn raises (seen on a grokking
            # run's 235 epochs); the NumPy engine keeps an empty state's parameters and fits on
            try:
                fit = em_hmmlearn(seqs, init, random_state=self.random_state, **kwargs)
            except ValueError:
                return em_numpy(seqs, init, **kwargs)
            if np.isfinite(fit.loglik):
                return fit
        return em_numpy(seqs, init, **kwargs)

    def fit(
        self,
        X: np.ndarray,
        lengths: Sequence[int] | np.ndarray | None = None,
        progress: Progress | None = None,
    ) -> StateModel:
        """Fit every candidate k (with restarts) and keep the one the criterion prefers.

        Parameters
        ----------
        X : array of shape (n_observations, n_features), the sequences concatenated
        lengths : array of shape (n_sequences,), the length of each sequence (default: one)
        progress : ``progress(fraction, message)``, called before each fit
        """
        if self.criterion not in ("bic", "aic"):
            raise ValueError(f"criterion={self.criterion!r}: use 'bic' or 'aic'")
        if self.init not in ("quantile", "default"):
            raise ValueError(f"init={self.init!r}: use 'quantile' or 'default'")
        seqs = check_sequences(X, lengths)
        ks, skipped = self._candidates(seqs)
        engine = self._engine(seqs)
        tol = self.tol_per_obs * seqs.n_obs
        rng = np.random.default_rng(self.random_state)
        restarts = max(1, int(self.n_restarts)) if self.init == "quantile" else 1
        directions = restart_directions(seqs.X, restarts, rng)
        rows, models, fits, messages = [], {}, {}, []
        todo = [k for k in ks if k not in skipped]
        total, done = len(todo) * restarts, 0
        report = reporter(progress, total)
        with threadpool_limits(1):
            for k in ks:
                if k in skipped:
                    rows.append(
                        {"k": k, "chosen": False, "restarts": 0, "note": f"skipped: {skipped[k]}"}
                    )
                    continue
                best: Fit | None = None
                n_converged = 0
                for r in range(restarts):
                    report(done, f"k = {k}, start {r + 1} of {restarts}")
                    fit = self._fit_one(seqs, k, directions[r], engine, tol)
                    done += 1
                    n_converged += fit.converged
                    messages.extend(fit.messages)
                    if best is None or fit.loglik > best.loglik:
                        best = fit
                assert best is not None
                params = order_by_time(seqs, best)
                models[k] = to_model(
                    params, best, min_covar=self.min_covar, n_iter=self.n_iter, tol=tol
                )
                fits[k] = {
                    "converged": best.converged,
                    "iterations": best.n_iter,
                    "history": best.history,
                    "decreased": best.decreased,
                }
                n_params = n_free_parameters(k, seqs.n_features)
                rows.append(
                    {
                        "k": k,
                        "log_likelihood": best.loglik,
                        "n_parameters": n_params,
                        "bic": -2 * best.loglik + n_params * math.log(seqs.n_obs),
                        "aic": -2 * best.loglik + 2 * n_params,
                        "converged": best.converged,
                        "iterations": best.n_iter,
                        "restarts_converged": n_converged,
                        "restarts": restarts,
                        "chosen": False,
                        "note": "" if best.converged else f"did not converge in {best.n_iter}",
                    }
                )
        report(total, "done")
        selection = pd.DataFrame(rows)
        chosen = choose_k(selection, self.criterion)
        selection.loc[selection["k"] == chosen, "chosen"] = True
        self.selection_ = selection
        self.models_ = models
        self.fits_ = fits
        self.n_obs_ = seqs.n_obs
        self.n_features_ = seqs.n_features
        self.n_sequences_ = seqs.n_sequences
        self.tol_ = tol
        self.engine_ = engine
        self.log_messages_ = list(dict.fromkeys(messages))
        self.select(chosen)
        return self

    def choose_k(self, choice: str | int | None = None) -> int:
        """The k a choice means among the fitted ones (see :func:`choose_k`); ``None``: the
        estimator's own ``criterion``."""
        return choose_k(self.selection_, self.criterion if choice is None else choice)

    def select(self, n_states: int) -> StateModel:
        """Make the fitted model with ``n_states`` states the current one (a manual override
        of the criterion's choice); returns ``self``."""
        check_is_fitted(self, "models_")
        if n_states not in self.models_:
            raise ValueError(
                f"no fitted model with {n_states} states; fitted: {sorted(self.models_)}"
            )
        self.n_states_ = int(n_states)
        self.model_ = self.models_[n_states]
        self.converged_ = bool(self.fits_[n_states]["converged"])
        return self

    # -- using the fitted model ------------------------------------------------------------------
    def _params(self) -> Params:
        check_is_fitted(self)
        return from_model(self.model_)

    def predict(
        self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Viterbi states, array of shape (n_observations,)."""
        return viterbi(check_sequences(X, lengths), self._params())[0]

    def predict_proba(
        self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Posterior state probabilities, array of shape (n_observations, n_states)."""
        seqs = check_sequences(X, lengths)
        _, gamma, _ = forward_backward(seqs, self._params())
        assert gamma is not None
        return seqs.unpad_states(gamma)

    def score_sequences(
        self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Log-likelihood of every sequence, array of shape (n_sequences,)."""
        return forward_backward(check_sequences(X, lengths), self._params(), posteriors=False)[0]

    def score(self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None) -> float:
        """Total log-likelihood of the sequences."""
        return float(self.score_sequences(X, lengths).sum())

    def convergence_note(self) -> str | None:
        """A sentence when the chosen fit did not converge (or the likelihood fell), else None."""
        check_is_fitted(self)
        fit = self.fits_[self.n_states_]
        parts = []
        if not fit["converged"]:
            parts.append(
                f"EM for k = {self.n_states_} stopped after {fit['iterations']} iterations "
                f"without converging (last gain above the tolerance {self.tol_:.3g})"
            )
        if fit["decreased"]:
            parts.append(f"the log-likelihood decreased during EM for k = {self.n_states_}")
        return "; ".join(parts) + "." if parts else None


# -- what TrainingMap and NeuronHMM share ------------------------------------------------------
class _FittedStates(BaseEstimator):
    """What :class:`TrainingMap` and :class:`NeuronHMM` share: the fitting parameters they pass
    to their :class:`StateModel` (``state_model_``), its fitted views, and choosing another k."""

    criterion: str
    n_restarts: int
    sticky: float
    tol_per_obs: float
    n_iter: int
    engine: str
    random_state: int | None
    state_model_: StateModel

    def _model_params(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "n_restarts": self.n_restarts,
            "sticky": self.sticky,
            "tol_per_obs": self.tol_per_obs,
            "n_iter": self.n_iter,
            "engine": self.engine,
            "random_state": self.random_state,
        }

    @property
    def _fitted_states(self) -> StateModel:
        check_is_fitted(self, "state_model_")
        return self.state_model_

    @property
    def model_(self) -> Any:
        return self._fitted_states.model_

    @property
    def n_states_(self) -> int:
        return self._fitted_states.n_states_

    @property
    def selection_(self) -> pd.DataFrame:
        return self._fitted_states.selection_

    @property
    def converged_(self) -> bool:
        return self._fitted_states.converged_

    @property
    def log_messages_(self) -> list[str]:
        return self._fitted_states.log_messages_

    def choose_k(self, choice: str | int | None = None) -> int:
        """The k a choice means: ``"bic"``/``"aic"``, or the fitted k nearest a number (see
        :func:`choose_k`); ``None``: the estimator's own ``criterion``."""
        return self.state_model_.choose_k(choice)

    def select(self, n_states: int) -> Self:
        """Use the fitted model with ``n_states`` states instead of the criterion's choice."""
        self._fitted_states.select(n_states)
        self._derive()
        return self

    def _derive(self) -> None:
        raise NotImplementedError
