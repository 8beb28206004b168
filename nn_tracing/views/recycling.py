"""Recycling dormant neurons (ReDo) as the Breadcrumbs page's Intervention tab shows it: the
dormant share before and after, the output change, a table per layer, and the recycled model's
files (weights and config) to download. Built without Streamlit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..analysis.dormancy import DEFINITIONS
from ..analysis.intervention import Recycling, recycle_dormant
from ..export import pruned_files
from ..timeaxis import time_key
from ..trace import NetworkTrace
from .breadcrumbs import FINAL, Metric, model_at, model_state, probe

__all__ = ["Recycled", "recycle", "recycled_config", "recycling_metrics", "recycling_sentence"]


@dataclass(frozen=True)
class Recycled:
    """What the tab shows of one recycling (the model itself stays out of the cache): the
    result's numbers and table, and the recycled model's weights and config to download."""

    tau: float
    epoch: int
    table: pd.DataFrame
    recycled: dict[str, list[int]]
    fraction_before: float
    fraction_after: float
    max_output_change: float
    accuracy_before: float
    accuracy_after: float
    weights: bytes
    config: bytes


def recycled_config(trace: NetworkTrace, result: Recycling, epoch: int | None) -> dict[str, Any]:
    """A JSON-ready description of the recycled model: the run's config (same architecture),
    where it came from, which neurons were recycled and what that did on the probe."""
    config = trace.meta.get("config") if isinstance(trace.meta.get("config"), dict) else None
    return {
        "format": "nn_tracing.recycled_model",
        "format_version": 1,
        "train_config": dict(config) if config else None,
        "source": {"trace_digest": trace.digest, "epoch": epoch},
        "method": "ReDo (Sokar et al., ICML 2023): incoming weights and bias re-initialised "
        "with the layer's initialiser (seeded), outgoing weights set to 0",
        "tau": result.tau,
        "seed": result.seed,
        "recycled": result.recycled,
        "dormant_before": result.dormant_before,
        "dormant_after": result.dormant_after,
        "max_output_change": result.max_output_change,
        "probe_accuracy_before": result.accuracy_before,
        "probe_accuracy_after": result.accuracy_after,
    }


def recycle(trace: NetworkTrace, epoch: int, tau: float, seed: int = 0) -> Recycled:
    """Recycle the τ-dormant neurons of the network at ``epoch`` (:data:`FINAL`: the final
    weights), measured on the probe."""
    x, y = probe(trace)
    result = recycle_dormant(model_at(trace, epoch), x, y, tau=tau, seed=seed)
    config = recycled_config(trace, result, None if epoch == FINAL else epoch)
    weights, _ = pruned_files(result.module, config)
    return Recycled(
        tau=result.tau,
        epoch=model_state(trace, epoch),
        table=result.table(),
        recycled=result.recycled,
        fraction_before=result.fraction("before"),
        fraction_after=result.fraction("after"),
        max_output_change=result.max_output_change,
        accuracy_before=result.accuracy_before,
        accuracy_after=result.accuracy_after,
        weights=weights,
        config=json.dumps(config, indent=2).encode(),
    )


def recycling_metrics(done: Recycled) -> list[Metric]:
    """Dormant share before → after, neurons recycled, largest output change, accuracy."""
    n = sum(len(ids) for ids in done.recycled.values())
    return [
        Metric(
            f"τ-dormant (τ = {done.tau:g})",
            f"{done.fraction_after:.1%}",
            delta=f"{done.fraction_after - done.fraction_before:+.1%} "
            f"(from {done.fraction_before:.1%})",
            delta_color="inverse",
        ),
        Metric("Neurons recycled", f"{n}"),
        Metric(
            "Largest output change",
            f"{done.max_output_change:.3g}",
            help="the largest absolute change of any logit on any probe sample",
        ),
        Metric(
            "Probe accuracy",
            f"{done.accuracy_after:.3f}",
            delta=f"{done.accuracy_after - done.accuracy_before:+.3f} "
            f"(from {done.accuracy_before:.3f})",
        ),
    ]


def recycling_sentence(done: Recycled) -> str:
    """Markdown: what was done, and why the outputs did (not) change."""
    unchanged = done.max_output_change <= 1e-4
    effect = (
        "The outputs on the probe are unchanged: nothing reads a recycled neuron yet."
        if unchanged
        else "The outputs changed a little: at τ > 0 a dormant neuron still passed a small "
        "signal on, and its outgoing weights are now 0."
    )
    return f"{DEFINITIONS['redo']} At {time_key(done.epoch)}: {effect}"
