"""Distributed tracing: every rank measures its share, the ranks merge per-neuron statistics.

On each rank of a ``torch.distributed`` job (DDP; FSDP2 where PyTorch runs it), the tracer
measures only its share: with a probe, a contiguous shard of it (shard sizes differ by at most
one sample, in rank order, so rank 0's shard comes first); without one, the rank's own training
batches. The ranks then merge *sufficient statistics* — never raw activations — so that every
rank ends with the metric matrix a single process would have measured on the whole probe (or on
every rank's batches), to float rounding:

* **One ``all_reduce(SUM)`` on one flat float64 buffer** per recorded epoch: sample counts,
  per-neuron sums and sums of squares (variances are merged exactly as
  ``E[x²] − E[x]²`` in float64), active counts, per-class sums (selectivity), the probe-loss
  gradient of every traced weight (each rank's chunk losses are weighted by their share of the
  *whole* probe, so the summed gradient is the gradient of the mean probe loss), the summed
  loss and correct predictions, and the incoming-weight columns of the neurons a rank owns.
* **One ``all_reduce(MAX)`` on a flat buffer of 2 values per neuron**: the maxima and the
  negated minima. A maximum is not a sum, so this is the one extra reduction; packing minima as
  ``max(−x)`` keeps it to one. (Putting each rank's extrema in per-rank slots of the SUM buffer
  would make it one call, at ``world_size × 2`` values per neuron: a cost that grows with the
  job, for a saving of one small call per recorded epoch.)
* **Probe activations and logits are gathered to rank 0** (``gather``, one float32 buffer of
  ``ceil(n_probe / world_size) × (n_neurons + n_outputs)`` per rank), so rank 0's trace keeps
  the same ``activations``, ``logits`` and ``predictions`` as a single-process trace. Memory is
  bounded by what a single-process trace holds: other ranks hold their own shard only; rank 0
  receives ``world_size`` such buffers (the whole probe's activations, padded by at most one
  row per rank) and assembles the same matrix, so its peak is about twice the one epoch's
  activation matrix that the trace keeps anyway. Nothing is gathered without a probe.

Rank 0 writes the run directory and returns the full trace; every other rank's trace has the
same merged metrics and probe history but no per-epoch tensors, and writes nothing.

Weight columns need no gather either way: under DDP every rank holds the same weights and rank
0 contributes them; under FSDP2 (``fully_shard``), which shards ``Linear.weight`` along dim 0,
each rank holds whole output neurons and contributes the columns of its own rows. A sharded
weight is never in autograd's graph (each forward uses a gathered copy), so under FSDP2 the
probe gradient, and the gradient hooks of batch streaming, take that gathered weight instead
(:class:`GatheredGradientHooks`); FSDP2 runs on CPU with gloo and is tested there.

Every rank must construct :class:`~nn_tracing.tracer.TraceableNN` and record the same epochs:
the collectives above run inside ``__init__`` (``E_0``), ``end_epoch`` and ``finish``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ._capture import ActivationCapture
from ._discovery import Layout, TracedLayer, replace_info
from ._hooks import hooks
from ._probe import ProbeMeasurement, pooled_matrix
from ._stats import ACT_COLUMNS, Accumulator, WeightColumns, selectivity_of_means, weight_rows

__all__ = [
    "Collective",
    "GatheredGradientHooks",
    "ShardedProbe",
    "is_dtensor",
    "merge_stream",
    "resolve_collective",
    "state_arrays",
    "unwrap_data_parallel",
]

Tensors = dict[str, torch.Tensor]


def unwrap_data_parallel(module: nn.Module) -> nn.Module:
    """The module that DDP (or ``DataParallel``) wraps; any other module itself.

    The tracer discovers, hooks and measures this inner module; training forwards still go
    through the wrapper, so DDP synchronises gradients as usual.
    """
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while isinstance(module, wrappers):
        module = module.module
    return module


@dataclass(frozen=True)
class Collective:
    """A process group as the tracer uses it: this rank, the group's size, its backend."""

    group: Any
    rank: int
    world_size: int
    backend: str

    # -- who measures what ----------------------------------------------------------------
    def shard(self, n: int, rank: int | None = None) -> slice:
        """This rank's (or ``rank``'s) contiguous share of ``n`` samples, in rank order;
        sizes differ by at most one."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(n, self.world_size)
        start = rank * base + min(rank, extra)
        return slice(start, start + base + (1 if rank < extra else 0))

    def n_chunks(self, n: int, chunk_size: int) -> int:
        """Forwards per rank over a shard of ``n`` samples: the same number on every rank (a
        sharded model gathers its weights in every forward, a collective)."""
        largest = -(-n // self.world_size)
        return max(1, min(-(-largest // chunk_size), n // self.world_size))

    def meta(self) -> dict[str, Any]:
        """JSON-ready description for ``trace.meta["distributed"]``."""
        return {"world_size": self.world_size, "rank": self.rank, "backend": self.backend}

    # -- collectives ----------------------------------------------------------------------
    def merge(self, sums: Tensors, maxima: Tensors) -> tuple[Tensors, Tensors]:
        """Sum ``sums`` and take the maximum of ``maxima`` over the ranks.

        Each dict is packed into one flat float64 buffer: one ``all_reduce`` each (none for an
        empty dict). Every rank must pass the same names, shapes and order.
        """
        return self._reduce(sums, dist.ReduceOp.SUM), self._reduce(maxima, dist.ReduceOp.MAX)

    def _reduce(self, parts: Tensors, op: Any) -> Tensors:
        if not parts:
            return {}
        home = next(iter(parts.values())).device
        device = self._device(home)
        flat = torch.cat([p.detach().reshape(-1).to(device, torch.float64) for p in parts.values()])
        dist.all_reduce(flat, op=op, group=self.group)
        flat = flat.to(home)
        merged, offset = {}, 0
        for name, part in parts.items():
            merged[name] = flat[offset : offset + part.numel()].reshape(part.shape)
            offset += part.numel()
        return merged

    def rank0_decides(self, value: bool, device: torch.device) -> bool:
        """Rank 0's ``value`` on every rank (one ``broadcast`` of a single flag): a choice
        only rank 0 can make, such as the trace budget measured on the run directory it
        writes, taken by every rank so that all of them go on calling the same collectives."""
        flag = torch.tensor([1.0 if value else 0.0], device=self._device(device))
        src = 0 if self.group is None else dist.get_global_rank(self.group, 0)
        dist.broadcast(flag, src=src, group=self.group)
        return bool(flag.item() > 0.5)

    def gather_rows(self, rows: torch.Tensor, n: int) -> torch.Tensor | None:
        """Every rank's rows of a (shard, width) float32 matrix, on rank 0: (n, width).

        ``None`` on other ranks. Each rank sends ``ceil(n / world_size)`` rows (padded).
        """
        largest = -(-n // self.world_size)
        send = torch.zeros((largest, rows.shape[1]), dtype=torch.float32)
        send[: rows.shape[0]] = rows.detach().float().cpu()
        send = send.to(self._device(rows.device))
        receive = None
        if self.rank == 0:
            receive = [torch.empty_like(send) for _ in range(self.world_size)]
        dst = 0 if self.group is None else dist.get_global_rank(self.group, 0)
        dist.gather(send, receive, dst=dst, group=self.group)
        if receive is None:
            return None
        pieces = []
        for rank, buffer in enumerate(receive):
            part = self.shard(n, rank)
            pieces.append(buffer[: part.stop - part.start])
        return torch.cat(pieces).cpu()

    def _device(self, device: torch.device) -> torch.device:
        """Where a buffer must live for this backend (gloo: the host)."""
        return torch.device("cpu") if self.backend == "gloo" else device


def resolve_collective(process_group: Any = None) -> Collective | None:
    """The group to merge over, or ``None`` to trace this process alone.

    ``None``: the default group if ``torch.distributed`` is initialised with more than one
    rank; ``False``: none; a ``ProcessGroup``: that group.
    """
    if process_group is False:
        return None
    if not (dist.is_available() and dist.is_initialized()):
        if process_group is None:
            return None
        raise ValueError("process_group= was given but torch.distributed is not initialised")
    group = process_group  # None: the default group
    world_size = dist.get_world_size(group)
    if world_size == 1:
        return None
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError("this process is not a member of process_group")
    return Collective(group, rank, world_size, str(dist.get_backend(group)))


# -- accumulators as sums and maxima -------------------------------------------------------
def put_accumulator(
    sums: Tensors,
    maxima: Tensors,
    key: str,
    acc: Accumulator,
    n_neurons: int,
    device: torch.device,
) -> None:
    """An accumulator's sufficient statistics under ``key`` (zeros and ``-inf`` if empty)."""
    if acc.total is None:
        zeros = torch.zeros(n_neurons, dtype=torch.float64, device=device)
        total, total_sq, active = zeros, zeros, zeros
        top = bottom = torch.full_like(zeros, -torch.inf)
    else:
        total, total_sq, active = acc.total, acc.total_sq, acc.active
        top, bottom = acc.maximum.double(), -acc.minimum.double()
    sums[key + "/count"] = torch.tensor([float(acc.count)], dtype=torch.float64, device=device)
    sums[key + "/total"], sums[key + "/total_sq"], sums[key + "/active"] = total, total_sq, active
    maxima[key + "/max"], maxima[key + "/neg_min"] = top, bottom


