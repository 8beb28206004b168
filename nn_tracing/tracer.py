"""``TraceableNN``: wrap any ``nn.Module`` and record its neurons while it trains.

How it works
------------
* **Discovery.** A dry run on ``example_input`` (inference mode, RNG and BatchNorm statistics
  untouched) finds the traceable layers — ``Linear``, ``Conv1d`` and ``Conv2d`` — in the order
  they run, and for each the activation module that consumes its output (through normalisation
  or dropout modules). The neuron's activation is that module's output, else the layer's own.
  Neurons get global ids ``n_0 … n_m``, input features first.
* **Recording.** At every recorded epoch (see :mod:`nn_tracing.schedule`) the model runs on the
  fixed probe set in eval mode; temporary hooks reduce each layer's output on the device
  (vectorised: no Python loop over neurons) and ``torch.autograd.grad`` gives the probe-loss
  gradient without touching any ``.grad``. One host copy per recorded epoch; nothing at all in
  epochs that are not recorded.
* **Without a probe**, hooks stream the statistics over the training batches of each recorded
  epoch and weight-gradient hooks accumulate the root-mean-square gradient norm.
* **``drop_batches=False``** adds per-step statistics per layer, written into a buffer on the
  device and copied to the host once per epoch.

Tracing never changes what the model computes: a traced and an untraced run with the same seed
end with bitwise identical weights (tested).
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .schedule import EpochIntervals, normalize_epoch_intervals, should_record
from .trace import HISTORY_COLUMNS, METRICS, LayerInfo, NetworkTrace

__all__ = ["ACTIVATION_TYPES", "TRACEABLE_TYPES", "TraceableNN"]

TRACEABLE_TYPES: dict[type[nn.Module], str] = {
    nn.Linear: "linear",
    nn.Conv1d: "conv1d",
    nn.Conv2d: "conv2d",
}
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.Softsign,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Tanhshrink,
    nn.LogSigmoid,
)
# modules that may sit between a layer and its activation (element-wise or per-channel)
PASSTHROUGH_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Identity,
)

_N_METRICS = len(METRICS)
_COL = {name: i for i, name in enumerate(METRICS)}


@dataclass
class _Layer:
    """Where a traced layer's neurons live in the module and how to read them."""

    info: LayerInfo
    source_module: str  # qualified name of the module whose output is the activation
    source_call: int  # which call of that module within one forward
    feature_dim: int  # 1 for convolutions, -1 for Linear
    weight: nn.Parameter | None = None
    bias: nn.Parameter | None = None


@dataclass
class _Accumulator:
    """Running per-neuron statistics of a layer's activations, on the device."""

    count: int = 0
    positions: int = 1
    total: torch.Tensor | None = None  # float64 (N,)
    total_sq: torch.Tensor | None = None  # float64 (N,)
    minimum: torch.Tensor | None = None
    maximum: torch.Tensor | None = None
    active: torch.Tensor | None = None  # float64 (N,)
    pooled: list[torch.Tensor] = field(default_factory=list)  # (B, N) per chunk, probe only

    def add(self, values: torch.Tensor, keep_pooled: bool) -> None:
        """Add ``values`` of shape (B, P, N): B samples, P positions, N neurons.

        With ``keep_pooled`` (the probe) only the per-sample values (the mean over positions)
        are kept, and running statistics are gathered only when there are positions to pool.
        """
        self.positions = values.shape[1]
        if keep_pooled:
            pooled = values.mean(1) if values.shape[1] > 1 else values[:, 0]
            self.pooled.append(pooled.detach().clone())
            if values.shape[1] == 1:
                self.count += values.shape[0]
                return
        flat = values.reshape(-1, values.shape[-1])
        as64 = flat.to(torch.float64)
        total = as64.sum(0)
        total_sq = (as64 * as64).sum(0)
        minimum = flat.amin(0)
        maximum = flat.amax(0)
        active = (flat > 0).sum(0).to(torch.float64)
        if self.total is None:
            self.total, self.total_sq, self.active = total, total_sq, active
            self.minimum, self.maximum = minimum, maximum
        else:
            self.total += total
            self.total_sq += total_sq
            self.active += active
            self.minimum = torch.minimum(self.minimum, minimum)
            self.maximum = torch.maximum(self.maximum, maximum)
        self.count += flat.shape[0]

    def stats(self) -> dict[str, torch.Tensor]:
        mean = self.total / self.count
        var = (self.total_sq / self.count - mean * mean).clamp_min(0)
        return {
            "act_mean": mean,
            "act_std": var.sqrt(),
            "act_min": self.minimum.to(torch.float64),
            "act_max": self.maximum.to(torch.float64),
            "act_active": self.active / self.count,
        }


def as_positions(output: torch.Tensor, feature_dim: int) -> torch.Tensor:
    """Reshape a layer output to (B, P, N): samples, positions, neurons."""
    out = output.detach()
    if out.dim() == 1:
        return out.reshape(1, 1, -1)
    if feature_dim == 1 and out.dim() > 2:
        out = out.movedim(1, -1)
    return out.reshape(out.shape[0], -1, out.shape[-1])


