"""Hidden-Markov models of training: the training map and neuron-level latent states.

Two analyses, both Gaussian HMMs (``hmmlearn.hmm.GaussianHMM``, diagonal covariances) with the
number of states chosen by BIC (or AIC), and both checked against a shuffled-time null:

* :class:`TrainingMap` — Hu, Chen, Saphra & Cho (TMLR 2023), "Latent State Models of Training
  Dynamics", on our traces: model-level weight statistics per recorded epoch
  (:func:`model_features`; L1, L2, L1/L2, spectral norm, mean and variance of the singular
  values, mean / median / variance of the weights and of the biases), z-scored, an HMM fitted
  for k = 1…8 with restarts, the Viterbi path as a "training map" of the states visited and
  the transitions taken, the posterior entropy per epoch (where the network is between
  phases), states described in words, and — fitted jointly on several runs of one
  configuration (``lengths``) — the *detour* states only some runs visit, with the epoch at
  which each run converged. Per-step tables (``drop_batches=False``) give long sequences from
  a single run (:func:`step_features`).
* :class:`NeuronHMM` — one HMM shared by every neuron: each neuron's standardised trajectory of
  a few metrics (:data:`NEURON_FEATURES`) is one sequence, and the model is fitted once over all
  of them (``fit(X, lengths)``); each neuron gets a Viterbi path (``states_``, neurons ×
  epochs), a dominant state, its occupancy, switches and occupancy entropy, and the chain its
  entropy rate.

How the fits are made (see ``MEASURED.md``): hmmlearn's default initialisation (k-means means,
a random transition matrix) collapsed to identical states in every shared-model case measured
here, and BIC then chose the wrong k. :class:`StateModel` instead initialises the means at
quantiles of the data along its first principal component (restarts use other directions), the
transition matrix sticky (0.9 on the diagonal), the start uniform, and stops EM when the gain
in log-likelihood falls below a tolerance scaled to the number of observations (``1e-4`` per
observation; hmmlearn's ``tol`` is absolute). Convergence is read from the model's
``monitor_`` (hmmlearn's own ``monitor_.converged`` is also true when ``n_iter`` ran out, so
the history is read instead) and reported, and what hmmlearn logs is collected, never printed.

hmmlearn's ``fit`` visits the sequences one by one in Python (1.4–4.5 s per EM iteration for
5000 neurons here), so for many sequences the same EM — the same initialisation, E-step and
M-step, including hmmlearn's covariance prior — runs vectorised over all sequences at once in
NumPy (``engine="numpy"``; tested to agree with hmmlearn's to 1e-8). The fitted model is always
a ``GaussianHMM`` (:class:`FlooredGaussianHMM`) whose ``score``, ``predict`` and ``sample`` work
as usual. Nothing here imports Streamlit.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd
from hmmlearn.base import ConvergenceMonitor
from hmmlearn.hmm import GaussianHMM
from threadpoolctl import threadpool_limits

from ..trace import METRICS, NetworkTrace
from .entropy import entropy_bits, entropy_rate, stationary_distribution

__all__ = [
    "FRAME_FEATURES",
    "MODEL_FEATURES",
    "NEURON_FEATURES",
    "FlooredGaussianHMM",
    "ModelFeatures",
    "NeuronHMM",
    "NeuronSequences",
    "StateModel",
    "TimeShuffleTest",
    "TrainingMap",
    "convergence_epoch",
    "hmmlearn_logs",
    "model_features",
    "n_free_parameters",
    "neuron_sequences",
    "shuffled_time_test",
    "state_label",
    "step_features",
]

Progress = Callable[[int, int, str], None]

#: Model-level features of Hu et al. (2023), in display order.
MODEL_FEATURES: tuple[str, ...] = (
    "l1",
    "l2",
    "l1_l2",
    "spectral_norm",
    "sv_mean",
    "sv_var",
    "w_mean",
    "w_median",
    "w_var",
    "w_absmax",
    "b_mean",
    "b_median",
    "b_var",
)
#: Features that the neuron frame gives exactly without kept weights.
FRAME_FEATURES: tuple[str, ...] = (
    "l2",
    "w_mean",
    "w_var",
    "w_absmax",
    "b_mean",
    "b_median",
    "b_var",
)
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "l1": "L1 norm of the weights",
    "l2": "L2 norm of the weights",
    "l1_l2": "L1/L2 ratio of the weights",
    "spectral_norm": "spectral norm (mean over layers)",
    "sv_mean": "mean singular value (mean over layers)",
    "sv_var": "variance of the singular values (mean over layers)",
    "w_mean": "mean weight",
    "w_median": "median weight",
    "w_var": "variance of the weights",
    "w_absmax": "largest |weight|",
    "b_mean": "mean bias",
    "b_median": "median bias",
    "b_var": "variance of the biases",
    "loss": "training loss",
    "act_mean": "mean activation",
    "act_std": "spread of the activation",
    "act_active": "share of probe samples it is active on",
    "w_norm": "norm of the incoming weights",
    "grad_norm": "gradient norm",
    "selectivity": "class selectivity",
    "bias": "bias",
    "w_drift": "weight change since the last recorded epoch",
    "w_std": "spread of the incoming weights",
    "act_min": "smallest activation",
    "act_max": "largest activation",
}

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

_TINY = np.finfo(np.float64).tiny


def state_label(state: int) -> str:
    """``"S0"``, ``"S1"``, …: the name a state is shown by."""
    return f"S{int(state)}"


# -- hmmlearn's log messages ---------------------------------------------------------------------
_log_lock = threading.Lock()
_log_depth = 0
_log_saved_propagate = True


class _ThreadCapture(logging.Handler):
    """Keeps the messages one thread logs (other threads' fits keep their own)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


@contextmanager
def hmmlearn_logs() -> Iterator[list[str]]:
    """Collect what hmmlearn logs in this thread, and keep it off the console.

    hmmlearn reports through :mod:`logging` (loggers ``hmmlearn.*``), not :mod:`warnings`:
    "model is not converging", "degenerate solution", … While any capture is active, the
    ``hmmlearn`` logger does not propagate (so nothing reaches the console or the root
    handlers); each capture keeps the messages of its own thread.
    """
    global _log_depth, _log_saved_propagate
    logger = logging.getLogger("hmmlearn")
    handler = _ThreadCapture()
    with _log_lock:
        if _log_depth == 0:
            _log_saved_propagate = logger.propagate
            logger.propagate = False
        _log_depth += 1
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        with _log_lock:
            logger.removeHandler(handler)
            _log_depth -= 1
            if _log_depth == 0:
                logger.propagate = _log_saved_propagate


# -- the model -----------------------------------------------------------------------------------
class FlooredGaussianHMM(GaussianHMM):
    """hmmlearn's ``GaussianHMM`` whose M-step keeps every variance at or above ``min_covar``.

    hmmlearn uses ``min_covar`` only when it initialises the covariances; a state that
    gathers constant observations (dead neurons) can then shrink its variance towards 0 and
    its likelihood without bound, which BIC would reward. The floor stops that.
    """

    def _do_mstep(self, stats: dict[str, Any]) -> None:
        super()._do_mstep(stats)
        if "c" in self.params:
            self._covars_ = np.maximum(self._covars_, self.min_covar)


def n_free_parameters(n_states: int, n_features: int, covariance_type: str = "diag") -> int:
    """Free parameters of a Gaussian HMM: start (k − 1), transitions k(k − 1), means k·d and
    covariances (diag k·d, spherical k, full k·d(d + 1)/2, tied d(d + 1)/2).

    >>> n_free_parameters(3, 2)
    20
    """
    k, d = n_states, n_features
    covariances = {
        "diag": k * d,
        "spherical": k,
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
    }[covariance_type]
    return (k - 1) + k * (k - 1) + k * d + covariances


@dataclass
class _Params:
    startprob: np.ndarray  # (k,)
    transmat: np.ndarray  # (k, k)
    means: np.ndarray  # (k, d)
    covars: np.ndarray  # (k, d) diagonal variances

    def permuted(self, order: np.ndarray) -> _Params:
        return _Params(
            self.startprob[order],
            self.transmat[np.ix_(order, order)],
            self.means[order],
            self.covars[order],
        )


class _Sequences:
    """Sequences concatenated (``X``, ``lengths``) and padded time-major for the NumPy EM."""

    def __init__(self, X: np.ndarray, lengths: np.ndarray) -> None:
        self.X = np.ascontiguousarray(X, dtype=np.float64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        n_obs, self.n_features = self.X.shape
        self.n_obs = n_obs
        self.n_sequences = self.lengths.size
        self.max_length = int(self.lengths.max())
        starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.seq_index = np.repeat(np.arange(self.n_sequences), self.lengths)
        self.time_index = np.arange(n_obs) - np.repeat(starts, self.lengths)
        # position within its sequence in [0, 1], for ordering states by when they occur
        self.position = self.time_index / np.maximum(np.repeat(self.lengths, self.lengths) - 1, 1)
        self._padded: tuple[np.ndarray, np.ndarray] | None = None
        self._design: np.ndarray | None = None

    @property
    def padded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X, mask)``: arrays of shape (T, N, d) and (T, N), zeros where a sequence ended."""
        if self._padded is None:
            T, N = self.max_length, self.n_sequences
            X = np.zeros((T, N, self.n_features))
            mask = np.zeros((T, N), dtype=bool)
            X[self.time_index, self.seq_index] = self.X
            mask[self.time_index, self.seq_index] = True
            self._padded = (X, mask)
        return self._padded

    @property
    def ragged(self) -> bool:
        """Whether some sequence is shorter than the longest (padding to mask)."""
        return bool((self.lengths != self.max_length).any())

    @property
    def design(self) -> np.ndarray:
        """``[x², x]`` of every padded observation, shape (2d, T·N), so that the Gaussian
        log-densities of every state are one matrix product (:func:`_log_density`) and the
        M-step's weighted sums another."""
        if self._design is None:
            X, _ = self.padded
            flat = X.reshape(-1, self.n_features).T
            self._design = np.ascontiguousarray(np.concatenate([flat * flat, flat], axis=0))
        return self._design

    def unpad(self, values: np.ndarray) -> np.ndarray:
        """Values (T, N) back in concatenated order (n_obs,)."""
        return values[self.time_index, self.seq_index]

    def unpad_states(self, values: np.ndarray) -> np.ndarray:
        """State-major values (k, T, N) back in concatenated order (n_obs, k)."""
        return values[:, self.time_index, self.seq_index].T


def _log_density(seqs: _Sequences, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """Diagonal Gaussian log-densities of every padded observation in every state (k, T, N).

    ``−½ Σ_f (x_f − μ_f)² / σ²_f`` expanded as ``[−½/σ², μ/σ²] · [x², x] − ½ Σ μ²/σ²``.
    """
    covars = np.maximum(covars, _TINY)
    precision = 1.0 / covars
    d = means.shape[1]
    weights = np.concatenate([-0.5 * precision, means * precision], axis=1)  # (k, 2d)
    const = -0.5 * (
        d * np.log(2 * np.pi) + np.log(covars).sum(axis=1) + (means * means * precision).sum(axis=1)
    )
    out = weights @ seqs.design
    out += const[:, None]
    return out.reshape(means.shape[0], seqs.max_length, seqs.n_sequences)


def _forward_backward(
    seqs: _Sequences, p: _Params, *, posteriors: bool = True
) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray] | None]:
    """Scaled forward–backward over every sequence at once.

    Arrays are state-major, (k, T, N): every step is a few operations on (k, N) blocks
    (sums over states add k rows). Emission densities are scaled by their maximum per step
    (so that they never all underflow); the scale returns in the log-likelihood. Padded steps
    (after a sequence ended) have emission 1 and no weight: they change neither the
    likelihood nor the statistics.

    Returns ``(loglik per sequence (N,), posteriors (k, T, N) or None, sufficient statistics
    or None)``.
    """
    _, mask = seqs.padded
    T, N = mask.shape
    k = p.means.shape[0]
    A = p.transmat
    AT = np.ascontiguousarray(A.T)
    ragged = seqs.ragged
    b = _log_density(seqs, p.means, p.covars)
    top = b[0].copy()
    for j in range(1, k):
        np.maximum(top, b[j], out=top)
    if ragged:
        top[~mask] = 0.0
    b -= top
    np.exp(b, out=b)
    if ragged:
        b[:, ~mask] = 1.0
    alpha = np.empty((k, T, N))
    scale = np.empty((T, N))
    buffer = np.empty((k, N))
    np.multiply(p.startprob[:, None], b[:, 0], out=buffer)
    for t in range(T):
        if t:
            np.dot(AT, alpha[:, t - 1], out=buffer)
            buffer *= b[:, t]
        s = scale[t]
        np.sum(buffer, axis=0, out=s)
        np.maximum(s, _TINY, out=s)
        np.divide(buffer, s, out=alpha[:, t])
    loglik = np.log(scale).sum(axis=0) + top.sum(axis=0)
    if not posteriors:
        return loglik, None, None
    # weight[:, t] = b[:, t] · beta[:, t] / scale[t]: what ξ and the backward step both need
    weight = np.empty((k, T, N))
    beta = np.ones((k, N))
    gamma = np.empty((k, T, N))
    gamma[:, T - 1] = alpha[:, T - 1]
    w = np.empty((k, N))
    for t in range(T - 1, 0, -1):
        np.multiply(b[:, t], beta, out=w)
        w /= scale[t]
        weight[:, t] = w
        np.dot(A, w, out=beta)  # beta at t − 1
        np.multiply(alpha[:, t - 1], beta, out=gamma[:, t - 1])
    if ragged:
        gamma[:, ~mask] = 0.0
        weight[:, ~mask] = 0.0
    flat_gamma = gamma.reshape(k, -1)
    xi = A * (alpha[:, :-1].reshape(k, -1) @ weight[:, 1:].reshape(k, -1).T)
    sums = flat_gamma @ seqs.design.T  # (k, 2d): [Σ γ x², Σ γ x]
    d = p.means.shape[1]
    stats = {
        "start": gamma[:, 0].sum(axis=1),
        "trans": xi,
        "post": flat_gamma.sum(axis=1),
        "obs": sums[:, d:],
        "obs**2": sums[:, :d],
    }
    return loglik, gamma, stats


