"""Estimate a run's peak memory and trace size from its config alone, before it starts.

A server that trains runs for anyone (the app's training form) must refuse a run that would
not fit: a probe of 65 536 samples on 8 192-wide layers holds gigabytes per recorded epoch.
:func:`estimate_run` adds up what :func:`nn_tracing.train` and :func:`nn_tracing.save_trace`
hold, from the config and the dataset's dimensions (:func:`nn_tracing.data.dataset_shape`; no
data is generated and nothing is trained):

* **held to the end** — the dataset and its splits, the model with its gradients and optimizer
  state (and the tracer's copies of the weights), and the trace: every recorded epoch's probe
  activations ``(n_kept, n_neurons)`` (float32, or float16 with ``activation_dtype``; the
  ``activation_samples`` kept of the probe), logits and predictions, the full weights when
  ``keep_weights``, the neuron metrics and their frame, the per-step table when
  ``drop_batches=False``. The trace keeps *every* recorded epoch in memory until it is saved,
  so this grows with the number of recorded epochs.
* **working memory** — one phase at a time: a training step and the evaluation passes, the
  probe measurement (pooled activations, autograd graph, the statistics' temporaries), and
  saving (every ``.nntrace`` entry is built in memory before the zip is written, the largest
  twice while it is serialised). On Linux, glibc keeps freed blocks under its 32 MiB mmap
  ceiling in the heap (and later small allocations fragment them), so the part of the working
  memory made of smaller blocks is counted as resident for the rest of the run, for each
  phase (one phase's holes, fragmented by small allocations, serve another's blocks little).

``peak_bytes`` is what the run adds to a process that has already imported PyTorch and run
once (the interpreter, the imports and PyTorch's one-time set-up are not counted). It assumes
the CPU; on a CUDA device the model and the working memory of training live on the device and
host memory is lower. ``trace_bytes`` is the ``.nntrace`` file: safetensors entries are raw
bytes; the neuron table is Parquet with zstd, about 3.3 bytes per float32 value.
``rundir_bytes`` is the run directory that ``train(out=…)`` writes: the same tensors, one
Parquet part per recorded epoch (neurons) and per trained epoch (history), and a manifest that
is not compressed. Both were checked against real runs (``tests/unit/test_estimate_knobs.py``:
within 10 % for every knob combination there).

>>> from nn_tracing import TrainConfig
>>> estimate = estimate_run(TrainConfig(dataset="moons", hidden_sizes=(16, 16), epochs=10))
>>> estimate.peak_bytes < 50 * 2**20 and estimate.dominant
'probe activations'
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from .config import TrainConfig
from .data import DatasetShape, dataset_shape, image_shape_of, input_shape_for
from .schedule import recorded_epochs
from .step_schedule import recorded_steps

__all__ = ["RunEstimate", "RunTooLarge", "check_budget", "estimate_run", "format_bytes"]

F32 = 4
I64 = 8
#: Bytes per stored activation or logit, by ``activation_dtype``.
STORED_BYTES = {"float32": 4, "float16": 2}
#: Number of metric columns of the neuron table (``len(trace.METRICS)``).
N_METRICS = 13
#: glibc's largest dynamic mmap threshold on 64-bit Linux: blocks this size or larger are
#: given back to the system when freed; smaller ones stay in the heap.
MMAP_CEILING = 32 * 2**20
#: Rows of the probe (and of an evaluation pass) that the tracer / trainer run at once.
CHUNK_ROWS = 8192
#: Parquet (zstd) bytes per row of the neuron table (13 float32 metrics at about 3.3 bytes
#: each, measured on real traces, and the run-length coded ids) and per file.
NEURON_ROW_FILE_BYTES = 45
PARQUET_FILE_BYTES = 12_288
#: A run directory's Parquet parts: a neuron part's fixed bytes and bytes per row (measured:
#: 1.7 kB + 48 B per neuron), a history part (one row), a steps part's fixed bytes.
RUNDIR_NEURON_PART_BYTES = 1_700
RUNDIR_NEURON_ROW_BYTES = 48
RUNDIR_HISTORY_PART_BYTES = 1_733
RUNDIR_STEPS_PART_BYTES = 3_000
#: Bytes per row of the per-step table: in memory (9 columns, ~56 B, twice: the tracer's
#: per-epoch tables and the trace's concatenation of them), while saving (the column selection,
#: Arrow and Parquet buffers; measured) and in the file.
STEP_ROW_BYTES = 112
STEP_ROW_SAVE_BYTES = 230
STEP_ROW_FILE_BYTES = 12
#: Host bytes per training step buffered until the end of its epoch (``drop_batches=False``):
#: two small tensors and a list per step.
STEP_BUFFER_BYTES = 1200
#: Bytes per row of ``trace.frame`` beyond its float32 values (the MultiIndex codes).
FRAME_INDEX_BYTES = 8
#: Bytes per row while the neuron table is turned into Parquet (values, frame, Arrow, names).
NEURON_TABLE_BUILD_BYTES = 250
#: What Arrow's allocator (mimalloc) keeps once it has written a table.
ARROW_POOL_BYTES = 2 * 2**20
#: Optimizer state tensors per parameter (Adam: two moments; SGD / RMSprop: one each).
OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 1, "rmsprop": 1}
#: Activations whose backward needs their input as well as their output.
SAVES_INPUT = ("gelu", "leaky_relu")


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``"2.1 GiB"``, ``"68 MiB"``, ``"512 KiB"``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class RunEstimate:
    """What a run will hold, estimated from its config.

    Attributes
    ----------
    peak_bytes
        Peak resident memory the run adds to a process (training, then saving the trace).
    trace_bytes
        Size of the saved ``.nntrace`` file (what ``max_trace_bytes`` is checked against).
    rundir_bytes
        Size of the run directory ``train(out=…)`` writes (a few kB per epoch more).
    breakdown
        ``{component: bytes}`` of the peak, largest first; the values add up to ``peak_bytes``.
    details
        ``{component: "how it is made up — the knob that lowers it"}`` for each component.
    n_recorded, n_neurons, n_probe, n_parameters
        Recorded epochs (``E_0`` included), neurons (inputs included), probe samples and
        model parameters.
    n_kept, activation_dtype
        Probe samples whose activations every recorded epoch keeps, and their stored dtype.
    """

    peak_bytes: int
    trace_bytes: int
    rundir_bytes: int = 0
    breakdown: dict[str, int] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)
    n_recorded: int = 0
    n_neurons: int = 0
    n_probe: int = 0
    n_parameters: int = 0
    n_kept: int = 0
    activation_dtype: str = "float32"

    @property
    def dominant(self) -> str:
        """The biggest component with a knob of its own.

        ``saving`` (a copy of the trace while it is written) is left out: it follows whatever
        the trace is made of, and that part is named instead.
        """
        parts = {k: v for k, v in self.breakdown.items() if k != "saving"}
        return max(parts, key=parts.__getitem__) if parts else "saving"

    def describe(self) -> str:
        """One plain sentence: the two figures, the biggest part and the knob to turn."""
        name = self.dominant
        detail = self.details.get(name, "")
        return (
            f"This run needs about {format_bytes(self.peak_bytes)} of memory at its peak and "
            f"writes a trace of about {format_bytes(self.trace_bytes)}; the biggest part is "
            f"{name}: {detail}."
        )


class RunTooLarge(ValueError):
    """A run whose estimate is over a budget; the message names the knob to turn."""

    def __init__(self, message: str, estimate: RunEstimate) -> None:
        super().__init__(message)
        self.estimate = estimate


def check_budget(
    estimate: RunEstimate, max_peak_bytes: int | None = None, max_trace_bytes: int | None = None
) -> RunEstimate:
    """Return ``estimate`` if it fits the budgets, else raise :class:`RunTooLarge`.

    ``None`` leaves a budget unchecked.
    """
    over = []
    if max_peak_bytes is not None and estimate.peak_bytes > max_peak_bytes:
        over.append(f"memory over this server's limit of {format_bytes(max_peak_bytes)}")
    if max_trace_bytes is not None and estimate.trace_bytes > max_trace_bytes:
        over.append(f"a trace over this server's limit of {format_bytes(max_trace_bytes)}")
    if over:
        raise RunTooLarge(f"{estimate.describe()} That is {' and '.join(over)}.", estimate)
    return estimate


@dataclass(frozen=True)
class _Shapes:
    """Every size the estimate needs, derived from the config."""

    n_samples: int
    n_features: int
    n_classes: int
    n_train: int
    n_val: int
    n_probe: int
    widths: tuple[int, ...]  # values per sample of each hidden layer (a CNN: C × H × W)
    traced_widths: tuple[int, ...]  # neurons of the hidden layers traced (traced_layers)
    n_recorded: int
    steps_per_epoch: int
    n_kept: int  # probe samples whose tensors are stored
    act_bytes: int  # bytes per stored activation or logit
    #: ``(fan_in, neurons)`` of every traced layer's weight, the output layer last
    layer_shapes: tuple[tuple[int, int], ...] = ()
    n_inputs: int = 0  # input neurons (features; an image's channels)
    other_parameters: int = 0  # parameters outside the traced layers' weights and biases

    @property
    def n_neurons(self) -> int:
        """Traced neurons: the inputs, the traced hidden layers, the outputs."""
        return self.n_inputs + sum(self.traced_widths) + self.n_classes

    @property
    def n_parameters(self) -> int:
        weights = sum((fan_in + 1) * width for fan_in, width in self.layer_shapes)
        return weights + self.other_parameters

    @property
    def n_weights(self) -> int:
        return sum(fan_in * width for fan_in, width in self.layer_shapes)

    @property
    def largest_weight(self) -> int:
        return max(fan_in * width for fan_in, width in self.layer_shapes)


def _shapes(config: TrainConfig) -> _Shapes:
    shape = dataset_shape(config)
    # the split and the probe exactly as prepare_data makes them
    n_val = max(round(shape.n_samples * config.held_out_fraction), shape.n_classes)
    n_train = max(shape.n_samples - n_val, 1)
    n_probe = min(config.probe_size, n_val)
    model = _model_sizes(config, shape, image_shape_of(config.dataset))
    return _Shapes(
        n_samples=shape.n_samples,
        n_features=shape.n_features,
        n_classes=shape.n_classes,
        n_train=n_train,
        n_val=n_val,
        n_probe=n_probe,
        widths=model.values,
        traced_widths=model.traced,
        n_recorded=_n_recorded(config, math.ceil(n_train / config.batch_size)),
        steps_per_epoch=math.ceil(n_train / config.batch_size),
        n_kept=min(config.activation_samples or n_probe, n_probe),
        act_bytes=STORED_BYTES[config.activation_dtype],
        layer_shapes=model.layer_shapes,
        n_inputs=model.n_inputs,
        other_parameters=model.other_parameters,
    )


@dataclass(frozen=True)
class _ModelSizes:
    """The sizes of a config's model that the estimate needs."""

    n_inputs: int
    values: tuple[int, ...]  # per sample, each hidden layer
    traced: tuple[int, ...]  # neurons of each traced hidden layer
    layer_shapes: tuple[tuple[int, int], ...]
    other_parameters: int = 0


