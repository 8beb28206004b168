"""What a recorded epoch keeps of the probe's per-sample tensors, and in which precision.

The statistics of every neuron are measured over the whole probe set; the per-sample tensors
(activations, logits, predictions) are what makes a trace large — ``n_probe × n_neurons`` per
recorded epoch. Two knobs shrink them without touching the statistics:

* **kept samples** — only a subset of the probe keeps its tensors. The subset is seeded:
  ``n_keep`` distinct rows drawn with ``numpy.random.default_rng(seed)``, then sorted, so the
  kept samples stay in probe order and a stratified probe stays (nearly) stratified. The
  trace's probe set is that subset, so every row of a stored tensor still pairs with the
  probe row of the same index.
* **float16** — activations and logits stored as float16 (half the bytes, about three
  significant digits; values beyond ±65504 become ±inf). Readers get float32 back
  (:meth:`nn_tracing.NetworkTrace.probe_activations`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["STORED_DTYPES", "kept_rows", "stored_tensors"]

#: The stored dtype of activations and logits, by its name in the config.
STORED_DTYPES: dict[str, type[np.floating]] = {"float32": np.float32, "float16": np.float16}
#: The per-sample tensors that the two knobs apply to (weights are kept whole, in float32).
_FLOAT_PER_SAMPLE = ("activations", "logits")


def kept_rows(n_probe: int, n_keep: int | None, seed: int = 0) -> np.ndarray | None:
    """The probe rows that keep their tensors: sorted int64 indices, or ``None`` for all.

    Parameters
    ----------
    n_probe
        Samples in the probe set.
    n_keep
        How many to keep (``None``, or at least ``n_probe``: all of them).
    seed
        Seeds the draw; the same ``(n_probe, n_keep, seed)`` always gives the same rows.

    >>> kept_rows(10, 3, seed=0).tolist()
    [5, 6, 9]
    >>> kept_rows(10, None) is None and kept_rows(10, 10) is None
    True
    """
    if n_keep is None or n_keep >= n_probe:
        return None
    if n_keep < 1:
        raise ValueError(f"activation_samples={n_keep!r} must be at least 1")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_probe, size=n_keep, replace=False)).astype(np.int64)


def stored_tensors(
    tensors: Mapping[str, np.ndarray], rows: np.ndarray | None, dtype: str = "float32"
) -> dict[str, np.ndarray]:
    """The per-sample tensors of one epoch as they are kept: ``rows`` of each, activations and
    logits cast to ``dtype`` (``"float32"`` or ``"float16"``); other entries unchanged."""
    if dtype not in STORED_DTYPES:
        raise ValueError(f"activation_dtype={dtype!r}: choose one of {', '.join(STORED_DTYPES)}")
    kept: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        if key in (*_FLOAT_PER_SAMPLE, "predictions"):
            if rows is not None:
                value = value[rows]
            if key in _FLOAT_PER_SAMPLE:
                value = value.astype(STORED_DTYPES[dtype], copy=False)
            value = np.ascontiguousarray(value)
        kept[key] = value
    return kept