def _mstep(
    p: _Params, stats: dict[str, np.ndarray], *, covars_prior: float, min_covar: float
) -> _Params:
    """hmmlearn's GaussianHMM M-step (default priors, diagonal covariances), then the floor.

    Where hmmlearn would divide by zero (a state with no posterior mass, a transition row
    never used) the previous value is kept instead.
    """
    start = np.where(p.startprob == 0, 0.0, np.maximum(stats["start"], 0.0))
    startprob = start / start.sum() if start.sum() > 0 else p.startprob
    trans = np.where(p.transmat == 0, 0.0, np.maximum(stats["trans"], 0.0))
    rows = trans.sum(axis=1, keepdims=True)
    transmat = np.where(rows > 0, trans / np.where(rows > 0, rows, 1.0), p.transmat)
    denom = stats["post"][:, None]
    empty = denom[:, 0] <= 1e-12
    means = np.where(empty[:, None], p.means, stats["obs"] / np.where(empty[:, None], 1.0, denom))
    c_n = stats["obs**2"] - 2 * means * stats["obs"] + means**2 * denom
    covars = (covars_prior + c_n) / np.maximum(denom, 1e-5)
    covars = np.where(empty[:, None], p.covars, covars)
    return _Params(startprob, transmat, means, np.maximum(covars, min_covar))


