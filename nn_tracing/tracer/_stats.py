"""Per-neuron statistics as vectorised tensor operations on the model's device.

Everything here works on whole layers at once — no Python loop over neurons — and stays on the
device; the tracer copies the finished metric matrix to the host once per recorded epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ._discovery import Layout, TracedLayer

__all__ = [
    "ACT_COLUMNS",
    "Accumulator",
    "WeightColumns",
    "as_positions",
    "class_onehot",
    "class_selectivity",
    "mean_std",
    "selectivity_index",
    "selectivity_of_means",
    "weight_rows",
]

ACT_COLUMNS = ("act_mean", "act_std", "act_min", "act_max", "act_active")
"""The activation columns an :class:`Accumulator` fills, in metric order."""


def as_positions(output: torch.Tensor, feature_dim: int) -> torch.Tensor:
    """Reshape a layer output to (B, P, N): samples, positions, neurons."""
    out = output.detach()
    if out.dim() == 1:
        return out.reshape(1, 1, -1)
    if feature_dim == 1 and out.dim() > 2:
        out = out.movedim(1, -1)
    return out.reshape(out.shape[0], -1, out.shape[-1])


#: Dtypes whose positive values :func:`_row_reductions` counts with a clamp and a sum.
_COUNTED_DTYPES = (torch.float32, torch.float64)
#: The unit of that count: the smallest normal float32, a power of two (so k units sum
#: exactly in float32 for k < 2**24, and convert to float64 and back to k exactly).
_UNIT = 2.0**-126


def _row_reductions(
    rows: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Statistics of contiguous float rows (B, N, P) over their P positions.

    Returns each sample's sums (B, N) and, per neuron (N,), the float64 sum of squares over
    samples and positions, the minimum, the maximum and the float64 count of positive values.
    Five passes over contiguous memory, each vectorised: the sum of squares is the square of
    the row's L2 norm (one fused reduction, where squaring first writes a copy), and the count
    of positive values clamps them to ``[0, 2**-126]`` and sums (a boolean ``x > 0`` and its
    sum cost ten times as much on the CPU; a positive subnormal counts as its share of one, a
    NaN makes the count NaN, like the statistics it sits beside).
    """
    sums = rows.sum(2)
    norms = torch.linalg.vector_norm(rows, dim=2).to(torch.float64)
    total_sq = norms.square().sum(0)
    minimum = rows.amin(2).amin(0)
    maximum = rows.amax(2).amax(0)
    units = rows.clamp(0.0, _UNIT).sum(2)  # (B, N): k · 2**-126, exact for P < 2**24
    active = units.to(torch.float64).sum(0) / _UNIT
    return sums, total_sq, minimum, maximum, active


