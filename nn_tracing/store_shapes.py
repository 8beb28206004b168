"""Cross-shapes of a trace read from a file: every part agrees with every other.

:mod:`nn_tracing.store` checks each part of a ``.nntrace`` file on its own (the manifest, each
table's schema and row count, each tensor's header). A file whose parts are each well formed
can still disagree with itself — probe activations with more rows than the probe set, a probe
wider than the input layer, a config that claims layers the weights do not have — and each such
upload crashed a page or, rebuilt from its config, exhausted the server's memory. These are
the rules that tie the parts together:

* the probe set: inputs as wide as the input layer (features, or channels when the first layer
  is a convolution), integer labels within the classes;
* every recorded epoch's tensors: activations ``(n_probe, n_neurons)`` and logits
  ``(n_probe, n_classes)``, floating point; predictions ``(n_probe,)``, integers within the
  classes (their values checked when the epoch is read, the rest at load). A trace without a
  probe set (edited by hand: the tracer keeps none then) must still have as many rows in
  every epoch;
* weights: each traced layer's weight ``(n_neurons, …)`` with ``fan_in`` inputs per neuron and
  its bias ``(n_neurons,)``; kept weights shaped like the final weights of the same name;
* tables: the history lists each epoch once, from 0, and marks as recorded only recorded
  epochs (it has one row per trained epoch, recorded or not); per-step rows name traced layers;
* the built-in MLP: its config (``hidden_sizes``) and dataset (``n_features``, ``n_classes``)
  describe exactly the stored layers and weights. :func:`mlp_architecture` and
  :func:`mlp_state_shapes` are also what :func:`nn_tracing.models.check_buildable` compares
  before any model is built.

Shapes come from the manifest's inventory, which the store has checked against every tensor's
header, so loading reads no tensor data to check them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .store_archive import TraceFormatError
from .store_checks import MAX_NEURONS
from .trace import LayerInfo

__all__ = [
    "EpochRules",
    "check_epoch_values",
    "check_labels",
    "check_trace_shapes",
    "describe_sizes",
    "mlp_architecture",
    "mlp_state_shapes",
]

PROBE_ENTRY = "tensors/probe.safetensors"
FINAL_ENTRY = "tensors/final_weights.safetensors"
FLOAT_DTYPES = ("F16", "F32", "F64")
INTEGER_DTYPES = ("I8", "I16", "I32", "I64", "U8")
#: Dimensions of a traced layer's weight, by kind.
WEIGHT_DIMS = {"linear": 2, "conv1d": 3, "conv2d": 4}

Inventory = Mapping[str, Mapping[str, Any]]  # tensor name -> {"dtype": ..., "shape": [...]}


@dataclass(frozen=True)
class EpochRules:
    """What the tensors of every recorded epoch hold, fixed when the trace is loaded.

    Attributes
    ----------
    inventory : the manifest's ``{entry: {tensor: {"dtype", "shape"}}}`` (checked)
    n_classes : predictions lie in ``0 … n_classes - 1``; ``None`` when the trace does not say
        how many classes there are (only ``>= 0`` is then required)
    label_classes : the same bound for the probe labels; ``None`` for custom models, whose
        labels need not index their logits (one logit for 0/1 labels, say)
    """

    inventory: Mapping[str, Inventory]
    n_classes: int | None
    label_classes: int | None


def _fail(message: str) -> TraceFormatError:
    return TraceFormatError(message)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _shape(shape: Sequence[int]) -> str:
    return str(tuple(shape))


def _listed(values: Iterable[Any], limit: int = 12) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", … ({len(values)} in all)" if len(values) > limit else "")


def describe_sizes(sizes: Sequence[int]) -> str:
    """Layer widths as ``2-8-8-2`` (the middle elided past a dozen layers)."""
    sizes = list(sizes)
    if len(sizes) > 12:
        sizes = [*sizes[:6], "…", *sizes[-2:]]
    return "-".join(str(size) for size in sizes)


# --------------------------------------------------------------------------- the built-in MLP


def _size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_NEURONS


def mlp_architecture(meta: Mapping[str, Any]) -> tuple[int, tuple[int, ...], int] | None:
    """``(n_features, hidden_sizes, n_classes)`` of the built-in MLP that ``meta`` describes.

    ``None`` when the trace is not of the built-in MLP (``meta["model"]["builtin"]`` and
    ``name`` ``mlp``, or no name: older traces) or its meta holds no config or dataset.
    Reads sizes only: nothing is built.

    Raises
    ------
    TraceFormatError
        When a size is missing or is not a positive integer (at most ``MAX_NEURONS``).
    """
    model = meta.get("model")
    config, dataset = meta.get("config"), meta.get("dataset")
    if not isinstance(model, dict) or not model.get("builtin"):
        return None
    if not isinstance(config, dict) or not isinstance(dataset, dict):
        return None
    if model.get("name", "mlp") != "mlp" or config.get("model", "mlp") != "mlp":
        return None  # the built-in CNN (its shapes: nn_tracing.models.check_buildable)
    hidden = config.get("hidden_sizes")
    if not isinstance(hidden, list) or not hidden or not all(_size(h) for h in hidden):
        raise _fail(
            "the trace's config is invalid: meta.config.hidden_sizes must be a list of "
            f"positive layer widths, got {_shown(hidden)}"
        )
    for key in ("n_features", "n_classes"):
        if not _size(dataset.get(key)):
            raise _fail(
                f"the trace's config is invalid: meta.dataset.{key} must be a positive "
                f"integer, got {_shown(dataset.get(key))}"
            )
    return dataset["n_features"], tuple(hidden), dataset["n_classes"]


def mlp_state_shapes(
    n_features: int, hidden_sizes: Sequence[int], n_classes: int
) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` shapes of the built-in MLP, in its order (computed, not built)."""
    shapes: dict[str, tuple[int, ...]] = {}
    width = n_features
    for i, size in enumerate(hidden_sizes, start=1):
        shapes[f"hidden_{i}.weight"] = (size, width)
        shapes[f"hidden_{i}.bias"] = (size,)
        width = size
    shapes["output.weight"] = (n_classes, width)
    shapes["output.bias"] = (n_classes,)
    return shapes


