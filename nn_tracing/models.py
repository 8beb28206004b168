"""Model builders with seed-style layer names, and the model of a trace rebuilt.

The built-in MLP is an :class:`torch.nn.Sequential` whose children are named ``hidden_1``,
``act_1``, (``dropout_1``), ..., ``output``, so its traced layers are ``hidden_1 … hidden_k``
and ``output`` and its ``state_dict`` keys read ``hidden_1.weight`` and so on. The built-in
CNN (:mod:`nn_tracing.models_cnn`) names its layers ``conv_1 … conv_k``, ``output``. Any other
model comes from an entry point (:mod:`nn_tracing.model_entry`), imported only when allowed.

A trace records its model in ``meta["model"]``: ``name`` (``mlp``, ``cnn`` or the entry point),
``kwargs``, ``input_shape`` (one sample, as the model receives it), ``builtin``, and for an
entry point ``entry_point``. :func:`model_from_trace` rebuilds it from the trace's config and
its kept weights — after checking, before any weight is allocated, that the architecture has
the stored weights' keys and shapes and at most :data:`MAX_BUILD_PARAMETERS` parameters.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .config import ACTIVATIONS, TrainConfig
from .model_entry import check_allowed, cnn_options, load_factory
from .models_cnn import CNN, cnn_state_shapes

if TYPE_CHECKING:
    from .trace import NetworkTrace

__all__ = [
    "ACTIVATION_MODULES",
    "MAX_BUILD_PARAMETERS",
    "MLP",
    "attach_model",
    "build_model",
    "check_buildable",
    "construct_model",
    "model_from_trace",
    "model_meta",
    "untrained_model_from_trace",
]
#: The most values ``meta["model"]["input_shape"]`` of a rebuilt model may have per sample.
MAX_INPUT_VALUES = 2**24

#: The most parameters a model rebuilt from a trace may have (about 1 GiB of float32 weights):
#: :func:`check_buildable` refuses larger ones before anything is allocated.
MAX_BUILD_PARAMETERS = 2**28

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


class MLP(nn.Sequential):
    """A multi-layer perceptron: ``(Linear → activation [→ dropout]) × k → Linear``.

    Parameters
    ----------
    n_inputs, hidden_sizes, n_outputs
        Input width, hidden widths, number of classes (logits).
    activation
        One of ``relu tanh gelu sigmoid leaky_relu``.
    dropout
        Dropout probability after each hidden activation; 0 adds no dropout module.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden_sizes: Sequence[int],
        n_outputs: int,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        if activation not in ACTIVATION_MODULES:
            raise ValueError(f"activation={activation!r}: choose one of {', '.join(ACTIVATIONS)}")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        width = n_inputs
        for i, size in enumerate(hidden_sizes, start=1):
            layers[f"hidden_{i}"] = nn.Linear(width, size)
            layers[f"act_{i}"] = ACTIVATION_MODULES[activation]()
            if dropout > 0:
                layers[f"dropout_{i}"] = nn.Dropout(dropout)
            width = size
        layers["output"] = nn.Linear(width, n_outputs)
        super().__init__(layers)
        self.n_inputs = n_inputs
        self.hidden_sizes = tuple(hidden_sizes)
        self.n_outputs = n_outputs
        self.activation = activation
        self.dropout = dropout