def _viterbi(seqs: _Sequences, p: _Params) -> tuple[np.ndarray, np.ndarray]:
    """Most likely state path of every sequence at once: ``(states (n_obs,), log-prob (N,))``."""
    _, mask = seqs.padded
    T, N = mask.shape
    k = p.means.shape[0]
    log_b = _log_density(seqs, p.means, p.covars)
    with np.errstate(divide="ignore"):
        log_a = np.log(p.transmat)
        log_pi = np.log(p.startprob)
    delta = log_pi[:, None] + log_b[:, 0]  # (k, N)
    back = np.empty((T, k, N), dtype=np.int16)
    identity = np.arange(k, dtype=np.int16)[:, None]
    back[0] = identity
    for t in range(1, T):
        scores = delta[:, None, :] + log_a[:, :, None]  # (from, to, N)
        best = scores.argmax(axis=0)  # (to, N)
        new = scores.max(axis=0) + log_b[:, t]
        valid = mask[t][None, :]
        delta = np.where(valid, new, delta)  # a sequence that ended keeps its last state
        back[t] = np.where(valid, best, identity)
    path = np.empty((T, N), dtype=np.int64)
    path[T - 1] = delta.argmax(axis=0)
    columns = np.arange(N)
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t][path[t], columns]
    return seqs.unpad(path), delta.max(axis=0)


@dataclass
class _Fit:
    params: _Params
    loglik: float
    history: list[float]
    n_iter: int
    converged: bool
    decreased: bool
    messages: list[str]
    monitor: ConvergenceMonitor
    #: mean position within the sequences of each state (posterior-weighted), from the last
    #: E-step; ``None`` when not known
    positions: np.ndarray | None = None


def _converged(history: Sequence[float], tol: float) -> bool:
    """EM stopped because the last gain was below ``tol`` (not because ``n_iter`` ran out)."""
    return len(history) >= 2 and history[-1] - history[-2] < tol


def _decreased(history: Sequence[float]) -> bool:
    precision = np.finfo(float).eps ** 0.5
    return any(b - a < -precision * max(1.0, abs(a)) for a, b in itertools.pairwise(history))


def _initial_params(
    seqs: _Sequences, k: int, direction: np.ndarray, sticky: float, min_covar: float
) -> _Params:
    """Means at the quantile bins of the data projected on ``direction``; the same diagonal
    covariance (the data's variance + ``min_covar``, as hmmlearn) for every state; a sticky
    transition matrix; a uniform start."""
    X = seqs.X
    order = np.argsort(X @ direction, kind="stable")
    means = np.stack([X[part].mean(axis=0) for part in np.array_split(order, k)])
    variance = (np.var(X, axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])) + min_covar
    covars = np.tile(variance, (k, 1))
    if k == 1:
        transmat = np.ones((1, 1))
    else:
        transmat = np.full((k, k), (1.0 - sticky) / (k - 1))
        np.fill_diagonal(transmat, sticky)
    return _Params(np.full(k, 1.0 / k), transmat, means, covars)