def class_selectivity(pooled: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Class selectivity index of every neuron (Morcos et al. 2018), shape (N,).

    ``(mu_max - mu_rest) / (mu_max + mu_rest)`` where ``mu_max`` is the largest class-mean
    activation and ``mu_rest`` the mean of the other class means. For non-negative activations
    (ReLU, sigmoid) this is Morcos' index exactly. Activations that go negative (tanh, GELU,
    logits, inputs) are measured from the neuron's lowest probe activation instead of from 0
    (class means minus ``min(0, min activation)``), which keeps the index in [0, 1]. NaN when
    the shifted class means are all 0 (a dead neuron) or fewer than two classes are present.

    Parameters
    ----------
    pooled : tensor of shape (n_samples, n_neurons)
    labels : tensor of shape (n_samples,), integer classes
    """
    onehot = class_onehot(labels)
    n = pooled.shape[1]
    if onehot.shape[1] < 2:
        return torch.full((n,), float("nan"), device=pooled.device)
    return _selectivity(pooled.float(), onehot, pooled.float().amin(0))


def class_onehot(labels: torch.Tensor) -> torch.Tensor:
    """One-hot float32 matrix (n_samples, n_classes present) of integer labels."""
    labels = labels.reshape(-1).to(torch.long)
    classes = torch.unique(labels)
    return (labels[:, None] == classes[None, :]).float()


def _selectivity(acts: torch.Tensor, onehot: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """The index for ``acts`` (n, N) given the one-hot classes and each neuron's minimum."""
    means = (onehot.T @ acts) / onehot.sum(0)[:, None]  # (K, N) class means
    means = means - low.clamp_max(0)
    top = means.amax(0)
    rest = (means.sum(0) - top) / (onehot.shape[1] - 1)
    denom = top + rest
    return torch.where(denom > 1e-12, (top - rest) / denom, torch.nan)


