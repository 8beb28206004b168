"""What the Overview page shows, built without Streamlit: the run's status notice, its summary
figures, its details (layers, dataset, configuration, meta) and the layers the "over
training" detail offers.

The charts (training curves, brain scan, layer × epoch, one layer's neurons, health counts)
are :mod:`nn_tracing.viz`'s builders and the health figures :mod:`nn_tracing.views.health`'s;
the page caches their frames by the trace's digest. Texts are Markdown: a string from the
trace (a status message) reaches them only through :func:`~nn_tracing.views.text.md_escape`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..timeaxis import time_key, time_word
from ..trace import NetworkTrace
from .text import fmt_duration, md_escape

__all__ = [
    "DEFAULT_METRIC",
    "ORDERS",
    "Notice",
    "RunDetails",
    "SummaryTile",
    "detail_layers",
    "layers_table",
    "meta_section",
    "run_details",
    "status_notice",
    "summary_tiles",
]

#: The metric the brain scan colours by default, and the orders of the neurons in a layer.
DEFAULT_METRIC = "act_mean"
ORDERS: tuple[str, ...] = ("id", "value")


@dataclass(frozen=True)
class Notice:
    """A message above the summary: ``kind`` ``"info"`` or ``"warning"``, Markdown ``text``,
    and an ``icon`` (an emoji or a ``:material/...:`` name)."""

    kind: str
    text: str
    icon: str


@dataclass(frozen=True)
class SummaryTile:
    """One figure of the run summary (the arguments of a metric tile)."""

    label: str
    value: str
    help: str | None = None


@dataclass(frozen=True)
class RunDetails:
    """What the "Run details" expander lists besides the layers table.

    Attributes
    ----------
    dataset : the dataset's meta, without its standardisation vectors
    epochs : the recorded epochs as text (``E_0, E_1, …``)
    config : the run's configuration (a note when the trace carries none)
    meta : model, status, status message, creation time, statistics source, timings and
        versions
    """

    dataset: dict[str, Any]
    epochs: str
    config: dict[str, Any]
    meta: dict[str, Any]


def meta_section(meta: dict[str, Any], name: str) -> dict[str, Any]:
    """``meta[name]`` when it is a dict, else ``{}`` (a trace's meta is untrusted input)."""
    value = meta.get(name)
    return value if isinstance(value, dict) else {}


def status_notice(trace: NetworkTrace, live: bool) -> Notice | None:
    """The notice a run that is training, stalled, was stopped, diverged or interrupted gets
    (``None``: complete)."""
    message = str(trace.meta.get("status_message") or "")
    if live:
        return Notice("info", "Training now: this page updates as epochs are recorded.", "⏳")
    if trace.status == "stopped":
        return Notice(
            "warning",
            f"Stopped before the end: {md_escape(message or 'by the user')}",
            ":material/stop_circle:",
        )
    if trace.status == "diverged":
        return Notice(
            "warning",
            f"Diverged: {md_escape(message or 'non-finite loss')}",
            ":material/warning:",
        )
    if trace.status == "running":  # its writer lives but has stopped writing (stalled)
        return Notice(
            "warning",
            f"Not finished: {md_escape(message or 'its writer has not closed the run')}",
            ":material/hourglass_empty:",
        )
    if trace.status == "interrupted":
        return Notice(
            "warning",
            f"Interrupted: {md_escape(message or 'the run ended before its writer finished')}",
            ":material/warning:",
        )
    return None


def _train_seconds(meta: dict[str, Any]) -> float | None:
    seconds = meta_section(meta, "timings").get("train_seconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


def _recorded_help(trace: NetworkTrace, planned: Any) -> str | None:
    """What the recorded count is out of: the planned epochs, or the steps trained."""
    untrained = f"{time_key(0)} is the untrained network"
    if trace.axis == "step":
        done = trace.meta.get("steps_done")
        return f"of {done} steps trained; {untrained}" if done else untrained
    return f"of {planned} epochs; {untrained}" if planned else None


def summary_tiles(trace: NetworkTrace, live: bool) -> list[SummaryTile]:
    """The six figures of the run summary: parameters, hidden neurons, recorded epochs,
    validation accuracy, status and training time (``–`` where unknown)."""
    meta = trace.meta
    hidden = [info for info in trace.layers if info.kind != "input" and info.name != "output"]
    planned = meta_section(meta, "config").get("epochs") or meta.get("num_epochs")
    history = trace.history
    val_acc = history["val_acc"].dropna() if "val_acc" in history else pd.Series(dtype=float)
    n_parameters = int(meta_section(meta, "model").get("n_parameters", 0))
    return [
        SummaryTile("Parameters", f"{n_parameters:,}"),
        SummaryTile(
            "Hidden neurons",
            f"{sum(i.n_neurons for i in hidden):,}",
            help=f"{trace.n_neurons:,} neurons in all, with inputs and outputs",
        ),
        SummaryTile(
            f"Recorded {time_word(plural=True)}",
            f"{len(trace.epochs)}",
            help=_recorded_help(trace, planned),
        ),
        SummaryTile("Validation accuracy", f"{val_acc.iloc[-1]:.3f}" if len(val_acc) else "–"),
        SummaryTile("Status", "training" if live else trace.status),
        SummaryTile("Training time", fmt_duration(_train_seconds(meta))),
    ]


def layers_table(trace: NetworkTrace) -> pd.DataFrame:
    """One row per layer: name, kind, neurons, their ids, activation and fan-in."""
    layers = trace.layers
    return pd.DataFrame(
        {
            "layer": [i.name for i in layers],
            "kind": [i.kind for i in layers],
            "neurons": [i.n_neurons for i in layers],
            "ids": [f"n_{i.first_id} … n_{i.last_id}" for i in layers],
            "activation": [i.activation or "—" for i in layers],
            "fan-in": [i.fan_in for i in layers],
        }
    )


def run_details(trace: NetworkTrace) -> RunDetails:
    """The dataset, recorded epochs, configuration and meta the "Run details" list."""
    meta = trace.meta
    dataset = meta_section(meta, "dataset")
    config = meta_section(meta, "config")
    return RunDetails(
        dataset={k: v for k, v in dataset.items() if k not in ("feature_mean", "feature_scale")},
        epochs=", ".join(time_key(e) for e in trace.epochs),
        config=config or {"note": "this trace carries no TrainConfig"},
        meta={
            "model": meta_section(meta, "model"),
            "status": trace.status,
            "status_message": str(meta.get("status_message") or ""),
            "created": meta.get("created"),
            "statistics_source": meta.get("statistics_source"),
            "timings": meta.get("timings"),
            "versions": meta.get("versions"),
        },
    )


def detail_layers(trace: NetworkTrace) -> list[str]:
    """The layers whose every neuron the page can draw over training: every layer but the
    inputs (all of them when there is no other); the first is the default."""
    return [info.name for info in trace.layers if info.kind != "input"] or trace.layer_names()
