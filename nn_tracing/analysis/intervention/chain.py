"""The model as a chain of Linear layers: whether it is one, and ablation that uses it.

:func:`prunable` says whether the model is an ``nn.Sequential`` of Linear layers and
element-wise modules (the built-in MLP is one) — what structured pruning needs, and what lets
:class:`_ChainAblation` ablate one layer's neurons by a low-rank update of the next layer's
input instead of a whole forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ...tracer import ACTIVATION_TYPES
from ..neuron_model import NeuronModel

__all__ = ["prunable"]

_ELEMENTWISE = (*ACTIVATION_TYPES, nn.Dropout, nn.Identity)


def prunable(model: NeuronModel) -> str | None:
    """``None`` when structured pruning applies to this model, else the reason it does not.

    Pruning needs an ``nn.Sequential`` (the built-in MLP is one) of ``Linear`` layers and
    element-wise modules (activations, dropout), whose traced layers are all its Linear layers
    in order, each reading the previous one's neurons.
    """
    module = model.model
    if not isinstance(module, nn.Sequential):
        return (
            f"structured pruning needs an nn.Sequential of Linear layers and activations (the "
            f"built-in MLP is one); this model is a {type(module).__name__}"
        )
    linears = []
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            linears.append(name)
        elif not isinstance(child, _ELEMENTWISE):
            return (
                f"structured pruning needs Linear layers and element-wise modules only; "
                f"{name!r} is a {type(child).__name__}"
            )
    traced = [info.module for info in model.layers[1:]]
    if traced != linears:
        return (
            "the traced layers are not the model's Linear layers in order (a run that traced "
            "only some of its layers, traced_layers, cannot be pruned)"
        )
    for up, down in zip(model.layers[1:-1], model.layers[2:], strict=True):
        if down.fan_in != up.n_neurons:
            return f"{down.name} does not read the {up.n_neurons} neurons of {up.name}"
    if len(model.layers) < 3:
        return "the model has no hidden layer to prune"
    return None


class _ChainAblation:
    """Ablation of one layer's neurons in a chain of Linear layers, without re-running it all.

    Ablating neurons ``S`` of layer ``i`` (activations ``a``, replaced by ``f``) changes only
    the pre-activation of the next Linear layer, by a low-rank update::

        z' = z + (f_S − a_S) · W[:, S]ᵀ

    so one forward pass on the probe gives ``a`` and ``z`` for every layer, and each set
    costs that update plus the rest of the chain after the next Linear layer — instead of a
    whole forward pass. The result equals the hook-point ablation to float rounding (tested).
    """

    def __init__(
        self,
        model: NeuronModel,
        children: list[nn.Module],
        consumers: list[int],
        activations: list[torch.Tensor],
        pre: list[torch.Tensor],
        fill: torch.Tensor | None,
    ) -> None:
        self.model = model
        self.children = children
        self.consumers = consumers  # child index of the Linear that reads traced layer i
        self.activations = activations  # a_i: (B, N_i) per traced layer but the output
        self.pre = pre  # z_{i+1}: (B, N_{i+1}), the consumer's output
        self.fill = fill

    @classmethod
    def of(
        cls, model: NeuronModel, x: torch.Tensor, fill: torch.Tensor | None
    ) -> _ChainAblation | None:
        if x.dim() != 2 or prunable(model) is not None:
            return None
        children = list(model.model.children())
        names = [name for name, _ in model.model.named_children()]
        consumers = [names.index(info.module) for info in model.layers[1:]]
        captured: dict[int, torch.Tensor] = {}
        handles = [
            children[c].register_forward_hook(
                lambda m, i, o, c=c: captured.__setitem__(c, o.detach())
            )
            for c in consumers
        ]
        try:
            with torch.no_grad():
                acts = model.activations(x)
                model(x)
        finally:
            for handle in handles:
                handle.remove()
        layers = model.layers
        activations = [acts[:, info.first_id : info.last_id + 1] for info in layers[:-1]]
        pre = [captured[c] for c in consumers]
        return cls(model, children, consumers, activations, pre, fill)

    def layer_of_set(self, ids: Sequence[int]) -> int | None:
        """The traced layer (index, not the output) all of a set's neurons are in, or None."""
        if not ids:
            return None
        first = self.model.layer_of(int(ids[0]))
        index = self.model.layers.index(first)
        if index == len(self.model.layers) - 1:
            return None
        if all(first.first_id <= int(n) <= first.last_id for n in ids):
            return index
        return None

    def run(
        self, layer: int, members: list[tuple[int, Sequence[int]]], max_rows: int
    ) -> Iterator[tuple[list[int], torch.Tensor]]:
        info = self.model.layers[layer]
        consumer = self.children[self.consumers[layer]]
        weight = consumer.weight.detach()  # (N_next, N_i)
        a = self.activations[layer]  # (B, N_i)
        z = self.pre[layer]  # (B, N_next)
        n = a.shape[0]
        fill = (
            self.fill[info.first_id : info.last_id + 1].to(a)
            if self.fill is not None
            else torch.zeros(info.n_neurons, device=a.device, dtype=a.dtype)
        )
        # one zero column more: the index that pads a short set to its chunk's longest
        difference = torch.cat([fill[None, :] - a, a.new_zeros(n, 1)], dim=1)  # (B, N_i + 1)
        weight = torch.cat([weight, weight.new_zeros(weight.shape[0], 1)], dim=1)
        suffix = self.children[self.consumers[layer] + 1 :]
        per_pass = max(1, max_rows // max(n, 1))
        members = sorted(members, key=lambda member: len(member[1]))  # similar sizes together
        with torch.no_grad():
            for start in range(0, len(members), per_pass):
                chunk = members[start : start + per_pass]
                width = max(len(ids) for _, ids in chunk)
                index = torch.full((len(chunk), width), info.n_neurons, dtype=torch.long)
                for row, (_, ids) in enumerate(chunk):
                    unique = sorted({int(i) for i in ids})
                    index[row, : len(unique)] = torch.as_tensor(unique) - info.first_id
                index = index.to(a.device)
                # z'_s = z + Σ_{j ∈ S_s} (f_j − a_j) W[:, j]: only the set's own columns,
                # written once into a contiguous (sets, B, N_next) block
                columns = difference[:, index].permute(1, 0, 2)  # (s, B, m)
                rows = weight[:, index].permute(1, 2, 0)  # (s, m, N_next)
                out = torch.baddbmm(z.expand(len(chunk), *z.shape), columns, rows)
                out = out.view(len(chunk) * n, -1)
                self.model._calls.clear()
                for module in suffix:
                    out = module(out)
                out = self.model.score(out)
                yield [s for s, _ in chunk], out.reshape(len(chunk), n, -1)
