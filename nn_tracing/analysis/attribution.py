"""Which neurons made this output: per-neuron attribution and the breadcrumb trail.

Captum computes attribution for one model state; this module orchestrates it over the traced
layers, the classes and the recorded epochs of a :class:`~nn_tracing.trace.NetworkTrace`.

* :func:`neuron_attributions` — per-sample, per-neuron attributions of a
  :class:`~nn_tracing.analysis.neuron_model.NeuronModel` by one of :data:`METHODS`, every
  traced layer at once (the input features included): Captum's
  ``LayerGradientXActivation``, ``LayerIntegratedGradients``, ``LayerConductance`` or
  ``LayerFeatureAblation`` on each layer's hook point. Channels are summed over positions.
* :func:`attribute` — the same for a trace at one epoch, for a class (its probe samples), one
  probe sample, or every sample's own class; an :class:`Attribution` (scores by global id).
* :func:`attribution_history` — the scores of some neurons at every epoch the model can be
  rebuilt at ("since when").
* :func:`breadcrumb_trail` — from the output backward, the top-k contributing neurons of each
  layer down to the input features, with edges weighted by contribution flow.
* :func:`method_agreement` — rank correlation of the scores of different methods, per layer.

Every score is "what the neuron contributes to the objective" (:data:`OBJECTIVES`: the class
logit, or its margin over the other logits) averaged over the chosen probe samples; the
ablation method's score is the drop of the objective when the neuron is zeroed. Integrated
gradients and conductance integrate from the all-zero input (the training mean of the
standardised features) to the sample. Nothing here imports Streamlit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ..progress import Progress, fraction, no_progress
from ..timeaxis import time_key
from ..trace import LayerInfo, format_signature, signature_column
from ..tracer import as_positions
from .neuron_model import OBJECTIVES, HookPoint, NeuronModel

if TYPE_CHECKING:
    from ..trace import NetworkTrace

__all__ = [
    "METHODS",
    "OBJECTIVES",
    "Attribution",
    "Trail",
    "attribute",
    "attribution_frame",
    "attribution_history",
    "breadcrumb_trail",
    "method_agreement",
    "neuron_attributions",
    "spearman",
]

#: The attribution methods: name -> what it computes.
METHODS: dict[str, str] = {
    "grad_x_act": "gradient × activation (Captum LayerGradientXActivation)",
    "integrated_gradients": "integrated gradients of the layer's activations from the all-zero "
    "input (Captum LayerIntegratedGradients)",
    "conductance": "conductance: the input's integrated gradients that flow through the neuron "
    "(Captum LayerConductance)",
    "ablation": "drop of the score when the neuron is zeroed (Captum LayerFeatureAblation)",
}
METHOD_TITLES: dict[str, str] = {
    "grad_x_act": "gradient × activation",
    "integrated_gradients": "integrated gradients",
    "conductance": "conductance",
    "ablation": "ablation",
}


def _pool_sum(t: torch.Tensor, feature_dim: int) -> torch.Tensor:
    """(B, ...) layer attributions -> (B, N): summed over positions (channels of a conv)."""
    return as_positions(t, feature_dim).sum(1)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method={method!r}: use one of {', '.join(METHODS)}")


def neuron_attributions(
    model: NeuronModel,
    x: torch.Tensor | np.ndarray,
    target: int | Sequence[int] | np.ndarray | torch.Tensor,
    method: str = "grad_x_act",
    *,
    layers: Sequence[str] | None = None,
    n_steps: int = 32,
    max_rows: int = 32768,
    progress: Progress | None = None,
) -> np.ndarray:
    """Per-sample attribution of every neuron of ``layers`` to the target class's score.

    Parameters
    ----------
    model
        The network with hook points (``model.objective`` says what the score is).
    x
        Inputs, array of shape (n_samples, ...).
    target
        The class whose score is explained: one int, or one per sample (n_samples,).
    method
        One of :data:`METHODS`.
    layers
        Layer names (default: every layer but the output logits).
    n_steps
        Integration steps of integrated gradients and conductance.
    max_rows
        Most rows one forward pass holds (integration steps × samples, ablations × samples).
    progress
        Called with ``(fraction done, what is being computed)``.

    Returns
    -------
    array of shape (n_samples, n_neurons), float64, columns by global neuron id; NaN in the
    columns of layers not computed (the output layer by default).
    """
    _check_method(method)
    report = progress or no_progress
    x = torch.as_tensor(x).to(model.device)
    n = x.shape[0]
    targets = _per_sample_targets(target, n, model.device)
    output_name = model.layers[-1].name
    names = (
        list(layers)
        if layers is not None
        else [info.name for info in model.layers if info.name != output_name]
    )
    chosen = [model.layer(name) for name in names]
    out = np.full((n, model.n_neurons), np.nan)
    if n == 0:
        return out

    def store(info: LayerInfo, values: torch.Tensor, rows: slice = slice(None)) -> None:
        point = model.point(info.name)
        pooled = _pool_sum(values.detach(), point.feature_dim)
        out[rows, info.first_id : info.last_id + 1] = pooled.double().cpu().numpy()

    title = METHOD_TITLES[method]
    if method == "grad_x_act":
        report(0.0, f"{title}: one backward pass over {len(chosen)} layers")
        _grad_x_act(model, chosen, x, targets, max_rows, store)
        report(1.0, f"{title}: done")
        return out
    for i, info in enumerate(chosen):
        report(fraction(i, len(chosen)), f"{title}: layer {info.name} ({i + 1} of {len(chosen)})")
        point = model.point(info.name)
        if method in ("integrated_gradients", "conductance"):
            store(info, _integrated(model, point, method, x, targets, n_steps, max_rows))
        else:
            values = _ablated(model, info, point, x, targets, max_rows)
            store(info, values if point.feature_dim == -1 else _per_channel(values, point))
    report(1.0, f"{title}: done")
    return out


def _per_sample_targets(
    target: int | Sequence[int] | np.ndarray | torch.Tensor, n: int, device: torch.device
) -> torch.Tensor:
    """One target class per sample (one int is every sample's); ``ValueError`` otherwise."""
    targets = torch.as_tensor(target, dtype=torch.long).to(device)
    if targets.dim() == 0:
        targets = targets.expand(n)
    if targets.shape != (n,):
        raise ValueError(f"target has shape {tuple(targets.shape)}; expected ({n},)")
    return targets


def _grad_x_act(
    model: NeuronModel,
    chosen: list[LayerInfo],
    x: torch.Tensor,
    targets: torch.Tensor,
    max_rows: int,
    store: Callable[..., None],
) -> None:
    """Gradient × activation of every chosen layer: one backward pass per block of rows."""
    from captum.attr import LayerGradientXActivation

    points = [model.point(info.name) for info in chosen]
    for start in range(0, x.shape[0], max_rows):
        rows = slice(start, start + max_rows)
        values = LayerGradientXActivation(model, points).attribute(x[rows], target=targets[rows])
        values = [values] if isinstance(values, torch.Tensor) else list(values)
        for info, v in zip(chosen, values, strict=True):
            store(info, v, rows)


def _integrated(
    model: NeuronModel,
    point: HookPoint,
    method: str,
    x: torch.Tensor,
    targets: torch.Tensor,
    n_steps: int,
    max_rows: int,
) -> torch.Tensor:
    """Integrated gradients or conductance of one layer from a zero baseline, in blocks of
    samples whose integration steps fit ``max_rows``."""
    from captum.attr import LayerConductance, LayerIntegratedGradients

    algorithm = (
        LayerIntegratedGradients(model, point)
        if method == "integrated_gradients"
        else LayerConductance(model, point)
    )
    per_call = max(1, max_rows // max(n_steps, 1))
    parts = []
    for start in range(0, x.shape[0], per_call):
        rows = slice(start, start + per_call)
        parts.append(
            algorithm.attribute(
                x[rows],
                baselines=torch.zeros_like(x[rows]),
                target=targets[rows],
                n_steps=n_steps,
                internal_batch_size=max(1, min(max_rows, x[rows].shape[0] * n_steps)),
            )
        )
    return torch.cat(parts)


def _ablated(
    model: NeuronModel,
    info: LayerInfo,
    point: HookPoint,
    x: torch.Tensor,
    targets: torch.Tensor,
    max_rows: int,
) -> torch.Tensor:
    """Feature ablation of one layer's neurons (channels of a conv layer): Captum takes one
    int target per call, with several ablations per evaluation."""
    from captum.attr import LayerFeatureAblation

    n = x.shape[0]
    values = torch.zeros((n, *_layer_shape(model, x[:1], point)[1:]))
    per_eval = max(1, min(info.n_neurons, max_rows // n))
    ablation = LayerFeatureAblation(model, point)
    for cls in torch.unique(targets).tolist():
        rows = torch.nonzero(targets == cls).flatten()
        values[rows] = (
            ablation.attribute(
                x[rows],
                target=int(cls),
                layer_mask=_channel_mask(model, x[:1], point),
                perturbations_per_eval=per_eval,
            )
            .detach()
            .float()
            .cpu()
        )
    return values


def _layer_shape(model: NeuronModel, x: torch.Tensor, point: torch.nn.Module) -> tuple[int, ...]:
    shapes: list[tuple[int, ...]] = []
    handle = point.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return shapes[0]


def _channel_mask(model: NeuronModel, x: torch.Tensor, point) -> torch.Tensor | None:
    """For a layer with positions (conv), a mask that ablates whole channels; else ``None``."""
    shape = _layer_shape(model, x, point)
    if len(shape) <= 2:
        return None
    dim = point.feature_dim % len(shape)
    ids = torch.arange(shape[dim], device=model.device)
    ids = ids.reshape([-1 if d == dim else 1 for d in range(len(shape))])
    return ids.expand(1, *shape[1:]).clone()


def _per_channel(values: torch.Tensor, point) -> torch.Tensor:
    """Captum repeats a channel's ablation effect at every position; keep one per channel."""
    pooled = as_positions(values, point.feature_dim)  # (B, P, C)
    return pooled[:, :1, :].reshape(pooled.shape[0], -1)


@dataclass(frozen=True)
class Attribution:
    """Per-neuron attributions of one model state to one target.

    Attributes
    ----------
    epoch : the recorded epoch whose weights were used (``None``: the final weights)
    method, objective : see :data:`METHODS` and :data:`OBJECTIVES`
    target_class : the class explained, or ``None`` for "each sample's own label"
    samples : probe indices used, array of shape (n_samples,)
    targets : the class explained for each of them, array of shape (n_samples,)
    per_sample : array of shape (n_samples, n_neurons); NaN for layers not attributed
    layers : the trace's layers
    signature_epoch : the epoch neuron signatures name (``epoch``, or for the final weights
        the last recorded epoch)
    """

    epoch: int | None
    method: str
    objective: str
    target_class: int | None
    samples: np.ndarray
    targets: np.ndarray
    per_sample: np.ndarray
    layers: list[LayerInfo] = field(repr=False)
    signature_epoch: int | None = None

    @property
    def label_epoch(self) -> int:
        """The epoch in this attribution's neuron signatures."""
        if self.signature_epoch is not None:
            return self.signature_epoch
        return self.epoch if self.epoch is not None else -1

    def signature(self, neuron: int) -> str:
        """``E_<epoch>/L_<layer>/n_<id>`` of a neuron."""
        for info in self.layers:
            if info.first_id <= neuron <= info.last_id:
                return format_signature(self.label_epoch, info.name, neuron)
        raise KeyError(f"no neuron n_{neuron}")

    @property
    def scores(self) -> np.ndarray:
        """Mean attribution over the samples, array of shape (n_neurons,) (signed)."""
        return self.per_sample.mean(0)

    @property
    def magnitude(self) -> np.ndarray:
        """Mean absolute attribution over the samples, array of shape (n_neurons,)."""
        return np.abs(self.per_sample).mean(0)

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(f"no layer {name!r}")

    def top(self, layer: str, k: int) -> np.ndarray:
        """Global ids of the ``k`` neurons of ``layer`` with the largest ``|score|``, best first."""
        info = self.layer(layer)
        values = np.abs(self.scores[info.first_id : info.last_id + 1])
        values = np.where(np.isfinite(values), values, -np.inf)
        order = np.argsort(-values, kind="stable")[: max(int(k), 0)]
        return info.first_id + order

    def frame(self) -> pd.DataFrame:
        """One row per attributed neuron: ``layer``, ``neuron``, ``signature``, ``score``,
        ``magnitude``, ``share`` (|score| over the layer's sum of |score|), ``rank`` (1 = the
        largest |score| in its layer), ``epoch`` (of the signature)."""
        epoch = self.label_epoch
        parts = []
        scores, magnitude = self.scores, self.magnitude
        for info in self.layers:
            block = scores[info.first_id : info.last_id + 1]
            if not np.isfinite(block).any():
                continue
            ids = np.arange(info.first_id, info.last_id + 1)
            absolute = np.abs(block)
            total = absolute.sum()
            ranks = pd.Series(-absolute).rank(method="first").to_numpy().astype(int)
            parts.append(
                pd.DataFrame(
                    {
                        "layer": info.name,
                        "neuron": ids,
                        "signature": signature_column(epoch, info.name, ids),
                        "score": block,
                        "magnitude": magnitude[ids],
                        "share": absolute / total if total > 0 else np.nan,
                        "rank": ranks,
                        "epoch": epoch,
                    }
                )
            )
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _select(
    trace: NetworkTrace,
    model: NeuronModel,
    target_class: int | None,
    sample: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probe indices and per-sample targets for a class, a sample or every sample."""
    assert trace.probe is not None
    x, y = trace.probe
    y = np.asarray(y).astype(np.int64)
    n_classes = model.layers[-1].n_neurons
    if target_class is not None and not 0 <= int(target_class) < n_classes:
        raise ValueError(f"class {target_class} does not exist; classes are 0 … {n_classes - 1}")
    if sample is not None:
        if not 0 <= int(sample) < len(y):
            raise ValueError(f"probe sample {sample} does not exist; there are {len(y)}")
        if target_class is None:
            target_class = int(model.logits(x[int(sample) : int(sample) + 1]).argmax(1)[0])
        return np.array([int(sample)]), np.array([int(target_class)])
    if target_class is not None:
        samples = np.flatnonzero(y == int(target_class))
        if samples.size == 0:
            raise ValueError(f"the probe set has no sample of class {target_class}")
        return samples, np.full(samples.size, int(target_class))
    return np.arange(len(y)), y


def attribute(
    trace: NetworkTrace,
    *,
    epoch: int | None = None,
    target_class: int | None = None,
    sample: int | None = None,
    method: str = "grad_x_act",
    objective: str = "logit",
    n_steps: int = 32,
    model: NeuronModel | None = None,
    progress: Progress | None = None,
) -> Attribution:
    """Attribute the score of a class to every neuron of the trace's network at ``epoch``.

    Parameters
    ----------
    trace
        A trace with a probe set whose model can be rebuilt (built-in or attached).
    epoch
        A recorded epoch with weights (``trace.epochs_with_weights``); ``None``: final.
    target_class
        Explain this class: over the probe samples of that class (or, with ``sample``, for
        that sample). ``None``: each probe sample's own label (or the sample's prediction).
    sample
        Explain one probe sample (its index in the probe set).
    method, objective, n_steps
        See :data:`METHODS`, :data:`OBJECTIVES` and :func:`neuron_attributions`.
    model
        A :class:`NeuronModel` of that state already built (its objective wins).
    """
    _check_method(method)
    if model is None:
        model = NeuronModel.from_trace(trace, epoch, objective=objective)
    samples, targets = _select(trace, model, target_class, sample)
    assert trace.probe is not None
    x = torch.as_tensor(trace.probe[0][samples])
    values = neuron_attributions(model, x, targets, method, n_steps=n_steps, progress=progress)
    return Attribution(
        epoch=epoch,
        method=method,
        objective=model.objective,
        target_class=None if target_class is None and sample is None else int(targets[0]),
        samples=samples,
        targets=targets,
        per_sample=values,
        layers=list(trace.layers),
        signature_epoch=epoch if epoch is not None else _final_epoch(trace),
    )


def _final_epoch(trace: NetworkTrace) -> int:
    """The recorded epoch that stands for the final weights in signatures."""
    final = trace.meta.get("final_weights_epoch")
    return int(final) if final in trace.epochs else trace.epochs[-1]


def attribution_history(
    trace: NetworkTrace,
    neurons: Sequence[int],
    *,
    epochs: Sequence[int] | None = None,
    target_class: int | None = None,
    sample: int | None = None,
    method: str = "grad_x_act",
    objective: str = "logit",
    n_steps: int = 32,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The scores of ``neurons`` at every epoch the model can be rebuilt at.

    Returns
    -------
    Long frame: ``epoch``, ``neuron``, ``layer``, ``signature``, ``score``, ``magnitude``.
    Empty when the trace kept weights for fewer than two epochs.
    """
    report = progress or no_progress
    epochs = list(epochs) if epochs is not None else trace.epochs_with_weights
    rows = []
    ids = np.asarray(list(neurons), dtype=np.int64)
    layer_names = trace.neuron_layers()
    for i, epoch in enumerate(epochs):
        report(
            fraction(i, len(epochs)), f"attribution at {time_key(epoch)} ({i + 1} of {len(epochs)})"
        )
        result = attribute(
            trace,
            epoch=epoch,
            target_class=target_class,
            sample=sample,
            method=method,
            objective=objective,
            n_steps=n_steps,
        )
        for neuron in ids:
            rows.append(
                (
                    epoch,
                    int(neuron),
                    str(layer_names[neuron]),
                    format_signature(epoch, layer_names[neuron], neuron),
                    float(result.scores[neuron]),
                    float(result.magnitude[neuron]),
                )
            )
    report(1.0, "attribution over epochs: done")
    return pd.DataFrame(
        rows, columns=["epoch", "neuron", "layer", "signature", "score", "magnitude"]
    )


_FRAME_COLUMNS = (
    "epoch",
    "class",
    "method",
    "layer",
    "neuron",
    "signature",
    "score",
    "magnitude",
    "share",
    "rank",
)


def attribution_frame(
    trace: NetworkTrace,
    *,
    epochs: Sequence[int] | None = None,
    classes: Sequence[int] | None = None,
    methods: Sequence[str] = ("grad_x_act",),
    objective: str = "logit",
    n_steps: int = 32,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Attribution of every neuron to every class by several methods at several epochs.

    Parameters
    ----------
    epochs
        Recorded epochs with weights (default: all of ``trace.epochs_with_weights``).
    classes
        Classes to explain, each over its own probe samples (default: every class).
    methods
        Any of :data:`METHODS`.

    Returns
    -------
    Long frame, one row per (epoch, class, method, neuron): ``epoch``, ``class``, ``method``,
    ``layer``, ``neuron``, ``signature``, ``score``, ``magnitude``, ``share``, ``rank``.
    """
    report = progress or no_progress
    epochs = list(epochs) if epochs is not None else trace.epochs_with_weights
    n_classes = trace.layers[-1].n_neurons
    assert trace.probe is not None or not epochs
    present = set(np.unique(np.asarray(trace.probe[1]))) if trace.probe is not None else set()
    classes = (
        list(classes) if classes is not None else [c for c in range(n_classes) if c in present]
    )
    jobs = [(e, c, m) for e in epochs for c in classes for m in methods]
    parts = []
    models: dict[int, NeuronModel] = {}
    for i, (epoch, cls, method) in enumerate(jobs):
        report(fraction(i, len(jobs)), f"{time_key(epoch)}, class {cls}, {METHOD_TITLES[method]}")
        if epoch not in models:
            models = {epoch: NeuronModel.from_trace(trace, epoch, objective=objective)}
        result = attribute(
            trace,
            epoch=epoch,
            target_class=cls,
            method=method,
            n_steps=n_steps,
            model=models[epoch],
        )
        part = result.frame()
        part.insert(0, "method", method)
        part.insert(0, "class", cls)
        parts.append(part)
    report(1.0, "attribution: done")
    if not parts:
        return pd.DataFrame(columns=list(_FRAME_COLUMNS))
    frame = pd.concat(parts, ignore_index=True)
    return frame[list(_FRAME_COLUMNS)]


@dataclass(frozen=True)
class Trail:
    """The breadcrumb trail: the top contributors of each layer and the flow between them.

    Attributes
    ----------
    attribution : what the trail was drawn from
    k : neurons kept per layer
    nodes : one row per trail neuron: ``depth`` (0 = the output), ``layer``, ``neuron``,
        ``signature``, ``score``, ``share`` of its layer's total |score|, ``rank`` in its
        layer, ``activation`` (mean over the samples)
    edges : one row per connection between trail neurons of consecutive layers:
        ``source`` (upstream id), ``target`` (downstream id), ``weight``, ``flow``
    notes : what could not be drawn and why
    """

    attribution: Attribution
    k: int
    nodes: pd.DataFrame
    edges: pd.DataFrame
    notes: tuple[str, ...] = ()

    def neurons(self, layer: str | None = None) -> list[int]:
        """Trail neuron ids (of one layer), in rank order."""
        nodes = self.nodes if layer is None else self.nodes[self.nodes["layer"] == layer]
        return [int(n) for n in nodes["neuron"]]


def breadcrumb_trail(
    model: NeuronModel,
    attribution: Attribution,
    x: torch.Tensor | np.ndarray,
    k: int = 5,
    *,
    k_input: int | None = None,
) -> Trail:
    """From the output backward: the ``k`` neurons of each layer with the largest |score|.

    The root is the target class's output neuron. An edge from upstream neuron ``u`` to
    downstream neuron ``v`` carries the contribution flow

        ``flow(u → v) = mean over samples of  W[v, u] · a_u(s) · A_v(s)``

    — the weight, the upstream activation and the downstream attribution (``A`` = 1 at the
    root, so an edge into the root is ``u``'s direct share of the score; for the margin
    objective the root's weights are the margin's). Edges exist between layers whose
    weights connect them directly (an MLP); a convolution's kernel is summed.

    Parameters
    ----------
    x
        The probe inputs (all of them; the attribution's samples are taken from it).
    k, k_input
        Neurons per hidden layer, and per input layer (default ``k``).
    """
    if attribution.target_class is None:
        raise ValueError("a trail follows one class: attribute a class or a sample")
    samples = attribution.samples
    x = torch.as_tensor(x)[torch.as_tensor(samples)]
    acts = model.activations(x).double().cpu().numpy()  # (S, n_neurons)
    per_sample = attribution.per_sample
    layers = model.layers
    output = layers[-1]
    root = output.first_id + int(attribution.target_class)
    state = dict(model.model.state_dict())
    notes: list[str] = []

    chosen: dict[str, np.ndarray] = {output.name: np.array([root])}
    for info in layers[:-1]:
        count = (k_input if k_input is not None else k) if info.kind == "input" else k
        chosen[info.name] = attribution.top(info.name, min(count, info.n_neurons))

    scores = attribution.scores
    node_rows = []
    for depth, info in enumerate(reversed(layers)):
        ids = chosen[info.name]
        block = np.abs(scores[info.first_id : info.last_id + 1])
        total = np.nansum(block) if np.isfinite(block).any() else np.nan
        for rank, neuron in enumerate(ids, start=1):
            score = 1.0 if neuron == root else float(scores[neuron])
            node_rows.append(
                (
                    depth,
                    info.name,
                    int(neuron),
                    attribution.signature(int(neuron)),
                    score,
                    abs(score) / total if neuron != root and total and total > 0 else np.nan,
                    rank,
                    float(acts[:, neuron].mean()),
                )
            )
    nodes = pd.DataFrame(
        node_rows,
        columns=["depth", "layer", "neuron", "signature", "score", "share", "rank", "activation"],
    )

    edge_rows = []
    n_classes = output.n_neurons
    for up, down in itertools.pairwise(layers):
        if down.weight_key is None or down.weight_key not in state:
            notes.append(f"no edges into {down.name}: it has no weights")
            continue
        weight = state[down.weight_key].detach().double().cpu().numpy()
        weight = weight.reshape(weight.shape[0], weight.shape[1], -1).sum(-1)
        if weight.shape[1] != up.n_neurons:
            notes.append(
                f"no edges from {up.name} to {down.name}: {down.name} reads {weight.shape[1]} "
                f"inputs, not the {up.n_neurons} neurons of {up.name}"
            )
            continue
        downstream = chosen[down.name]
        upstream = chosen[up.name]
        if down is output:
            row = weight[int(attribution.target_class)]
            if attribution.objective == "margin" and n_classes > 1:
                row = (n_classes * row - weight.sum(0)) / (n_classes - 1)
            rows = row[None, :]
            attribution_down = np.ones((len(samples), 1))
        else:
            rows = weight[downstream - down.first_id]
            attribution_down = per_sample[:, downstream]
        acts_up = acts[:, upstream]  # (S, U)
        # mean_s a_u(s) A_v(s) -> (U, V), times W[v, u]
        co = acts_up.T @ attribution_down / max(len(samples), 1)
        flows = rows[:, upstream - up.first_id].T * co  # (U, V)
        for i, u in enumerate(upstream):
            for j, v in enumerate(downstream):
                edge_rows.append(
                    (int(u), int(v), float(rows[j, u - up.first_id]), float(flows[i, j]))
                )
    edges = pd.DataFrame(edge_rows, columns=["source", "target", "weight", "flow"])
    return Trail(attribution, int(k), nodes, edges, tuple(notes))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two vectors (average ranks for ties); NaN when either
    is constant or fewer than three pairs are finite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return float("nan")
    ra = pd.Series(a[keep]).rank().to_numpy()
    rb = pd.Series(b[keep]).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def method_agreement(attributions: Mapping[str, Attribution]) -> pd.DataFrame:
    """How far different methods agree on the order of each layer's neurons.

    Returns
    -------
    One row per layer and pair of methods: ``layer``, ``method_a``, ``method_b``,
    ``spearman`` (rank correlation of their scores over the layer's neurons) and
    ``top_match`` (whether both put the same neuron first by |score|).
    """
    names = list(attributions)
    rows = []
    if not names:
        return pd.DataFrame(columns=["layer", "method_a", "method_b", "spearman", "top_match"])
    first = attributions[names[0]]
    for info in first.layers:
        block = slice(info.first_id, info.last_id + 1)
        if not np.isfinite(first.scores[block]).any():
            continue
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                sa, sb = attributions[a].scores[block], attributions[b].scores[block]
                rows.append(
                    (
                        info.name,
                        a,
                        b,
                        spearman(sa, sb),
                        bool(np.nanargmax(np.abs(sa)) == np.nanargmax(np.abs(sb))),
                    )
                )
    return pd.DataFrame(rows, columns=["layer", "method_a", "method_b", "spearman", "top_match"])