def construct_model(config: TrainConfig, input_shape: Sequence[int], n_outputs: int) -> nn.Module:
    """The module of ``config`` (its initial weights from the global RNG, unseeded: see
    :func:`build_model`); an entry point is imported only when allowed."""
    if config.model == "mlp":
        return MLP(
            int(math.prod(input_shape)),
            config.hidden_sizes,
            n_outputs,
            config.activation,
            config.dropout,
        )
    if config.model == "cnn":
        return CNN(
            input_shape,
            n_outputs,
            **cnn_options(config.model_kwargs),
            activation=config.activation,
            dropout=config.dropout,
        )
    factory = load_factory(config.model)  # refused unless allowed (or trusted)
    try:
        module = factory(
            input_shape=tuple(input_shape), n_classes=n_outputs, **(config.model_kwargs or {})
        )
    except Exception as exc:
        raise ValueError(
            f"model {config.model!r}: the factory failed with {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(module, nn.Module):
        raise ValueError(
            f"model {config.model!r}: the factory returned a {type(module).__name__}, not a "
            "torch.nn.Module"
        )
    return module


def build_model(
    config: TrainConfig,
    n_inputs: int,
    n_outputs: int,
    input_shape: Sequence[int] | None = None,
) -> nn.Module:
    """The model that ``config`` describes, initialised from ``config.seed``.

    ``input_shape`` is one sample's shape (default ``(n_inputs,)``; see
    :func:`input_shape_for`). The global torch RNG is seeded here and nowhere else during
    set-up, so the same config gives the same initial weights. An entry point is imported
    only when allowed (:func:`nn_tracing.model_entry.load_factory`).
    """
    torch.manual_seed(config.seed)
    return construct_model(config, tuple(input_shape or (n_inputs,)), n_outputs)


def model_meta(config: TrainConfig, input_shape: Sequence[int], module: nn.Module) -> dict:
    """What a trace records of its model (``meta["model"]``)."""
    meta = {
        "class": type(module).__name__,
        "builtin": config.model in ("mlp", "cnn"),
        "name": config.model,
        "kwargs": config.to_dict()["model_kwargs"] or {},
        "input_shape": [int(v) for v in input_shape],
        "architecture": config.architecture,
    }
    if config.model == "cnn":
        meta["options"] = cnn_options(config.model_kwargs)  # the kwargs with their defaults
    if not meta["builtin"]:
        meta["entry_point"] = config.model
    return meta


# -- the model of a trace -----------------------------------------------------------------------
def _trace_config(trace: NetworkTrace) -> TrainConfig:
    """The trace's config, checked against what its meta says the model is.

    Raises ``ValueError`` for a custom model (no entry point: it must be attached) and
    :class:`~nn_tracing.store.TraceFormatError` for a config that does not validate or names
    another model than the meta."""
    from .store import TraceFormatError

    model_meta_ = trace.meta.get("model") if isinstance(trace.meta.get("model"), dict) else {}
    config = trace.meta.get("config")
    entry = model_meta_.get("entry_point")
    if (not model_meta_.get("builtin") and entry is None) or not isinstance(config, dict):
        if not model_meta_.get("builtin") and entry is None:
            raise ValueError(
                f"this trace comes from a custom model ({model_meta_.get('class', 'unknown')}); "
                "rebuilding it needs the module: nt.attach_model(trace, module) with a module "
                "of the same architecture, or train it from an entry point (--model "
                "package.module:factory)"
            )
        raise TraceFormatError("the trace's meta holds no config to rebuild its model from")
    try:
        cfg = TrainConfig.from_dict(config)
    except (TypeError, ValueError) as exc:
        raise TraceFormatError(f"the trace's config cannot rebuild its model: {exc}") from None
    named = entry if entry is not None else model_meta_.get("name", "mlp")
    if cfg.model != named:
        raise TraceFormatError(
            f"the trace's meta.model names {str(named)[:80]!r} but its config {cfg.model!r}"
        )
    check_allowed(cfg.model)  # first: a refused entry point costs nothing, imports nothing
    return cfg


def _trace_input_shape(trace: NetworkTrace, cfg: TrainConfig) -> tuple[int, ...]:
    """One sample's shape: ``meta["model"]["input_shape"]`` (the MLP: its features), checked
    against the probe set."""
    from .store import TraceFormatError

    shape = (trace.meta.get("model") or {}).get("input_shape")
    if shape is None and cfg.model == "mlp":
        shape = [(trace.meta.get("dataset") or {}).get("n_features")]
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 4
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
        or math.prod(shape) > MAX_INPUT_VALUES
    ):
        raise TraceFormatError(
            "the trace's meta.model.input_shape must be a list of 1 to 4 positive sizes, got "
            f"{str(shape)[:80]}"
        )
    probe = trace.probe
    if probe is not None and tuple(np.shape(probe[0])[1:]) != tuple(shape):
        raise TraceFormatError(
            f"the trace's meta.model.input_shape {tuple(shape)} is not the shape of its probe "
            f"samples {tuple(np.shape(probe[0])[1:])}"
        )
    return tuple(shape)


def _n_classes(trace: NetworkTrace) -> int:
    return int(trace.layers[-1].n_neurons)


