"""What each cluster of neurons holds: size, layers, mean feature profile, typical members."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import NeuronFeatures

__all__ = ["ClusterSummary", "cluster_name", "cluster_summary"]


@dataclass(frozen=True)
class ClusterSummary:
    """What each cluster holds.

    Attributes
    ----------
    table : one row per cluster (noise last): ``cluster``, ``name``, ``size``, ``share``,
        ``layers`` (e.g. ``hidden_1: 12, hidden_2: 3``), ``n_layers``, ``spread`` (mean
        distance of the members to their centroid), ``typical`` (the most typical neuron)
    layer_counts : ``cluster``, ``name``, ``layer``, ``count``
    profiles : the mean feature profile of each cluster, long form: ``cluster``, ``name``,
        ``column``, ``position``, ``mean``, ``p25``, ``p75``
    typical : the most typical neurons of each cluster, nearest to its centroid first:
        ``cluster``, ``name``, ``rank``, ``neuron``, ``layer``, ``epoch``, ``signature``,
        ``distance``
    """

    table: pd.DataFrame
    layer_counts: pd.DataFrame
    profiles: pd.DataFrame
    typical: pd.DataFrame


def cluster_name(cluster: int) -> str:
    """``"C0"``, ``"C1"``, …; ``"noise"`` for -1."""
    return "noise" if cluster < 0 else f"C{cluster}"


def cluster_summary(
    features: NeuronFeatures,
    labels: np.ndarray,
    *,
    n_typical: int = 5,
    profile_values: str = "values",
) -> ClusterSummary:
    """Summarise a partition of ``features``' rows.

    Parameters
    ----------
    features
        The rows that were clustered.
    labels
        Cluster of each row, array of shape (n_rows,) (``-1``: noise).
    n_typical
        Most typical neurons listed per cluster.
    profile_values
        ``values`` (the scaled features the clustering saw) or ``raw`` for the profiles.
    """
    labels = np.asarray(labels)
    if labels.shape[0] != features.n_rows:
        raise ValueError(f"{labels.shape[0]} labels for {features.n_rows} rows")
    X = features.values.astype(np.float64)
    shown = (features.raw if profile_values == "raw" else features.values).astype(np.float64)
    clusters = sorted(set(labels.tolist()), key=lambda c: (c < 0, c))
    signatures = np.array(features.signatures(), dtype=object)
    rows, counts, profiles, typical = [], [], [], []
    for c in clusters:
        members = np.flatnonzero(labels == c)
        name = cluster_name(c)
        center = X[members].mean(axis=0)
        distance = np.sqrt(((X[members] - center) ** 2).sum(axis=1))
        layer_values, layer_counts = np.unique(features.layers[members], return_counts=True)
        order = {n: i for i, n in enumerate(dict.fromkeys(features.layers.tolist()))}
        pairs = sorted(zip(layer_values, layer_counts, strict=True), key=lambda p: order[p[0]])
        closest = members[np.argsort(distance, kind="stable")[:n_typical]]
        rows.append(
            {
                "cluster": c,
                "name": name,
                "size": members.size,
                "share": members.size / max(labels.size, 1),
                "layers": ", ".join(f"{layer}: {count}" for layer, count in pairs),
                "n_layers": len(pairs),
                "spread": float(distance.mean()),
                "typical": signatures[closest[0]] if closest.size else "",
            }
        )
        counts.extend(
            {"cluster": c, "name": name, "layer": layer, "count": int(count)}
            for layer, count in pairs
        )
        block = shown[members]
        p25, p75 = np.percentile(block, [25, 75], axis=0)
        profiles.append(
            pd.DataFrame(
                {
                    "cluster": c,
                    "name": name,
                    "column": features.columns,
                    "position": features.positions,
                    "mean": block.mean(axis=0),
                    "p25": p25,
                    "p75": p75,
                }
            )
        )
        ranked = np.argsort(distance, kind="stable")[:n_typical]
        for rank, index in enumerate(ranked):
            row = members[index]
            typical.append(
                {
                    "cluster": c,
                    "name": name,
                    "rank": rank + 1,
                    "neuron": int(features.neuron_ids[row]),
                    "layer": features.layers[row],
                    "epoch": int(features.epochs[row]),
                    "signature": signatures[row],
                    "distance": float(distance[index]),
                }
            )
    return ClusterSummary(
        table=pd.DataFrame(rows),
        layer_counts=pd.DataFrame(counts, columns=["cluster", "name", "layer", "count"]),
        profiles=pd.concat(profiles, ignore_index=True) if profiles else pd.DataFrame(),
        typical=pd.DataFrame(typical),
    )