def _model_sizes(
    config: TrainConfig, shape: DatasetShape, image_shape: tuple[int, int] | None
) -> _ModelSizes:
    """The MLP's sizes from the config; the CNN's computed from its options; an entry point's
    from a build on PyTorch's meta device (imported only when allowed)."""
    n_features, n_classes = shape.n_features, shape.n_classes
    if config.model == "mlp":
        sizes = (n_features, *config.hidden_sizes, n_classes)
        return _ModelSizes(
            n_features,
            tuple(config.hidden_sizes),
            _traced_widths(config),
            tuple(itertools.pairwise(sizes)),
        )
    from .models_cnn import cnn_state_shapes

    input_shape = input_shape_for(config, n_features, image_shape)
    if config.model == "cnn":
        shapes = cnn_state_shapes(input_shape, n_classes, config.model_kwargs)
        names = [key[: -len(".weight")] for key in shapes if key.endswith(".weight")]
        neurons = [shapes[f"{name}.weight"][0] for name in names]
        traced = config.traced_layers
        return _ModelSizes(
            input_shape[0],
            tuple(n * input_shape[1] * input_shape[2] for n in neurons[:-1]),
            tuple(
                n
                for name, n in zip(names[:-1], neurons, strict=False)
                if traced is None or name in traced
            ),
            tuple(
                (math.prod(shapes[f"{name}.weight"][1:]), n)
                for name, n in zip(names, neurons, strict=True)
            ),
        )
    return _entry_point_sizes(config, input_shape, n_classes)