def _mean_std(values: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population standard deviation along ``dim`` (two-pass, float32).

    Spelled out because ``torch.var_mean`` is several times slower on CPU for these shapes.
    """
    mean = values.mean(dim)
    centered = values - mean.unsqueeze(dim)
    return mean, (centered * centered).mean(dim).sqrt()


def _weight_rows(weight: torch.Tensor) -> torch.Tensor:
    return weight.detach().reshape(weight.shape[0], -1)


def _first_tensor(args: Sequence[Any]) -> torch.Tensor | None:
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return arg
    return None


def logits_of(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    raise TypeError(
        f"the model returned {type(output).__name__}; TraceableNN needs a tensor of logits "
        "(or a tuple whose first element is one)"
    )


@contextlib.contextmanager
def _preserved_state(module: nn.Module, device: torch.device):
    """Eval mode and a forked RNG for a measurement; restore both afterwards."""
    modes = [(m, m.training) for m in module.modules()]
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=True):
        module.eval()
        try:
            yield
        finally:
            for m, mode in modes:
                m.training = mode


def discover_layers(
    module: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    layer_names: Mapping[str, str] | None,
) -> tuple[list[_Layer], int, int]:
    """Dry run: the traced layers in call order, the input width and its feature dim."""
    calls: list[tuple[str, nn.Module, int, tuple[Any, ...], Any]] = []
    counters: dict[str, int] = defaultdict(int)
    handles = []

    def make_hook(name: str):
        def hook(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            calls.append((name, mod, counters[name], inputs, output))
            counters[name] += 1

        return hook

    for name, sub in module.named_modules():
        handles.append(sub.register_forward_hook(make_hook(name)))
    device = module_device(module)
    try:
        with _preserved_state(module, device), torch.no_grad():
            module(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()

    layers: list[_Layer] = []
    tails: dict[int, int] = {}  # id(tensor) -> index into layers
    for name, mod, call, inputs, output in calls:
        kind = TRACEABLE_TYPES.get(type(mod))
        if kind is not None and call == 0 and isinstance(output, torch.Tensor):
            feature_dim = 1 if kind.startswith("conv") else -1
            n_neurons = (
                mod.out_channels if kind.startswith("conv") else mod.out_features  # type: ignore[union-attr]
            )
            prefix = f"{name}." if name else ""
            label = name or type(mod).__name__.lower()
            if layer_names and name in layer_names:
                label = layer_names[name]
            weight = getattr(mod, "weight", None)
            bias = getattr(mod, "bias", None)
            info = LayerInfo(
                name=label,
                kind=kind,
                n_neurons=int(n_neurons),
                first_id=0,
                activation=None,
                module=name,
                weight_key=prefix + "weight" if weight is not None else None,
                bias_key=prefix + "bias" if bias is not None else None,
                fan_in=int(weight[0].numel()) if weight is not None else 0,
            )
            tails[id(output)] = len(layers)
            layers.append(_Layer(info, name, call, feature_dim, weight, bias))
            continue
        first = _first_tensor(inputs)
        if first is None or id(first) not in tails or not isinstance(output, torch.Tensor):
            continue
        if isinstance(mod, ACTIVATION_TYPES):
            index = tails.pop(id(first))
            layer = layers[index]
            layer.source_module, layer.source_call = name, call
            layer.info = _replace(layer.info, activation=type(mod).__name__)
        elif isinstance(mod, PASSTHROUGH_TYPES):
            tails[id(output)] = tails.pop(id(first))

    x = _first_tensor(args)
    if x is None:
        raise TypeError("example_input must be a tensor (or a tuple whose first item is one)")
    first_conv = bool(layers) and layers[0].feature_dim == 1
    input_dim = 1 if x.dim() == 2 or (x.dim() > 2 and first_conv) else -1
    n_inputs = int(x.shape[input_dim]) if x.dim() > 1 else int(x.shape[0])
    return layers, n_inputs, input_dim


def _replace(info: LayerInfo, **changes: Any) -> LayerInfo:
    data = info.to_dict()
    data.update(changes)
    return LayerInfo.from_dict(data)


def module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _versions() -> dict[str, str]:
    from . import __version__

    return {
        "nn_tracing": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


class TraceableNN(nn.Module):
    """Wrap ``module`` so that its neurons are traced while it trains.

    The wrapper behaves like the module: same ``forward``, same ``parameters()`` and the same
    ``state_dict()`` keys (it shares the module's parameter, buffer and child dictionaries).

    Parameters
    ----------
    module
        Any ``nn.Module`` whose forward takes a tensor (batch first) and returns logits.
    example_input
        A batch (tensor, or tuple of positional arguments) for the dry run; defaults to the
        first two probe samples.
    epoch_intervals
        Which epochs to record: ``None``, ``n > 0``, ``-1`` or a list (see
        :mod:`nn_tracing.schedule`). ``E_0`` is recorded at construction.
    probe
        ``(x, y)``: a fixed batch on which every recorded epoch is measured in eval mode.
        Without it, activation statistics stream over the training batches of each recorded
        epoch and ``grad_norm`` is the RMS over those batches of the incoming-weight gradient
        norm; ``E_0`` is then measured on ``example_input``.
    loss_fn
        ``loss_fn(logits, y) -> scalar`` (mean-reduced) for the probe gradient; defaults to
        cross-entropy for integer labels and MSE otherwise.
    num_epochs
        The length of the run, needed for "and the last" (``n > 0``) and ``-1`` without a
        probe; with a probe, :meth:`finish` records the last epoch if it was not yet recorded.
    keep_weights
        Also keep the full ``state_dict`` at every recorded epoch.
    drop_batches
        ``False`` records per-step, per-layer statistics of the training batches.
    layer_names
        Optional ``{qualified module name: layer name}`` renames.
    meta
        Extra JSON-ready metadata for ``network_trace.meta`` (config, dataset, ...).

    Examples
    --------
    >>> import torch, torch.nn.functional as F
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> model = TraceableNN(net, probe=(x, y), epoch_intervals=[1, 2])
    >>> model.neural_index
    {'input': (0, 3), '0': (4, 11), '2': (12, 14)}
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> for epoch in (1, 2):
    ...     model.start_epoch(epoch)
    ...     loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    ...     _ = model.end_epoch(epoch, train_loss=loss.item())
    >>> trace = model.finish()
    >>> trace.epochs
    [0, 1, 2]
    """

    def __init__(
        self,
        module: nn.Module,
        example_input: Any = None,
        epoch_intervals: EpochIntervals = None,
        *,
        probe: tuple[Any, Any] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        num_epochs: int | None = None,
        keep_weights: bool = False,
        drop_batches: bool = True,
        layer_names: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
        chunk_size: int = 8192,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"TraceableNN wraps an nn.Module, not {type(module).__name__}")
        intervals = normalize_epoch_intervals(epoch_intervals)
        if num_epochs is not None and (not isinstance(num_epochs, int) or num_epochs < 1):
            raise ValueError(f"num_epochs={num_epochs!r} must be a positive integer")
        if isinstance(intervals, tuple) and num_epochs is not None and intervals[-1] > num_epochs:
            raise ValueError(
                f"epoch_intervals lists epoch {intervals[-1]} but num_epochs={num_epochs}"
            )
        needs_last = intervals == -1 or (isinstance(intervals, int) and intervals > 0)
        if probe is None and needs_last and num_epochs is None:
            raise ValueError(
                f"epoch_intervals={intervals!r} records the last epoch; without a probe, "
                "TraceableNN needs num_epochs= to know which epoch is the last"
            )
        # Share the module's dictionaries: same parameters(), state_dict() keys, .to().
        object.__setattr__(self, "_wrapped", module)
        self._parameters = module._parameters
        self._buffers = module._buffers
        self._modules = module._modules
        self._non_persistent_buffers_set = module._non_persistent_buffers_set
        self.training = module.training

        device = module_device(module)
        self._probe_x: torch.Tensor | None = None
        self._probe_y: torch.Tensor | None = None
        if probe is not None:
            px, py = probe
            self._probe_x = torch.as_tensor(px).to(device)
            self._probe_y = torch.as_tensor(py).to(device)
            if self._probe_x.shape[0] != self._probe_y.shape[0]:
                raise ValueError(
                    f"probe x has {self._probe_x.shape[0]} samples but y has "
                    f"{self._probe_y.shape[0]}"
                )
            if self._probe_x.shape[0] < 1:
                raise ValueError("the probe set is empty")
        if example_input is None:
            if self._probe_x is None:
                raise ValueError("TraceableNN needs example_input= (or a probe to take it from)")
            example_input = self._probe_x[:2]
        args = example_input if isinstance(example_input, tuple) else (example_input,)
        args = tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)
        self._example_args = args

        layers, n_inputs, input_dim = discover_layers(module, args, {}, layer_names)
        if not layers:
            raise ValueError(
                f"{type(module).__name__} has no traceable layer (Linear, Conv1d, Conv2d) "
                "that runs on example_input"
            )
        names = [layer.info.name for layer in layers]
        duplicated = sorted({n for n in names if names.count(n) > 1} | ({"input"} & set(names)))
        if duplicated:
            raise ValueError(f"layer names must be unique and not 'input': {duplicated}")
        first = n_inputs
        for layer in layers:
            layer.info = _replace(layer.info, first_id=first)
            first += layer.info.n_neurons
        self._layers = layers
        self._input_dim = input_dim
        self._input_info = LayerInfo("input", "input", n_inputs, 0)
        self._infos = [self._input_info] + [layer.info for layer in layers]
        self._n_neurons = first

        self.epoch_intervals = intervals
        self.num_epochs = num_epochs
        self.keep_weights = bool(keep_weights)
        self.drop_batches = bool(drop_batches)
        self._loss_fn = loss_fn
        self._chunk_size = int(chunk_size)
        self._meta_extra = dict(meta or {})

        self._epoch_metrics: dict[int, np.ndarray] = {}
        self._epoch_tensors: dict[int, dict[str, np.ndarray]] = {}
        self._history: dict[int, dict[str, Any]] = {}
        self._step_tables: list[pd.DataFrame] = []
        self._previous_rows: dict[int, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._stream: dict[int, _Accumulator] | None = None
        self._stream_grad: dict[int, tuple[torch.Tensor, list[int]]] = {}
        self._epoch: int | None = None
        self._epoch_started: float | None = None
        self._last_epoch = 0
        self._finished = False
        self._status = "running"
        self._status_message = ""
        self._trace_seconds = 0.0
        self._steps: _StepRecorder | None = None
        self._measuring = False

        if not self.drop_batches:
            self._install_step_hooks()
        self._record(0)

    # -- behaving like the wrapped module --------------------------------------------------
    @property
    def module(self) -> nn.Module:
        """The wrapped module."""
        return self._wrapped

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_wrapped"), name)

    def train(self, mode: bool = True) -> TraceableNN:
        self._wrapped.train(mode)
        self.training = mode
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._stream is not None:
            self._stream_counters.clear()
            x = _first_tensor(args)
            if x is not None and self._wrapped.training:
                self._stream_input(x)
        if self._steps is not None:
            self._steps.counters.clear()
            if self._wrapped.training and not self._measuring:
                self._steps.begin()
        return self._wrapped(*args, **kwargs)

    # -- public API ------------------------------------------------------------------------
    @property
    def neural_index(self) -> dict[str, tuple[int, int]]:
        """``{layer: (first_id, last_id)}``, inclusive global ids, ``input`` first."""
        return {info.name: (info.first_id, info.last_id) for info in self._infos}

    @property
    def neuron_ids(self) -> list[str]:
        """``["n_0", "n_1", …]`` in layer order."""
        return [f"n_{i}" for i in range(self._n_neurons)]

    @property
    def layers(self) -> list[LayerInfo]:
        return list(self._infos)

    @property
    def recorded_epochs(self) -> list[int]:
        """The epochs recorded so far, ascending."""
        return sorted(self._epoch_metrics)

    def will_record(self, epoch: int) -> bool:
        return should_record(epoch, self.epoch_intervals, self.num_epochs)

    def start_epoch(self, epoch: int) -> None:
        """Call before the first batch of ``epoch`` (1-based)."""
        self._check_open()
        if not isinstance(epoch, int) or epoch < 1:
            raise ValueError(f"epochs are counted from 1; got {epoch!r}")
        self._epoch = epoch
        self._epoch_started = time.perf_counter()
        if self._probe_x is None and self.will_record(epoch):
            self._start_streaming()

    def end_epoch(self, epoch: int, *, force: bool = False, **history: float) -> bool:
        """Call after the last batch of ``epoch``; records it if the schedule says so.

        Keyword arguments (``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``)
        go into ``trace.history``. ``force=True`` records the epoch whatever the schedule.
        Returns whether the epoch was recorded.
        """
        self._check_open()
        if self._epoch is not None and epoch != self._epoch:
            raise ValueError(f"end_epoch({epoch}) does not match start_epoch({self._epoch})")
        seconds = (
            time.perf_counter() - self._epoch_started
            if self._epoch_started is not None
            else float("nan")
        )
        self._flush_steps(epoch)
        record = force or self.will_record(epoch)
        if record:
            self._record(epoch)
        self._stop_streaming()
        row = self._history.setdefault(epoch, {})
        row.update(self._check_history(history))
        row["seconds"] = seconds
        row["recorded"] = record
        self._last_epoch = max(self._last_epoch, epoch)
        self._epoch = None
        self._epoch_started = None
        return record

    def set_history(self, epoch: int, **values: float) -> None:
        """Add values (``val_loss=…``) to the history row of ``epoch``."""
        self._history.setdefault(epoch, {"recorded": epoch in self._epoch_metrics}).update(
            self._check_history(values)
        )

    def log_step(self, loss: torch.Tensor | float) -> None:
        """Record the loss of the current training step (``drop_batches=False`` only)."""
        if self._steps is not None:
            self._steps.log_loss(loss)

    def finish(self, status: str = "complete", message: str = "") -> NetworkTrace:
        """End tracing: record the last epoch if due, keep the final weights, remove hooks.

        ``status`` is ``complete``, ``stopped`` or ``diverged``. Returns the trace.
        """
        if status not in ("complete", "stopped", "diverged"):
            raise ValueError(f"status={status!r}: use complete, stopped or diverged")
        if not self._finished:
            last = self._last_epoch
            due = (
                status == "complete"
                and last > 0
                and last not in self._epoch_metrics
                and self.num_epochs is None
                and self.epoch_intervals is not None
                and not isinstance(self.epoch_intervals, tuple)
                and self._probe_x is not None
            )
            if due:
                self._record(last)
                self._history.setdefault(last, {})["recorded"] = True
            open_epoch = self._epoch is not None
            if open_epoch:
                self._flush_steps(self._epoch)
                self._epoch = None
            self._final_weights = self._state_numpy()
            # the final weights belong to an epoch only if training ended at its end
            self._final_epoch = None if open_epoch else last
            self._remove_step_hooks()
            self._stop_streaming()
            self._finished = True
        self._status = status
        self._status_message = message
        return self.network_trace

    @property
    def network_trace(self) -> NetworkTrace:
        """The trace so far (a new, cheap view over the recorded data at every call)."""
        meta = self._build_meta()
        final = getattr(self, "_final_weights", None)
        return NetworkTrace(
            layers=list(self._infos),
            epoch_metrics=dict(self._epoch_metrics),
            meta=meta,
            history=self._history_frame(),
            steps=pd.concat(self._step_tables, ignore_index=True) if self._step_tables else None,
            probe=(
                (self._probe_x.detach().cpu().numpy(), self._probe_y.detach().cpu().numpy())
                if self._probe_x is not None
                else None
            ),
            epoch_tensors=dict(self._epoch_tensors),
            final_weights=final,
        )

    def remove_hooks(self) -> None:
        """Remove every hook the tracer holds on the module."""
        self._remove_step_hooks()
        self._stop_streaming()

    # -- recording -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("this TraceableNN has finished; start a new one to trace again")

    def _check_history(self, values: Mapping[str, Any]) -> dict[str, float]:
        unknown = sorted(set(values) - set(HISTORY_COLUMNS))
        if unknown:
            raise ValueError(
                f"unknown history column(s) {unknown}; known: {', '.join(HISTORY_COLUMNS)}"
            )
        return {k: float(v) for k, v in values.items()}

    def _record(self, epoch: int) -> None:
        started = time.perf_counter()
        device = module_device(self._wrapped)
        self._measuring = True
        try:
            if self._probe_x is not None:
                if self._probe_x.device != device:
                    self._probe_x = self._probe_x.to(device)
                    self._probe_y = self._probe_y.to(device)
                metrics, tensors, extra = self._measure_probe(device)
            else:
                metrics, tensors, extra = self._measure_streamed(epoch, device)
        finally:
            self._measuring = False
        if self.keep_weights:
            for key, value in self._state_numpy().items():
                tensors["weights/" + key] = value
        self._epoch_metrics[epoch] = metrics
        self._epoch_tensors[epoch] = tensors
        self._history.setdefault(epoch, {}).update(extra)
        self._trace_seconds += time.perf_counter() - started

    def _state_numpy(self) -> dict[str, np.ndarray]:
        return {
            key: value.detach().cpu().numpy().copy()
            for key, value in self._wrapped.state_dict().items()
            if isinstance(value, torch.Tensor)
        }

    def _weight_block(
        self, layer: _Layer | None, grad_norm: torch.Tensor | None, n: int, device: torch.device
    ) -> torch.Tensor:
        """The seven weight columns (w_mean … grad_norm) of a layer: tensor (N, 7) float32."""
        nan = torch.full((n,), float("nan"), device=device)
        if layer is None or layer.weight is None:
            return nan[:, None].expand(n, 7)
        rows = _weight_rows(layer.weight).float()
        mean, std = _mean_std(rows, dim=1)
        bias = layer.bias.detach().float() if layer.bias is not None else nan
        previous = self._previous_rows.get(layer.info.first_id)
        drift = torch.linalg.vector_norm(rows - previous, dim=1) if previous is not None else nan
        self._previous_rows[layer.info.first_id] = rows.clone()
        columns = [
            mean,
            std,
            torch.linalg.vector_norm(rows, dim=1),
            rows.abs().amax(1),
            bias,
            drift,
            grad_norm.float() if grad_norm is not None else nan,
        ]
        return torch.stack(columns, dim=1)

    def _capture(
        self, accumulators: dict[int, _Accumulator], keep_pooled: bool, training_only: bool
    ):
        """Register hooks that feed each layer's activation into ``accumulators``.

        ``training_only`` skips forwards in eval mode and the tracer's own measurements (for
        streaming over training batches).
        """
        by_module: dict[str, list[tuple[int, _Layer]]] = defaultdict(list)
        for index, layer in enumerate(self._layers):
            by_module[layer.source_module].append((index, layer))
        modules = dict(self._wrapped.named_modules())
        counters: dict[str, int] = defaultdict(int)
        handles = []

        def make_hook(name: str, targets: list[tuple[int, _Layer]]):
            def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
                call = counters[name]
                counters[name] += 1
                if training_only and (not mod.training or self._measuring):
                    return
                for index, layer in targets:
                    if layer.source_call == call and isinstance(output, torch.Tensor):
                        values = as_positions(output, layer.feature_dim)
                        accumulators[index].add(values, keep_pooled)

            return hook

        for name, targets in by_module.items():
            handles.append(modules[name].register_forward_hook(make_hook(name, targets)))
        return handles, counters

    def _forward_probe(self, x: torch.Tensor, counters: dict[str, int]) -> torch.Tensor:
        counters.clear()
        return logits_of(self._wrapped(x))

    def _default_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._loss_fn is not None:
            return self._loss_fn(logits, y)
        if not y.dtype.is_floating_point:
            return F.cross_entropy(logits, y)
        return F.mse_loss(logits, y.reshape(logits.shape).to(logits.dtype))

    def _probe_onehot(self) -> torch.Tensor | None:
        """One-hot (n_probe, K) of the probe's classes, cached; ``None`` for non-class labels."""
        y = self._probe_y
        assert y is not None
        if y.dtype.is_floating_point or y.dim() != 1:
            return None
        cached = getattr(self, "_onehot", None)
        if cached is None or cached.device != y.device:
            cached = self._onehot = class_onehot(y)
        return cached

    def _measure_probe(self, device: torch.device):
        x, y = self._probe_x, self._probe_y
        assert x is not None and y is not None
        n = x.shape[0]
        accumulators = {i: _Accumulator() for i in range(len(self._layers))}
        params = [layer.weight for layer in self._layers]
        wanted = [p for p in params if p is not None and p.requires_grad]
        grads: list[torch.Tensor | None] = [None] * len(wanted)
        logits_chunks = []
        loss_total = torch.zeros((), device=device)
        handles, counters = self._capture(accumulators, keep_pooled=True, training_only=False)
        try:
            with _preserved_state(self._wrapped, device), torch.enable_grad():
                for start in range(0, n, self._chunk_size):
                    xc = x[start : start + self._chunk_size]
                    yc = y[start : start + self._chunk_size]
                    logits = self._forward_probe(xc, counters)
                    loss = self._default_loss(logits, yc) * (xc.shape[0] / n)
                    if wanted and loss.requires_grad:
                        chunk = torch.autograd.grad(loss, wanted, allow_unused=True)
                        grads = [
                            g if total is None else (total if g is None else total + g)
                            for total, g in zip(grads, chunk)
                        ]
                    loss_total += loss.detach()
                    logits_chunks.append(logits.detach())
        finally:
            for handle in handles:
                handle.remove()
        logits = torch.cat(logits_chunks) if len(logits_chunks) > 1 else logits_chunks[0]
        grad_of = {id(p): g for p, g in zip(wanted, grads) if g is not None}

        acts = self._pooled_matrix(accumulators, x, device)

        # Activation statistics for all neurons at once; conv layers (and conv inputs) are
        # then overwritten with their statistics over every position.
        mean, std = _mean_std(acts, dim=0)
        low, high = acts.amin(0), acts.amax(0)
        active = (acts > 0).sum(0) / n
        onehot = self._probe_onehot()
        if onehot is not None and onehot.shape[1] >= 2:
            selectivity = _selectivity(acts, onehot, low)
        else:
            selectivity = torch.full_like(mean, float("nan"))
        act_block = torch.stack([mean, std, low, high, active, selectivity], dim=1)
        if x.dim() > 2:
            input_acc = _Accumulator()
            input_acc.add(as_positions(x, self._input_dim), keep_pooled=False)
            act_block[: self._input_info.n_neurons, :5] = self._stats_block(input_acc)
        for index, layer in enumerate(self._layers):
            acc = accumulators[index]
            if acc.positions > 1:
                act_block[layer.info.ids.start : layer.info.ids.stop, :5] = self._stats_block(acc)

        blocks = [self._weight_block(None, None, self._input_info.n_neurons, device)]
        for layer in self._layers:
            grad = grad_of.get(id(layer.weight)) if layer.weight is not None else None
            grad_norm = (
                torch.linalg.vector_norm(_weight_rows(grad), dim=1) if grad is not None else None
            )
            blocks.append(self._weight_block(layer, grad_norm, layer.info.n_neurons, device))
        metrics = torch.cat([torch.cat(blocks), act_block], dim=1)

        predictions = (
            logits.argmax(1).to(torch.int64)
            if logits.dim() == 2
            else torch.zeros(n, dtype=torch.int64)
        )
        extra = {"probe_loss": float(loss_total)}
        if logits.dim() == 2 and not y.dtype.is_floating_point:
            extra["probe_acc"] = float((predictions == y).float().mean())
        tensors = {
            "activations": acts.cpu().numpy(),
            "logits": logits.float().cpu().numpy(),
            "predictions": predictions.cpu().numpy(),
        }
        return metrics.cpu().numpy(), tensors, extra

    def _pooled_matrix(
        self, accumulators: dict[int, _Accumulator], x: torch.Tensor, device: torch.device
    ) -> torch.Tensor:
        """Activations of every neuron, input features first: (n_samples, n_neurons) float32."""
        n = x.shape[0]
        pooled = [as_positions(x, self._input_dim if x.dim() > 2 else -1).mean(1)]
        for index, layer in enumerate(self._layers):
            acc = accumulators[index]
            if acc.pooled:
                pooled.append(torch.cat(acc.pooled) if len(acc.pooled) > 1 else acc.pooled[0])
            else:  # the layer did not run on these inputs
                pooled.append(torch.full((n, layer.info.n_neurons), float("nan"), device=device))
        return torch.cat(pooled, dim=1).float()

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """Every neuron's activation on ``x`` in inference mode: (n_samples, n_neurons).

        The same definition as the trace's probe activations (input features first, channels
        averaged over positions), computed without gradients and without touching the model's
        state. Used to evaluate a neuron anywhere in input space (activation fields).
        """
        device = module_device(self._wrapped)
        x = torch.as_tensor(x).to(device)
        accumulators = {i: _Accumulator() for i in range(len(self._layers))}
        handles, counters = self._capture(accumulators, keep_pooled=True, training_only=False)
        self._measuring = True
        try:
            with _preserved_state(self._wrapped, device), torch.no_grad():
                for start in range(0, x.shape[0], self._chunk_size):
                    self._forward_probe(x[start : start + self._chunk_size], counters)
        finally:
            self._measuring = False
            for handle in handles:
                handle.remove()
        return self._pooled_matrix(accumulators, x, device)

    @staticmethod
    def _stats_block(acc: _Accumulator) -> torch.Tensor:
        """act_mean, act_std, act_min, act_max, act_active from an accumulator: (N, 5)."""
        stats = acc.stats()
        names = ("act_mean", "act_std", "act_min", "act_max", "act_active")
        return torch.stack([stats[name] for name in names], dim=1).float()

    # -- streaming without a probe ---------------------------------------------------------
    def _start_streaming(self) -> None:
        self._stop_streaming()
        self._stream = {i: _Accumulator() for i in range(len(self._layers))}
        self._stream_input_acc = _Accumulator()
        handles, counters = self._capture(self._stream, keep_pooled=False, training_only=True)
        self._stream_counters = counters
        self._handles = handles
        self._stream_grad = {}
        for index, layer in enumerate(self._layers):
            weight = layer.weight
            if weight is None or not weight.requires_grad:
                continue
            total = torch.zeros(layer.info.n_neurons, dtype=torch.float64, device=weight.device)
            count = [0]
            self._stream_grad[index] = (total, count)

            def grad_hook(grad: torch.Tensor, total=total, count=count) -> None:
                if self._measuring:
                    return
                rows = grad.detach().reshape(grad.shape[0], -1).to(torch.float64)
                total.add_((rows * rows).sum(1))
                count[0] += 1

            self._handles.append(weight.register_hook(grad_hook))

    def _stream_input(self, x: torch.Tensor) -> None:
        self._stream_counters.clear()
        dim = self._input_dim if x.dim() > 2 else -1
        self._stream_input_acc.add(as_positions(x, dim), keep_pooled=False)

    def _stop_streaming(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._stream = None

    def _measure_streamed(self, epoch: int, device: torch.device):
        if epoch == 0 or self._stream is None:
            # E_0 (or an epoch forced without streaming): measure on example_input.
            accumulators = {i: _Accumulator() for i in range(len(self._layers))}
            handles, counters = self._capture(accumulators, keep_pooled=False, training_only=False)
            try:
                with _preserved_state(self._wrapped, device), torch.no_grad():
                    counters.clear()
                    self._wrapped(*self._example_args)
            finally:
                for handle in handles:
                    handle.remove()
            x = _first_tensor(self._example_args)
            input_acc = _Accumulator()
            input_acc.add(as_positions(x, self._input_dim if x.dim() > 2 else -1), False)
            grad_source: dict[int, tuple[torch.Tensor, list[int]]] = {}
        else:
            accumulators, input_acc = self._stream, self._stream_input_acc
            grad_source = self._stream_grad
        nan_column = torch.full((self._n_neurons, 1), float("nan"), device=device)
        act_blocks = []
        weight_blocks = [self._weight_block(None, None, self._input_info.n_neurons, device)]
        for info, acc in [(self._input_info, input_acc)] + [
            (layer.info, accumulators[i]) for i, layer in enumerate(self._layers)
        ]:
            if acc.count:
                act_blocks.append(self._stats_block(acc))
            else:
                act_blocks.append(torch.full((info.n_neurons, 5), float("nan"), device=device))
        for index, layer in enumerate(self._layers):
            grad = grad_source.get(index)
            grad_norm = (grad[0] / grad[1][0]).sqrt() if grad is not None and grad[1][0] else None
            weight_blocks.append(self._weight_block(layer, grad_norm, layer.info.n_neurons, device))
        metrics = torch.cat([torch.cat(weight_blocks), torch.cat(act_blocks), nan_column], dim=1)
        return metrics.cpu().numpy(), {}, {}

    # -- per-step statistics ---------------------------------------------------------------
    def _install_step_hooks(self) -> None:
        self._steps = _StepRecorder(self._wrapped, self._layers, self)

    def _begin_step(self) -> None:
        assert self._steps is not None
        self._steps.begin()

    def _flush_steps(self, epoch: int) -> None:
        if self._steps is not None:
            table = self._steps.flush(epoch)
            if table is not None:
                self._step_tables.append(table)

    def _remove_step_hooks(self) -> None:
        if self._steps is not None:
            self._steps.remove()
        self._steps = None

    # -- assembling the trace --------------------------------------------------------------
    def _history_frame(self) -> pd.DataFrame:
        rows = []
        for epoch in sorted(self._history):
            values = self._history[epoch]
            row: dict[str, Any] = {"epoch": epoch}
            for column in HISTORY_COLUMNS:
                row[column] = float(values.get(column, math.nan))
            row["recorded"] = bool(values.get("recorded", epoch in self._epoch_metrics))
            rows.append(row)
        frame = pd.DataFrame(rows, columns=["epoch", *HISTORY_COLUMNS, "recorded"])
        frame["epoch"] = frame["epoch"].astype("int64")
        for column in HISTORY_COLUMNS:
            frame[column] = frame[column].astype("float64")
        frame["recorded"] = frame["recorded"].astype("bool")
        return frame

    def _build_meta(self) -> dict[str, Any]:
        intervals = self.epoch_intervals
        meta: dict[str, Any] = {
            "model": {
                "class": type(self._wrapped).__name__,
                "builtin": False,
                "n_parameters": int(sum(p.numel() for p in self._wrapped.parameters())),
            },
            "layers": [info.to_dict() for info in self._infos],
            "metrics": list(METRICS),
            "epoch_intervals": list(intervals) if isinstance(intervals, tuple) else intervals,
            "num_epochs": self.num_epochs,
            "recorded_epochs": sorted(self._epoch_metrics),
            "keep_weights": self.keep_weights,
            "drop_batches": self.drop_batches,
            "statistics_source": "probe" if self._probe_x is not None else "training batches",
            "n_probe": int(self._probe_x.shape[0]) if self._probe_x is not None else 0,
            "status": self._status,
            "status_message": self._status_message,
            "final_weights_epoch": getattr(self, "_final_epoch", None),
            "versions": _versions(),
            "timings": {"trace_seconds": round(self._trace_seconds, 4)},
        }
        for key, value in self._meta_extra.items():
            if key in ("model",) and isinstance(value, dict):
                meta[key] = {**meta[key], **value}
            elif key == "timings" and isinstance(value, dict):
                meta["timings"] = {**meta["timings"], **value}
            else:
                meta[key] = value
        return meta

    def update_meta(self, **values: Any) -> None:
        """Add JSON-ready metadata to the trace (``config=…``, ``dataset=…``, ``timings=…``)."""
        self._meta_extra.update(values)


class _StepRecorder:
    """Per-step, per-layer statistics of the training batches (``drop_batches=False``).

    Hooks only compute a handful of scalar reductions on the device (mean, sum of squares,
    count of positive values per layer; the weight-gradient norm in a gradient hook); one
    ``_foreach_norm`` gives the weight norms at the start of each step. Each step's scalars are
    stacked once and copied to the host once per epoch.
    """

    def __init__(self, module: nn.Module, layers: list[_Layer], owner: TraceableNN) -> None:
        self.layers = layers
        self.owner = owner
        device = module_device(module)
        self.nan = torch.tensor(float("nan"), device=device)
        self.zero = torch.tensor(0, dtype=torch.int64, device=device)
        self.weights = [layer.weight for layer in layers]
        self.counters: dict[str, int] = defaultdict(int)
        self.handles: list[Any] = []
        self.rows: list[torch.Tensor] = []  # per step: (4L + 1,) float
        self.counts: list[torch.Tensor] = []  # per step: (L,) int64
        self.numels: list[list[int]] = []
        self.global_step = 0
        self.pending: dict[str, Any] | None = None
        by_module: dict[str, list[tuple[int, _Layer]]] = defaultdict(list)
        for index, layer in enumerate(layers):
            by_module[layer.source_module].append((index, layer))
        modules = dict(module.named_modules())
        for name, targets in by_module.items():
            self.handles.append(
                modules[name].register_forward_hook(self._forward_hook(name, targets))
            )
        for index, weight in enumerate(self.weights):
            if weight is not None and weight.requires_grad:
                self.handles.append(weight.register_hook(self._grad_hook(index)))

    def _forward_hook(self, name: str, targets: list[tuple[int, _Layer]]):
        def hook(mod: nn.Module, inputs: Any, output: Any) -> None:
            call = self.counters[name]
            self.counters[name] += 1
            pending = self.pending
            if pending is None or not mod.training or self.owner._measuring:
                return
            for index, layer in targets:
                if layer.source_call != call or not isinstance(output, torch.Tensor):
                    continue
                out = output.detach()
                pending["mean"][index] = out.mean()
                pending["sq"][index] = torch.linalg.vector_norm(out)  # sqrt of the sum of squares
                pending["count"][index] = torch.count_nonzero(out.clamp_min(0))
                pending["numel"][index] = out.numel()

        return hook

    def _grad_hook(self, index: int):
        def hook(grad: torch.Tensor) -> None:
            if self.pending is not None and not self.owner._measuring:
                self.pending["grad"][index] = torch.linalg.vector_norm(grad.detach())

        return hook

    def begin(self) -> None:
        """A training forward starts: close the previous step, open a new one."""
        self._close()
        n = len(self.layers)
        present = [w for w in self.weights if w is not None]
        norms = iter(torch._foreach_norm([w.detach() for w in present]) if present else [])
        self.pending = {
            "mean": [self.nan] * n,
            "sq": [self.nan] * n,
            "count": [self.zero] * n,
            "numel": [0] * n,
            "grad": [self.nan] * n,
            "wnorm": [next(norms) if w is not None else self.nan for w in self.weights],
            "loss": self.nan,
        }

    def log_loss(self, loss: torch.Tensor | float) -> None:
        if self.pending is not None:
            value = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(loss)
            self.pending["loss"] = value.to(self.nan.device, torch.float32).reshape(())

    def _close(self) -> None:
        pending = self.pending
        if pending is None:
            return
        self.rows.append(
            torch.stack(
                [
                    *pending["mean"],
                    *pending["sq"],
                    *pending["wnorm"],
                    *pending["grad"],
                    pending["loss"],
                ]
            ).float()
        )
        self.counts.append(torch.stack(pending["count"]))
        self.numels.append(pending["numel"])
        self.pending = None

    def flush(self, epoch: int) -> pd.DataFrame | None:
        """The steps of ``epoch`` as a table (one row per step and layer)."""
        self._close()
        if not self.rows:
            return None
        n_layers = len(self.layers)
        rows = torch.stack(self.rows).cpu().numpy().astype(np.float64)  # (n, 4L + 1)
        counts = torch.stack(self.counts).cpu().numpy().astype(np.float64)  # (n, L)
        numels = np.asarray(self.numels, dtype=np.float64)
        n = rows.shape[0]
        mean = rows[:, :n_layers]
        with np.errstate(invalid="ignore", divide="ignore"):
            sq = np.where(numels > 0, rows[:, n_layers : 2 * n_layers] ** 2 / numels, np.nan)
            active = np.where(numels > 0, counts / numels, np.nan)
        steps = self.global_step + np.arange(1, n + 1)
        table = pd.DataFrame(
            {
                "step": np.repeat(steps, n_layers).astype(np.int64),
                "epoch": np.full(n * n_layers, epoch, dtype=np.int64),
                "layer": np.tile([layer.info.name for layer in self.layers], n),
                "loss": np.repeat(rows[:, -1], n_layers).astype(np.float32),
                "act_mean": mean.reshape(-1).astype(np.float32),
                "act_std": np.sqrt(np.clip(sq - mean * mean, 0, None))
                .reshape(-1)
                .astype(np.float32),
                "act_active": active.reshape(-1).astype(np.float32),
                "grad_norm": rows[:, 3 * n_layers : 4 * n_layers].reshape(-1).astype(np.float32),
                "w_norm": rows[:, 2 * n_layers : 3 * n_layers].reshape(-1).astype(np.float32),
            }
        )
        self.global_step += n
        self.rows, self.counts, self.numels = [], [], []
        return table

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.pending = None