def take_accumulator(sums: Tensors, maxima: Tensors, key: str, positions: int = 1) -> Accumulator:
    """The merged :class:`Accumulator` stored under ``key`` by :func:`put_accumulator`."""
    return Accumulator(
        count=round(float(sums[key + "/count"][0])),
        positions=positions,
        total=sums[key + "/total"],
        total_sq=sums[key + "/total_sq"],
        minimum=-maxima[key + "/neg_min"],
        maximum=maxima[key + "/max"],
        active=sums[key + "/active"],
    )


# -- the probe, sharded --------------------------------------------------------------------
class ShardedProbe(ProbeMeasurement):
    """:class:`ProbeMeasurement` of one rank's shard of the probe, merged over the ranks.

    ``x`` and ``y`` are the whole probe, the same on every rank (the trace keeps it); the rank
    measures ``x[collective.shard(n)]``.
    """

    def __init__(self, *args: Any, collective: Collective, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._collective = collective
        if self.x.shape[0] < collective.world_size:
            raise ValueError(
                f"the probe has {self.x.shape[0]} samples for {collective.world_size} ranks; "
                "give every rank at least one"
            )
        self._check_same_probe()

    def _check_same_probe(self) -> None:
        """``ValueError`` on every rank unless every rank was given the same probe (compared
        by size and sums, to rounding: one small ``all_reduce`` at construction)."""
        x, y = self.x.detach().double(), self.y.detach().double()
        summary = torch.stack([torch.tensor(float(x.shape[0])), x.sum(), (x * x).sum(), y.sum()])
        summary = summary.to(torch.float64)
        _, extremes = self._collective.merge({}, {"probe": torch.cat([summary, -summary])})
        top, bottom = extremes["probe"].chunk(2)
        if not torch.allclose(top, -bottom, rtol=1e-6, atol=1e-9):  # sums may round apart
            raise ValueError(
                "the ranks were given different probe sets; give every rank the whole probe "
                "(each rank measures its own shard of it)"
            )

    def measure(
        self, device: torch.device
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
        """See :meth:`ProbeMeasurement.measure`; ``tensors`` is empty except on rank 0."""
        if self.x.device != device:
            self.x, self.y = self.x.to(device), self.y.to(device)
        coll, layout, n = self._collective, self._layout, self.x.shape[0]
        part = coll.shard(n)
        x, y = self.x[part], self.y[part]
        wanted = [p for p in (layer.weight for layer in layout.layers) if _differentiable(p)]
        capture = ActivationCapture(self._module, layout.layers, keep_pooled=True)
        with hooks(capture.forward_hooks(), forward_pre=self._gathered_weights(wanted)):
            n_chunks = coll.n_chunks(n, self._chunk_size)
            logits, loss, grads = self._run(capture, wanted, device, x, y, n, n_chunks)
        acts = pooled_matrix(layout, capture.accumulators, x, device)
        sums, maxima = self._local_statistics(acts, capture.accumulators, x, device)
        sums["loss"] = loss.detach().double().reshape(1)
        classes = logits.dim() == 2 and not y.dtype.is_floating_point
        if classes:
            sums["correct"] = (logits.argmax(1) == y).double().sum().reshape(1)
        _put_gradients(sums, layout.layers, grads, device)
        sums["weights"] = owned_weight_block(self._weights, layout, coll.rank, device)
        sums, maxima = coll.merge(sums, maxima)

        metrics = torch.cat([_weight_columns(sums, layout), self._act_block(sums, maxima)], 1)
        extra = {"probe_loss": float(sums["loss"][0])}
        if classes:
            extra["probe_acc"] = float(sums["correct"][0]) / n
        return metrics.float().cpu().numpy(), self._gathered(acts, logits), extra

    def _gathered_weights(
        self, wanted: list[torch.Tensor]
    ) -> list[tuple[nn.Module, Callable[[nn.Module, Any], None]]]:
        """Forward pre-hooks that put the weight each forward uses into ``wanted``.

        A sharded weight (FSDP2) is gathered for each forward into a plain tensor, and only
        that tensor is in the graph: the probe-loss gradient is taken with respect to it (the
        full weight: each rank's part of the gradient, summed over the ranks like DDP's).
        Nothing for replicated weights.
        """
        if not any(is_dtensor(weight) for weight in wanted):
            return []
        modules = dict(self._module.named_modules())
        differentiable = [layer for layer in self._layout.layers if _differentiable(layer.weight)]
        pre_hooks = []
        for index, layer in enumerate(differentiable):

            def take(module: nn.Module, inputs: Any, index: int = index) -> None:
                wanted[index] = module.weight

            pre_hooks.append((modules[layer.info.module], take))
        return pre_hooks

    def _local_statistics(
        self,
        acts: torch.Tensor,
        accumulators: list[Accumulator],
        x: torch.Tensor,
        device: torch.device,
    ) -> tuple[Tensors, Tensors]:
        """This rank's sums and maxima: pooled activations, per-class sums, positions."""
        layout, sums, maxima = self._layout, {}, {}
        pooled = Accumulator()
        pooled.add(acts[:, None, :], keep_pooled=False)
        put_accumulator(sums, maxima, "pooled", pooled, layout.n_neurons, device)
        onehot = self._class_onehot()
        if onehot is not None and onehot.shape[1] >= 2:
            local = onehot[self._collective.shard(self.x.shape[0])].double()
            sums["class_sums"] = local.T @ acts.double()
        if x.dim() > 2:
            inputs = Accumulator()
            inputs.add(layout.input_positions(x), keep_pooled=False)
            put_accumulator(sums, maxima, "input", inputs, layout.input_info.n_neurons, device)
        for index, (layer, acc) in enumerate(zip(layout.layers, accumulators, strict=True)):
            if acc.positions > 1:
                put_accumulator(sums, maxima, f"layer{index}", acc, layer.info.n_neurons, device)
        return sums, maxima

    def _act_block(self, sums: Tensors, maxima: Tensors) -> torch.Tensor:
        """``act_mean … selectivity`` of every neuron from the merged statistics: (N, 6)."""
        layout = self._layout
        pooled = take_accumulator(sums, maxima, "pooled").stats()
        block = torch.stack([pooled[name] for name in ACT_COLUMNS], dim=1)
        if "class_sums" in sums:
            counts = self._class_onehot().double().sum(0)  # type: ignore[union-attr]
            means = sums["class_sums"] / counts[:, None]
            selectivity = selectivity_of_means(means, pooled["act_min"])
        else:
            selectivity = torch.full_like(pooled["act_mean"], float("nan"))
        block = torch.cat([block, selectivity[:, None]], dim=1)
        if "input/count" in sums:
            inputs = take_accumulator(sums, maxima, "input")
            block[: layout.input_info.n_neurons, :5] = inputs.block()
        for index, layer in enumerate(layout.layers):
            if f"layer{index}/count" in sums:
                ids = layer.info.ids
                positions = take_accumulator(sums, maxima, f"layer{index}")
                block[ids.start : ids.stop, :5] = positions.block()
        return block

    def _gathered(self, acts: torch.Tensor, logits: torch.Tensor) -> dict[str, np.ndarray]:
        """Activations, logits and predictions of the whole probe on rank 0; ``{}`` elsewhere."""
        n, n_neurons = self.x.shape[0], acts.shape[1]
        flat_logits = logits.detach().float().reshape(logits.shape[0], -1)
        rows = self._collective.gather_rows(torch.cat([acts.float(), flat_logits], 1), n)
        if rows is None:
            return {}
        all_logits = rows[:, n_neurons:].reshape(n, *logits.shape[1:])
        predictions = (
            all_logits.argmax(1).to(torch.int64)
            if all_logits.dim() == 2
            else torch.zeros(n, dtype=torch.int64)
        )
        return {
            "activations": rows[:, :n_neurons].contiguous().numpy(),
            "logits": all_logits.contiguous().numpy(),
            "predictions": predictions.numpy(),
        }


def _differentiable(weight: torch.Tensor | None) -> bool:
    return weight is not None and weight.requires_grad


def _put_gradients(
    sums: Tensors,
    layers: list[TracedLayer],
    grads: list[torch.Tensor | None],
    device: torch.device,
) -> None:
    """Each traced weight's probe-loss gradient (zeros where none) and whether it had one.

    ``grads`` holds one entry per layer with a differentiable weight, in layer order.
    """
    differentiable = iter(grads)
    present = []
    for index, layer in enumerate(layers):
        if not _differentiable(layer.weight):
            continue
        grad = next(differentiable)
        shape = layer.weight.shape  # type: ignore[union-attr]  # a DTensor's: the global one
        sums[f"grad{index}"] = (
            _local(grad).double() if grad is not None else torch.zeros(shape, device=device)
        )
        present.append(0.0 if grad is None else 1.0)
    sums["grad_present"] = torch.tensor(present, dtype=torch.float64, device=device)


def _weight_columns(sums: Tensors, layout: Layout) -> torch.Tensor:
    """The merged weight columns with ``grad_norm`` from the summed gradients: (N, 7)."""
    block = sums["weights"].clone()
    present = iter(sums["grad_present"].tolist())
    for index, layer in enumerate(layout.layers):
        if not _differentiable(layer.weight):
            continue
        if next(present) > 0:
            rows = weight_rows(sums[f"grad{index}"])
            ids = layer.info.ids
            block[ids.start : ids.stop, 6] = torch.linalg.vector_norm(rows, dim=1)
    return block


# -- weights: whole neurons per rank -------------------------------------------------------
def owned_weight_block(
    weights: WeightColumns, layout: Layout, rank: int, device: torch.device
) -> torch.Tensor:
    """This rank's part of the weight columns (``grad_norm`` NaN): float64 (N, 7).

    Rows of neurons another rank owns are 0, so the sum over ranks is the whole block.
    Replicated weights (DDP) are owned by rank 0; a weight sharded along dim 0 (FSDP2's
    ``Shard(0)``) by the ranks that hold its rows.
    """
    n_inputs = layout.input_info.n_neurons
    blocks = [weights.block(None, None, n_inputs, device).double()]
    if rank != 0:
        blocks[0] = torch.zeros_like(blocks[0])
    for layer in layout.layers:
        n = layer.info.n_neurons
        sharded = _local_layer(layer)
        if sharded is None:
            block = weights.block(layer, None, n, device).double()
            blocks.append(block if rank == 0 else torch.zeros_like(block))
            continue
        local, offset = sharded
        block = torch.zeros((n, 7), dtype=torch.float64, device=device)
        rows = local.info.n_neurons
        block[offset : offset + rows] = weights.block(local, None, rows, device).double()
        blocks.append(block)
    return torch.cat(blocks)


def is_dtensor(value: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without DTensor
        return False
    return isinstance(value, DTensor)


class GatheredGradientHooks:
    """Gradient hooks on the weights that FSDP2 gathers for each forward.

    A sharded weight (a DTensor) never receives a gradient in autograd: the forward uses the
    full weight gathered into a plain parameter, and FSDP2 reduce-scatters that parameter's
    gradient into the shard itself. A forward pre-hook (run after FSDP2's own, which gathers)
    puts the gradient hook on that gathered parameter once — FSDP2 keeps the same object from
    one forward to the next — and :meth:`close` removes every such hook. The hook sees the
    rank's full-weight gradient of its batch, before any reduction, as under DDP.

    Parameters
    ----------
    module
        The model.
    targets
        ``(qualified name of the traced layer's module, gradient hook)`` pairs.
    """

    def __init__(
        self, module: nn.Module, targets: list[tuple[str, Callable[[torch.Tensor], None]]]
    ) -> None:
        self._modules = dict(module.named_modules())
        self._targets = targets
        self._handles: dict[int, Any] = {}

    def pre_hooks(self) -> list[tuple[nn.Module, Callable[[nn.Module, Any], None]]]:
        """``(module, pre-hook)`` pairs for :func:`~._hooks.hooks`."""
        return [(self._modules[name], self._pre_hook(hook)) for name, hook in self._targets]

    def _pre_hook(self, hook: Callable[[torch.Tensor], None]) -> Callable[[nn.Module, Any], None]:
        def take(module: nn.Module, inputs: Any) -> None:
            weight = module.weight
            plain = isinstance(weight, torch.Tensor) and not is_dtensor(weight)
            if plain and weight.requires_grad and id(weight) not in self._handles:
                self._handles[id(weight)] = weight.register_hook(hook)

        return take

    def close(self) -> None:
        """Remove the gradient hooks put on gathered weights."""
        for handle in self._handles.values():
            handle.remove()
        self._handles.clear()


def _local(value: torch.Tensor) -> torch.Tensor:
    return value.full_tensor() if is_dtensor(value) else value


def _local_layer(layer: TracedLayer) -> tuple[TracedLayer, int] | None:
    """A view of ``layer`` on this rank's rows of a dim-0-sharded weight, and their offset;
    ``None`` for a replicated weight.

    Raises
    ------
    NotImplementedError
        For a DTensor weight sharded in any other way than ``Shard(0)`` on a 1-D mesh.
    """
    weight = layer.weight
    if not is_dtensor(weight):
        return None
    from torch.distributed.tensor import Shard

    placements = tuple(weight.placements)  # type: ignore[union-attr]
    if len(placements) != 1 or placements[0] != Shard(0):
        raise NotImplementedError(
            f"layer {layer.info.name!r}: weight placement {placements}; the tracer reads "
            "weights replicated or sharded along dim 0 (FSDP2's default) on a 1-D mesh"
        )
    local = weight.to_local()  # type: ignore[union-attr]
    mesh = weight.device_mesh  # type: ignore[union-attr]
    total = int(weight.shape[0])
    chunk = -(-total // mesh.size())
    offset = min(mesh.get_local_rank() * chunk, total)
    rows = int(local.shape[0])
    if rows != min(total, offset + chunk) - offset:
        raise NotImplementedError(f"layer {layer.info.name!r}: unexpected shard of {rows} rows")
    bias = layer.bias.to_local() if is_dtensor(layer.bias) else layer.bias  # type: ignore[union-attr]
    info = replace_info(layer.info, n_neurons=rows)  # the same first_id: it keys w_drift
    return replace(layer, info=info, weight=local, bias=bias), offset


# -- streaming over the training batches ---------------------------------------------------
def merge_stream(
    collective: Collective,
    layout: Layout,
    accumulators: list[Accumulator],
    squares: Mapping[int, tuple[torch.Tensor, int]],
    weights: WeightColumns,
    device: torch.device,
) -> tuple[list[Accumulator], list[torch.Tensor | None], torch.Tensor]:
    """Merge one recorded epoch of batch streaming over the ranks.

    Parameters
    ----------
    accumulators
        The input's accumulator, then one per traced layer (in ``layout.infos`` order).
    squares
        ``{layer index: (sum of squared gradient row norms (N,), number of batches)}``.

    Returns
    -------
    The merged accumulators; each traced layer's RMS gradient norm over every rank's batches
    (``None`` for a layer without one); the weight columns, ``grad_norm`` included: (N, 7).
    """
    sums: Tensors = {}
    maxima: Tensors = {}
    for index, (info, acc) in enumerate(zip(layout.infos, accumulators, strict=True)):
        put_accumulator(sums, maxima, f"acc{index}", acc, info.n_neurons, device)
    for index, (total, count) in squares.items():
        sums[f"squares{index}"] = total
        sums[f"batches{index}"] = torch.tensor([float(count)], dtype=torch.float64, device=device)
    sums["weights"] = owned_weight_block(weights, layout, collective.rank, device)
    sums, maxima = collective.merge(sums, maxima)
    merged = [
        take_accumulator(sums, maxima, f"acc{index}", acc.positions)
        for index, acc in enumerate(accumulators)
    ]
    grad_norms: list[torch.Tensor | None] = []
    block = sums["weights"].clone()
    for index, layer in enumerate(layout.layers):
        count = float(sums[f"batches{index}"][0]) if f"batches{index}" in sums else 0.0
        grad_norms.append((sums[f"squares{index}"] / count).sqrt() if count else None)
        if grad_norms[-1] is not None:
            block[layer.info.ids.start : layer.info.ids.stop, 6] = grad_norms[-1]
    return merged, grad_norms, block


def state_arrays(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's ``state_dict`` as NumPy arrays; sharded tensors gathered in full.

    Gathering a sharded tensor is a collective: every rank must call this together.
    """
    return {
        key: _local(value).detach().cpu().numpy().copy()
        for key, value in module.state_dict().items()
        if isinstance(value, torch.Tensor)
    }
