"""Interventions: clamp or scale a neuron's activation, or set one weight, and see what changes.

:func:`intervene` applies an :class:`Intervention` and returns an :class:`InterventionResult`:
accuracy before and after, the predictions that flip, every neuron's activation before and
after, and for 2-D inputs the :class:`DecisionBoundary` before and after on a
:func:`decision_grid` over the probe's range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ...timeaxis import time_key
from ...trace import LayerInfo
from ..neuron_model import NeuronModel
from .ablation import AblationResult, _as_tensor, _class_names

__all__ = [
    "INTERVENTIONS",
    "DecisionBoundary",
    "Intervention",
    "InterventionResult",
    "decision_grid",
    "intervene",
]

#: Kinds of intervention.
INTERVENTIONS: dict[str, str] = {
    "clamp": "set a neuron's activation to a value",
    "scale": "multiply a neuron's activation by a factor",
    "weight": "set one incoming weight of a neuron",
}


@dataclass(frozen=True)
class Intervention:
    """One change to the network.

    ``kind`` is ``"clamp"`` (``neuron``'s activation := ``value``), ``"scale"``
    (activation × ``value``) or ``"weight"`` (the weight from input ``column`` to neuron
    ``row`` of ``layer`` := ``value``).
    """

    kind: str
    value: float
    neuron: int | None = None
    layer: str | None = None
    row: int | None = None
    column: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in INTERVENTIONS:
            raise ValueError(f"kind={self.kind!r}: use one of {', '.join(INTERVENTIONS)}")
        if self.kind in ("clamp", "scale") and self.neuron is None:
            raise ValueError(f"a {self.kind} intervention needs neuron=")
        if self.kind == "weight" and (
            self.layer is None or self.row is None or self.column is None
        ):
            raise ValueError("a weight intervention needs layer=, row= and column=")
        if not np.isfinite(self.value):
            raise ValueError(f"value={self.value!r} must be finite")

    def describe(self, epoch: int | None = None) -> str:
        e = epoch if epoch is not None else -1
        if self.kind == "clamp":
            return f"clamp n_{self.neuron} to {self.value:g}"
        if self.kind == "scale":
            return f"scale n_{self.neuron} by {self.value:g}"
        return (
            f"set weight [{self.row}, {self.column}] of {time_key(e)}/L_{self.layer} to "
            f"{self.value:g}"
        )


@dataclass(frozen=True)
class DecisionBoundary:
    """Predictions on a grid over a 2-D input plane, before and after a change.

    ``xs`` and ``ys`` (arrays of shape (resolution,)) span the plane; ``before`` and
    ``after`` are arrays of shape (resolution * resolution,) — the predicted class at
    ``(xs[i % resolution], ys[i // resolution])`` — and ``confidence_before`` /
    ``confidence_after`` the softmax probability of that class.
    """

    xs: np.ndarray
    ys: np.ndarray
    before: np.ndarray
    after: np.ndarray
    confidence_before: np.ndarray
    confidence_after: np.ndarray

    @property
    def changed_share(self) -> float:
        """Share of the plane whose predicted class changed."""
        return float((self.before != self.after).mean())


@dataclass(frozen=True)
class InterventionResult:
    """What an intervention changes on the probe set.

    Attributes
    ----------
    intervention : the change
    labels : array of shape (n_samples,)
    logits_before, logits_after : arrays of shape (n_samples, n_classes)
    activations_before, activations_after : arrays of shape (n_samples, n_neurons)
    old_value : the weight's value before a weight edit (``None`` otherwise)
    boundary : the decision boundary for 2-D inputs (``None`` otherwise)
    """

    intervention: Intervention
    labels: np.ndarray
    logits_before: np.ndarray
    logits_after: np.ndarray
    activations_before: np.ndarray = field(repr=False)
    activations_after: np.ndarray = field(repr=False)
    old_value: float | None = None
    boundary: DecisionBoundary | None = None

    @property
    def accuracy_before(self) -> float:
        return float((self.logits_before.argmax(1) == self.labels).mean())

    @property
    def accuracy_after(self) -> float:
        return float((self.logits_after.argmax(1) == self.labels).mean())

    @property
    def flipped(self) -> np.ndarray:
        return np.flatnonzero(self.logits_before.argmax(1) != self.logits_after.argmax(1))

    def changed_neurons(self, tolerance: float = 1e-6) -> np.ndarray:
        """Global ids whose activation changed by more than ``tolerance`` on some sample."""
        delta = np.abs(self.activations_after - self.activations_before).max(0)
        return np.flatnonzero(delta > tolerance)

    def layer_changes(self, layers: Sequence[LayerInfo]) -> pd.DataFrame:
        """Per layer: ``layer``, ``changed`` neurons, ``max_abs_change``, ``mean_abs_change``."""
        delta = np.abs(self.activations_after - self.activations_before)
        rows = []
        for info in layers:
            block = delta[:, info.first_id : info.last_id + 1]
            rows.append(
                (
                    info.name,
                    int((block.max(0) > 1e-6).sum()),
                    float(block.max()),
                    float(block.mean()),
                )
            )
        return pd.DataFrame(rows, columns=["layer", "changed", "max_abs_change", "mean_abs_change"])

    def comparison(self, class_names: Sequence[str] | None = None) -> AblationResult:
        """The before/after outputs as an :class:`AblationResult` (per-class accuracy and
        logits, confusion matrices, flipped samples)."""
        names = _class_names(self.logits_before.shape[1], class_names)
        neurons = (self.intervention.neuron,) if self.intervention.neuron is not None else ()
        return AblationResult(
            neurons=tuple(int(n) for n in neurons),
            fill=self.intervention.kind,
            labels=self.labels,
            logits_before=self.logits_before,
            logits_after=self.logits_after,
            class_names=names,
        )

    def flipped_frame(self, class_names: Sequence[str] | None = None) -> pd.DataFrame:
        """The samples whose prediction flipped (see :meth:`AblationResult.flipped_frame`)."""
        return self.comparison(class_names).flipped_frame()


def decision_grid(
    x: np.ndarray, resolution: int = 40, margin: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grid over the plane of 2-D inputs ``x`` (array (n, 2)), ``margin`` of the range wider.

    Returns
    -------
    ``xs`` (resolution,), ``ys`` (resolution,), ``points`` (resolution², 2) float32, row-major
    (x varies fastest).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError("a decision boundary needs 2-D inputs")
    low, high = x.min(0), x.max(0)
    pad = (high - low) * margin + 1e-6
    xs = np.linspace(low[0] - pad[0], high[0] + pad[0], resolution)
    ys = np.linspace(low[1] - pad[1], high[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


@contextmanager
def _applied(model: NeuronModel, intervention: Intervention) -> Iterator[float | None]:
    if intervention.kind == "weight":
        with model.weight_edited(
            str(intervention.layer),
            int(intervention.row),  # type: ignore[arg-type]
            int(intervention.column),  # type: ignore[arg-type]
            float(intervention.value),
        ) as old:
            yield old
        return
    neuron = int(intervention.neuron)  # type: ignore[arg-type]
    info = model.layer_of(neuron)
    mul = torch.ones(1, info.n_neurons)
    add = torch.zeros(1, info.n_neurons)
    j = neuron - info.first_id
    if intervention.kind == "clamp":
        mul[0, j] = 0.0
        add[0, j] = float(intervention.value)
    else:
        mul[0, j] = float(intervention.value)
    with model.edited({info.name: (mul, add)}):
        yield None


def intervene(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    intervention: Intervention,
    *,
    boundary_resolution: int = 40,
) -> InterventionResult:
    """Apply ``intervention`` and report what changes on ``(x, y)``.

    For 2-D inputs the decision boundary is evaluated on a ``boundary_resolution`` grid
    over the probe's range (see :func:`decision_grid`), before and after.
    """
    x = _as_tensor(x, model)
    logits_before = model.logits(x).cpu().numpy()
    acts_before = model.activations(x).cpu().numpy()
    grid = None
    if x.dim() == 2 and x.shape[1] == 2 and boundary_resolution > 1:
        grid = decision_grid(x.cpu().numpy(), boundary_resolution)
        grid_before = torch.softmax(model.logits(grid[2]), 1).cpu().numpy()
    with _applied(model, intervention) as old:
        logits_after = model.logits(x).cpu().numpy()
        acts_after = model.activations(x).cpu().numpy()
        grid_after = torch.softmax(model.logits(grid[2]), 1).cpu().numpy() if grid else None
    boundary = None
    if grid is not None and grid_after is not None:
        boundary = DecisionBoundary(
            xs=grid[0],
            ys=grid[1],
            before=grid_before.argmax(1),
            after=grid_after.argmax(1),
            confidence_before=grid_before.max(1),
            confidence_after=grid_after.max(1),
        )
    return InterventionResult(
        intervention=intervention,
        labels=np.asarray(torch.as_tensor(y).cpu(), dtype=np.int64),
        logits_before=logits_before,
        logits_after=logits_after,
        activations_before=acts_before,
        activations_after=acts_after,
        old_value=old,
        boundary=boundary,
    )
