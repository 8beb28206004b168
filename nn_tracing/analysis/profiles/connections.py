"""A neuron's strongest connections: its largest incoming and outgoing weights, with the
neuron at the other end and where each weight stands among all weights of its matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...trace import NetworkTrace
from ._common import _check_neuron
from .weights import _weights_at, incoming_weights, outgoing_weights, target_layer

__all__ = ["strongest_connections"]


def _abs_percentile(matrix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of the entries of ``matrix`` whose magnitude is below each ``|value|``."""
    magnitudes = np.sort(np.abs(np.asarray(matrix, dtype=np.float64)).ravel())
    return np.searchsorted(magnitudes, np.abs(values), side="left") / max(magnitudes.size, 1)


def strongest_connections(
    trace: NetworkTrace, neuron_id: int, epoch: int, k: int = 5
) -> pd.DataFrame:
    """The ``k`` largest incoming and ``k`` largest outgoing weights by magnitude, with the
    signature of the neuron at the other end.

    Each weight's ``matrix_percentile`` says where its magnitude stands among all weights of
    the same weight matrix (the reference: a "strongest" connection at the 60th percentile of
    its matrix is not strong). Incoming weights whose sources are unknown (see
    :func:`source_layer`) are left out.

    Returns
    -------
    DataFrame: ``direction`` (``in`` or ``out``), ``rank`` (1 = largest), ``neuron`` (the other
    end's id), ``layer``, ``signature``, ``weight``, ``abs_weight``, ``matrix_percentile``,
    ``weight_e0``, ``epoch``; empty when the neuron has neither known sources nor targets.

    Raises
    ------
    ProfileUnavailable
        Without weights at ``epoch``.
    """
    info = _check_neuron(trace, neuron_id)
    weights = _weights_at(trace, epoch)
    parts = []
    if info.kind != "input" and info.weight_key is not None:
        incoming = incoming_weights(trace, neuron_id, epoch)
        incoming = incoming[incoming["source"] >= 0]
        if len(incoming):
            top = incoming.sort_values(["abs_weight", "index"], ascending=[False, True]).head(k)
            parts.append(
                pd.DataFrame(
                    {
                        "direction": "in",
                        "rank": np.arange(1, len(top) + 1),
                        "neuron": top["source"].to_numpy(),
                        "layer": top["source_layer"].to_numpy(),
                        "signature": top["signature"].to_numpy(),
                        "weight": top["weight"].to_numpy(),
                        "abs_weight": top["abs_weight"].to_numpy(),
                        "matrix_percentile": _abs_percentile(
                            weights[info.weight_key], top["weight"].to_numpy()
                        ),
                        "weight_e0": top["weight_e0"].to_numpy(),
                    }
                )
            )
    target = target_layer(trace, info.name)
    if target is not None and target.weight_key is not None:
        outgoing = outgoing_weights(trace, neuron_id, epoch)
        top = outgoing.sort_values(["abs_weight", "target"], ascending=[False, True]).head(k)
        parts.append(
            pd.DataFrame(
                {
                    "direction": "out",
                    "rank": np.arange(1, len(top) + 1),
                    "neuron": top["target"].to_numpy(),
                    "layer": top["target_layer"].to_numpy(),
                    "signature": top["signature"].to_numpy(),
                    "weight": top["weight"].to_numpy(),
                    "abs_weight": top["abs_weight"].to_numpy(),
                    "matrix_percentile": _abs_percentile(
                        weights[target.weight_key], top["weight"].to_numpy()
                    ),
                    "weight_e0": top["weight_e0"].to_numpy(),
                }
            )
        )
    columns = [
        "direction",
        "rank",
        "neuron",
        "layer",
        "signature",
        "weight",
        "abs_weight",
        "matrix_percentile",
        "weight_e0",
    ]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    frame["epoch"] = epoch
    return frame