def _entry_point_sizes(
    config: TrainConfig, input_shape: tuple[int, ...], n_classes: int
) -> _ModelSizes:
    """An entry point's layers, found by the tracer's discovery on the meta device (nothing
    allocated, no RNG drawn). ``ValueError`` when it cannot be imported (refused: see
    :mod:`nn_tracing.model_entry`) or built there."""
    from .model_entry import load_factory

    load_factory(config.model)  # imported outside the meta device (refused unless allowed)
    try:
        module, layout, values = _discover_on_meta(config, input_shape, n_classes)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(
            f"model {config.model!r} cannot be sized before it runs: on PyTorch's meta device "
            f"it failed with {type(exc).__name__}: {exc}"
        ) from None
    layers = layout.layers
    traced = config.traced_layers
    hidden = layers[:-1]
    in_layers = sum(
        (1 if layer.weight is not None else 0) * (layer.info.fan_in + 1) * layer.info.n_neurons
        for layer in layers
    )
    total = sum(p.numel() for p in module.parameters())
    return _ModelSizes(
        layout.input_info.n_neurons,
        tuple(values.get(layer.info.module, layer.info.n_neurons) for layer in hidden) or (1,),
        tuple(
            layer.info.n_neurons for layer in hidden if traced is None or layer.info.name in traced
        ),
        tuple((max(layer.info.fan_in, 1), layer.info.n_neurons) for layer in layers),
        max(int(total) - in_layers, 0),
    )


