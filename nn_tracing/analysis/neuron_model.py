"""``NeuronModel``: a traced model with a hook point on every traced layer's neurons.

Attribution, ablation, pruning and intervention all need the same thing: the network of a
trace (rebuilt at one of its epochs), with a handle on what each neuron passes on. A
:class:`NeuronModel` wraps a copy of the module and puts an identity :class:`HookPoint`
(TransformerLens style) at every traced layer — at the output of the module whose output is the
neuron's activation in the trace (the activation module after a ``Linear``/``Conv``, else the
layer itself) — and one at the input, so that

* Captum's layer methods can target ``model.point(layer)`` for any traced layer (the input
  features included), whatever the architecture;
* an edit installed on a hook point (``a * mul + add`` per neuron) zeroes, mean-replaces, clamps
  or scales neurons in every forward pass, for many ablation sets at once (the batch holds one
  copy of the probe per set);
* :meth:`NeuronModel.activations` gives every neuron's activation on any input with the trace's
  definition (input features first, channels averaged over positions), so a result can be
  checked against ``trace.probe_activations(epoch)``.

Nothing here imports Streamlit.
"""

from __future__ import annotations

import contextlib
import copy
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..trace import LayerInfo
from ..tracer import as_positions, discover_layers, logits_of, module_device

if TYPE_CHECKING:
    from ..trace import NetworkTrace

__all__ = [
    "OBJECTIVES",
    "HookPoint",
    "NeuronEdit",
    "NeuronModel",
    "edits_from_sets",
]

#: What a target class's score is: its logit, or its margin over the mean of the other logits.
OBJECTIVES: dict[str, str] = {
    "logit": "the class logit",
    "margin": "the class logit minus the mean of the other logits",
}

#: An edit of one layer for a batch of sets: ``(mul, add)``, each of shape (n_sets, n_neurons);
#: the neuron's activation ``a`` becomes ``a * mul + add``.
NeuronEdit = tuple[torch.Tensor, torch.Tensor]


class HookPoint(nn.Module):
    """Identity on a traced layer's neurons, with an optional edit.

    ``edit`` is ``None`` (identity) or a callable ``activation -> activation``. Captum hooks
    this module to read and replace the layer's activations.
    """

    def __init__(self, layer: LayerInfo, feature_dim: int) -> None:
        super().__init__()
        self.layer = layer
        self.feature_dim = feature_dim
        self.edit: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.edit is None else self.edit(x)

    def extra_repr(self) -> str:
        return f"layer={self.layer.name!r}, neurons={self.layer.n_neurons}"


@dataclass(frozen=True)
class _Site:
    """Where a traced layer's activation comes out: which module, which call of it."""

    module: str
    call: int