@dataclass
class Accumulator:
    """Running per-neuron statistics of a layer's activations, on the device."""

    count: int = 0
    positions: int = 1
    total: torch.Tensor | None = None  # float64 (N,)
    total_sq: torch.Tensor | None = None  # float64 (N,)
    minimum: torch.Tensor | None = None
    maximum: torch.Tensor | None = None
    active: torch.Tensor | None = None  # float64 (N,)
    pooled: list[torch.Tensor] = field(default_factory=list)  # (B, N) per chunk, probe only

    def add(self, values: torch.Tensor, keep_pooled: bool) -> None:
        """Add ``values`` of shape (B, P, N): B samples, P positions, N neurons.

        With ``keep_pooled`` (the probe) only the per-sample values (the mean over positions)
        are kept, and running statistics are gathered only when there are positions to pool.
        """
        self.positions = values.shape[1]
        if values.shape[1] > 1:
            self._add_positions(values, keep_pooled)
            return
        if keep_pooled:
            self.pooled.append(values[:, 0].detach().clone())
            self.count += values.shape[0]
            return
        flat = values.reshape(-1, values.shape[-1])
        as64 = flat.to(torch.float64)
        total = as64.sum(0)
        total_sq = (as64 * as64).sum(0)
        minimum = flat.amin(0)
        maximum = flat.amax(0)
        active = (flat > 0).sum(0).to(torch.float64)
        self._merge(total, total_sq, minimum, maximum, active, flat.shape[0])

    def _add_positions(self, values: torch.Tensor, keep_pooled: bool) -> None:
        """:meth:`add` for values with positions (a convolution's channels): reduced where
        they lie, without copying them to rows or to float64, with each sample's sums over its
        positions in float32 (at least) and the sums over samples in float64.

        A channels-first output — (B, N, P) contiguous in memory, seen here as (B, P, N) — is
        reduced along its rows: every reduction reads contiguous memory (see
        :func:`_row_reductions`); other layouts are reduced along the strided positions.
        """
        dtype = torch.promote_types(values.dtype, torch.float32)
        rows = values.transpose(1, 2)  # (B, N, P)
        if rows.is_contiguous() and values.dtype in _COUNTED_DTYPES and rows.shape[2] < 2**24:
            sums, total_sq, minimum, maximum, active = _row_reductions(rows)
        else:
            sums = values.sum(1, dtype=dtype)  # (B, N)
            total_sq = values.square().sum(1, dtype=dtype).to(torch.float64).sum(0)
            minimum = values.amin((0, 1))
            maximum = values.amax((0, 1))
            active = (values > 0).sum((0, 1)).to(torch.float64)
        if keep_pooled:
            self.pooled.append((sums / values.shape[1]).to(values.dtype))
        total = sums.to(torch.float64).sum(0)
        self._merge(total, total_sq, minimum, maximum, active, values.shape[0] * values.shape[1])

    def _merge(
        self,
        total: torch.Tensor,
        total_sq: torch.Tensor,
        minimum: torch.Tensor,
        maximum: torch.Tensor,
        active: torch.Tensor,
        count: int,
    ) -> None:
        """Add one chunk's sums, extremes and count of values."""
        if self.total is None:
            self.total, self.total_sq, self.active = total, total_sq, active
            self.minimum, self.maximum = minimum, maximum
        else:
            self.total += total
            self.total_sq += total_sq
            self.active += active
            self.minimum = torch.minimum(self.minimum, minimum)
            self.maximum = torch.maximum(self.maximum, maximum)
        self.count += count

    def stats(self) -> dict[str, torch.Tensor]:
        """The :data:`ACT_COLUMNS` of every neuron, each a float64 tensor of shape (N,)."""
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean * mean).clamp_min(0)
        return {
            "act_mean": mean,
            "act_std": var.sqrt(),
            "act_min": self.minimum.to(torch.float64),
            "act_max": self.maximum.to(torch.float64),
            "act_active": self.active / self.count,
        }

    def block(self) -> torch.Tensor:
        """The :data:`ACT_COLUMNS` side by side: float32 tensor of shape (N, 5)."""
        stats = self.stats()
        return torch.stack([stats[name] for name in ACT_COLUMNS], dim=1).float()