def _discover_on_meta(config: TrainConfig, input_shape: tuple[int, ...], n_classes: int):
    """The module built on the meta device, its traced layers, and the values per sample
    each module outputs."""
    import torch

    from .models import construct_model
    from .tracer._discovery import discover

    with torch.device("meta"):
        module = construct_model(config, input_shape, n_classes)
        example = torch.zeros((2, *input_shape))
    values: dict[str, int] = {}

    def record(name: str):
        def hook(mod, inputs, output):
            if isinstance(output, torch.Tensor):
                values[name] = int(output[0].numel())

        return hook

    handles = [mod.register_forward_hook(record(name)) for name, mod in module.named_modules()]
    try:
        layout = discover(module, (example,), None)
    finally:
        for handle in handles:
            handle.remove()
    return module, layout, values


def _n_recorded(config: TrainConfig, steps_per_epoch: int) -> int:
    """How many points the run records: epochs, or steps with a step schedule."""
    if config.step_intervals is not None:
        return len(recorded_steps(config.step_intervals, config.epochs * steps_per_epoch))
    return len(recorded_epochs(config.epoch_intervals, config.epochs))


def _traced_widths(config: TrainConfig) -> tuple[int, ...]:
    """Widths of the hidden layers that are traced."""
    if config.traced_layers is None:
        return tuple(config.hidden_sizes)
    return tuple(
        width
        for index, width in enumerate(config.hidden_sizes, start=1)
        if f"hidden_{index}" in config.traced_layers
    )


@dataclass
class _Phase:
    """Working memory of one phase, split by where glibc puts the blocks."""

    heap: int = 0
    mapped: int = 0

    def add(self, *blocks: int) -> _Phase:
        for block in blocks:
            if block >= MMAP_CEILING:
                self.mapped += block
            else:
                self.heap += block
        return self

    @property
    def total(self) -> int:
        return self.heap + self.mapped


