"""Model-level features of a run, the observations of the training map.

Hu, Chen, Saphra & Cho (TMLR 2023)'s weight statistics per recorded epoch
(:func:`model_features`: L1, L2, L1/L2, spectral norm, mean and variance of the singular values,
mean / median / variance of the weights and of the biases), the per-step statistics of a run
traced with ``drop_batches=False`` (:func:`step_features`), and the epoch a run converged at
(:func:`convergence_epoch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ...progress import Progress, reporter
from ...timeaxis import time_key, time_word
from ...trace import METRICS, NetworkTrace

__all__ = [
    "CURVE_FEATURES",
    "FRAME_FEATURES",
    "MODEL_FEATURES",
    "ModelFeatures",
    "convergence_epoch",
    "model_features",
    "step_features",
]

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
#: Features from the training curves (the history), offered beside the weight statistics but
#: not fitted by default: with the weight norm they separate grokking's phases (memorisation:
#: training accuracy rising; plateau: training 100 %, validation near 0; transition:
#: validation rising; clean-up: validation near 100 %), where the weight statistics alone,
#: drifting smoothly, are cut into blocks of similar length.
CURVE_FEATURES: tuple[str, ...] = ("train_acc", "val_acc")
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


@dataclass(frozen=True)
class ModelFeatures:
    """Model-level features of one run per recorded epoch (or per training step).

    ``frame``: index ``epoch`` (or ``step``), one column per feature, NaN where a feature could
    not be computed; ``usable``: the features finite at every row; ``source``: where they come
    from; ``notes``: what is missing and why. ``descriptors``: columns kept to describe states
    in words and to draw them (``weight_norm``, ``loss``, ``val_acc``, ``val_loss``, and for
    steps ``epoch``), not fitted; ``convergence``: the run's convergence epoch and its
    definition (:func:`convergence_epoch`); ``default``: the features fitted when none are
    chosen (``None``: every usable one).
    """

    frame: pd.DataFrame
    usable: list[str]
    source: str
    notes: list[str]
    descriptors: pd.DataFrame
    convergence: tuple[int | None, str] = (None, "")
    default: list[str] | None = None


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
    The training and validation accuracy (:data:`CURVE_FEATURES`) are columns too, usable
    where the history has them at every recorded epoch, but not in ``default``.
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
    report = reporter(progress, len(epochs))
    for i, epoch in enumerate(epochs):
        report(i, f"weight statistics at {time_key(epoch)}")
        row: dict[str, float] = {name: np.nan for name in MODEL_FEATURES}
        row.update(_features_from_frame(trace, epoch))
        weights = None
        if kept:
            weights = trace.weights(epoch)
        elif trace.final_weights and epoch == final_epoch:
            weights = trace.final_weights
        if weights is not None and all(i.weight_key in weights for i in layers):
            # many small SVDs: one BLAS thread each is several times faster, and far faster on
            # a busy machine (grokking preset, 235 epochs: 0.8 s instead of 2–17 s)
            with threadpool_limits(1):
                row.update(_features_from_weights(trace, weights))
        rows.append(row)
    frame = pd.DataFrame(rows, index=pd.Index(epochs, name="epoch"), columns=list(MODEL_FEATURES))
    for column in CURVE_FEATURES:
        frame[column] = _history_column(trace, column, epochs)
    usable = [c for c in frame.columns if np.isfinite(frame[c]).all()]
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
                f"{time_word(plural=True)} (the saved final weights) and are shown but not fitted"
                if present
                else ""
            )
            notes.append(
                f"{', '.join(missing)} need the weight matrices at every recorded {time_word()}, "
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
    report(len(epochs), "done")
    default = [c for c in usable if c in MODEL_FEATURES]
    return ModelFeatures(
        frame, usable, source, notes, descriptors, convergence_epoch(trace), default
    )


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