def _traced_hidden(meta: Mapping[str, Any]) -> set[str] | None:
    """The hidden layers a built-in run traced (``config.traced_layers``); ``None``: all."""
    config = meta.get("config")
    traced = config.get("traced_layers") if isinstance(config, dict) else None
    if traced is None:
        return None
    if not isinstance(traced, list) or not all(isinstance(name, str) for name in traced):
        raise _fail(
            "the trace's config is invalid: meta.config.traced_layers must be a list of "
            f"layer names, got {_shown(traced)}"
        )
    return set(traced)


def _check_mlp(
    layers: Sequence[LayerInfo],
    architecture: tuple[int, tuple[int, ...], int],
    inventory: Mapping[str, Inventory],
    traced: set[str] | None = None,
) -> None:
    n_features, hidden, n_classes = architecture
    names = ["input", *(f"hidden_{i}" for i in range(1, len(hidden) + 1)), "output"]
    keep = [
        i
        for i, name in enumerate(names)
        if traced is None or name in ("input", "output") or name in traced
    ]
    sizes = [n_features, *hidden, n_classes]
    stored = [info.n_neurons for info in layers]
    if stored != [sizes[i] for i in keep]:
        raise _fail(
            f"the trace's config describes an MLP {describe_sizes(sizes)}, but its stored "
            f"layers are {describe_sizes(stored)}"
        )
    expected = [("input", "input", 0, None, None)] + [
        (name, "linear", width, f"{name}.weight", f"{name}.bias")
        for name, width in zip(names[1:], sizes[:-1], strict=True)
    ]
    expected = [expected[i] for i in keep]
    got = [(i.name, i.kind, i.fan_in, i.weight_key, i.bias_key) for i in layers]
    if got != expected:
        raise _fail(
            "the trace says it is of the built-in MLP, but its layers are not the MLP's "
            f"(input, hidden_1 … hidden_{len(hidden)}, output, each fed by the one before): "
            f"got {_listed(info.name for info in layers)}"
        )
    keys = set(mlp_state_shapes(*architecture))
    for entry, tensors in inventory.items():
        if entry == PROBE_ENTRY:
            continue
        prefix = "" if entry == FINAL_ENTRY else "weights/"
        held = {k.removeprefix(prefix) for k in tensors if k.startswith(prefix)}
        if held and held != keys:
            raise _fail(
                f"{entry}: the built-in MLP's weights are {_listed(sorted(keys))}; missing "
                f"{_listed(sorted(keys - held)) or 'none'}, unexpected "
                f"{_listed(sorted(held - keys)) or 'none'}"
            )