def _held(s: _Shapes, config: TrainConfig) -> dict[str, int]:
    """Bytes held when training ends, by component."""
    f, p, n_neurons, recorded = s.n_features, s.n_probe, s.n_neurons, s.n_recorded
    kept, act = s.n_kept, s.act_bytes
    dataset = (
        s.n_samples * (f * F32 + I64)  # the dataset as loaded
        + (s.n_train + s.n_val) * (f * F32 + I64)  # the standardised splits
        + p * (f * F32 + I64)  # the probe
    )
    optimizer = OPTIMIZER_STATES[config.optimizer]
    if config.optimizer == "rmsprop" and config.momentum > 0:
        optimizer += 1
    # parameters, gradients, optimizer state, the final weights' copy, the tracer's copy of
    # the weights (for w_drift)
    model = s.n_parameters * F32 * (3 + optimizer) + s.n_weights * F32
    steps = 0
    if not config.drop_batches:
        rows = config.epochs * s.steps_per_epoch * (len(s.traced_widths) + 1)
        steps = rows * STEP_ROW_BYTES + s.steps_per_epoch * STEP_BUFFER_BYTES
    return {
        "dataset": dataset,
        "model and optimizer": model,
        "probe activations": recorded * kept * n_neurons * act,
        "logits and predictions": recorded * kept * (s.n_classes * act + I64),
        "kept weights": recorded * s.n_parameters * F32 if config.keep_weights else 0,
        "neuron metrics": recorded * n_neurons * (2 * N_METRICS * F32 + FRAME_INDEX_BYTES),
        "per-step table": steps,
    }


def _recording_phase(s: _Shapes, config: TrainConfig) -> _Phase:
    """Working memory of one probe measurement (the largest of its two stages)."""
    p, n_neurons = s.n_probe, s.n_neurons
    chunk = min(p, CHUNK_ROWS)
    per_hidden = 2 if config.activation in SAVES_INPUT else 1
    pooled = [p * w * F32 for w in (s.n_features, *s.traced_widths, s.n_classes)]
    # forward and backward over one chunk: the graph keeps the activations, backward makes
    # two gradients of the widest layer at a time
    graph = [chunk * w * F32 for w in s.widths for _ in range(per_hidden)]
    backward = [chunk * max(s.widths) * F32] * 2
    forward = _Phase().add(*pooled, *graph, *backward)
    # the activation matrix, filled from every layer's pooled chunks (each layer's released
    # once copied); then the "> 0" mask (smaller than the chunks), the deviations squared a
    # block of rows at a time (a few MiB)
    stats = _Phase().add(*pooled, p * n_neurons * F32)
    weights = _Phase().add(*[s.largest_weight * F32] * 4)  # drift, |w|, centred rows, squares
    stats.heap += weights.heap
    stats.mapped += weights.mapped
    return max(forward, stats, key=lambda phase: phase.total)


def _training_phase(s: _Shapes, config: TrainConfig) -> _Phase:
    """Working memory of a training step or an evaluation pass, whichever is larger."""
    batch = min(config.batch_size, s.n_train)
    per_hidden = 2 if config.activation in SAVES_INPUT else 1
    if config.dropout > 0:
        per_hidden += 1.25  # the output and the (byte) mask of every dropout
    step = _Phase().add(
        s.n_train * I64,  # the epoch's permutation
        batch * (s.n_features * F32 + I64),  # the batch
        *[int(batch * w * F32 * per_hidden) for w in s.widths],
        batch * s.n_classes * F32,
        *[batch * max(s.widths) * F32] * 2,  # backward
        *[s.largest_weight * F32] * (3 if config.weight_decay else 2),  # optimizer step
    )
    n_first = min(s.n_train, max(s.n_val, 4096))  # the untrained network's training loss
    chunk = min(CHUNK_ROWS, max(s.n_val, n_first))
    evaluation = _Phase().add(*[chunk * max(s.widths) * F32] * 2, chunk * s.n_classes * F32 * 2)
    return max(step, evaluation, key=lambda phase: phase.total)


