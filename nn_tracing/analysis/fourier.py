"""Fourier structure of neurons on modular arithmetic (the grokking datasets).

Nanda et al. (2023) found that a network that has grokked ``a + b mod p`` computes with a few
frequencies ``k``: its neurons respond like ``cos(2π k a / p + φ)`` in each operand. Here a
neuron's **response** is its activation on every pair ``(a, b)`` (a p × p map), its response
**over a** is that map averaged over ``b`` (and over b, averaged over a), and the **dominant
frequency** of a response over the residues is the k in ``1 … p // 2`` that holds the largest
share of its power (the discrete Fourier transform over ``0 … p-1``, the constant term left
out; the share is of the power at every non-zero frequency, so 1.0 is a pure cosine and
``1 / (p // 2)`` about what a flat spectrum gives).

Responses come from the traced model rebuilt with its weights at the epoch
(:func:`~nn_tracing.models.model_from_trace`: every pair, exact) when the trace has weights
there, else from the probe activations the trace recorded (the probe pairs only; the rest of
the map is NaN and the averages are over the pairs present).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data_modular import decode_pairs, is_modular, modular_dataset_arrays
from ..trace import NetworkTrace
from .profiles import ProfileUnavailable

__all__ = [
    "ModularResponse",
    "ModularSetup",
    "dominant_frequency",
    "layer_frequencies",
    "modular_response",
    "modular_setup",
    "power_spectrum",
    "response_grids",
]


@dataclass(frozen=True)
class ModularSetup:
    """The modular dataset a trace was trained on (from its config)."""

    dataset: str
    p: int
    embedding_dim: int
    seed: int


def modular_setup(trace: NetworkTrace) -> ModularSetup:
    """The modular dataset of ``trace``; :class:`ProfileUnavailable` when it is not one."""
    config = trace.meta.get("config") or {}
    dataset = str(config.get("dataset", ""))
    if not is_modular(dataset):
        raise ProfileUnavailable(
            "Fourier structure is shown for the modular arithmetic datasets (modular_add, "
            f"modular_sub); this trace was trained on {dataset or 'another dataset'!r}"
        )
    try:
        p, dim, seed = (
            int(config.get("modulus", 59)),
            int(config.get("modular_embedding_dim", 0)),
            int(config.get("data_seed", 0)),
        )
    except (TypeError, ValueError):
        raise ProfileUnavailable("the trace's config does not say its modulus") from None
    n_inputs = trace.layers[0].n_neurons if trace.layers else 0
    if not 2 <= p <= 200 or n_inputs != 2 * (dim or p):
        raise ProfileUnavailable(
            f"the trace's inputs ({n_inputs} features) do not match its modulus p={p}"
        )
    return ModularSetup(dataset, p, dim, seed)


def power_spectrum(values: np.ndarray) -> np.ndarray:
    """Power of each frequency ``k = 0 … p // 2`` of ``values`` over the residues, array of
    shape (..., p // 2 + 1) for ``values`` of shape (..., p); a frequency and its mirror
    ``p - k`` are counted together, so the non-zero ones add up to the signal's variance × p²."""
    values = np.asarray(values, dtype=np.float64)
    p = values.shape[-1]
    power = np.abs(np.fft.rfft(values, axis=-1)) ** 2
    if p > 1:
        mirrored = np.arange(power.shape[-1])
        double = (mirrored > 0) & ~((p % 2 == 0) & (mirrored == p // 2))
        power = power * np.where(double, 2.0, 1.0)
    return power


def dominant_frequency(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The dominant non-zero frequency of ``values`` (shape (..., p)) and its share of the
    non-zero power: two arrays of shape (...); frequency 0 and share NaN for a constant."""
    power = power_spectrum(values)[..., 1:]
    total = power.sum(axis=-1)
    best = power.argmax(axis=-1)
    share = np.take_along_axis(power, best[..., None], axis=-1)[..., 0]
    flat = total <= 1e-12 * np.maximum(1.0, np.abs(np.asarray(values)).max(axis=-1) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(flat, np.nan, share / np.where(flat, 1.0, total))
    return np.where(flat, 0, best + 1), share


def _all_pairs_activations(trace: NetworkTrace, setup: ModularSetup, epoch: int) -> np.ndarray:
    """Every neuron's activation on every pair, from the model rebuilt at ``epoch``: array of
    shape (p, p, n_neurons) indexed ``[a, b]``."""
    from ..models import model_from_trace
    from ..store import TraceFormatError
    from .profiles.field import _rebuilt_activations

    try:
        model = model_from_trace(trace, epoch)
    except (ValueError, TraceFormatError) as exc:
        raise ProfileUnavailable(str(exc)) from None
    X, _ = modular_dataset_arrays(setup.dataset, setup.p, setup.embedding_dim, setup.seed)
    acts = _rebuilt_activations(trace, model, X)
    return acts.reshape(setup.p, setup.p, -1)


def _probe_activations(trace: NetworkTrace, setup: ModularSetup, epoch: int) -> np.ndarray:
    """Every neuron's recorded probe activation placed at its pair, NaN elsewhere: array of
    shape (p, p, n_neurons)."""
    acts = trace.probe_activations(epoch)
    if acts is None or trace.probe is None:
        raise ProfileUnavailable(
            f"this trace keeps neither weights nor probe activations at E_{epoch}"
        )
    a, b = decode_pairs(np.asarray(trace.probe[0]), setup.p, setup.embedding_dim, setup.seed)
    grid = np.full((setup.p, setup.p, acts.shape[1]), np.nan)
    grid[a, b] = np.asarray(acts, dtype=np.float64)
    return grid


def response_grids(trace: NetworkTrace, epoch: int) -> tuple[np.ndarray, str]:
    """Every neuron's response to every pair at ``epoch``: array of shape (p, p, n_neurons)
    indexed ``[a, b, neuron]`` (NaN where unknown), and its source (``"model"``: the rebuilt
    model on all p² pairs; ``"probe"``: the recorded probe pairs only)."""
    setup = modular_setup(trace)
    if epoch in trace.epochs_with_weights:
        try:
            return _all_pairs_activations(trace, setup, epoch), "model"
        except ProfileUnavailable:  # a model that cannot be rebuilt here: its probe pairs
            pass
    return _probe_activations(trace, setup, epoch), "probe"


def _marginals(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over b (a function of a) and over a, of a (p, p, ...) grid with NaN gaps; a
    residue never seen gets the mean of the others (so it adds no frequency)."""
    with warnings.catch_warnings():  # an all-NaN row or column is filled below
        warnings.simplefilter("ignore", RuntimeWarning)
        over_a = np.nanmean(grid, axis=1)
        over_b = np.nanmean(grid, axis=0)
    for marginal in (over_a, over_b):
        fill = np.nanmean(marginal, axis=0) if np.isfinite(marginal).any() else 0.0
        gaps = ~np.isfinite(marginal)
        marginal[gaps] = np.broadcast_to(np.nan_to_num(fill), marginal.shape)[gaps]
    return over_a, over_b


@dataclass(frozen=True)
class ModularResponse:
    """One neuron's response to every pair of residues at one epoch.

    Attributes
    ----------
    neuron_id, epoch, p : which neuron, when, and the modulus
    grid : float array of shape (p, p): ``grid[a, b]`` the activation (NaN where unknown)
    over_a, over_b : float arrays of shape (p,): the grid averaged over b, and over a
    power_a, power_b : float arrays of shape (p // 2 + 1,): their power per frequency
    frequency_a, share_a, frequency_b, share_b : the dominant frequency of each and its share
    source : ``"model"`` (every pair) or ``"probe"`` (the recorded probe pairs only)
    coverage : the share of the p² pairs known
    """

    neuron_id: int
    epoch: int
    p: int
    grid: np.ndarray
    over_a: np.ndarray
    over_b: np.ndarray
    power_a: np.ndarray
    power_b: np.ndarray
    frequency_a: int
    share_a: float
    frequency_b: int
    share_b: float
    source: str
    coverage: float

    def grid_frame(self) -> pd.DataFrame:
        """The map in long form: ``a``, ``b``, ``activation`` (NaN pairs left out)."""
        a, b = np.divmod(np.arange(self.p * self.p), self.p)
        frame = pd.DataFrame({"a": a, "b": b, "activation": self.grid.ravel()})
        return frame[np.isfinite(frame["activation"])].reset_index(drop=True)

    def profile_frame(self) -> pd.DataFrame:
        """The responses over a and over b in long form: ``residue``, ``operand`` (a or b),
        ``activation``."""
        residues = np.arange(self.p)
        return pd.DataFrame(
            {
                "residue": np.concatenate([residues, residues]),
                "operand": ["a"] * self.p + ["b"] * self.p,
                "activation": np.concatenate([self.over_a, self.over_b]),
            }
        )

    def spectrum_frame(self) -> pd.DataFrame:
        """Share of the non-zero power per frequency ``k ≥ 1``: ``frequency``, ``operand``,
        ``share``."""
        rows = []
        for operand, power in (("a", self.power_a), ("b", self.power_b)):
            nonzero = power[1:]
            total = nonzero.sum()
            share = nonzero / total if total > 0 else np.full(nonzero.shape, np.nan)
            rows.append(
                pd.DataFrame(
                    {"frequency": np.arange(1, len(power)), "operand": operand, "share": share}
                )
            )
        return pd.concat(rows, ignore_index=True)


def modular_response(trace: NetworkTrace, neuron_id: int, epoch: int) -> ModularResponse:
    """Neuron ``neuron_id``'s response to every pair at ``epoch`` and its dominant frequencies.

    Raises :class:`ProfileUnavailable` for a trace not trained on a modular dataset, or one
    that keeps neither weights nor probe activations at ``epoch``.
    """
    trace.layer_of(int(neuron_id))  # an unknown neuron raises here
    grids, source = response_grids(trace, epoch)
    grid = grids[:, :, int(neuron_id)]
    over_a, over_b = _marginals(grid)
    (fa, sa), (fb, sb) = dominant_frequency(over_a), dominant_frequency(over_b)
    return ModularResponse(
        neuron_id=int(neuron_id),
        epoch=int(epoch),
        p=grid.shape[0],
        grid=grid,
        over_a=over_a,
        over_b=over_b,
        power_a=power_spectrum(over_a),
        power_b=power_spectrum(over_b),
        frequency_a=int(fa),
        share_a=float(sa),
        frequency_b=int(fb),
        share_b=float(sb),
        source=source,
        coverage=float(np.isfinite(grid).mean()),
    )


def layer_frequencies(trace: NetworkTrace, epoch: int) -> pd.DataFrame:
    """Every neuron's dominant frequencies at ``epoch``: one row per neuron with ``neuron``,
    ``layer``, ``frequency_a``, ``share_a``, ``frequency_b``, ``share_b``, and ``frequency``
    / ``share``: the dominant one of a and b together (their powers summed)."""
    grids, _ = response_grids(trace, epoch)
    over_a, over_b = _marginals(grids)  # (p, n) each
    fa, sa = dominant_frequency(over_a.T)
    fb, sb = dominant_frequency(over_b.T)
    both = power_spectrum(over_a.T)[:, 1:] + power_spectrum(over_b.T)[:, 1:]
    total = both.sum(axis=1)
    best = both.argmax(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, both[np.arange(len(best)), best] / total, np.nan)
    layer_of = np.empty(trace.n_neurons, dtype=object)
    for info in trace.layers:
        layer_of[np.asarray(info.ids)] = info.name
    return pd.DataFrame(
        {
            "neuron": np.arange(trace.n_neurons),
            "layer": layer_of,
            "frequency_a": fa.astype(int),
            "share_a": sa,
            "frequency_b": fb.astype(int),
            "share_b": sb,
            "frequency": np.where(total > 0, best + 1, 0).astype(int),
            "share": share,
        }
    )