# --------------------------------------------------------------------------- tables


def _check_history(history: pd.DataFrame, epochs: Sequence[int]) -> None:
    column = history["epoch"].to_numpy()
    if column.size and column.min() < 0:
        raise _fail(
            f"the history table lists epoch {column.min()}; epochs are counted from 0 "
            "(E_0 is the untrained network)"
        )
    values, counts = np.unique(column, return_counts=True)
    if (counts > 1).any():
        first = int(np.argmax(counts > 1))
        times = "twice" if counts[first] == 2 else f"{counts[first]} times"
        raise _fail(f"the history table lists epoch {values[first]} {times}")
    marked = sorted(set(column[history["recorded"].to_numpy(dtype=bool)].tolist()) - set(epochs))
    if marked:
        raise _fail(
            f"the history table marks epoch {marked[0]} as recorded, but the trace records "
            f"epochs {_listed(epochs)}"
        )


def _check_steps(steps: pd.DataFrame | None, layers: Sequence[LayerInfo]) -> None:
    if steps is None or not len(steps):
        return
    traced = [info.name for info in layers if info.kind != "input"]
    unknown = sorted(set(steps["layer"].astype(str).unique()) - set(traced))
    if unknown:
        raise _fail(
            f"the steps table names layer {unknown[0]!r}, which is not a traced layer "
            f"({_listed(traced)})"
        )
    if steps["epoch"].min() < 0:
        raise _fail(f"the steps table lists epoch {steps['epoch'].min()}; epochs count from 0")


# --------------------------------------------------------------------------- tensors


def _check_probe(inventory: Mapping[str, Inventory], layers: Sequence[LayerInfo]) -> int | None:
    """The number of probe samples (``None``: no probe set); the probe's width checked."""
    probe = inventory.get(PROBE_ENTRY)
    if probe is None:
        return None
    x, y = probe.get("x"), probe.get("y")
    if set(probe) != {"x", "y"} or not x["shape"] or not y["shape"]:
        raise _fail(f"{PROBE_ENTRY} must hold x and y with one row per sample")
    n_probe = x["shape"][0]
    if y["shape"][0] != n_probe:
        raise _fail(
            f"{PROBE_ENTRY} must hold x and y with one row per sample: x has {n_probe} rows, "
            f"y has {y['shape'][0]}"
        )
    if n_probe < 1:
        raise _fail("the probe set is empty")
    shape = x["shape"]
    first_conv = len(layers) > 1 and layers[1].kind.startswith("conv")
    if len(shape) >= 2:
        # the tracer's input neurons: axis 1 of 2-d inputs and of a convolution's input,
        # else the last axis (a Linear over a sequence)
        width = shape[1] if len(shape) == 2 or first_conv else shape[-1]
        what = "channels" if len(shape) > 2 and first_conv else "features per sample"
        if width != layers[0].n_neurons:
            raise _fail(
                f"the probe inputs have {width} {what} but the input layer has "
                f"{layers[0].n_neurons} neurons"
            )
    return n_probe


PROBE_TENSORS = ("activations", "logits", "predictions")


