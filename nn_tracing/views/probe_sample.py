"""One probe sample, as the Breadcrumbs page explains it: its true and predicted class, its
inputs in the dataset's own units (standardised beside them) and, for images, the image.

* :func:`probe_predictions` — the class the network predicts for every probe sample at a
  model state; :func:`default_sample` — the first misclassified one (else the first).
* :func:`probe_sample` — a :class:`ProbeSample`; :func:`sample_sentence`,
  :func:`sample_features`, :func:`sample_image_chart` — what the page shows of it.

No Streamlit here.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import torch

from ..analysis.profiles import destandardise
from ..trace import NetworkTrace
from ..viz.channels import grey_image_chart
from .breadcrumbs import class_phrase, model_at, model_state, probe
from .text import md_escape

__all__ = [
    "ProbeSample",
    "default_sample",
    "probe_predictions",
    "probe_sample",
    "sample_features",
    "sample_image_chart",
    "sample_sentence",
]


@dataclass(frozen=True)
class ProbeSample:
    """Probe sample ``index``: its ``label`` and the class ``predicted`` at ``epoch``;
    ``x``: its inputs as the network reads them (standardised), flat."""

    index: int
    label: int
    predicted: int
    epoch: int
    x: np.ndarray

    @property
    def misclassified(self) -> bool:
        return self.label != self.predicted


def probe_predictions(trace: NetworkTrace, epoch: int) -> np.ndarray:
    """The predicted class of every probe sample at ``epoch`` (:data:`FINAL`: the final
    weights), int64 array of shape (n_samples,)."""
    x, _ = probe(trace)
    model = model_at(trace, epoch)
    with torch.no_grad():
        logits = model.logits(x)
    return logits.argmax(dim=1).cpu().numpy().astype(np.int64)


def default_sample(labels: np.ndarray, predicted: np.ndarray) -> int:
    """The first misclassified probe sample (the one worth explaining), else 0."""
    wrong = np.flatnonzero(np.asarray(labels) != np.asarray(predicted))
    return int(wrong[0]) if wrong.size else 0


def probe_sample(trace: NetworkTrace, epoch: int, index: int, predicted: np.ndarray) -> ProbeSample:
    """Probe sample ``index`` with its label and ``predicted[index]``."""
    x, labels = probe(trace)
    return ProbeSample(
        index=int(index),
        label=int(labels[index]),
        predicted=int(predicted[index]),
        epoch=model_state(trace, epoch),
        x=np.asarray(x[index], dtype=np.float64).reshape(-1),
    )


def sample_sentence(trace: NetworkTrace, sample: ProbeSample, predicted: np.ndarray) -> str:
    """Markdown: what the sample is and what the network made of it, and how many probe
    samples it gets wrong."""
    _, labels = probe(trace)
    n_wrong = int(np.sum(np.asarray(labels) != predicted))
    verdict = "**misclassified**" if sample.misclassified else "correctly classified"
    true = md_escape(class_phrase(trace, sample.label), 100)
    guess = md_escape(class_phrase(trace, sample.predicted), 100)
    return (
        f"Probe sample **{sample.index}**: true {true}, predicted {guess} at "
        f"{md_escape(f'E_{sample.epoch}')} — {verdict}. The network gets {n_wrong} of "
        f"{len(labels)} probe samples wrong at this state."
    )


def sample_features(trace: NetworkTrace, sample: ProbeSample) -> pd.DataFrame:
    """One row per input feature: ``feature``, ``value`` in the dataset's own units and
    ``standardised`` (what the network reads)."""
    raw = destandardise(trace, sample.x[None, :])[0]
    names = list(trace.feature_names) or [f"x{i}" for i in range(sample.x.size)]
    return pd.DataFrame({"feature": names[: sample.x.size], "value": raw, "standardised": sample.x})


def _image_shape(trace: NetworkTrace, n_features: int) -> tuple[int, int] | None:
    x = np.asarray(trace.probe[0]) if trace.probe is not None else None
    if x is not None and x.ndim == 4:
        return int(x.shape[2]), int(x.shape[3])
    dataset = trace.meta.get("dataset")
    shape = dataset.get("image_shape") if isinstance(dataset, dict) else None
    if isinstance(shape, list) and len(shape) == 2 and shape[0] * shape[1] == n_features:
        return int(shape[0]), int(shape[1])
    return None


def sample_image_chart(trace: NetworkTrace, sample: ProbeSample) -> alt.Chart | None:
    """The sample as a grey image (square pixels, its first channel), or ``None`` when the
    inputs are not an image."""
    shape = _image_shape(trace, sample.x.size)
    if shape is None:
        return None
    height, width = shape
    pixels = destandardise(trace, sample.x[None, :])[0][: height * width]
    rows, cols = np.divmod(np.arange(height * width), width)
    frame = pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "value": pixels,
            "signature": [
                f"probe sample {sample.index}: pixel ({r}, {c})" for r, c in zip(rows, cols)
            ],
        }
    )
    return grey_image_chart(frame, f"probe sample {sample.index}", size=120)
