"""The ablation engine: what the network outputs with sets of neurons zeroed or mean-replaced.

* :func:`batched_logits` — the outputs with each of many ablation sets applied: one forward
  pass per set over the whole probe, many sets per pass (the batch holds one copy of the
  probe per set, each with its own mask on the hook points); in a chain of Linear layers, a
  set confined to one layer takes the short way (:mod:`.chain`).
* :func:`ablate` — zero or mean-replace any set of neurons: an :class:`AblationResult` with
  the change in accuracy per class, in the class logits and in the confusion matrix, and the
  probe samples whose prediction flipped.
* :func:`layer_importance` — every neuron's mean |attribution| to each sample's own class,
  the order in which the curves and pruning remove neurons.

The helpers shared by the package (the fill values, the per-set accuracy and loss) live here
too; ``Progress`` is :data:`nn_tracing.progress.Progress`, re-exported for old imports.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ...progress import Progress, fraction, no_progress
from ..attribution import neuron_attributions
from ..neuron_model import NeuronModel, edits_from_sets
from .chain import _ChainAblation

__all__ = [
    "FILLS",
    "AblationResult",
    "Progress",
    "ablate",
    "batched_logits",
    "hidden_layers",
    "layer_importance",
    "neuron_means",
]

#: What an ablated neuron is replaced by.
FILLS: dict[str, str] = {
    "zero": "zero",
    "mean": "its mean activation on the probe set",
}


def _as_tensor(x: torch.Tensor | np.ndarray, model: NeuronModel) -> torch.Tensor:
    return torch.as_tensor(x).to(model.device)


def hidden_layers(model: NeuronModel) -> list[str]:
    """Names of the layers between the input and the output logits."""
    return [info.name for info in model.layers[1:-1]]


def neuron_means(model: NeuronModel, x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Every neuron's mean activation on ``x``: tensor of shape (n_neurons,)."""
    return model.activations(_as_tensor(x, model)).mean(0)


def _fill_values(
    model: NeuronModel, x: torch.Tensor, fill: str, means: torch.Tensor | None
) -> torch.Tensor | None:
    if fill not in FILLS:
        raise ValueError(f"fill={fill!r}: use one of {', '.join(FILLS)}")
    if fill == "zero":
        return None
    return means if means is not None else neuron_means(model, x)