def _samples(
    inventory: Mapping[str, Inventory], epochs: Sequence[int], n_probe: int | None
) -> tuple[int, str] | None:
    """How many rows (samples) every epoch's probe tensors have, and the reason, for messages.

    The probe set's size; without a probe set (a hand-edited trace may keep its tensors), the
    rows of the first epoch that has such tensors: every epoch measures the same samples.
    """
    if n_probe is not None:
        return n_probe, f"the probe set has {n_probe} samples"
    for epoch in epochs:
        entry = f"tensors/epoch_{epoch}.safetensors"
        for key in PROBE_TENSORS:
            shape = inventory.get(entry, {}).get(key, {}).get("shape")
            if shape:
                return shape[0], f"{entry}'s {key} have {shape[0]} (every epoch, the same samples)"
    return None


def _check_probe_tensors(
    entry: str, tensors: Inventory, n_neurons: int, samples: tuple[int, str] | None
) -> int | None:
    """Check one epoch's activations, logits and predictions; return its logits' width."""
    for key in tensors:
        if key not in PROBE_TENSORS and not key.startswith("weights/"):
            raise _fail(f"{entry} holds an unexpected tensor {key!r}")
    n_rows, source = samples if samples is not None else (None, "they need one row per sample")
    width = None
    for key, kinds, what in (
        ("activations", FLOAT_DTYPES, "floating point"),
        ("logits", FLOAT_DTYPES, "floating point"),
        ("predictions", INTEGER_DTYPES, "integers (class indices)"),
    ):
        spec = tensors.get(key)
        if spec is None:
            continue
        shape = spec["shape"]
        if spec["dtype"] not in kinds:
            raise _fail(f"{entry}: {key} must be {what}, not {spec['dtype']}")
        if key == "activations" and (len(shape) != 2 or shape[1] != n_neurons):
            raise _fail(f"{entry}: activations must have one column per neuron ({n_neurons})")
        if key == "predictions" and len(shape) != 1:
            raise _fail(f"{entry}: predictions must have shape ({n_rows},), not {_shape(shape)}")
        if not shape or shape[0] != n_rows:
            raise _fail(f"{entry}: {key} have {shape[0] if shape else 0} rows but {source}")
        if key == "logits" and len(shape) == 2:
            width = shape[1]
    return width


def _check_layer_weights(
    entry: str, tensors: Inventory, layers: Sequence[LayerInfo], prefix: str
) -> None:
    for info in layers:
        for key, is_bias in ((info.weight_key, False), (info.bias_key, True)):
            spec = tensors.get(prefix + key) if key is not None else None
            if spec is None:
                continue  # a weight under another name (a parametrisation): nothing to check
            shape = spec["shape"]
            name = f"{entry}: {prefix}{key} has shape {_shape(shape)}"
            if spec["dtype"] not in FLOAT_DTYPES:
                raise _fail(f"{entry}: {prefix}{key} must be floating point, not {spec['dtype']}")
            if is_bias and list(shape) != [info.n_neurons]:
                raise _fail(
                    f"{name}, but layer {info.name!r} has {info.n_neurons} neurons (one bias each)"
                )
            dims = WEIGHT_DIMS.get(info.kind)
            if not is_bias and dims is not None and len(shape) != dims:
                raise _fail(f"{name}, but layer {info.name!r} is {info.kind}: {dims} dimensions")
            if not is_bias and (shape[0] != info.n_neurons or math.prod(shape[1:]) != info.fan_in):
                raise _fail(
                    f"{name}, but layer {info.name!r} has {info.n_neurons} neurons of "
                    f"{info.fan_in} inputs each"
                )


def _check_kept_weights(entry: str, tensors: Inventory, final: Inventory) -> None:
    for key, spec in tensors.items():
        stored = final.get(key.removeprefix("weights/")) if key.startswith("weights/") else None
        if stored is not None and stored["shape"] != spec["shape"]:
            raise _fail(
                f"{entry}: {key} has shape {_shape(spec['shape'])}, but the final weights' "
                f"{key.removeprefix('weights/')} has shape {_shape(stored['shape'])}"
            )


