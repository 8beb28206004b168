"""The EM engine behind every HMM of :mod:`nn_tracing.analysis.hmm`, and its hmmlearn glue.

Diagonal-covariance Gaussian HMMs fitted by EM over many sequences at once: the sequences
(:class:`Sequences`, concatenated as hmmlearn's ``(X, lengths)`` and padded time-major),
scaled forward–backward (:func:`forward_backward`), hmmlearn's M-step with a variance floor
(:func:`mstep`) and Viterbi (:func:`viterbi`), all vectorised over the sequences in NumPy
(:func:`em_numpy`); the same fit through hmmlearn's own ``fit``, one sequence at a time
(:func:`em_hmmlearn`), and hmmlearn's default initialisation (:func:`em_default`), kept to show
how it collapses. The fitted parameters always come back as a :class:`FlooredGaussianHMM`
(:func:`to_model`), and what hmmlearn logs is collected (:func:`hmmlearn_logs`), never printed.

hmmlearn's ``fit`` visits the sequences one by one in Python (1.4–4.5 s per EM iteration for
5000 neurons, measured on a 2-core CPU machine with hmmlearn 0.3.3), so the NumPy engine runs
the same EM — the same initialisation, E-step and M-step, including hmmlearn's covariance prior
— on every sequence at once; it is tested to agree with hmmlearn's to 1e-8.

A private module: :class:`~nn_tracing.analysis.hmm.StateModel` is the way in.
"""

from __future__ import annotations

import itertools
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from hmmlearn.base import ConvergenceMonitor
from hmmlearn.hmm import GaussianHMM

__all__ = [
    "Fit",
    "FlooredGaussianHMM",
    "Params",
    "Sequences",
    "check_sequences",
    "em_default",
    "em_hmmlearn",
    "em_numpy",
    "forward_backward",
    "from_model",
    "hmmlearn_logs",
    "initial_params",
    "log_density",
    "mstep",
    "n_free_parameters",
    "order_by_time",
    "restart_directions",
    "to_model",
    "viterbi",
]


#: The smallest positive float64: a floor for scales, variances and masses.
_TINY = np.finfo(np.float64).tiny


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


# -- sequences and the vectorised EM -------------------------------------------------------------
@dataclass
class Params:
    startprob: np.ndarray  # (k,)
    transmat: np.ndarray  # (k, k)
    means: np.ndarray  # (k, d)
    covars: np.ndarray  # (k, d) diagonal variances

    def permuted(self, order: np.ndarray) -> Params:
        return Params(
            self.startprob[order],
            self.transmat[np.ix_(order, order)],
            self.means[order],
            self.covars[order],
        )


class Sequences:
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
        log-densities of every state are one matrix product (:func:`log_density`) and the
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


def log_density(seqs: Sequences, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
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


def forward_backward(
    seqs: Sequences, p: Params, *, posteriors: bool = True
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
    b = log_density(seqs, p.means, p.covars)
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


def mstep(
    p: Params, stats: dict[str, np.ndarray], *, covars_prior: float, min_covar: float
) -> Params:
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
    return Params(startprob, transmat, means, np.maximum(covars, min_covar))


def viterbi(seqs: Sequences, p: Params) -> tuple[np.ndarray, np.ndarray]:
    """Most likely state path of every sequence at once: ``(states (n_obs,), log-prob (N,))``."""
    _, mask = seqs.padded
    T, N = mask.shape
    k = p.means.shape[0]
    log_b = log_density(seqs, p.means, p.covars)
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


# -- one fit: initialisation, EM by either engine, the model -------------------------------------
@dataclass
class Fit:
    params: Params
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


def initial_params(
    seqs: Sequences, k: int, direction: np.ndarray, sticky: float, min_covar: float
) -> Params:
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
    return Params(np.full(k, 1.0 / k), transmat, means, covars)


def restart_directions(X: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
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


def to_model(p: Params, fit: Fit | None, *, min_covar: float, n_iter: int, tol: float) -> Any:
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


def from_model(model: Any) -> Params:
    return Params(
        np.asarray(model.startprob_, dtype=np.float64),
        np.asarray(model.transmat_, dtype=np.float64),
        np.asarray(model.means_, dtype=np.float64),
        np.asarray(model._covars_, dtype=np.float64).reshape(model.means_.shape),
    )


def em_numpy(
    seqs: Sequences,
    init: Params,
    *,
    n_iter: int,
    tol: float,
    covars_prior: float,
    min_covar: float,
) -> Fit:
    monitor = ConvergenceMonitor(tol, n_iter, False)
    p = init
    gamma = None
    with hmmlearn_logs() as messages:
        for _ in range(n_iter):
            loglik, gamma, stats = forward_backward(seqs, p)
            assert stats is not None
            p = mstep(p, stats, covars_prior=covars_prior, min_covar=min_covar)
            monitor.report(float(loglik.sum()))  # logs "not converging" like hmmlearn
            if monitor.converged:
                break
    final, _, _ = forward_backward(seqs, p, posteriors=False)
    history = list(monitor.history)
    return Fit(
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


def em_hmmlearn(
    seqs: Sequences,
    init: Params,
    *,
    n_iter: int,
    tol: float,
    covars_prior: float,
    min_covar: float,
    random_state: int | None,
) -> Fit:
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
    return _fit_hmmlearn(model, seqs, tol)


def _fit_hmmlearn(model: GaussianHMM, seqs: Sequences, tol: float) -> Fit:
    """Run hmmlearn's own EM on ``model`` (its log collected, not printed) and read the fit."""
    # a state left empty divides by zero in hmmlearn's M-step (RuntimeWarning, then NaN: the
    # caller refits with the NumPy engine), so that warning is not shown
    with hmmlearn_logs() as messages, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(seqs.X, seqs.lengths)
        loglik = float(model.score(seqs.X, seqs.lengths))
    history = list(model.monitor_.history)
    return Fit(
        from_model(model),
        loglik,
        history,
        model.monitor_.iter,
        _converged(history, tol),
        _decreased(history),
        list(messages),
        model.monitor_,
    )


def em_default(
    seqs: Sequences, k: int, *, n_iter: int, tol: float, random_state: int | None
) -> Fit:
    """hmmlearn's own default initialisation (k-means means, random start and transitions)."""
    model = GaussianHMM(
        n_components=k, covariance_type="diag", n_iter=n_iter, tol=tol, random_state=random_state
    )
    return _fit_hmmlearn(model, seqs, tol)


def check_sequences(X: np.ndarray, lengths: Sequence[int] | np.ndarray | None) -> Sequences:
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
    return Sequences(X, lengths)


def _mean_positions(seqs: Sequences, posteriors: np.ndarray) -> np.ndarray:
    """Posterior-weighted mean position (0 = start, 1 = end of its sequence) of each state."""
    mass = posteriors.sum(axis=0)
    return (posteriors * seqs.position[:, None]).sum(axis=0) / np.maximum(mass, _TINY)


def order_by_time(seqs: Sequences, fit: Fit) -> Params:
    """States renumbered by their mean position within the sequences (posterior-weighted)."""
    positions = fit.positions
    if positions is None:
        _, gamma, _ = forward_backward(seqs, fit.params)
        assert gamma is not None
        positions = _mean_positions(seqs, seqs.unpad_states(gamma))
    return fit.params.permuted(np.argsort(positions, kind="stable"))
