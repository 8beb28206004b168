"""The probe samples a neuron responds to most (or least), in the dataset's own units, and
whether a class is over-represented among them (hypergeometric test)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...trace import NetworkTrace
from ._common import _labels, class_names, destandardise
from .responses import probe_responses

__all__ = ["TOP_COLUMNS", "class_enrichment", "top_activating"]


#: The columns of :func:`top_activating` before the feature columns.
TOP_COLUMNS: tuple[str, ...] = (
    "rank",
    "probe_index",
    "activation",
    "label",
    "class",
    "prediction",
    "predicted_class",
    "correct",
)


def top_activating(
    trace: NetworkTrace, neuron_id: int, epoch: int, k: int = 12, *, largest: bool = True
) -> pd.DataFrame:
    """The probe samples on which the neuron is most (or least) active at ``epoch``.

    Ties are broken by probe index; NaN activations are left out.

    Returns
    -------
    DataFrame of at most ``k`` rows, strongest first: ``rank``, ``probe_index``,
    ``activation``, ``label``, ``class``, ``prediction``, ``predicted_class``, ``correct``,
    then one column per input feature with the sample's value in the dataset's own units
    (de-standardised with ``meta["dataset"]["feature_mean"/"feature_scale"]``), named by the
    feature (``feature <name>`` where a name is one of :data:`TOP_COLUMNS`).
    """
    responses = probe_responses(trace, neuron_id, epoch)
    acts = responses["activation"].to_numpy()
    keep = np.flatnonzero(np.isfinite(acts))
    key = -acts[keep] if largest else acts[keep]
    order = keep[np.lexsort((keep, key))][: max(int(k), 0)]
    top = responses.iloc[order].reset_index(drop=True)
    top.insert(0, "rank", np.arange(1, len(top) + 1))
    assert trace.probe is not None
    raw = destandardise(trace, np.asarray(trace.probe[0])[order].reshape(len(order), -1))
    names = [f"feature {n}" if n in TOP_COLUMNS else n for n in _value_names(trace, raw.shape[1])]
    if raw.shape[1] == len(names):
        features = pd.DataFrame(raw, columns=names)
        top = pd.concat([top, features], axis=1)
    return top


def _value_names(trace: NetworkTrace, n_values: int) -> list[str]:
    """Names of a sample's ``n_values`` values: the input neurons' (one value each, as for
    the MLP), else the dataset's feature names when they name every value (a CNN's input
    neurons are the images' channels, its samples still one value per pixel)."""
    names = trace.feature_names
    if len(names) == n_values:
        return names
    dataset = trace.meta.get("dataset")
    listed = dataset.get("feature_names") if isinstance(dataset, dict) else None
    if isinstance(listed, list) and len(listed) == n_values:
        return [str(name) for name in listed]
    return names


def class_enrichment(trace: NetworkTrace, top: pd.DataFrame) -> pd.DataFrame:
    """Whether a class is over-represented among the top-activating samples.

    For each class: how many of the ``len(top)`` samples belong to it, how many a random draw
    of that many probe samples would hold on average, and the hypergeometric probability of
    drawing at least that many by chance (one-sided), also Bonferroni-adjusted over classes.

    Parameters
    ----------
    top : a :func:`top_activating` frame (its ``label`` column)

    Returns
    -------
    DataFrame with one row per class of the probe, most over-represented first: ``label``,
    ``class``, ``in_top``, ``expected``, ``probe_share``, ``p_value``, ``p_adjusted``.
    """
    from scipy.stats import hypergeom

    labels = _labels(trace)
    classes, counts = np.unique(labels, return_counts=True)
    n_top = len(top)
    in_top = np.array([(top["label"].to_numpy() == c).sum() for c in classes])
    p_values = hypergeom.sf(in_top - 1, labels.size, counts, n_top) if n_top else np.ones(0)
    frame = pd.DataFrame(
        {
            "label": classes.astype(np.int64),
            "class": class_names(trace, classes),
            "in_top": in_top.astype(np.int64),
            "expected": n_top * counts / labels.size,
            "probe_share": counts / labels.size,
            "p_value": p_values if n_top else np.ones(classes.size),
        }
    )
    frame["p_adjusted"] = np.minimum(frame["p_value"] * classes.size, 1.0)
    ratio = frame["in_top"] / frame["expected"].clip(lower=1e-12)
    return (
        frame.assign(_ratio=ratio)
        .sort_values(["_ratio", "label"], ascending=[False, True], ignore_index=True)
        .drop(columns="_ratio")
    )