def _iter_chunks(
    model: NeuronModel,
    x: torch.Tensor,
    sets: Sequence[Sequence[int]],
    fill: torch.Tensor | None,
    max_rows: int,
    fast: bool = True,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """``(set indices, outputs of shape (len(indices), B, K))`` per forward batch.

    With ``fast`` and a chain of Linear layers (:func:`prunable`), the sets that touch one
    layer only take the short way (:class:`_ChainAblation`); the others run the whole network
    with one mask per set on the hook points.
    """
    order = list(range(len(sets)))
    chain = _ChainAblation.of(model, x, fill) if fast else None
    if chain is not None:
        by_layer: dict[int, list[int]] = {}
        general = []
        for s in order:
            layer = chain.layer_of_set(sets[s])
            if layer is None:
                general.append(s)
            else:
                by_layer.setdefault(layer, []).append(s)
        for layer, members in by_layer.items():
            yield from chain.run(layer, [(s, sets[s]) for s in members], max_rows)
        order = general
    n = x.shape[0]
    per_pass = max(1, max_rows // max(n, 1))
    for start in range(0, len(order), per_pass):
        indices = order[start : start + per_pass]
        edits = edits_from_sets(model, [sets[s] for s in indices], fill=fill)
        with torch.no_grad():
            if per_pass == 1:  # the probe alone fills a pass: one set, the probe in chunks
                with model.edited(edits, n_sets=1):
                    out = model.logits(x, chunk_size=max_rows)
                yield indices, out[None]
                continue
            repeated = x.repeat(len(indices), *([1] * (x.dim() - 1)))
            with model.edited(edits, n_sets=len(indices)):
                out = model(repeated)
            yield indices, out.reshape(len(indices), n, -1)


def batched_logits(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    sets: Sequence[Sequence[int]],
    *,
    fill: str = "zero",
    means: torch.Tensor | None = None,
    max_rows: int = 32768,
    fast: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """The outputs on ``x`` with each set of neurons ablated.

    Parameters
    ----------
    sets
        ``n_sets`` collections of global neuron ids (an empty set: the intact network).
    fill
        ``"zero"`` or ``"mean"`` (the neuron's mean activation on ``x``, or ``means``).
    max_rows
        Rows per forward pass: ``max_rows // n_samples`` sets share one pass.
    fast
        In a chain of Linear layers, ablate a set confined to one layer by a low-rank update
        of the next layer's input (see :class:`_ChainAblation`); ``False`` runs every set
        through the whole network.

    Returns
    -------
    array of shape (n_sets, n_samples, n_classes), float32.
    """
    report = progress or no_progress
    x = _as_tensor(x, model)
    values = _fill_values(model, x, fill, means)
    out = np.empty((len(sets), x.shape[0], model.layers[-1].n_neurons), dtype=np.float32)
    done = 0
    for indices, logits in _iter_chunks(model, x, sets, values, max_rows, fast):
        out[indices] = logits.cpu().numpy()
        done += len(indices)
        report(fraction(done, len(sets)), f"ablation sets: {done} of {len(sets)}")
    return out


def _reduce_sets(
    model: NeuronModel,
    x: torch.Tensor,
    y: torch.Tensor,
    sets: Sequence[Sequence[int]],
    fill: torch.Tensor | None,
    max_rows: int,
    progress: Progress,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and mean cross-entropy on ``(x, y)`` for each set: two arrays (n_sets,)."""
    accuracy = np.empty(len(sets))
    loss = np.empty(len(sets))
    done = 0
    for indices, logits in _iter_chunks(model, x, sets, fill, max_rows):
        s = logits.shape[0]
        flat = logits.reshape(-1, logits.shape[-1])
        target = y.repeat(s)
        accuracy[indices] = (flat.argmax(1) == target).double().reshape(s, -1).mean(1).cpu().numpy()
        loss[indices] = (
            F.cross_entropy(flat, target, reduction="none").reshape(s, -1).mean(1).cpu().numpy()
        )
        done += s
        progress(fraction(done, len(sets)), f"{what}: {done} of {len(sets)} sets")
    return accuracy, loss


@dataclass(frozen=True)
class AblationResult:
    """What ablating a set of neurons changes on the probe set.

    Attributes
    ----------
    neurons : the ablated global ids
    fill : ``"zero"`` or ``"mean"``
    labels : array of shape (n_samples,)
    logits_before, logits_after : arrays of shape (n_samples, n_classes)
    class_names : names of the classes
    """

    neurons: tuple[int, ...]
    fill: str
    labels: np.ndarray
    logits_before: np.ndarray
    logits_after: np.ndarray
    class_names: tuple[str, ...]

    @property
    def predictions_before(self) -> np.ndarray:
        return self.logits_before.argmax(1)

    @property
    def predictions_after(self) -> np.ndarray:
        return self.logits_after.argmax(1)

    @property
    def accuracy_before(self) -> float:
        return float((self.predictions_before == self.labels).mean())

    @property
    def accuracy_after(self) -> float:
        return float((self.predictions_after == self.labels).mean())

    @property
    def flipped(self) -> np.ndarray:
        """Probe indices whose prediction changed."""
        return np.flatnonzero(self.predictions_before != self.predictions_after)

    def confusion(self, after: bool = True) -> np.ndarray:
        """Confusion matrix (n_classes, n_classes): rows true class, columns predicted."""
        k = self.logits_before.shape[1]
        predicted = self.predictions_after if after else self.predictions_before
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (self.labels, predicted), 1)
        return matrix

    def per_class(self) -> pd.DataFrame:
        """Per class: ``n`` samples, accuracy before/after/change, and the mean logit of the
        class on its own samples and on all samples, before/after/change."""
        rows = []
        for c, name in enumerate(self.class_names):
            own = self.labels == c
            n = int(own.sum())
            before = (self.predictions_before[own] == c).mean() if n else np.nan
            after = (self.predictions_after[own] == c).mean() if n else np.nan
            own_before = self.logits_before[own, c].mean() if n else np.nan
            own_after = self.logits_after[own, c].mean() if n else np.nan
            all_before = self.logits_before[:, c].mean()
            all_after = self.logits_after[:, c].mean()
            rows.append(
                (
                    name,
                    n,
                    before,
                    after,
                    after - before,
                    own_before,
                    own_after,
                    own_after - own_before,
                    all_before,
                    all_after,
                    all_after - all_before,
                )
            )
        return pd.DataFrame(
            rows,
            columns=[
                "class",
                "n",
                "accuracy_before",
                "accuracy_after",
                "accuracy_change",
                "logit_own_before",
                "logit_own_after",
                "logit_own_change",
                "logit_all_before",
                "logit_all_after",
                "logit_all_change",
            ],
        )

    def flipped_frame(self) -> pd.DataFrame:
        """The samples whose prediction flipped: ``sample``, ``label``, ``before``, ``after``
        (class names), ``correct_before``, ``correct_after``."""
        idx = self.flipped
        names = np.asarray(self.class_names, dtype=object)
        return pd.DataFrame(
            {
                "sample": idx,
                "label": names[self.labels[idx]],
                "before": names[self.predictions_before[idx]],
                "after": names[self.predictions_after[idx]],
                "correct_before": self.predictions_before[idx] == self.labels[idx],
                "correct_after": self.predictions_after[idx] == self.labels[idx],
            }
        )


def _class_names(n_classes: int, class_names: Sequence[str] | None) -> tuple[str, ...]:
    """``class_names`` as strings when there is one per class, else ``"0"``, ``"1"``, …"""
    if class_names is not None and len(class_names) == n_classes:
        return tuple(str(c) for c in class_names)
    return tuple(str(c) for c in range(n_classes))


def ablate(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    neurons: Sequence[int],
    *,
    fill: str = "zero",
    means: torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> AblationResult:
    """Zero (or mean-replace) ``neurons`` (global ids) and compare the outputs on ``(x, y)``."""
    x = _as_tensor(x, model)
    logits = batched_logits(model, x, [[], list(neurons)], fill=fill, means=means)
    return AblationResult(
        neurons=tuple(int(n) for n in neurons),
        fill=fill,
        labels=np.asarray(torch.as_tensor(y).cpu(), dtype=np.int64),
        logits_before=logits[0],
        logits_after=logits[1],
        class_names=_class_names(model.layers[-1].n_neurons, class_names),
    )


def layer_importance(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    *,
    method: str = "grad_x_act",
    layers: Sequence[str] | None = None,
    n_steps: int = 32,
    progress: Progress | None = None,
) -> np.ndarray:
    """Importance of every neuron: mean |attribution| to each sample's own class.

    Returns
    -------
    array of shape (n_neurons,); NaN for layers not computed (the output by default).
    """
    values = neuron_attributions(
        model,
        _as_tensor(x, model),
        torch.as_tensor(y).long(),
        method,
        layers=layers,
        n_steps=n_steps,
        progress=progress,
    )
    return np.abs(values).mean(0)