def _directions(X: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The first principal direction, then ``n − 1`` random directions weighted towards the
    directions of large variance."""
    centred = X - X.mean(axis=0)
    cov = centred.T @ centred / max(X.shape[0] - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    values = np.clip(values, 0.0, None)
    out = [vectors[:, -1]]
    for _ in range(n - 1):
        direction = vectors @ (np.sqrt(values) * rng.standard_normal(values.size))
        norm = np.linalg.norm(direction)
        out.append(direction / norm if norm > 0 else vectors[:, -1])
    return out


def _to_model(p: _Params, fit: _Fit | None, *, min_covar: float, n_iter: int, tol: float) -> Any:
    model = FlooredGaussianHMM(
        n_components=p.means.shape[0],
        covariance_type="diag",
        min_covar=min_covar,
        n_iter=n_iter,
        tol=tol,
        params="stmc",
        init_params="",
    )
    model.n_features = p.means.shape[1]
    model.startprob_ = p.startprob.copy()
    model.transmat_ = p.transmat.copy()
    model.means_ = p.means.copy()
    model.covars_ = p.covars.copy()
    if fit is not None:
        model.monitor_ = fit.monitor
    return model


def _from_model(model: Any) -> _Params:
    return _Params(
        np.asarray(model.startprob_, dtype=np.float64),
        np.asarray(model.transmat_, dtype=np.float64),
        np.asarray(model.means_, dtype=np.float64),
        np.asarray(model._covars_, dtype=np.float64).reshape(model.means_.shape),
    )


def _em_numpy(
    seqs: _Sequences,
    init: _Params,
    *,
    n_iter: int,
    tol: float,
    covars_prior: float,
    min_covar: float,
) -> _Fit:
    monitor = ConvergenceMonitor(tol, n_iter, False)
    p = init
    gamma = None
    with hmmlearn_logs() as messages:
        for _ in range(n_iter):
            loglik, gamma, stats = _forward_backward(seqs, p)
            assert stats is not None
            p = _mstep(p, stats, covars_prior=covars_prior, min_covar=min_covar)
            monitor.report(float(loglik.sum()))  # logs "not converging" like hmmlearn
            if monitor.converged:
                break
    final, _, _ = _forward_backward(seqs, p, posteriors=False)
    history = list(monitor.history)
    return _Fit(
        p,
        float(final.sum()),
        history,
        monitor.iter,
        _converged(history, tol),
        _decreased(history),
        list(messages),
        monitor,
        None if gamma is None else _mean_positions(seqs, seqs.unpad_states(gamma)),
    )


def _em_hmmlearn(
    seqs: _Sequences,
    init: _Params,
    *,
    n_iter: int,
    tol: float,
    covars_prior: float,
    min_covar: float,
    random_state: int | None,
) -> _Fit:
    model = FlooredGaussianHMM(
        n_components=init.means.shape[0],
        covariance_type="diag",
        min_covar=min_covar,
        covars_prior=covars_prior,
        n_iter=n_iter,
        tol=tol,
        params="stmc",
        init_params="",
        random_state=random_state,
    )
    model.startprob_ = init.startprob.copy()
    model.transmat_ = init.transmat.copy()
    model.means_ = init.means.copy()
    model.covars_ = init.covars.copy()
    with hmmlearn_logs() as messages:
        model.fit(seqs.X, seqs.lengths)
        loglik = float(model.score(seqs.X, seqs.lengths))
    history = list(model.monitor_.history)
    return _Fit(
        _from_model(model),
        loglik,
        history,
        model.monitor_.iter,
        _converged(history, tol),
        _decreased(history),
        list(messages),
        model.monitor_,
    )


def _em_default(
    seqs: _Sequences, k: int, *, n_iter: int, tol: float, random_state: int | None
) -> _Fit:
    """hmmlearn's own default initialisation (k-means means, random start and transitions)."""
    model = GaussianHMM(
        n_components=k, covariance_type="diag", n_iter=n_iter, tol=tol, random_state=random_state
    )
    with hmmlearn_logs() as messages:
        model.fit(seqs.X, seqs.lengths)
        loglik = float(model.score(seqs.X, seqs.lengths))
    history = list(model.monitor_.history)
    return _Fit(
        _from_model(model),
        loglik,
        history,
        model.monitor_.iter,
        _converged(history, tol),
        _decreased(history),
        list(messages),
        model.monitor_,
    )


def _check_sequences(X: np.ndarray, lengths: Sequence[int] | np.ndarray | None) -> _Sequences:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must be (n_observations, n_features), not shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X holds NaN or infinite values; fill or drop them before fitting")
    lengths = np.asarray([X.shape[0]] if lengths is None else lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths < 1).any() or lengths.sum() != X.shape[0]:
        raise ValueError(
            f"lengths must be positive and sum to the {X.shape[0]} rows of X "
            f"(got {lengths.size} lengths summing to {int(lengths.sum())})"
        )
    return _Sequences(X, lengths)


class StateModel:
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
    def _candidates(self, seqs: _Sequences) -> tuple[list[int], dict[int, str]]:
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

    def _engine(self, seqs: _Sequences) -> str:
        if self.engine in ("numpy", "hmmlearn"):
            return self.engine
        if self.engine != "auto":
            raise ValueError(f"engine={self.engine!r}: use 'numpy', 'hmmlearn' or 'auto'")
        # NumPy pays per time step, hmmlearn per sequence (measured: ~60 µs vs ~250 µs)
        return "numpy" if seqs.n_sequences * 4 >= seqs.max_length else "hmmlearn"

    def _fit_one(
        self, seqs: _Sequences, k: int, direction: np.ndarray, engine: str, tol: float
    ) -> _Fit:
        if self.init == "default":
            return _em_default(seqs, k, n_iter=self.n_iter, tol=tol, random_state=self.random_state)
        init = _initial_params(seqs, k, direction, self.sticky, self.min_covar)
        kwargs = {
            "n_iter": self.n_iter,
            "tol": tol,
            "covars_prior": self.covars_prior,
            "min_covar": self.min_covar,
        }
        if engine == "hmmlearn":
            return _em_hmmlearn(seqs, init, random_state=self.random_state, **kwargs)
        return _em_numpy(seqs, init, **kwargs)

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
        progress : ``progress(done, total, message)``, called before each fit
        """
        if self.criterion not in ("bic", "aic"):
            raise ValueError(f"criterion={self.criterion!r}: use 'bic' or 'aic'")
        if self.init not in ("quantile", "default"):
            raise ValueError(f"init={self.init!r}: use 'quantile' or 'default'")
        seqs = _check_sequences(X, lengths)
        ks, skipped = self._candidates(seqs)
        engine = self._engine(seqs)
        tol = self.tol_per_obs * seqs.n_obs
        rng = np.random.default_rng(self.random_state)
        restarts = max(1, int(self.n_restarts)) if self.init == "quantile" else 1
        directions = _directions(seqs.X, restarts, rng)
        rows, models, fits, messages = [], {}, {}, []
        todo = [k for k in ks if k not in skipped]
        total, done = len(todo) * restarts, 0
        with threadpool_limits(1):
            for k in ks:
                if k in skipped:
                    rows.append(
                        {"k": k, "chosen": False, "restarts": 0, "note": f"skipped: {skipped[k]}"}
                    )
                    continue
                best: _Fit | None = None
                n_converged = 0
                for r in range(restarts):
                    if progress is not None:
                        progress(done, total, f"k = {k}, start {r + 1} of {restarts}")
                    fit = self._fit_one(seqs, k, directions[r], engine, tol)
                    done += 1
                    n_converged += fit.converged
                    messages.extend(fit.messages)
                    if best is None or fit.loglik > best.loglik:
                        best = fit
                assert best is not None
                params = _order_by_time(seqs, best)
                models[k] = _to_model(
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
        if progress is not None:
            progress(total, total, "done")
        selection = pd.DataFrame(rows)
        fitted = selection[selection["restarts"] > 0]
        chosen = int(fitted.loc[fitted[self.criterion].idxmin(), "k"])
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

    def select(self, n_states: int) -> StateModel:
        """Make the fitted model with ``n_states`` states the current one (a manual override
        of the criterion's choice); returns ``self``."""
        if n_states not in self.models_:
            raise ValueError(
                f"no fitted model with {n_states} states; fitted: {sorted(self.models_)}"
            )
        self.n_states_ = int(n_states)
        self.model_ = self.models_[n_states]
        self.converged_ = bool(self.fits_[n_states]["converged"])
        return self

    # -- using the fitted model ------------------------------------------------------------------
    def _params(self) -> _Params:
        return _from_model(self.model_)

    def predict(
        self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Viterbi states, array of shape (n_observations,)."""
        return _viterbi(_check_sequences(X, lengths), self._params())[0]

    def predict_proba(
        self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Posterior state probabilities, array of shape (n_observations, n_states)."""
        seqs = _check_sequences(X, lengths)
        _, gamma, _ = _forward_backward(seqs, self._params())
        assert gamma is not None
        return seqs.unpad_states(gamma)

    def score_sequences(
        self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
    ) -> np.ndarray:
        """Log-likelihood of every sequence, array of shape (n_sequences,)."""
        return _forward_backward(_check_sequences(X, lengths), self._params(), posteriors=False)[0]

    def score(self, X: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None) -> float:
        """Total log-likelihood of the sequences."""
        return float(self.score_sequences(X, lengths).sum())

    def fit_params(self) -> dict[str, Any]:
        """The constructor's parameters (``sklearn``'s ``get_params``)."""
        return {
            "n_states": self.n_states,
            "k_range": self.k_range,
            "criterion": self.criterion,
            "n_restarts": self.n_restarts,
            "sticky": self.sticky,
            "tol_per_obs": self.tol_per_obs,
            "n_iter": self.n_iter,
            "min_covar": self.min_covar,
            "covars_prior": self.covars_prior,
            "init": self.init,
            "engine": self.engine,
            "random_state": self.random_state,
        }

    def convergence_note(self) -> str | None:
        """A sentence when the chosen fit did not converge (or the likelihood fell), else None."""
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


def _mean_positions(seqs: _Sequences, posteriors: np.ndarray) -> np.ndarray:
    """Posterior-weighted mean position (0 = start, 1 = end of its sequence) of each state."""
    mass = posteriors.sum(axis=0)
    return (posteriors * seqs.position[:, None]).sum(axis=0) / np.maximum(mass, _TINY)


def _order_by_time(seqs: _Sequences, fit: _Fit) -> _Params:
    """States renumbered by their mean position within the sequences (posterior-weighted)."""
    positions = fit.positions
    if positions is None:
        _, gamma, _ = _forward_backward(seqs, fit.params)
        assert gamma is not None
        positions = _mean_positions(seqs, seqs.unpad_states(gamma))
    return fit.params.permuted(np.argsort(positions, kind="stable"))


# -- the shuffled-time null ----------------------------------------------------------------------
@dataclass(frozen=True)
class TimeShuffleTest:
    """Is there temporal structure at all? The fitted HMM's log-likelihood on the real
    sequences against the same sequences with time shuffled within each sequence.

    Each shuffled set is refitted with the same procedure as the real one (same k, same
    initialisation and restarts), so under "no temporal order" the real sequences are one more
    draw from the null and the p-value ``(1 + #{null ≥ real}) / (1 + n)`` is exact.
    """

    n_states: int
    n_shuffles: int
    loglik: float
    null: np.ndarray = field(repr=False)
    p_value: float
    n_obs: int

    @property
    def gain_per_obs(self) -> float:
        """Real minus median null log-likelihood, per observation (nats)."""
        return float((self.loglik - np.median(self.null)) / max(self.n_obs, 1))

    @property
    def smallest_p(self) -> float:
        """The smallest p-value this many shuffles can give, ``1 / (n_shuffles + 1)``."""
        return 1.0 / (self.n_shuffles + 1)

    def describe(self) -> str:
        if self.p_value <= 0.05:
            verdict = "temporal structure beyond chance"
        elif self.p_value <= self.smallest_p + 1e-12:
            verdict = (
                f"the real order beats every shuffle, but {self.n_shuffles} shuffles cannot "
                "give p ≤ 0.05: run more"
            )
        else:
            verdict = "no evidence of temporal structure: read no map into these states"
        floor = " (the smallest possible)" if self.p_value <= self.smallest_p + 1e-12 else ""
        return (
            f"{self.n_states}-state HMM: log-likelihood {self.loglik:.1f} on the real order vs "
            f"median {np.median(self.null):.1f} on {self.n_shuffles} time-shuffled copies "
            f"(gain {self.gain_per_obs:.3f} nats per observation); p = {self.p_value:.3g}"
            f"{floor} — {verdict}."
        )


def shuffled_time_test(
    X: np.ndarray,
    lengths: Sequence[int] | np.ndarray | None,
    n_states: int,
    *,
    n_shuffles: int = 19,
    random_state: int | None = 0,
    progress: Progress | None = None,
    **model_params: Any,
) -> TimeShuffleTest:
    """Permutation test of temporal structure (see :class:`TimeShuffleTest`).

    Parameters
    ----------
    X, lengths : the sequences, as for :meth:`StateModel.fit`
    n_states : k of the HMM (at least 2: a 1-state model does not see order)
    n_shuffles : refits on shuffled copies; the smallest p is ``1 / (n_shuffles + 1)``
    model_params : further :class:`StateModel` parameters (``n_restarts``, ``engine``, …)
    """
    if n_states < 2:
        raise ValueError("the shuffled-time test needs at least 2 states")
    seqs = _check_sequences(X, lengths)
    rng = np.random.default_rng(random_state)
    params = {k: v for k, v in model_params.items() if k not in ("n_states", "k_range")}
    params["random_state"] = random_state

    def fitted(values: np.ndarray) -> float:
        return (
            StateModel(n_states, **params)
            .fit(values, seqs.lengths)
            .selection_["log_likelihood"]
            .iloc[0]
        )

    if progress is not None:
        progress(0, n_shuffles + 1, "fitting the real sequences")
    real = fitted(seqs.X)
    null = np.empty(n_shuffles)
    for i in range(n_shuffles):
        if progress is not None:
            progress(i + 1, n_shuffles + 1, f"time-shuffled copy {i + 1} of {n_shuffles}")
        # one random key per observation, sorted within each sequence: every sequence shuffled
        keys = rng.random(seqs.n_obs) + seqs.seq_index
        null[i] = fitted(seqs.X[np.argsort(keys, kind="stable")])
    if progress is not None:
        progress(n_shuffles + 1, n_shuffles + 1, "done")
    p_value = (1.0 + float((null >= real).sum())) / (1.0 + n_shuffles)
    return TimeShuffleTest(int(n_states), int(n_shuffles), float(real), null, p_value, seqs.n_obs)


# -- model-level features ------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFeatures:
    """Model-level features of one run per recorded epoch (or per training step).

    ``frame``: index ``epoch`` (or ``step``), one column per feature, NaN where a feature could
    not be computed; ``usable``: the features finite at every row; ``source``: where they come
    from; ``notes``: what is missing and why. ``descriptors``: columns kept to describe states
    in words and to draw them (``weight_norm``, ``loss``, ``val_acc``, ``val_loss``, and for
    steps ``epoch``), not fitted; ``convergence``: the run's convergence epoch and its
    definition (:func:`convergence_epoch`).
    """

    frame: pd.DataFrame
    usable: list[str]
    source: str
    notes: list[str]
    descriptors: pd.DataFrame
    convergence: tuple[int | None, str] = (None, "")


def _weight_layers(trace: NetworkTrace) -> list[Any]:
    return [info for info in trace.layers if info.weight_key is not None]


def _features_from_weights(trace: NetworkTrace, weights: dict[str, np.ndarray]) -> dict[str, float]:
    layers = _weight_layers(trace)
    mats = [np.asarray(weights[i.weight_key], dtype=np.float64) for i in layers]
    mats = [m.reshape(m.shape[0], -1) for m in mats]
    flat = np.concatenate([m.reshape(-1) for m in mats])
    biases = [
        np.asarray(weights[i.bias_key], dtype=np.float64).reshape(-1)
        for i in layers
        if i.bias_key is not None and i.bias_key in weights
    ]
    l1 = float(np.abs(flat).sum())
    l2 = float(np.sqrt((flat * flat).sum()))
    singular = [
        np.linalg.svd(m.astype(np.float32), compute_uv=False).astype(np.float64) for m in mats
    ]
    out = {
        "l1": l1,
        "l2": l2,
        "l1_l2": l1 / l2 if l2 > 0 else np.nan,
        "spectral_norm": float(np.mean([s[0] for s in singular])),
        "sv_mean": float(np.mean([s.mean() for s in singular])),
        "sv_var": float(np.mean([s.var() for s in singular])),
        "w_mean": float(flat.mean()),
        "w_median": float(np.median(flat)),
        "w_var": float(flat.var()),
        "w_absmax": float(np.abs(flat).max()),
    }
    if biases:
        b = np.concatenate(biases)
        out.update(b_mean=float(b.mean()), b_median=float(np.median(b)), b_var=float(b.var()))
    return out


def _features_from_frame(trace: NetworkTrace, epoch: int) -> dict[str, float]:
    """The features the neuron frame gives exactly: from each neuron's incoming-weight mean,
    standard deviation, norm and largest value, weighted by its fan-in, and the biases."""
    layers = _weight_layers(trace)
    metrics = trace.metrics_at(epoch).astype(np.float64)
    col = {name: METRICS.index(name) for name in METRICS}
    ids = np.concatenate([np.asarray(i.ids) for i in layers])
    fan_in = np.concatenate([np.full(i.n_neurons, i.fan_in, dtype=np.float64) for i in layers])
    rows = metrics[ids]
    n = fan_in.sum()
    w_mean = float((fan_in * rows[:, col["w_mean"]]).sum() / n)
    second = float((fan_in * (rows[:, col["w_std"]] ** 2 + rows[:, col["w_mean"]] ** 2)).sum() / n)
    out = {
        "l2": float(np.sqrt((rows[:, col["w_norm"]] ** 2).sum())),
        "w_mean": w_mean,
        "w_var": max(second - w_mean**2, 0.0),
        "w_absmax": float(rows[:, col["w_absmax"]].max()),
    }
    with_bias = [i for i in layers if i.bias_key is not None]
    if with_bias:
        b = np.concatenate([metrics[np.asarray(i.ids), col["bias"]] for i in with_bias])
        b = b[np.isfinite(b)]
        if b.size:
            out.update(b_mean=float(b.mean()), b_median=float(np.median(b)), b_var=float(b.var()))
    return out


def _history_column(trace: NetworkTrace, column: str, epochs: Sequence[int]) -> np.ndarray:
    history = trace.history
    if column not in history or "epoch" not in history:
        return np.full(len(epochs), np.nan)
    series = history.set_index("epoch")[column]
    return series.reindex(list(epochs)).to_numpy(dtype=np.float64)


def model_features(trace: NetworkTrace, progress: Progress | None = None) -> ModelFeatures:
    """Hu et al.'s model-level weight statistics at every recorded epoch of ``trace``.

    With kept weights (``keep_weights=True``) every feature of :data:`MODEL_FEATURES` is
    computed from the weight matrices of the traced layers (convolution kernels flattened per
    output channel; spectral statistics are means over layers). Without them, the features of
    :data:`FRAME_FEATURES` come exactly from the neuron frame (each neuron's incoming-weight
    mean, standard deviation, norm and largest value, weighted by its fan-in, and its bias);
    L1, L1/L2, the median weight and the spectral statistics need the weights themselves and
    are computed where the weights exist — the final weights, at the last recorded epoch only
    when it is the epoch they were saved at — and left NaN (unusable for the fit) elsewhere.
    """
    epochs = trace.epochs
    layers = _weight_layers(trace)
    notes: list[str] = []
    if not layers:
        raise ValueError(
            "this trace has no layer with weights (only inputs?), so it has no model-level "
            "weight statistics"
        )
    kept = bool(trace.meta.get("keep_weights"))
    final_epoch = trace.meta.get("final_weights_epoch")
    rows = []
    for i, epoch in enumerate(epochs):
        if progress is not None:
            progress(i, len(epochs), f"weight statistics at E_{epoch}")
        row: dict[str, float] = {name: np.nan for name in MODEL_FEATURES}
        row.update(_features_from_frame(trace, epoch))
        weights = None
        if kept:
            weights = trace.weights(epoch)
        elif trace.final_weights and epoch == final_epoch:
            weights = trace.final_weights
        if weights is not None and all(i.weight_key in weights for i in layers):
            row.update(_features_from_weights(trace, weights))
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(epochs, name="epoch"), columns=list(MODEL_FEATURES))
    usable = [c for c in MODEL_FEATURES if np.isfinite(frame[c]).all()]
    missing = [c for c in MODEL_FEATURES if c not in usable]
    if kept and not missing:
        source = "the kept weights at every recorded epoch (all Hu et al. statistics)"
    else:
        source = (
            "the neuron frame (exact: L2 norm, mean, variance and largest |weight|, bias "
            "mean/median/variance)"
        )
        present = [c for c in missing if np.isfinite(frame[c]).any()]
        if missing:
            where = (
                f"; they exist at {int(np.isfinite(frame[present[0]]).sum())} of {len(epochs)} "
                "epochs (the saved final weights) and are shown but not fitted"
                if present
                else ""
            )
            notes.append(
                f"{', '.join(missing)} need the weight matrices at every recorded epoch, "
                f"which this trace does not keep (train with keep_weights=True){where}."
            )
    descriptors = pd.DataFrame(
        {
            "weight_norm": frame["l2"].to_numpy(),
            "loss": _history_column(trace, "train_loss", epochs),
            "val_acc": _history_column(trace, "val_acc", epochs),
            "val_loss": _history_column(trace, "val_loss", epochs),
        },
        index=frame.index,
    )
    if progress is not None:
        progress(len(epochs), len(epochs), "done")
    return ModelFeatures(frame, usable, source, notes, descriptors, convergence_epoch(trace))


def step_features(trace: NetworkTrace) -> ModelFeatures:
    """Per training step: the loss and, for every layer, its weight norm, gradient norm and
    activation mean / spread / active share (from ``trace.steps``, ``drop_batches=False``)."""
    steps = trace.steps
    if steps is None or len(steps) == 0:
        raise ValueError(
            "this trace has no per-step statistics; train with drop_batches=False (CLI: "
            "--keep-batches, the form: 'Keep per-batch statistics') to get them"
        )
    stats = [c for c in ("w_norm", "grad_norm", "act_mean", "act_std", "act_active") if c in steps]
    wide = steps.pivot_table(index="step", columns="layer", values=stats, aggfunc="first")
    order = [name for name in trace.layer_names() if name in set(steps["layer"])]
    columns = [(stat, layer) for layer in order for stat in stats if (stat, layer) in wide]
    frame = pd.DataFrame(
        {
            f"{layer}.{stat}": wide[(stat, layer)].to_numpy(dtype=np.float64)
            for stat, layer in columns
        },
        index=pd.Index(wide.index.to_numpy(), name="step"),
    )
    loss = steps.groupby("step")["loss"].first().reindex(frame.index).to_numpy(dtype=np.float64)
    frame.insert(0, "loss", loss)
    usable = [c for c in frame.columns if np.isfinite(frame[c]).all()]
    norms = [c for c in frame.columns if c.endswith(".w_norm")]
    weight_norm = (
        np.sqrt((frame[norms] ** 2).sum(axis=1)).to_numpy()
        if norms
        else np.full(len(frame), np.nan)
    )
    descriptors = pd.DataFrame({"weight_norm": weight_norm, "loss": loss}, index=frame.index)
    epochs = steps.groupby("step")["epoch"].first().reindex(frame.index)
    descriptors["epoch"] = epochs.to_numpy()
    notes = [c for c in frame.columns if c not in usable]
    return ModelFeatures(
        frame,
        usable,
        f"the per-step table: {len(frame)} training steps, {len(order)} layers",
        [f"not finite at every step, left out: {', '.join(notes)}"] if notes else [],
        descriptors,
        convergence_epoch(trace),
    )


def convergence_epoch(trace: NetworkTrace, fraction: float = 0.99) -> tuple[int | None, str]:
    """The first epoch at which validation accuracy (else probe, else training accuracy)
    reaches ``fraction`` of its best value in the run; ``(epoch or None, definition)``."""
    history = trace.history
    for column in ("val_acc", "probe_acc", "train_acc"):
        if column in history and history[column].notna().any():
            values = history[["epoch", column]].dropna()
            best = float(values[column].max())
            reached = values[values[column] >= fraction * best]
            definition = f"first epoch with {column} ≥ {fraction:.0%} of its best ({best:.3f})"
            return (int(reached["epoch"].iloc[0]) if len(reached) else None), definition
    return None, "no accuracy in the history"


# -- words --------------------------------------------------------------------------------------
def _level_words(z: float) -> str:
    if z >= 1.5:
        return "very high"
    if z >= 0.5:
        return "high"
    if z <= -1.5:
        return "very low"
    if z <= -0.5:
        return "low"
    return "typical"


def _describe_levels(means: np.ndarray, names: Sequence[str], top: int = 3) -> str:
    order = np.argsort(-np.abs(means), kind="stable")[:top]
    parts = [
        f"{FEATURE_DESCRIPTIONS.get(names[i], names[i])} {_level_words(means[i])} "
        f"({means[i]:+.1f}σ)"
        for i in order
        if abs(means[i]) >= 0.5
    ]
    return ", ".join(parts) if parts else "every feature near its average"


def _trend(rate: float, scale: float, up: str, down: str, flat: str) -> str:
    if not np.isfinite(rate) or not np.isfinite(scale) or scale <= 0:
        return ""
    ratio = rate / scale
    if abs(ratio) < 0.25:
        return flat
    word = up if ratio > 0 else down
    return f"{word} fast" if abs(ratio) >= 1.5 else word


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _when(position: float) -> str:
    if position < 1 / 3:
        return "early"
    if position < 2 / 3:
        return "mid-training"
    return "late"


# -- the training map ----------------------------------------------------------------------------
class _FittedStates:
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
    def model_(self) -> Any:
        return self.state_model_.model_

    @property
    def n_states_(self) -> int:
        return self.state_model_.n_states_

    @property
    def selection_(self) -> pd.DataFrame:
        return self.state_model_.selection_

    @property
    def converged_(self) -> bool:
        return self.state_model_.converged_

    @property
    def log_messages_(self) -> list[str]:
        return self.state_model_.log_messages_

    def select(self, n_states: int) -> Self:
        """Use the fitted model with ``n_states`` states instead of the criterion's choice."""
        self.state_model_.select(n_states)
        self._derive()
        return self

    def _derive(self) -> None:
        raise NotImplementedError


class TrainingMap(_FittedStates):
    """Hu et al.'s training map on one or several runs of the same configuration.

    Parameters
    ----------
    features
        Features to fit (default: every feature usable in every run; see
        :func:`model_features`). In ``sequence="steps"`` mode: columns of
        :func:`step_features`.
    sequence
        ``"epochs"`` (one observation per recorded epoch) or ``"steps"`` (per training step).
    standardize
        ``"pooled"`` (Hu et al.): every feature z-scored over all runs together, so that runs
        that differ in level (e.g. seeds with larger weights) visit different states;
        ``"run"``: z-scored within each run, so that states are phases the runs share.
    n_states, k_range, criterion, n_restarts, sticky, tol_per_obs, n_iter, engine
        As for :class:`StateModel` (default k = 1…8 by BIC, 5 restarts).
    n_shuffles
        Refits on time-shuffled copies for the shuffled-time test (0: no test), at the chosen
        k (at least 2), with at most 2 restarts for the real order and every copy alike.
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
        standardize: str = "pooled",
        n_states: int | None = None,
        k_range: tuple[int, int] = (1, 8),
        criterion: str = "bic",
        n_restarts: int = 5,
        sticky: float = 0.9,
        tol_per_obs: float = 1e-4,
        n_iter: int = 200,
        engine: str = "auto",
        n_shuffles: int = 19,
        random_state: int | None = 0,
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
        self.n_shuffles = n_shuffles
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
        if self.standardize not in ("pooled", "run"):
            raise ValueError(f"standardize={self.standardize!r}: use 'pooled' or 'run'")
        report = (lambda d, t, m: progress(d, t, m)) if progress is not None else None
        per_run = []
        for i, run in enumerate(runs):
            if isinstance(run, ModelFeatures):
                per_run.append(run)
                continue
            if report is not None:
                report(0, 1, f"model-level features of {names[i]}")
            per_run.append(model_features(run) if self.sequence == "epochs" else step_features(run))
        time_column = "epoch" if self.sequence == "epochs" else "step"
        usable = [c for c in per_run[0].frame.columns if all(c in f.usable for f in per_run)]
        notes = list(dict.fromkeys(n for f in per_run for n in f.notes))
        if self.features is not None:
            unknown = [c for c in self.features if c not in usable]
            if unknown:
                raise ValueError(
                    f"feature(s) {', '.join(unknown)} cannot be fitted on "
                    f"{'this run' if len(runs) == 1 else 'every run'}; usable: {', '.join(usable)}"
                )
            chosen = list(self.features)
        else:
            chosen = usable
        for name, f in zip(names, per_run):
            if len(f.frame) < 3:
                raise ValueError(
                    f"{name} has {len(f.frame)} recorded {time_column}s; a training map needs at "
                    "least 3"
                )
        values = np.concatenate([f.frame[chosen].to_numpy(dtype=np.float64) for f in per_run])
        spread = values.std(axis=0)
        constant = [
            c for c, s in zip(chosen, spread) if not s > 1e-12 * max(1.0, np.abs(values).max())
        ]
        if constant:
            notes.append(f"constant over every {time_column}, left out: {', '.join(constant)}.")
        chosen = [c for c in chosen if c not in constant]
        if not chosen:
            raise ValueError("no feature varies over training; nothing to fit")
        lengths = np.array([len(f.frame) for f in per_run])
        values = np.concatenate([f.frame[chosen].to_numpy(dtype=np.float64) for f in per_run])
        if self.standardize == "run":
            blocks = np.split(values, np.cumsum(lengths)[:-1])
            z = np.concatenate(
                [
                    (v - v.mean(axis=0)) / np.where(v.std(axis=0) > 0, v.std(axis=0), 1.0)
                    for v in blocks
                ]
            )
        else:
            z = (values - values.mean(axis=0)) / values.std(axis=0)
        state_model = StateModel(self.n_states, k_range=self.k_range, **self._model_params())
        state_model.fit(z, lengths, progress=report)
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
        features = []
        for name, f in zip(names, per_run):
            frame = f.frame.reset_index()
            frame.insert(0, "run", name)
            features.append(frame)
        self.features_ = pd.concat(features, ignore_index=True)
        # what the derived views need from the runs (the fitted object keeps no trace, so that
        # it pickles small)
        self._descriptors = pd.concat([f.descriptors for f in per_run], ignore_index=True)
        self.state_model_ = state_model
        self.convergence_ = pd.DataFrame(
            {"run": names, "convergence_epoch": [f.convergence[0] for f in per_run]}
        )
        self.convergence_definition_ = next(
            (f.convergence[1] for f in per_run if f.convergence[1]), ""
        )
        self._derive()
        self.time_test_ = None
        if self.n_shuffles > 0:
            # the real order and every shuffle are refitted the same way, with at most 2
            # restarts each (the test stays exact; it only costs less)
            params = {**self._model_params(), "n_restarts": min(self.n_restarts, 2)}
            self.time_test_ = shuffled_time_test(
                z,
                lengths,
                max(self.n_states_, 2),
                n_shuffles=self.n_shuffles,
                progress=report,
                **params,
            )
        return self

    # -- derived views ---------------------------------------------------------------------------
    def _derive(self) -> None:
        model = self.state_model_
        z, lengths = self.z_, self.lengths_
        states = model.predict(z, lengths)
        posteriors = model.predict_proba(z, lengths)
        k = model.n_states_
        names = self.run_names_
        run_of = np.repeat(np.arange(len(names)), lengths)
        path = pd.DataFrame({"run": np.asarray(names, dtype=object)[run_of]})
        path[self.time_column_] = self.features_[self.time_column_].to_numpy()
        path["state"] = states
        path["label"] = [state_label(s) for s in states]
        for j in range(k):
            path[f"p_{state_label(j)}"] = posteriors[:, j]
        path["entropy"] = entropy_bits(posteriors, axis=1)
        descriptors = self._descriptors
        for column in descriptors.columns:
            if column != self.time_column_:
                path[column] = descriptors[column].to_numpy()
        self.path_ = path

        # observed transitions between different states, within runs
        same_run = run_of[1:] == run_of[:-1]
        source, target = states[:-1][same_run], states[1:][same_run]
        moved = source != target
        counts = pd.DataFrame({"source": source[moved], "target": target[moved]})
        transmat = model.model_.transmat_
        if len(counts):
            counted = counts.value_counts().rename("count").reset_index()
            counted["probability"] = transmat[counted["source"], counted["target"]]
            counted = counted.sort_values(["source", "target"]).reset_index(drop=True)
        else:
            counted = pd.DataFrame(columns=["source", "target", "count", "probability"])
        self.transitions_ = counted

        # per state
        n_runs = len(names)
        visits = np.zeros((k, n_runs), dtype=bool)
        visits[states, run_of] = True
        means = model.model_.means_
        time_values = path[self.time_column_].to_numpy(dtype=np.float64)
        positions = np.concatenate([np.linspace(0, 1, n) if n > 1 else [0.0] for n in lengths])
        rate_w = self._rates(path["weight_norm"].to_numpy(), run_of, time_values)
        rate_l = self._rates(path["loss"].to_numpy(), run_of, time_values)
        scale_w = np.nanmedian(np.abs(rate_w)) if np.isfinite(rate_w).any() else np.nan
        scale_l = np.nanmedian(np.abs(rate_l)) if np.isfinite(rate_l).any() else np.nan
        rows = []
        for j in range(k):
            here = states == j
            if here.any():
                weights = _trend(
                    _finite_mean(rate_w[here]),
                    scale_w,
                    "weights growing",
                    "weights shrinking",
                    "weights steady",
                )
                loss = _trend(
                    _finite_mean(rate_l[here]), scale_l, "loss rising", "loss falling", "loss flat"
                )
                when = _when(float(positions[here].mean()))
            else:
                weights = loss = ""
                when = "never on the Viterbi path"
            dynamics = ", ".join(p for p in (weights, loss) if p)
            description = (
                f"{when}: "
                + (f"{dynamics}; " if dynamics else "")
                + _describe_levels(means[j], self.feature_names_)
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
                    "stay": float(transmat[j, j]),
                    "detour": bool(n_runs > 1 and 0 < visits[j].sum() < n_runs),
                    "description": description,
                }
            )
        self.states_ = pd.DataFrame(rows)
        self.descriptions_ = [r["description"] for r in rows]

        detours = []
        conv = self.convergence_["convergence_epoch"].to_numpy(dtype=np.float64)
        for j in range(k):
            if not (n_runs > 1 and 0 < visits[j].sum() < n_runs):
                continue
            inside, outside = conv[visits[j]], conv[~visits[j]]
            mean_in = float(np.nanmean(inside)) if np.isfinite(inside).any() else np.nan
            mean_out = float(np.nanmean(outside)) if np.isfinite(outside).any() else np.nan
            detours.append(
                {
                    "state": j,
                    "label": state_label(j),
                    "runs visiting": ", ".join(np.asarray(names)[visits[j]]),
                    "n visiting": int(visits[j].sum()),
                    "n runs": n_runs,
                    "convergence (visiting)": mean_in,
                    "convergence (others)": mean_out,
                    "slower by": mean_in - mean_out,
                }
            )
        self.detours_ = pd.DataFrame(
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


# -- the neuron-level model ----------------------------------------------------------------------
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
        neuron's own epochs (states then mean "above / below its own average").
    """
    unknown = [f for f in features if f not in METRICS]
    if unknown or not features:
        raise ValueError(f"unknown feature(s) {unknown}; features: {', '.join(METRICS)}")
    if standardize not in ("layer", "global", "neuron"):
        raise ValueError(f"standardize={standardize!r}: use 'layer', 'global' or 'neuron'")
    names = list(layers) if layers else [i.name for i in trace.layers if i.kind != "input"]
    infos = [trace.layer(name) for name in names]
    ids = np.concatenate([np.asarray(i.ids) for i in infos])
    layer_of = np.concatenate([[i.name] * i.n_neurons for i in infos]).astype(object)
    raw = np.stack([trace.metric(f)[:, ids].T for f in features], axis=2).astype(np.float64)
    notes = []
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
    groups: list[np.ndarray]
    if standardize == "layer":
        groups = [layer_of == name for name in dict.fromkeys(layer_of)]
        axes: tuple[int, ...] = (0, 1)
    elif standardize == "global":
        groups = [np.ones(ids.size, dtype=bool)]
        axes = (0, 1)
    else:
        groups = [np.ones(ids.size, dtype=bool)]
        axes = (1,)
    for group in groups:
        block = values[group]
        mean = block.mean(axis=axes, keepdims=True)
        std = block.std(axis=axes, keepdims=True)
        values[group] = (block - mean) / np.where(std > 0, std, 1.0)
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
    features, layers, standardize
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
                X, self.features, layers=self.layers, standardize=self.standardize
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
        seqs = _Sequences(self.X_.reshape(n * t, d), np.full(n, t))
        params = _from_model(self.state_model_.model_)
        k = params.means.shape[0]
        states, _ = _viterbi(seqs, params)
        loglik, gamma, _ = _forward_backward(seqs, params)
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
            when = _when(float((here * positions).sum() / here.sum())) if here.any() else "unused"
            self.descriptions_.append(
                f"{when}: {_describe_levels(params.means[j], self.feature_names_)}"
            )

    # -- tables ------------------------------------------------------------------------------
    def state_table(self) -> pd.DataFrame:
        """Per state: share of neuron-epochs, neurons that visit it, neurons for which it is
        dominant, probability of staying, stationary share, description."""
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
        path = self.states_[neuron]
        if path[0] < 0:
            return "not modelled"
        epochs = self.epochs_
        change = np.flatnonzero(np.diff(path) != 0) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change - 1, [path.size - 1]])
        return " → ".join(
            f"{state_label(path[a])} (E_{epochs[a]}–E_{epochs[b]})"
            if a != b
            else f"{state_label(path[a])} (E_{epochs[a]})"
            for a, b in zip(starts, ends)
        )

    def unusual_neurons(self, rare_share: float = 0.05, top: int = 50) -> pd.DataFrame:
        """Neurons whose paths are unusual: they visit a state that fewer than ``rare_share`` of
        the neurons visit, or their trajectory is among the 5 % least likely under the shared
        model. Most unusual first (rare visits, then log-likelihood)."""
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

    def time_test(self, n_shuffles: int = 19, progress: Progress | None = None) -> TimeShuffleTest:
        """The shuffled-time test of the fitted model's k (at least 2) on the fitted data."""
        n, t, d = self.X_.shape
        return shuffled_time_test(
            self.X_.reshape(n * t, d),
            np.full(n, t),
            max(self.n_states_, 2),
            n_shuffles=n_shuffles,
            progress=progress,
            **self._model_params(),
        )