def check_trace_shapes(
    layers: Sequence[LayerInfo],
    epochs: Sequence[int],
    meta: Mapping[str, Any],
    inventory: Mapping[str, Inventory],
    history: pd.DataFrame,
    steps: pd.DataFrame | None,
) -> EpochRules:
    """Check every cross-shape a page relies on, from the tables and the inventory alone.

    Parameters
    ----------
    layers, epochs
        The manifest's layers (ids contiguous, ``input`` first) and recorded epochs.
    meta
        The trace's meta (config, dataset, model).
    inventory
        The manifest's ``{entry: {tensor: {"dtype", "shape"}}}``, already checked against
        every tensor file's header.
    history, steps
        The history table and the per-step table (``None`` when absent).

    Returns
    -------
    EpochRules
        What :func:`check_epoch_values` and :func:`check_labels` check in the data.

    Raises
    ------
    TraceFormatError
        With the first disagreement found, named for a person.
    """
    _check_history(history, epochs)
    _check_steps(steps, layers)
    architecture = mlp_architecture(meta)
    if architecture is not None:
        _check_mlp(layers, architecture, inventory, _traced_hidden(meta))
    n_probe = _check_probe(inventory, layers)
    samples = _samples(inventory, epochs, n_probe)
    n_neurons = sum(info.n_neurons for info in layers)
    final = inventory.get(FINAL_ENTRY, {})
    _check_layer_weights(FINAL_ENTRY, final, layers, "")
    widths: dict[int, int | None] = {}
    for epoch in epochs:
        entry = f"tensors/epoch_{epoch}.safetensors"
        tensors = inventory.get(entry)
        if tensors is None:
            continue
        widths[epoch] = _check_probe_tensors(entry, tensors, n_neurons, samples)
        _check_layer_weights(entry, tensors, layers, "weights/")
        _check_kept_weights(entry, tensors, final)

    if architecture is not None:
        n_classes, source = architecture[2], "meta.dataset.n_classes"
    else:
        first = next((e for e, width in widths.items() if width is not None), None)
        n_classes = widths[first] if first is not None else None
        source = f"the width of its logits at E_{first}"
    for epoch, width in widths.items():
        entry = f"tensors/epoch_{epoch}.safetensors"
        logits = inventory[entry].get("logits")
        if architecture is not None and logits is not None and width is None:
            raise _fail(f"{entry}: logits must have one column per class ({n_classes})")
        if width is not None and width != n_classes:
            raise _fail(
                f"{entry}: logits have {width} columns but the trace has {n_classes} classes "
                f"({source})"
            )
    return EpochRules(
        inventory=inventory,
        n_classes=n_classes,
        label_classes=architecture[2] if architecture is not None else None,
    )


def _check_classes(what: str, values: np.ndarray, n_classes: int | None) -> None:
    if not values.size or not np.issubdtype(values.dtype, np.integer):
        return
    low, high = int(values.min()), int(values.max())
    classes = f"0 … {n_classes - 1}" if n_classes is not None else "0, 1, …"
    if low < 0:
        raise _fail(f"{what} must be classes {classes}; found {low}")
    if n_classes is not None and high >= n_classes:
        raise _fail(f"{what} must be classes {classes}; found {high}")


def check_labels(y: np.ndarray, rules: EpochRules) -> None:
    """Integer probe labels must be classes: ``0 <= y`` (and ``< n_classes`` when known)."""
    _check_classes("the probe labels", np.asarray(y), rules.label_classes)


def check_epoch_values(entry: str, arrays: Mapping[str, np.ndarray], rules: EpochRules) -> None:
    """Check one epoch's tensors when they are read: the shapes the inventory promised, and
    predictions within the classes."""
    inventory = rules.inventory.get(entry, {})
    for key, array in arrays.items():
        spec = inventory.get(key)
        if spec is None or list(np.shape(array)) != list(spec["shape"]):
            raise _fail(f"{entry}: {key} is not the tensor the manifest lists")
    predictions = arrays.get("predictions")
    if predictions is not None:
        _check_classes(f"{entry}: predictions", np.asarray(predictions), rules.n_classes)
