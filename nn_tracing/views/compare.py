"""What the Compare page shows, built without Streamlit: (traces, plain parameters) → frames.

The page compares two or more runs. Curves and per-layer quantile bands take every chosen run;
matching and similarity take a pair, run A and run B, on A's probe samples
(:class:`~nn_tracing.analysis.compare.RunPair`: B's stored activations when both runs share the
probe set, B rerun on A's probe from its kept weights otherwise). Every function here is pure
and may run on the analysis worker; a comparison that cannot be made raises
:class:`~nn_tracing.analysis.compare.CompareUnavailable` with the reason in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.compare import (
    CompareUnavailable,
    NeuronMatching,
    RunPair,
    common_layers,
    convergence_order,
    convergence_to_final,
    layer_quantile_bands,
    layer_similarity,
    partner_stability,
    stable_from,
    training_curves,
)
from ..progress import Progress
from ..trace import NetworkTrace, format_signature

__all__ = [
    "METHODS",
    "NULL_KINDS",
    "Converged",
    "Matched",
    "bands",
    "converged",
    "curves",
    "format_pair",
    "match_layer",
    "pair_frame",
    "pair_histories",
    "pair_problems",
    "parse_pair",
    "similarity_between",
]

#: The nulls matched correlations are tested against.
NULL_KINDS: dict[str, str] = {
    "permuted": "run B with its probe samples permuted",
    "untrained": "run B untrained (its E_0)",
}
#: The representational similarities.
METHODS: dict[str, str] = {"cka": "linear CKA", "svcca": "SVCCA", "pwcca": "PWCCA"}


def _noop(fraction: float, message: str = "") -> None:
    """No progress to report."""


def curves(
    traces: Mapping[str, NetworkTrace], quantity: str, smoothing: float, per_step: bool
) -> pd.DataFrame:
    """Every run's training curves (:func:`~nn_tracing.analysis.compare.training_curves`)."""
    return training_curves(traces, quantity, smoothing=smoothing, per_step=per_step)


def bands(traces: Mapping[str, NetworkTrace], metric: str) -> pd.DataFrame:
    """Each run's 10th, 50th and 90th percentile of ``metric`` per layer and recorded epoch:
    :func:`~nn_tracing.analysis.compare.layer_quantile_bands` with a ``run`` column and the
    layer's signature prefix (``E_3/L_hidden_1``)."""
    parts = []
    for name, trace in traces.items():
        frame = layer_quantile_bands(trace, metric, (0.1, 0.5, 0.9))
        frame.insert(0, "run", name)
        frame["signature"] = [
            f"{trace.time_key(t)}/L_{layer}" for t, layer in zip(frame["time"], frame["layer"])
        ]
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def pair_problems(a: NetworkTrace, b: NetworkTrace) -> tuple[list[str], list[str]]:
    """What stops a comparison of A with B (errors), and what it should mention (notes):
    no layer in common, other widths, other time axes, no probe set."""
    errors, notes = [], []
    if a.probe is None:
        errors.append(
            "Run A has no probe set (its statistics were streamed over training batches): "
            "there are no fixed samples to compare neurons on."
        )
    layers = common_layers(a, b)
    if not layers:
        errors.append(
            "The two runs have no traced layer in common (layers are paired by name): "
            f"A has {', '.join(a.layer_names()[1:])}; B has {', '.join(b.layer_names()[1:])}."
        )
    for name in layers:
        wa, wb = a.layer(name).n_neurons, b.layer(name).n_neurons
        if wa != wb:
            notes.append(
                f"Layer {name} has {wa} neurons in run A and {wb} in run B: a one-to-one "
                f"matching leaves {abs(wa - wb)} of the wider run's neurons unmatched."
            )
    if a.axis != b.axis:
        notes.append(
            f"Run A records {a.axis}s and run B {b.axis}s: nothing over training is compared, "
            "only the epochs picked for each."
        )
    return errors, notes


@dataclass(frozen=True)
class Matched:
    """One layer's neurons matched from run A to run B at one epoch, against a null.

    ``pairs``: one row per neuron of A — ``a_index``/``b_index`` (positions in the layer, -1
    unmatched), ``a_neuron``/``b_neuron`` (global ids), ``r`` (matched correlation),
    ``universal``, ``a_signature``/``b_signature`` and ``stable_from`` (the recorded epoch
    from which its partner no longer changes; NaN when not computed). ``null``: the matched
    correlations of the null; ``threshold``: its 99th percentile.
    """

    layer: str
    epoch: int
    null_kind: str
    pairs: pd.DataFrame
    null: np.ndarray
    threshold: float
    share: float
    sentence: str
    stability_note: str | None
    stability_epochs: list[int]


def _stability(pair: RunPair, layer: str, n_a: int) -> tuple[np.ndarray, str | None, list[int]]:
    epochs = pair.common_epochs
    if len(epochs) < 2:
        return np.full(n_a, np.nan), "The runs share fewer than two recorded epochs.", epochs
    try:
        left, right = zip(*(pair.layer(layer, e) for e in epochs), strict=True)
    except CompareUnavailable as exc:
        return np.full(n_a, np.nan), f"Partners over training are not available: {exc}.", []
    partners, _ = partner_stability(list(left), list(right))
    return stable_from(partners, epochs).astype(np.float64), None, epochs