class NeuronModel(nn.Module):
    """A copy of ``module`` with a :class:`HookPoint` on every traced layer.

    Parameters
    ----------
    module
        The network (its weights are used as they are; see :meth:`from_trace`).
    layers
        The trace's layers (``trace.layers``), ``input`` first; matched to the module's layers
        by their qualified module names.
    example_input
        A small batch (tensor) for the dry run that finds where each activation comes out.
    objective
        What the outputs are: ``"logit"`` (the logits) or ``"margin"`` (each class's logit
        minus the mean of the other logits), see :data:`OBJECTIVES`.
    copy_module
        Work on a deep copy (default), so that the caller's module never carries our hooks.

    Notes
    -----
    ``forward(x)`` returns a tensor of shape (n_samples, n_classes). An edit on a hook point
    whose batch is ``n_sets`` copies of the input (``x.repeat(n_sets, 1)``) applies set ``s``
    to rows ``s * B … (s + 1) * B - 1``.
    """

    def __init__(
        self,
        module: nn.Module,
        layers: Sequence[LayerInfo],
        example_input: torch.Tensor,
        *,
        objective: str = "logit",
        copy_module: bool = True,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective={objective!r}: use one of {', '.join(OBJECTIVES)}")
        self.model = copy.deepcopy(module) if copy_module else module
        self.model.eval()
        self.objective = objective
        self.layers = list(layers)
        if not self.layers or self.layers[0].kind != "input":
            raise ValueError("layers must start with the input layer (use trace.layers)")
        device = module_device(self.model)
        example = torch.as_tensor(example_input).to(device)
        found, n_inputs, input_dim = discover_layers(self.model, (example,), {}, None)
        by_module = {layer.info.module: layer for layer in found}
        self._sites: list[_Site] = []
        feature_dims = [input_dim]
        for info in self.layers[1:]:
            layer = by_module.get(info.module)
            if layer is None or layer.info.n_neurons != info.n_neurons:
                raise ValueError(
                    f"the module has no traced layer {info.module!r} with {info.n_neurons} "
                    "neurons; is it the architecture of this trace?"
                )
            self._sites.append(_Site(layer.source_module, layer.source_call))
            feature_dims.append(layer.feature_dim)
        if n_inputs != self.layers[0].n_neurons:
            raise ValueError(
                f"the example input has {n_inputs} features; the trace has "
                f"{self.layers[0].n_neurons}"
            )
        self.points = nn.ModuleList(
            HookPoint(info, dim) for info, dim in zip(self.layers, feature_dims, strict=True)
        )
        self._index = {info.name: i for i, info in enumerate(self.layers)}
        self._calls: dict[str, int] = defaultdict(int)
        modules = dict(self.model.named_modules())
        targets: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, site in enumerate(self._sites, start=1):
            targets[site.module].append((site.call, i))
        self._handles = [
            modules[name].register_forward_hook(self._make_hook(name, dict(calls)))
            for name, calls in targets.items()
        ]
        self._hooked = [
            (name, handle.id) for name, handle in zip(targets, self._handles, strict=True)
        ]

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_trace(
        cls,
        trace: NetworkTrace,
        epoch: int | None = None,
        *,
        objective: str = "logit",
        device: str | torch.device | None = None,
    ) -> NeuronModel:
        """The trace's network with its weights at ``epoch`` (``None``: the final weights),
        on ``device`` (default: the CPU).

        Raises
        ------
        ValueError
            The trace has no probe, no weights at that epoch, or comes from a custom model
            that was not attached (the message says which and what to do).
        """
        from ..models import model_from_trace

        if trace.probe is None:
            raise ValueError(
                "this trace has no probe set (its statistics were streamed over training "
                "batches), so there are no fixed inputs to attribute, ablate or intervene on"
            )
        module = model_from_trace(trace, epoch)
        if device is not None:
            module = module.to(device)
        x = torch.as_tensor(trace.probe[0][:2])
        return cls(module, trace.layers, x, objective=objective, copy_module=False)

    def _make_hook(self, name: str, calls: dict[int, int]):
        def hook(mod: nn.Module, inputs: Any, output: Any) -> Any:
            call = self._calls[name]
            self._calls[name] += 1
            index = calls.get(call)
            if index is None or not isinstance(output, torch.Tensor):
                return None
            return self.points[index](output)

        return hook

    # -- structure ---------------------------------------------------------------------------
    @property
    def n_neurons(self) -> int:
        return sum(info.n_neurons for info in self.layers)

    @property
    def device(self) -> torch.device:
        return module_device(self.model)

    def layer(self, name: str) -> LayerInfo:
        if name not in self._index:
            raise KeyError(
                f"no layer {name!r}; layers: {', '.join(info.name for info in self.layers)}"
            )
        return self.layers[self._index[name]]

    def layer_of(self, neuron_id: int) -> LayerInfo:
        for info in self.layers:
            if info.first_id <= neuron_id <= info.last_id:
                return info
        raise KeyError(f"no neuron n_{neuron_id}; ids run from n_0 to n_{self.n_neurons - 1}")

    def point(self, layer: str) -> HookPoint:
        """The hook point of ``layer`` (its output is the layer's activation)."""
        return self.points[self._index[self.layer(layer).name]]

    # -- running -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._calls.clear()
        return self.score(logits_of(self.model(self.points[0](x))))

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """The objective's scores from the network's logits, shape (n_samples, n_classes)."""
        if self.objective == "margin":
            k = logits.shape[-1]
            if k < 2:
                return logits
            return (k * logits - logits.sum(-1, keepdim=True)) / (k - 1)
        return logits

    def logits(self, x: torch.Tensor | np.ndarray, chunk_size: int = 8192) -> torch.Tensor:
        """Outputs on ``x`` without gradients, in chunks: tensor (n_samples, n_classes)."""
        x = torch.as_tensor(x).to(self.device)
        with torch.no_grad():
            parts = [self(x[s : s + chunk_size]) for s in range(0, x.shape[0], chunk_size)]
        return torch.cat(parts) if parts else torch.zeros(0)

    def activations(self, x: torch.Tensor | np.ndarray, chunk_size: int = 8192) -> torch.Tensor:
        """Every neuron's activation on ``x`` (with any installed edits applied).

        Returns
        -------
        tensor of shape (n_samples, n_neurons): input features first, channels averaged over
        positions — the definition of ``trace.probe_activations``.
        """
        x = torch.as_tensor(x).to(self.device)
        captured: list[list[torch.Tensor]] = [[] for _ in self.points]
        handles = []
        for i, point in enumerate(self.points):

            def keep(mod: nn.Module, inputs: Any, output: torch.Tensor, i: int = i) -> None:
                pooled = as_positions(output, mod.feature_dim).mean(1)
                captured[i].append(pooled)

            handles.append(point.register_forward_hook(keep))
        try:
            with torch.no_grad():
                for start in range(0, x.shape[0], chunk_size):
                    self(x[start : start + chunk_size])
        finally:
            for handle in handles:
                handle.remove()
        return torch.cat([torch.cat(parts) for parts in captured], dim=1).float()

    @contextlib.contextmanager
    def edited(self, edits: Mapping[str, NeuronEdit], n_sets: int = 1) -> Iterator[NeuronModel]:
        """Install per-neuron edits for the duration of a ``with`` block.

        Parameters
        ----------
        edits
            ``{layer name: (mul, add)}`` with ``mul`` and ``add`` of shape (n_sets, n_neurons
            of the layer): activation ``a`` of set ``s`` becomes ``a * mul[s] + add[s]``.
        n_sets
            How many sets the batch holds; the batch is ``n_sets`` equal blocks of samples
            (with ``n_sets == 1`` the edit applies to a batch of any size).
        """
        installed = []
        try:
            for name, (mul, add) in edits.items():
                point = self.point(name)
                mul = mul.to(self.device, torch.float32)
                add = add.to(self.device, torch.float32)
                if mul.shape != (n_sets, point.layer.n_neurons) or add.shape != mul.shape:
                    raise ValueError(
                        f"edit of {name!r}: mul and add must have shape "
                        f"({n_sets}, {point.layer.n_neurons})"
                    )
                point.edit = _affine(mul, add, point.feature_dim, n_sets)
                installed.append(point)
            yield self
        finally:
            for point in installed:
                point.edit = None

    @contextlib.contextmanager
    def weight_edited(self, layer: str, row: int, column: int, value: float) -> Iterator[float]:
        """Set one incoming weight of a Linear layer for a ``with`` block; yields the old value.

        ``row`` is the neuron's index within ``layer``, ``column`` the index of the input it
        reads (a neuron of the previous traced layer for an MLP).
        """
        info = self.layer(layer)
        if info.weight_key is None:
            raise ValueError(f"layer {layer!r} has no weights")
        weight = dict(self.model.named_parameters()).get(info.weight_key)
        if weight is None or weight.dim() != 2:
            raise ValueError(
                f"editing one weight needs a Linear layer; {layer!r} is a {info.kind} layer"
            )
        if not (0 <= row < weight.shape[0] and 0 <= column < weight.shape[1]):
            raise ValueError(
                f"weight ({row}, {column}) is outside {layer!r}'s weight matrix of shape "
                f"{tuple(weight.shape)}"
            )
        with torch.no_grad():
            old = float(weight[row, column])
            weight[row, column] = value
        try:
            yield old
        finally:
            with torch.no_grad():
                weight[row, column] = old

    def plain_copy(self) -> nn.Module:
        """A deep copy of the wrapped module without this model's hooks (a plain network)."""
        module = copy.deepcopy(self.model)
        modules = dict(module.named_modules())
        for name, hook_id in self._hooked:
            modules[name]._forward_hooks.pop(hook_id, None)
        return module

    def remove_hooks(self) -> None:
        """Remove the hooks from the wrapped module (the model then runs without edits)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _affine(
    mul: torch.Tensor, add: torch.Tensor, feature_dim: int, n_sets: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``a -> a * mul + add`` per set: the batch is ``n_sets`` blocks of equal size, and the
    (n_sets, N) coefficients broadcast over each block (no copy of them per row)."""
    zero_add = not bool(add.any())

    def edit(a: torch.Tensor) -> torch.Tensor:
        dim = feature_dim % a.dim()
        # view the batch as (n_sets, B, ...): set s covers rows s*B … (s+1)*B - 1
        blocks = a.reshape(n_sets, a.shape[0] // n_sets, *a.shape[1:])
        shape = [1] * blocks.dim()
        shape[0] = n_sets
        shape[dim + 1] = a.shape[dim]
        out = blocks * mul.reshape(shape)
        if not zero_add:
            out = out + add.reshape(shape)
        return out.reshape(a.shape)

    return edit


def edits_from_sets(
    model: NeuronModel,
    sets: Sequence[Sequence[int]],
    *,
    fill: torch.Tensor | None = None,
) -> dict[str, NeuronEdit]:
    """Edits that replace the neurons of each set (global ids) by ``fill`` (zero by default).

    Parameters
    ----------
    sets
        ``n_sets`` collections of global neuron ids (any layers; output logits included).
    fill
        Tensor of shape (n_neurons,): the value an ablated neuron takes (e.g. its mean
        activation on the probe); ``None`` zeroes.

    Returns
    -------
    ``{layer: (mul, add)}`` for every layer some set touches, each of shape (n_sets, width).
    """
    n_sets = len(sets)
    edits: dict[str, NeuronEdit] = {}
    for s, ids in enumerate(sets):
        for neuron in ids:
            info = model.layer_of(int(neuron))
            if info.name not in edits:
                edits[info.name] = (
                    torch.ones(n_sets, info.n_neurons),
                    torch.zeros(n_sets, info.n_neurons),
                )
            mul, add = edits[info.name]
            j = int(neuron) - info.first_id
            mul[s, j] = 0.0
            add[s, j] = 0.0 if fill is None else float(fill[int(neuron)])
    return edits