def _expected_shapes(trace: NetworkTrace, cfg: TrainConfig) -> dict[str, tuple[int, ...]]:
    """The ``state_dict`` shapes of the trace's architecture, computed (built-ins) or read
    from a build on PyTorch's meta device (an entry point: no weight allocated)."""
    from .store import TraceFormatError
    from .store_shapes import mlp_architecture, mlp_state_shapes

    if cfg.model == "mlp":
        architecture = mlp_architecture(trace.meta)
        if architecture is None:
            raise TraceFormatError(
                "the trace's config cannot rebuild its model: its meta names no built-in MLP "
                "with config.hidden_sizes, dataset.n_features and dataset.n_classes"
            )
        return mlp_state_shapes(*architecture)
    input_shape = _trace_input_shape(trace, cfg)
    if cfg.model == "cnn":
        return cnn_state_shapes(input_shape, _n_classes(trace), cfg.model_kwargs)
    load_factory(cfg.model)  # imported outside the meta device: module-level tensors stay real
    try:
        with torch.device("meta"):
            skeleton = construct_model(cfg, input_shape, _n_classes(trace))
    except ValueError as exc:
        if "factory failed" not in str(exc):
            raise
        raise ValueError(
            f"{exc} — on PyTorch's meta device, where nn_tracing builds a traced model first "
            "to check its size; a model that cannot be built there is not rebuilt from a trace"
        ) from None
    return {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}


def check_buildable(trace: NetworkTrace, weights: Mapping[str, np.ndarray] | None = None) -> int:
    """Check, before anything is allocated, that the model ``trace``'s config describes is
    the model of its stored weights and small enough to build; return its parameter count.

    Every builder of a trace's model calls it first — :func:`model_from_trace` (and through it
    :meth:`nn_tracing.analysis.neuron_model.NeuronModel.from_trace`) and
    :func:`untrained_model_from_trace`: a config is untrusted input, and one that claims 16
    layers of 8192 would otherwise allocate a billion parameters before the stored weights
    were compared. The MLP's and the CNN's shapes are computed from the config; an entry
    point (imported only when allowed) is built on PyTorch's meta device, which allocates
    nothing.

    Raises
    ------
    TraceFormatError
        The config names no architecture, or one whose parameter shapes differ from the
        stored weights' (counts computed from the config, not from a built model).
    ValueError
        No stored weights, more than :data:`MAX_BUILD_PARAMETERS` parameters, a custom model
        that was not attached, or an entry point that is not allowed
        (:class:`~nn_tracing.model_entry.EntryPointRefused`).
    """
    from .store import TraceFormatError
    from .store_shapes import describe_sizes, mlp_architecture

    cfg = _trace_config(trace)
    expected = _expected_shapes(trace, cfg)
    n_expected = sum(math.prod(shape) for shape in expected.values())
    stored = trace.final_weights if weights is None else weights
    if not stored:
        raise ValueError("this trace holds no weights to rebuild its model from")
    shapes = {key: tuple(np.shape(value)) for key, value in stored.items()}
    if shapes != expected:
        n_stored = sum(math.prod(shape) for shape in shapes.values())
        differ = [k for k in expected if shapes.get(k) != expected[k]] or sorted(
            set(shapes) - set(expected)
        )[:1]
        key = differ[0] if differ else next(iter(expected))
        if cfg.model == "mlp":
            n_features, hidden, n_classes = mlp_architecture(trace.meta)  # type: ignore[misc]
            what = f"an MLP {describe_sizes([n_features, *hidden, n_classes])}"
        else:
            what = f"a {cfg.architecture}"
        raise TraceFormatError(
            f"the trace's config describes {what} of {n_expected:,} parameters, "
            f"but its stored weights hold {n_stored:,} ({key}: "
            f"{expected.get(key, 'absent')} in the config, {shapes.get(key, 'absent')} stored)"
        )
    if n_expected > MAX_BUILD_PARAMETERS:
        raise ValueError(
            f"the trace's model has {n_expected:,} parameters, over the limit of "
            f"{MAX_BUILD_PARAMETERS:,} that nn_tracing rebuilds "
            "(nn_tracing.models.MAX_BUILD_PARAMETERS)"
        )
    return n_expected


