"""The breadcrumb trail against random neurons: does ablating the trail hurt more than chance?

:func:`trail_check` ablates the trail's neurons of each layer and, as the null, as many random
neurons of the same layer, ``n_repeats`` times — an empirical p-value per layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...progress import Progress
from ..attribution import Trail
from ..neuron_model import NeuronModel
from .ablation import _as_tensor, batched_logits, neuron_means

__all__ = ["trail_check"]


def trail_check(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    trail: Trail,
    *,
    n_repeats: int = 50,
    fill: str = "zero",
    random_state: int | None = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Ablate the trail's neurons of each layer, and as many random neurons of that layer.

    The drop is measured on the trail's target: the mean score (``model.objective`` of the
    target class) over the trail's samples, and their accuracy.

    Returns
    -------
    One row per layer: ``layer``, ``k``, ``score_before``, ``trail_drop`` (of the score),
    ``random_drop_mean``, ``random_drop_p95``, ``p_value`` (share of random sets, counting the
    trail's own, whose drop is at least the trail's: ``(1 + #) / (1 + n_repeats)``),
    ``accuracy_trail``, ``accuracy_random_mean``, ``accuracy_before``.
    """
    rng = np.random.default_rng(random_state)
    attribution = trail.attribution
    target = int(attribution.target_class)  # type: ignore[arg-type]
    samples = attribution.samples
    xs = _as_tensor(x, model)[torch.as_tensor(samples)]
    ys = np.asarray(torch.as_tensor(y).cpu())[samples]
    sets, layout = _trail_sets(model, trail, n_repeats, rng)
    means = neuron_means(model, x) if fill == "mean" else None
    logits = batched_logits(model, xs, sets, fill=fill, means=means, progress=progress)
    score = logits[:, :, target].mean(1)  # (n_sets,)
    accuracy = (logits.argmax(2) == ys[None, :]).mean(1)
    rows = []
    for name, k, start in layout:
        drop = score[0] - score[start]
        random_drops = score[0] - score[start + 1 : start + 1 + n_repeats]
        rows.append(
            (
                name,
                k,
                float(score[0]),
                float(drop),
                float(random_drops.mean()) if n_repeats else np.nan,
                float(np.percentile(random_drops, 95)) if n_repeats else np.nan,
                float((1 + np.sum(random_drops >= drop)) / (1 + n_repeats)),
                float(accuracy[start]),
                float(accuracy[start + 1 : start + 1 + n_repeats].mean()) if n_repeats else np.nan,
                float(accuracy[0]),
            )
        )
    return pd.DataFrame(
        rows,
        columns=[
            "layer",
            "k",
            "score_before",
            "trail_drop",
            "random_drop_mean",
            "random_drop_p95",
            "p_value",
            "accuracy_trail",
            "accuracy_random_mean",
            "accuracy_before",
        ],
    )


def _trail_sets(
    model: NeuronModel, trail: Trail, n_repeats: int, rng: np.random.Generator
) -> tuple[list[list[int]], list[tuple[str, int, int]]]:
    """The ablation sets of :func:`trail_check` and where each layer's block starts.

    Returns
    -------
    ``sets``: the intact network (``[]``), then per layer of the trail its neurons followed by
    ``n_repeats`` random sets of the same size in that layer; ``layout``: ``(layer, k, start)``
    per layer, ``start`` the index of the trail's own set.
    """
    sets: list[list[int]] = [[]]
    layout: list[tuple[str, int, int]] = []
    for info in model.layers[:-1]:
        ids = trail.neurons(info.name)
        if not ids:
            continue
        start = len(sets)
        sets.append(ids)
        for _ in range(n_repeats):
            sets.append(
                list(info.first_id + rng.choice(info.n_neurons, size=len(ids), replace=False))
            )
        layout.append((info.name, len(ids), start))
    return sets, layout
