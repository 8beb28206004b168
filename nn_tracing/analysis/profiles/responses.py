"""A neuron's responses on the probe set at one epoch: every sample's activation with its
label and prediction, and the activations' distribution per class."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...trace import NetworkTrace
from ._common import _activations, _labels, class_names

__all__ = ["class_distributions", "probe_responses"]


def probe_responses(trace: NetworkTrace, neuron_id: int, epoch: int) -> pd.DataFrame:
    """The neuron's activation on every probe sample at ``epoch``, with labels and predictions.

    Returns
    -------
    DataFrame with one row per probe sample: ``probe_index``, ``activation``, ``label``,
    ``class``, ``prediction`` (nullable integer: ``<NA>`` when the trace keeps none),
    ``predicted_class``, ``correct`` (nullable boolean).
    """
    acts = _activations(trace, neuron_id, epoch)
    labels = _labels(trace)
    predictions = trace.predictions(epoch)
    if predictions is None and trace.logits(epoch) is not None:
        predictions = np.asarray(trace.logits(epoch)).argmax(axis=1)
    frame = pd.DataFrame(
        {
            "probe_index": np.arange(acts.size),
            "activation": acts,
            "label": labels,
            "class": class_names(trace, labels),
        }
    )
    if predictions is not None and len(predictions) == acts.size:
        predicted = np.asarray(predictions).astype(np.int64)
        frame["prediction"] = pd.array(predicted, dtype="Int64")
        frame["predicted_class"] = class_names(trace, predicted)
        frame["correct"] = pd.array(predicted == labels, dtype="boolean")
    else:
        frame["prediction"] = pd.array([pd.NA] * acts.size, dtype="Int64")
        frame["predicted_class"] = ""
        frame["correct"] = pd.array([pd.NA] * acts.size, dtype="boolean")
    return frame


def class_distributions(trace: NetworkTrace, neuron_id: int, epoch: int) -> pd.DataFrame:
    """Summary of the neuron's probe activations per class at ``epoch`` (box-plot statistics).

    Returns
    -------
    DataFrame with one row per class present in the probe, in label order: ``label``,
    ``class``, ``n``, ``mean``, ``std`` (ddof=0), ``min``, ``q1``, ``median``, ``q3``, ``max``,
    ``whisker_low`` and ``whisker_high`` (the most extreme activations within 1.5 × IQR of the
    quartiles: Tukey's whiskers), ``active`` (share of the class's samples with activation > 0).
    """
    acts = _activations(trace, neuron_id, epoch)
    labels = _labels(trace)
    rows = []
    for label in np.unique(labels):
        values = acts[labels == label]
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        iqr = q3 - q1
        inside = values[(values >= q1 - 1.5 * iqr) & (values <= q3 + 1.5 * iqr)]
        rows.append(
            {
                "label": int(label),
                "n": int(values.size),
                "mean": float(values.mean()),
                "std": float(values.std()),
                "min": float(values.min()),
                "q1": float(q1),
                "median": float(median),
                "q3": float(q3),
                "max": float(values.max()),
                "whisker_low": float(inside.min()),
                "whisker_high": float(inside.max()),
                "active": float((values > 0).mean()),
            }
        )
    columns = ["label", "n", "mean", "std", "min", "q1", "median", "q3", "max"]
    columns += ["whisker_low", "whisker_high", "active"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(1, "class", class_names(trace, frame["label"].to_numpy()))
    return frame