def match_layer(
    a: NetworkTrace,
    b: NetworkTrace,
    layer: str,
    epoch: int,
    *,
    null: str = "permuted",
    n_permutations: int = 5,
    random_state: int = 0,
    progress: Progress | None = None,
) -> Matched:
    """Match ``layer``'s neurons of A to B's at ``epoch``; test against ``null``
    (:data:`NULL_KINDS`); follow each neuron's partner over the epochs both runs recorded."""
    if null not in NULL_KINDS:
        raise ValueError(f"null={null!r}: use one of {', '.join(NULL_KINDS)}")
    progress = progress or _noop
    pair = RunPair(a, b)
    x, y = pair.layer(layer, epoch)
    progress(0.1, "matching")
    other = pair.layer(layer, epoch, b.epochs[0])[1] if null == "untrained" else None
    fit = NeuronMatching(n_permutations=n_permutations, random_state=random_state)
    fit.fit(x, y, null=other)
    progress(0.5, "partners over training")
    since, note, epochs = _stability(pair, layer, x.shape[1])
    info_a, info_b = a.layer(layer), b.layer(layer)
    partner = fit.partner_
    b_neuron = np.where(partner >= 0, info_b.first_id + partner, -1)
    pairs = pd.DataFrame(
        {
            "a_index": np.arange(x.shape[1]),
            "b_index": partner,
            "a_neuron": info_a.first_id + np.arange(x.shape[1]),
            "b_neuron": b_neuron,
            "r": fit.matched_,
            "universal": fit.universal_,
            "stable_from": since,
        }
    )
    pairs["a_signature"] = [
        format_signature(epoch, layer, int(n), a.axis) for n in pairs["a_neuron"]
    ]
    pairs["b_signature"] = [
        format_signature(epoch, layer, int(n), b.axis) if n >= 0 else "unmatched"
        for n in pairs["b_neuron"]
    ]
    progress(1.0, "done")
    return Matched(
        layer,
        epoch,
        null,
        pairs,
        fit.null_,
        fit.threshold_,
        fit.universal_share_,
        fit.describe(),
        note,
        epochs,
    )


def format_pair(layer: str, a_index: int, b_index: int) -> str:
    """The URL text of a matched pair: ``hidden_1:3:12`` (positions in the layer)."""
    return f"{layer}:{int(a_index)}:{int(b_index)}"


def parse_pair(text: str) -> tuple[str, int, int] | None:
    """``(layer, a_index, b_index)`` of :func:`format_pair`'s text, or ``None``."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    try:
        a_index, b_index = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    return (parts[0], a_index, b_index) if a_index >= 0 and b_index >= 0 else None


def pair_frame(
    a: NetworkTrace, b: NetworkTrace, layer: str, a_index: int, b_index: int, epoch: int
) -> pd.DataFrame:
    """Both neurons' activations on A's probe samples at ``epoch``: ``sample``, ``class``,
    ``a``, ``b`` and their signatures."""
    x, y = RunPair(a, b).layer(layer, epoch)
    if not (0 <= a_index < x.shape[1] and 0 <= b_index < y.shape[1]):
        raise CompareUnavailable(f"no such pair of neurons in layer {layer}")
    labels = np.asarray(a.probe[1]) if a.probe is not None else np.zeros(len(x), dtype=int)
    a_id, b_id = a.layer(layer).first_id + a_index, b.layer(layer).first_id + b_index
    return pd.DataFrame(
        {
            "sample": np.arange(len(x)),
            "class": [a.class_name(int(c)) for c in labels],
            "a": x[:, a_index].astype(np.float64),
            "b": y[:, b_index].astype(np.float64),
            "a_signature": format_signature(epoch, layer, a_id, a.axis),
            "b_signature": format_signature(epoch, layer, b_id, b.axis),
        }
    )


def pair_histories(
    traces: Mapping[str, NetworkTrace], neurons: Mapping[str, int], metric: str
) -> pd.DataFrame:
    """``metric`` of one neuron per run over its recorded epochs: ``run``, ``time``,
    ``value``, ``signature`` (``neurons``: ``{run: global id}``)."""
    parts = []
    for name, neuron in neurons.items():
        trace = traces[name]
        history = trace.neuron_history(neuron)
        layer = trace.layer_of(neuron).name
        parts.append(
            pd.DataFrame(
                {
                    "run": name,
                    "time": history["epoch"].to_numpy(np.int64),
                    "value": history[metric].to_numpy(np.float64),
                    "signature": [
                        format_signature(int(t), layer, neuron, trace.axis)
                        for t in history["epoch"]
                    ],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def similarity_between(
    a: NetworkTrace,
    b: NetworkTrace,
    epoch_a: int,
    epoch_b: int,
    *,
    method: str = "cka",
    n_permutations: int = 10,
    random_state: int = 0,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Every layer of A against every layer of B (:func:`layer_similarity`)."""
    (progress or _noop)(0.0, METHODS.get(method, method))
    return layer_similarity(
        RunPair(a, b),
        epoch_a,
        epoch_b,
        method=method,
        n_permutations=n_permutations,
        random_state=random_state,
    )


@dataclass(frozen=True)
class Converged:
    """Each layer against its final self: the curves, when each layer converged, a verdict."""

    frame: pd.DataFrame
    order: pd.DataFrame
    verdict: str


def converged(
    trace: NetworkTrace,
    *,
    method: str = "cka",
    threshold: float = 0.9,
    n_permutations: int = 10,
    random_state: int = 0,
    progress: Progress | None = None,
) -> Converged:
    """:func:`convergence_to_final` and :func:`convergence_order` of one run."""
    frame = convergence_to_final(
        trace,
        method=method,
        n_permutations=n_permutations,
        random_state=random_state,
        progress=progress,
    )
    frame["signature"] = [
        f"{trace.time_key(int(t))}/L_{layer}" for t, layer in zip(frame["time"], frame["layer"])
    ]
    order, verdict = convergence_order(frame, threshold)
    return Converged(frame, order, verdict)