def class_selectivity(pooled: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Class selectivity index of every neuron (Morcos et al. 2018), shape (N,).

    ``(mu_max - mu_rest) / (mu_max + mu_rest)`` where ``mu_max`` is the largest class-mean
    activation and ``mu_rest`` the mean of the other class means. For non-negative activations
    (ReLU, sigmoid) this is Morcos' index exactly. Activations that go negative (tanh, GELU,
    logits, inputs) are measured from the neuron's lowest probe activation instead of from 0
    (class means minus ``min(0, min activation)``), which keeps the index in [0, 1]. NaN when
    the shifted class means are all 0 (a dead neuron) or fewer than two classes are present.

    Parameters
    ----------
    pooled : tensor of shape (n_samples, n_neurons)
    labels : tensor of shape (n_samples,), integer classes
    """
    onehot = class_onehot(labels)
    n = pooled.shape[1]
    if onehot.shape[1] < 2:
        return torch.full((n,), float("nan"), device=pooled.device)
    return selectivity_index(pooled.float(), onehot, pooled.float().amin(0))


def class_onehot(labels: torch.Tensor) -> torch.Tensor:
    """One-hot float32 matrix (n_samples, n_classes present) of integer labels."""
    labels = labels.reshape(-1).to(torch.long)
    classes = torch.unique(labels)
    return (labels[:, None] == classes[None, :]).float()


def selectivity_index(acts: torch.Tensor, onehot: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """:func:`class_selectivity` given the one-hot classes and each neuron's minimum.

    Parameters
    ----------
    acts : tensor of shape (n_samples, n_neurons)
    onehot : tensor of shape (n_samples, n_classes), at least two classes
    low : tensor of shape (n_neurons,), each neuron's lowest activation
    """
    means = (onehot.T @ acts) / onehot.sum(0)[:, None]  # (K, N) class means
    return selectivity_of_means(means, low)


def selectivity_of_means(means: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """:func:`class_selectivity` from the class means (K, N), K >= 2, and each neuron's
    minimum (N,): what ranks that merged their per-class sums compute."""
    means = means - low.clamp_max(0)
    top = means.amax(0)
    rest = (means.sum(0) - top) / (means.shape[0] - 1)
    denom = top + rest
    return torch.where(denom > 1e-12, (top - rest) / denom, torch.nan)


#: Elements of the block of rows whose deviations :func:`mean_std` squares at a time.
MEAN_STD_BLOCK = 2**21


def mean_std(values: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population standard deviation along ``dim`` (two-pass, float32).

    Spelled out because ``torch.var_mean`` is several times slower on CPU for these shapes.
    Over ``dim=0`` of a large matrix (the probe's activations) the deviations are squared one
    block of rows at a time, so the working memory is a block (8 MiB), not two copies of the
    matrix.
    """
    mean = values.mean(dim)
    if dim != 0 or values.dim() != 2 or values.numel() <= MEAN_STD_BLOCK:
        centered = values - mean.unsqueeze(dim)
        return mean, (centered * centered).mean(dim).sqrt()
    rows = max(1, MEAN_STD_BLOCK // max(values.shape[1], 1))
    squares = torch.zeros_like(mean)
    for block in values.split(rows):
        centered = block - mean
        squares += (centered * centered).sum(0)
    return mean, (squares / values.shape[0]).sqrt()


def weight_rows(weight: torch.Tensor) -> torch.Tensor:
    """A weight (or its gradient) as one row of incoming weights per neuron: (N, fan_in)."""
    return weight.detach().reshape(weight.shape[0], -1)


class WeightColumns:
    """The seven incoming-weight columns ``w_mean … grad_norm`` of each traced layer.

    Remembers every layer's weights from the previous call, for ``w_drift`` (the L2 distance of
    a neuron's incoming weights from the previous recorded epoch).
    """

    def __init__(self) -> None:
        self._previous_rows: dict[int, torch.Tensor] = {}

    def block(
        self,
        layer: TracedLayer | None,
        grad_norm: torch.Tensor | None,
        n: int,
        device: torch.device,
    ) -> torch.Tensor:
        """The columns of ``layer`` (``None``: the input): float32 tensor of shape (n, 7).

        ``grad_norm`` (shape (n,)) becomes the last column; NaN where it is ``None``.
        """
        nan = torch.full((n,), float("nan"), device=device)
        if layer is None or layer.weight is None:
            return nan[:, None].expand(n, 7)
        rows = weight_rows(layer.weight).float()
        mean, std = mean_std(rows, dim=1)
        bias = layer.bias.detach().float() if layer.bias is not None else nan
        previous = self._previous_rows.get(layer.info.first_id)
        drift = torch.linalg.vector_norm(rows - previous, dim=1) if previous is not None else nan
        self._previous_rows[layer.info.first_id] = rows.clone()
        columns = [
            mean,
            std,
            torch.linalg.vector_norm(rows, dim=1),
            rows.abs().amax(1),
            bias,
            drift,
            grad_norm.float() if grad_norm is not None else nan,
        ]
        return torch.stack(columns, dim=1)

    def all(
        self, layout: Layout, grad_norms: list[torch.Tensor | None], device: torch.device
    ) -> torch.Tensor:
        """The columns of every neuron, input features first: tensor (n_neurons, 7) float32.

        ``grad_norms`` holds one entry per traced layer, in the order of ``layout.layers``.
        """
        blocks = [self.block(None, None, layout.input_info.n_neurons, device)]
        for layer, grad_norm in zip(layout.layers, grad_norms, strict=True):
            blocks.append(self.block(layer, grad_norm, layer.info.n_neurons, device))
        return torch.cat(blocks)