def _epoch_weights(trace: NetworkTrace, epoch: int | None) -> Mapping[str, np.ndarray]:
    final_epoch = trace.meta.get("final_weights_epoch")
    if epoch is None:
        if not trace.final_weights:
            raise ValueError("this trace holds no final weights")
        return trace.final_weights
    weights = trace.weights(epoch)
    if weights is None:
        kept = "kept only the final weights" + (
            f" (epoch {final_epoch})" if final_epoch is not None else ""
        )
        raise ValueError(
            f"this trace has no weights for epoch {epoch}: the run {kept}; train with "
            "keep_weights=True (--keep-weights) to rebuild the model at every recorded epoch"
        )
    return weights


def untrained_model_from_trace(
    trace: NetworkTrace,
    *,
    device: str = "meta",
    weights: Mapping[str, np.ndarray] | None = None,
) -> nn.Module:
    """The trace's architecture, checked against ``weights`` (default: the final weights) by
    :func:`check_buildable`, with the weights its constructor gives.

    The built-in models are made on ``device`` (``"meta"``, the default, allocates and draws
    nothing: the caller initialises them with ``to_empty``); an entry point is built on the
    CPU, the global RNG's state restored afterwards. An attached module is copied."""
    import copy

    template = getattr(trace, "attached_model", None)
    if template is not None:
        return copy.deepcopy(template)
    check_buildable(trace, weights)
    cfg = _trace_config(trace)
    n_classes = _n_classes(trace)
    try:
        if cfg.model == "mlp":
            input_shape: tuple[int, ...] = (int(trace.meta["dataset"]["n_features"]),)
        else:
            input_shape = _trace_input_shape(trace, cfg)
        if cfg.model in ("mlp", "cnn"):
            with torch.device(device):
                return construct_model(cfg, input_shape, n_classes)
        with torch.random.fork_rng(devices=[]):
            return construct_model(cfg, input_shape, n_classes)
    except (KeyError, TypeError) as exc:
        from .store import TraceFormatError

        raise TraceFormatError(f"the trace's config cannot rebuild its model: {exc}") from None


def model_from_trace(trace: NetworkTrace, epoch: int | None = None) -> nn.Module:
    """The traced model with its weights at ``epoch`` (default: the end of training), in eval mode.

    Works for traces of the built-in MLP and CNN (rebuilt from ``meta["config"]``), of an
    entry-point model (imported only when ``NN_TRACING_MODELS`` allows it: see
    :mod:`nn_tracing.model_entry`), and for traces that a module was attached to with
    :func:`attach_model`. Weights exist for the final state always and for every recorded
    epoch when the run kept them (``keep_weights``). The weights' keys and shapes are checked
    against the architecture before anything is allocated (:func:`check_buildable`).

    Raises
    ------
    ValueError
        With the reason: no weights at that epoch, a custom model that was not attached, an
        entry point that is not allowed (:class:`~nn_tracing.model_entry.EntryPointRefused`)
        or a model too large to rebuild.
    TraceFormatError
        The config does not describe the stored weights (checked before building, by
        :func:`check_buildable`).
    """
    weights = _epoch_weights(trace, epoch)
    module = untrained_model_from_trace(trace, weights=weights)
    if any(p.is_meta for p in module.parameters()):  # a built-in model: nothing drawn
        module = module.to_empty(device="cpu")
    state = {key: torch.from_numpy(np.array(value)) for key, value in weights.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in the trace do not fit the model: {exc}") from None
    return module.eval()


def attach_model(trace: NetworkTrace, module: nn.Module) -> NetworkTrace:
    """Attach the architecture of a custom model to its trace, so it can be rebuilt.

    The module's ``state_dict`` must have the keys and shapes of the trace's final weights
    (its own values are replaced by the trace's whenever the model is rebuilt). Returns the
    trace.
    """
    expected = {k: tuple(v.shape) for k, v in trace.final_weights.items()}
    actual = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if expected != actual:
        missing = sorted(set(expected) - set(actual))[:5]
        extra = sorted(set(actual) - set(expected))[:5]
        differ = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])[:5]
        raise ValueError(
            "the module does not match the trace's weights"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + (f"; other shapes for {differ}" if differ else "")
        )
    trace.attached_model = module  # type: ignore[attr-defined]
    return trace
