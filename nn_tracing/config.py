"""``TrainConfig``: every setting of a traced training run, validated when it is made.

A frozen dataclass (TransformerLens style): invalid values raise :class:`ValueError` naming the
field, ``to_dict`` / ``from_dict`` round-trip through JSON and TOML, and unknown keys are an
error rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from .data_modular import MAX_MODULUS, MODULAR_DATASETS
from .model_entry import check_model_kwargs, check_model_name, cnn_options
from .schedule import normalize_epoch_intervals
from .step_schedule import normalize_step_intervals

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_DTYPES",
    "BUDGET_MODES",
    "DATASETS",
    "IMAGE_DATASETS",
    "OPTIMIZERS",
    "ConfigFieldError",
    "TrainConfig",
    "config_problems",
]

DATASETS: tuple[str, ...] = (
    "classification",
    "moons",
    "circles",
    "blobs",
    "digits",
    "iris",
    "wine",
    "breast_cancer",
    "bars",
    *MODULAR_DATASETS,
    "csv",
)
#: The datasets whose samples are images: the built-in CNN (``model="cnn"``) and entry-point
#: models receive them as ``(channels, height, width)``; the MLP as flat features.
IMAGE_DATASETS: tuple[str, ...] = ("digits", "bars")
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "gelu", "sigmoid", "leaky_relu")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd", "rmsprop")
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")
#: How the stored probe activations and logits are kept (statistics are float32 either way).
ACTIVATION_DTYPES: tuple[str, ...] = ("float32", "float16")
#: What a run whose estimated trace is over ``max_trace_bytes`` does (see
#: :mod:`nn_tracing.trace_budget`).
BUDGET_MODES: tuple[str, ...] = ("refuse", "adapt")

# Bounds that keep a run (and its trace) within what one machine can hold.
MAX_HIDDEN_LAYERS = 16
MAX_LAYER_WIDTH = 8192
MAX_EPOCHS = 100_000
MAX_PROBE_SIZE = 65_536


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a traced training run.

    Parameters
    ----------
    dataset
        One of :data:`DATASETS`; ``"csv"`` needs ``csv_path`` and ``label_column``.
    hidden_sizes
        Widths of the hidden layers of the built-in MLP (``hidden_1`` ... ``hidden_k``).
    activation
        Non-linearity after every hidden layer, one of :data:`ACTIVATIONS`.
    dropout
        Dropout probability after every hidden activation (0 disables it).
    epochs, batch_size, lr, optimizer, weight_decay, momentum
        The optimisation; ``momentum`` is used by SGD and RMSprop only.
    seed
        Seeds the model initialisation and the order of training batches.
    data_seed
        Seeds the synthetic datasets and the splits, so that runs with different ``seed``
        see the same data.
    n_samples
        Size of a synthetic dataset (classification, moons, circles, blobs, bars).
    val_fraction
        Share of the data held out for validation (stratified); the probe is drawn from it.
    probe_size
        Size of the fixed, stratified probe set (capped by the validation split).
    epoch_intervals
        Which epochs to record (see :mod:`nn_tracing.schedule`).
    step_intervals
        Record on optimizer steps instead (see :mod:`nn_tracing.step_schedule`): ``n``,
        ``-1``, a list of steps, ``"log"`` or ``"log:N"``; the trace's axis is then ``step``
        (``S_<step>`` signatures). ``epoch_intervals`` must be left ``None`` with it.
    keep_weights
        Keep the full weights at every recorded epoch (the final weights are always kept).
    drop_batches
        ``False`` also streams per-step statistics of the training batches.
    traced_layers
        The hidden layers to trace, by name (``hidden_1`` … ``hidden_k``); the input and the
        output layer are always traced. ``None``: every layer. A layer left out costs nothing
        and is absent from the trace (its neurons have no ids).
    activation_samples
        How many probe samples keep their activations, logits and predictions at every
        recorded epoch (``None``: all). The statistics still use the whole probe; the kept
        samples are a seeded subset (``data_seed``) of it, in probe order, and the trace's
        probe set is that subset (see :func:`nn_tracing.tracer.kept_rows`).
    activation_dtype
        ``"float32"`` or ``"float16"``: how those activations and logits are stored.
    max_trace_bytes
        A budget for the trace (``None``: none). A run whose estimated ``.nntrace`` is larger
        is refused or adapted (``on_budget``) before it starts; one whose recorded data grows
        past it stops recording (:mod:`nn_tracing.trace_budget`).
    on_budget
        ``"refuse"`` (a :class:`~nn_tracing.trace_budget.TraceBudgetExceeded` naming the knobs)
        or ``"adapt"`` (the run lowers its knobs until the estimate fits, and says so in
        ``meta["budget"]``).
    csv_path, label_column
        A user CSV file and the name of its label column (``dataset="csv"``).
    modulus, modular_train_fraction, modular_embedding_dim
        The modular arithmetic datasets (``modular_add``, ``modular_sub``;
        :mod:`nn_tracing.data_modular`): the modulus p (p² pairs), the share of the pairs
        trained on (the rest is the validation split, which replaces ``val_fraction`` for
        them, and the probe is drawn from it), and the inputs: 0 one-hot, d > 0 a fixed
        random embedding of each residue of length d.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
    model
        ``"mlp"`` (the built-in MLP: ``hidden_sizes``, ``activation``, ``dropout``), ``"cnn"``
        (the built-in small CNN, for image datasets: :data:`IMAGE_DATASETS`) or an entry point
        ``package.module:factory`` (see :mod:`nn_tracing.model_entry`: the factory is called
        as ``factory(input_shape=..., n_classes=..., **model_kwargs)``, and imported only
        when allowed).
    model_kwargs
        Keyword arguments of the model, a JSON object (``None``: none). The CNN's are
        ``channels`` (default ``[8, 16]``), ``kernel_size`` (3) and ``pool`` (2); the MLP
        takes none.
    """

    dataset: str = "classification"
    hidden_sizes: tuple[int, ...] = (32, 32)
    activation: str = "relu"
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-2
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    seed: int = 0
    data_seed: int = 0
    n_samples: int = 2000
    val_fraction: float = 0.25
    probe_size: int = 1024
    epoch_intervals: int | tuple[int, ...] | None = None
    step_intervals: int | tuple[int, ...] | str | None = None
    keep_weights: bool = False
    drop_batches: bool = True
    traced_layers: tuple[str, ...] | None = None
    activation_samples: int | None = None
    activation_dtype: str = "float32"
    max_trace_bytes: int | None = None
    on_budget: str = "refuse"
    csv_path: str | None = None
    label_column: str | None = None
    device: str = "cpu"
    model: str = "mlp"
    model_kwargs: dict[str, Any] | None = None
    modulus: int = 59
    modular_train_fraction: float = 0.4
    modular_embedding_dim: int = 0

    def __post_init__(self) -> None:
        _check_choices(self)
        object.__setattr__(self, "hidden_sizes", _checked_hidden_sizes(self))
        for name, low, high in _INT_FIELDS:
            _check_int(self, name, low, high)
        for name, low, high, open_low in _FLOAT_FIELDS:
            object.__setattr__(self, name, _checked_float(self, name, low, high, open_low))
        for name in ("keep_weights", "drop_batches"):
            if not isinstance(getattr(self, name), bool):
                _fail(self, name, "must be true or false")
        object.__setattr__(self, "epoch_intervals", _checked_epoch_intervals(self))
        _check_model(self)
        object.__setattr__(self, "step_intervals", _checked_step_intervals(self))
        object.__setattr__(self, "traced_layers", _checked_traced_layers(self))
        _check_optional_int(self, "activation_samples", 1, MAX_PROBE_SIZE)
        _check_optional_int(self, "max_trace_bytes", 1, 2**50)
        if self.dataset == "csv":
            if not self.csv_path:
                _fail(self, "csv_path", "dataset 'csv' needs the path of a CSV file")
            if not self.label_column:
                _fail(self, "label_column", "dataset 'csv' needs the name of the label column")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):  # model_kwargs: a copy, its lists too
                value = {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from ``to_dict`` output (or TOML / JSON keys).

        Unknown keys raise :class:`ValueError` listing the known ones.
        """
        if not isinstance(data, Mapping):
            raise ValueError(
                f"a config must be a mapping of field names, not {type(data).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        values = dict(data)
        if isinstance(values.get("hidden_sizes"), list):
            values["hidden_sizes"] = tuple(values["hidden_sizes"])
        for name in ("epoch_intervals", "traced_layers", "step_intervals"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def held_out_fraction(self) -> float:
        """The share of the data in the validation split: ``val_fraction``, or for a modular
        dataset ``1 - modular_train_fraction``."""
        if self.dataset in MODULAR_DATASETS:
            return 1.0 - self.modular_train_fraction
        return self.val_fraction

    @property
    def architecture(self) -> str:
        """A short description like ``"MLP 16-16 relu"``, ``"CNN 8-16 k3 relu"`` or the entry
        point."""
        if self.model == "cnn":
            options = cnn_options(self.model_kwargs)
            channels = "-".join(str(c) for c in options["channels"])
            return f"CNN {channels} k{options['kernel_size']} {self.activation}"
        if self.model != "mlp":
            return self.model
        return f"MLP {'-'.join(str(w) for w in self.hidden_sizes)} {self.activation}"


# -- validation (in the order the errors are reported) -------------------------------------------
#: Integer fields and their bounds (inclusive).
_INT_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("epochs", 1, MAX_EPOCHS),
    ("batch_size", 1, 1_000_000),
    ("seed", 0, 2**32 - 1),
    ("data_seed", 0, 2**32 - 1),
    ("n_samples", 20, 5_000_000),
    ("probe_size", 2, MAX_PROBE_SIZE),
    ("modulus", 2, MAX_MODULUS),
    ("modular_embedding_dim", 0, 1024),
)
#: Float fields, their bounds, and whether the lower bound is excluded.
_FLOAT_FIELDS: tuple[tuple[str, float, float, bool], ...] = (
    ("lr", 0.0, 1e6, True),
    ("dropout", 0.0, 0.95, False),
    ("weight_decay", 0.0, 10.0, False),
    ("momentum", 0.0, 0.999, False),
    ("val_fraction", 0.05, 0.5, False),
    ("modular_train_fraction", 0.05, 0.95, False),
)


class ConfigFieldError(ValueError):
    """An invalid field of a :class:`TrainConfig`: ``field`` and ``why`` (the message reads
    ``"<field>=<value>: <why>"``)."""

    def __init__(self, field: str, value: Any, why: str) -> None:
        super().__init__(f"{field}={value!r}: {why}")
        self.field = field
        self.why = why


def _fail(config: TrainConfig, name: str, why: str) -> NoReturn:
    raise ConfigFieldError(name, getattr(config, name), why)


#: Fields whose check reads other fields: when one of those is wrong too, its default stands in
#: while the rest is checked, and an error of the dependent field is not said (it may be the
#: stand-in's).
_READS: dict[str, tuple[str, ...]] = {
    "epoch_intervals": ("epochs",),
    "step_intervals": ("epoch_intervals",),
    "traced_layers": ("hidden_sizes", "model", "model_kwargs"),
    "model": ("dataset", "model_kwargs"),
    "model_kwargs": ("model",),
    "csv_path": ("dataset",),
    "label_column": ("dataset",),
}


def config_problems(**fields: Any) -> dict[str, str]:
    """Every invalid field of ``TrainConfig(**fields)`` at once: ``{field: why}`` (empty when
    the config is valid). Each invalid field is replaced by its default and the rest checked
    again, so that a form can say everything that is wrong in one go; a problem that belongs
    to no single field is under ``""``.

    >>> config_problems(epochs=0, lr=-1.0)
    {'epochs': 'must be between 1 and 100000', 'lr': 'must be in (0.0, 1000000.0]'}
    """
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(fields) - set(defaults))
    if unknown:
        raise TypeError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
    trial, problems, replaced = dict(fields), {}, set()
    for _ in range(len(defaults) + 1):
        try:
            TrainConfig(**trial)
            break
        except ConfigFieldError as exc:
            if exc.field in replaced:  # its default fails too: nothing more to learn
                break
            if not replaced & set(_READS.get(exc.field, ())):
                problems[exc.field] = exc.why
            replaced.add(exc.field)
            trial[exc.field] = defaults[exc.field]
        except ValueError as exc:  # a check that names no single field
            problems.setdefault("", str(exc))
            break
    return problems


def _check_choices(config: TrainConfig) -> None:
    if config.dataset not in DATASETS:
        _fail(config, "dataset", f"unknown dataset; choose one of {', '.join(DATASETS)}")
    if config.activation not in ACTIVATIONS:
        _fail(config, "activation", f"unknown activation; choose one of {', '.join(ACTIVATIONS)}")
    if config.optimizer not in OPTIMIZERS:
        _fail(config, "optimizer", f"unknown optimizer; choose one of {', '.join(OPTIMIZERS)}")
    if config.device not in DEVICES:
        _fail(config, "device", f"choose one of {', '.join(DEVICES)}")
    if config.activation_dtype not in ACTIVATION_DTYPES:
        _fail(config, "activation_dtype", f"choose one of {', '.join(ACTIVATION_DTYPES)}")
    if config.on_budget not in BUDGET_MODES:
        _fail(config, "on_budget", f"choose one of {', '.join(BUDGET_MODES)}")


def _checked_hidden_sizes(config: TrainConfig) -> tuple[int, ...]:
    sizes = config.hidden_sizes
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        _fail(config, "hidden_sizes", "must be a list of layer widths, e.g. [16, 16]")
    sizes = tuple(sizes)
    if not 1 <= len(sizes) <= MAX_HIDDEN_LAYERS:
        _fail(config, "hidden_sizes", f"needs between 1 and {MAX_HIDDEN_LAYERS} hidden layers")
    for width in sizes:
        if not isinstance(width, int) or isinstance(width, bool):
            _fail(config, "hidden_sizes", f"width {width!r} is not an integer")
        if not 1 <= width <= MAX_LAYER_WIDTH:
            _fail(config, "hidden_sizes", f"width {width} must be between 1 and {MAX_LAYER_WIDTH}")
    return sizes


def _check_int(config: TrainConfig, name: str, low: int, high: int) -> None:
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(config, name, "must be an integer")
    if not low <= value <= high:
        _fail(config, name, f"must be between {low} and {high}")


def _checked_traced_layers(config: TrainConfig) -> tuple[str, ...] | None:
    """The traced hidden layers in model order, each once (``output`` dropped: always traced)."""
    names = config.traced_layers
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        _fail(config, "traced_layers", "must be a list of layer names, e.g. [hidden_2]")
    hidden = _hidden_layer_names(config)
    names = tuple(names)
    if hidden is None:  # an entry point's layers are known when it is built
        return tuple(dict.fromkeys(name for name in names if name != "output"))
    unknown = [n for n in names if n not in (*hidden, "output")]
    if unknown:
        _fail(
            config,
            "traced_layers",
            f"unknown layer {unknown[0]!r}; choose among {', '.join(hidden)}",
        )
    return tuple(name for name in hidden if name in names)


def _check_optional_int(config: TrainConfig, name: str, low: int, high: int) -> None:
    if getattr(config, name) is not None:
        _check_int(config, name, low, high)


def _checked_float(
    config: TrainConfig, name: str, low: float, high: float, open_low: bool
) -> float:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(config, name, "must be a number")
    if not math.isfinite(value):
        _fail(config, name, "must be finite")
    if value < low or value > high or (open_low and value == low):
        bracket = "(" if open_low else "["
        _fail(config, name, f"must be in {bracket}{low}, {high}]")
    return float(value)


def _checked_epoch_intervals(config: TrainConfig) -> int | tuple[int, ...] | None:
    intervals = normalize_epoch_intervals(config.epoch_intervals)
    if isinstance(intervals, tuple) and intervals[-1] > config.epochs:
        _fail(
            config,
            "epoch_intervals",
            f"lists epoch {intervals[-1]} but the run has only {config.epochs} epochs",
        )
    return intervals


def _hidden_layer_names(config: TrainConfig) -> list[str] | None:
    """The traced hidden layers of a built-in model (``None``: an entry point's)."""
    if config.model == "cnn":
        return [
            f"conv_{i}" for i in range(1, len(cnn_options(config.model_kwargs)["channels"]) + 1)
        ]
    if config.model == "mlp":
        return [f"hidden_{i}" for i in range(1, len(config.hidden_sizes) + 1)]
    return None


def _check_model(config: TrainConfig) -> None:
    """``model`` (a built-in name or an entry point, as text: nothing is imported) and its
    ``model_kwargs``; the CNN needs an image dataset."""
    try:
        check_model_name(config.model)
    except ValueError as exc:
        _fail(config, "model", str(exc))
    try:
        kwargs = check_model_kwargs(config.model_kwargs)
    except ValueError as exc:
        _fail(config, "model_kwargs", str(exc))
    object.__setattr__(config, "model_kwargs", kwargs)
    if config.model == "mlp" and kwargs:
        _fail(
            config,
            "model_kwargs",
            "the built-in MLP takes no keyword arguments; set hidden_sizes, activation and "
            "dropout instead",
        )
    if config.model == "cnn":
        try:
            cnn_options(kwargs)
        except ValueError as exc:
            _fail(config, "model_kwargs", str(exc))
        if config.dataset not in IMAGE_DATASETS:
            _fail(
                config,
                "model",
                f"the built-in CNN needs an image dataset ({', '.join(IMAGE_DATASETS)}); "
                f"dataset {config.dataset!r} has flat features: use model 'mlp'",
            )


def _checked_step_intervals(config: TrainConfig) -> int | tuple[int, ...] | str | None:
    steps = normalize_step_intervals(config.step_intervals)
    if steps is not None and config.epoch_intervals is not None:
        _fail(
            config,
            "step_intervals",
            "records steps: leave epoch_intervals unset (a trace counts epochs or steps)",
        )
    return steps