def _file_entries(s: _Shapes, config: TrainConfig) -> dict[str, int]:
    """Bytes of every entry of the ``.nntrace`` file (safetensors, Parquet, manifest)."""
    kept, recorded = s.n_kept, s.n_recorded
    header = 96  # a safetensors entry's JSON header, per tensor
    entries = {
        "probe": kept * (s.n_features * F32 + I64) + 2 * header,
        "final weights": s.n_parameters * F32 + 2 * header * (len(s.widths) + 1),
    }
    per_epoch = kept * (s.n_neurons + s.n_classes) * s.act_bytes + kept * I64 + 3 * header
    if config.keep_weights:
        per_epoch += s.n_parameters * F32 + 2 * header * (len(s.widths) + 1)
    for index in range(recorded):
        entries[f"epoch {index}"] = per_epoch
    rows = recorded * s.n_neurons
    entries["neuron table"] = PARQUET_FILE_BYTES + rows * NEURON_ROW_FILE_BYTES
    entries["history"] = PARQUET_FILE_BYTES // 2 + (config.epochs + 1) * 40
    if not config.drop_batches:
        step_rows = config.epochs * s.steps_per_epoch * (len(s.traced_widths) + 1)
        entries["steps"] = PARQUET_FILE_BYTES // 2 + step_rows * STEP_ROW_FILE_BYTES
    # the manifest (deflated): layers, inventory, meta with feature names and statistics
    entries["manifest"] = 1_536 + 64 * (len(s.traced_widths) + recorded) + 16 * s.n_features
    return entries


def _saving_phase(s: _Shapes, config: TrainConfig, entries: dict[str, int]) -> _Phase:
    """Working memory of ``save_trace``.

    The tables are converted first (Arrow's allocator keeps what it used), then every entry's
    bytes are held until the zip is written, the largest twice while it is serialised.
    """
    tables = ARROW_POOL_BYTES + s.n_recorded * s.n_neurons * NEURON_TABLE_BUILD_BYTES
    if not config.drop_batches:
        step_rows = config.epochs * s.steps_per_epoch * (len(s.traced_widths) + 1)
        tables += step_rows * STEP_ROW_SAVE_BYTES
    return _Phase().add(tables, *entries.values(), max(entries.values()))


def _loading_peak(s: _Shapes, config: TrainConfig) -> int:
    """Peak while the dataset is generated (or read) and split, before anything else."""
    n, f = s.n_samples, s.n_features
    if config.dataset == "csv":
        generated = n * (f + 1) * 8 * 3 + n * f * F32  # frame, features, float64, float32
    elif config.dataset in ("classification", "moons", "circles", "blobs"):
        generated = n * f * (2 * 8 + F32) + n * I64 * 4  # float64, its shuffle, float32
    else:
        generated = n * f * (8 + F32)
    split = n * f * F32 * 4  # the dataset, the raw training split, standardised and cast
    return max(generated, split) + n * I64 * 2


def estimate_run(config: TrainConfig) -> RunEstimate:
    """Estimate the peak memory and the trace size of ``train(config)`` then ``save_trace``.

    Parameters
    ----------
    config
        The run's settings (validated already).

    Returns
    -------
    RunEstimate
        ``peak_bytes``, ``trace_bytes``, the breakdown and a sentence naming the knob.

    Raises
    ------
    ValueError
        When the dataset's dimensions cannot be known (an unreadable CSV file).
    """
    s = _shapes(config)
    held = _held(s, config)
    entries = _file_entries(s, config)
    phases = {
        "recording working memory": _recording_phase(s, config),
        "training working memory": _training_phase(s, config),
    }
    # While training, freed heap blocks of every phase stay resident (blocks of one phase's
    # sizes, fragmented by small allocations, serve another phase's little), mapped ones only
    # while in use. When training ends, train() gives the free pages back (nn_tracing/heap.py),
    # so saving adds its working memory to what the trace holds, and nothing else.
    training = {**held, **{name: phase.heap for name, phase in phases.items()}}
    mapped = {name: phase.mapped for name, phase in phases.items()}
    peak_phase = max(mapped, key=mapped.__getitem__)
    training[peak_phase] += mapped[peak_phase]
    saving = {**held, "saving": _saving_phase(s, config, entries).total}
    breakdown = max(training, saving, key=lambda parts: sum(parts.values()))
    loading = _loading_peak(s, config)
    if loading > sum(breakdown.values()):
        breakdown = {"dataset": held["dataset"], "loading the data": loading - held["dataset"]}
    breakdown = {k: int(v) for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1]) if v}
    trace_bytes = sum(entries.values()) + 120 * len(entries)  # zip headers, central directory
    return RunEstimate(
        peak_bytes=sum(breakdown.values()),
        trace_bytes=int(trace_bytes),
        rundir_bytes=_rundir_bytes(s, config, entries),
        breakdown=breakdown,
        details=_details(s, config, held),
        n_recorded=s.n_recorded,
        n_neurons=s.n_neurons,
        n_probe=s.n_probe,
        n_parameters=s.n_parameters,
        n_kept=s.n_kept,
        activation_dtype=config.activation_dtype,
    )


