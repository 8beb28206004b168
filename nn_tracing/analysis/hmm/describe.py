"""Fitted HMM states in words: state names, feature names, levels, trends and phases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "FEATURE_DESCRIPTIONS",
    "describe_levels",
    "state_label",
    "trend_words",
    "when_words",
]

#: What each feature (model-level or a column of ``trace.frame``) is, in words.
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
    "train_acc": "training accuracy",
    "val_acc": "validation accuracy",
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


def state_label(state: int) -> str:
    """``"S0"``, ``"S1"``, …: the name a state is shown by."""
    return f"S{int(state)}"


def _level_words(z: float) -> str:
    """A standardised value ``z`` in words: ``"very low"`` … ``"typical"`` … ``"very high"``."""
    if z >= 1.5:
        return "very high"
    if z >= 0.5:
        return "high"
    if z <= -1.5:
        return "very low"
    if z <= -0.5:
        return "low"
    return "typical"


def describe_levels(means: np.ndarray, names: Sequence[str], top: int = 3) -> str:
    """A state's mean in words: its ``top`` features furthest from average (at least 0.5σ).

    Parameters
    ----------
    means : array of shape (n_features,), the state's mean in standardised units
    names : the feature names, in the same order (described by :data:`FEATURE_DESCRIPTIONS`)
    top : most features named
    """
    order = np.argsort(-np.abs(means), kind="stable")[:top]
    parts = [
        f"{FEATURE_DESCRIPTIONS.get(names[i], names[i])} {_level_words(means[i])} "
        f"({means[i]:+.1f}σ)"
        for i in order
        if abs(means[i]) >= 0.5
    ]
    return ", ".join(parts) if parts else "every feature near its average"


def trend_words(rate: float, scale: float, up: str, down: str, flat: str) -> str:
    """A rate of change in words against a typical ``scale``: ``flat`` below a quarter of it,
    else ``up`` or ``down`` (``"… fast"`` from 1.5 times it); ``""`` when either is unknown."""
    if not np.isfinite(rate) or not np.isfinite(scale) or scale <= 0:
        return ""
    ratio = rate / scale
    if abs(ratio) < 0.25:
        return flat
    word = up if ratio > 0 else down
    return f"{word} fast" if abs(ratio) >= 1.5 else word


def when_words(position: float) -> str:
    """A position in training (0 = start, 1 = end) in words: early, mid-training or late."""
    if position < 1 / 3:
        return "early"
    if position < 2 / 3:
        return "mid-training"
    return "late"