def _rundir_bytes(s: _Shapes, config: TrainConfig, entries: dict[str, int]) -> int:
    """Bytes of the run directory: the zip's tensors, a Parquet part per recorded epoch
    (neurons) and per trained epoch (history, steps), an uncompressed manifest, writer.json."""
    tensors = sum(v for k, v in entries.items() if k.startswith(("epoch ", "probe", "final")))
    neurons = s.n_recorded * (RUNDIR_NEURON_PART_BYTES + s.n_neurons * RUNDIR_NEURON_ROW_BYTES)
    history = (config.epochs + 1) * RUNDIR_HISTORY_PART_BYTES
    steps = 0
    if not config.drop_batches:
        step_rows = config.epochs * s.steps_per_epoch * (len(s.traced_widths) + 1)
        steps = config.epochs * RUNDIR_STEPS_PART_BYTES + step_rows * STEP_ROW_FILE_BYTES
    # the manifest: layers, meta (feature names, means and scales), an inventory line per
    # tensor and per part
    n_layers = len(s.traced_widths) + 2
    weights_per_epoch = 2 * (len(s.widths) + 1) if config.keep_weights else 0
    manifest = (
        2_600
        + 220 * n_layers
        + 60 * s.n_features
        + (240 + 90 * weights_per_epoch) * s.n_recorded
        + 24 * (config.epochs + 1)
    )
    return int(tensors + neurons + history + steps + manifest + 400)  # writer.json


def _details(s: _Shapes, config: TrainConfig, held: dict[str, int]) -> dict[str, str]:
    """How each component is made up, and the config field that lowers it."""
    recorded = s.n_recorded
    fewer = "record fewer epochs (epoch_intervals)"
    stored = "lower activation_samples (statistics still use the whole probe)" + (
        " or store float16 (activation_dtype)" if config.activation_dtype == "float32" else ""
    )
    per_epoch = held["probe activations"] // max(recorded, 1)
    steps = config.epochs * s.steps_per_epoch * (len(s.traced_widths) + 1)
    if config.dataset == "csv":
        smaller = "use a smaller CSV file"
    elif config.dataset in ("classification", "moons", "circles", "blobs"):
        smaller = "lower n_samples"
    else:
        smaller = "choose a smaller dataset"
    dataset = f"{s.n_samples} samples × {s.n_features} features — {smaller}"
    return {
        "probe activations": (
            f"{format_bytes(per_epoch)} per recorded epoch ({s.n_kept} probe samples kept × "
            f"{s.n_neurons} neurons, {config.activation_dtype}) × {recorded} epochs — "
            f"{stored}, trace fewer layers (traced_layers), lower probe_size or {fewer}"
        ),
        "logits and predictions": (
            f"{s.n_kept} probe samples kept × {recorded} epochs — {stored}, lower probe_size "
            f"or {fewer}"
        ),
        "kept weights": (
            f"{format_bytes(s.n_parameters * F32)} per recorded epoch × {recorded} epochs — "
            f"turn off keep_weights or {fewer}"
        ),
        "neuron metrics": (
            f"{s.n_neurons} neurons × {recorded} epochs — {fewer} or trace fewer layers "
            "(traced_layers)"
        ),
        "per-step table": (
            f"{steps} step rows — keep drop_batches=True (no --keep-batches) or raise batch_size"
        ),
        "dataset": dataset,
        "loading the data": dataset,
        "model and optimizer": (
            f"{s.n_parameters} parameters with gradients, {config.optimizer} state and copies "
            "— narrow hidden_sizes"
        ),
        "training working memory": (
            f"batches of {min(config.batch_size, s.n_train)} through layers up to "
            f"{max(s.widths)} wide — lower batch_size or narrow hidden_sizes"
        ),
        "recording working memory": (
            f"measuring {s.n_probe} probe samples × {s.n_neurons} neurons at once — "
            "lower probe_size"
        ),
        "saving": "the trace's entries built in memory while the file is written",
    }
