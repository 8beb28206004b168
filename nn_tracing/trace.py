"""``NetworkTrace`` and ``NeuronTrace``: the recorded life of every neuron.

A :class:`NetworkTrace` is the "ActivationCache over time": a seed-style lookup
(``trace["E_30"]["L_hidden_1"]["n_20"]``), a signature lookup (``trace.neuron(...)``) and a
pandas frame (``trace.frame``, MultiIndex ``(epoch, layer, neuron)``, one float32 column per
metric). Per-epoch probe tensors (activations, logits, predictions, kept weights) are read
only when asked for, so a trace loaded from a file does not hold every epoch in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .timeaxis import PREFIXES, axis_of, time_key

if TYPE_CHECKING:
    from .trace_query import NeuronQuery

__all__ = [
    "HISTORY_COLUMNS",
    "METRICS",
    "STEP_COLUMNS",
    "LayerInfo",
    "NetworkTrace",
    "NeuronTrace",
    "format_signature",
    "parse_signature",
    "signature_axis",
    "signature_column",
]

#: Metric columns of ``trace.frame`` (float32), in order; :data:`METRIC_DESCRIPTIONS` says
#: what each measures.
METRICS: tuple[str, ...] = (
    "w_mean",
    "w_std",
    "w_norm",
    "w_absmax",
    "bias",
    "w_drift",
    "grad_norm",
    "act_mean",
    "act_std",
    "act_min",
    "act_max",
    "act_active",
    "selectivity",
)

METRIC_DESCRIPTIONS: dict[str, str] = {
    "w_mean": "mean of the neuron's incoming weights",
    "w_std": "standard deviation of the incoming weights (population, ddof=0)",
    "w_norm": "L2 norm of the incoming weights",
    "w_absmax": "largest absolute incoming weight",
    "bias": "the neuron's bias",
    "w_drift": "L2 distance of the incoming weights from the previous recorded epoch",
    "grad_norm": "L2 norm of the gradient of the mean probe loss w.r.t. the incoming weights",
    "act_mean": "mean activation on the probe set",
    "act_std": "standard deviation of the activation on the probe set (ddof=0)",
    "act_min": "smallest activation on the probe set",
    "act_max": "largest activation on the probe set",
    "act_active": "fraction of probe activations > 0",
    "selectivity": "class selectivity index (Morcos et al. 2018) of the class-mean activations",
}

#: Columns of ``trace.history`` besides ``epoch`` (float64 unless noted).
HISTORY_COLUMNS: tuple[str, ...] = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "probe_loss",
    "probe_acc",
    "lr",
    "seconds",
)

#: Columns of ``trace.steps`` (training-time statistics, ``drop_batches=False``).
STEP_COLUMNS: tuple[str, ...] = (
    "loss",
    "act_mean",
    "act_std",
    "act_active",
    "grad_norm",
    "w_norm",
)

#: An epoch or neuron id in a key: ASCII digits only (``\d`` also matches other scripts' digits,
#: which ``int`` converts) and at most nine of them (ids and epochs stay below 10**9; ``int``
#: refuses strings of more than 4300 digits with a ValueError, not a KeyError).
_NUMBER = r"([0-9]{1,9})"
_SIGNATURE = re.compile(rf"([ES])_{_NUMBER}/L_([^/]+)/n_{_NUMBER}")
_TIME_KEY = re.compile(rf"([ES])_{_NUMBER}")
_AXIS_OF_PREFIX = {prefix: axis for axis, prefix in PREFIXES.items()}
_NEURON_KEY = re.compile(rf"n_{_NUMBER}")


def _number_in(pattern: re.Pattern[str], key: object) -> int | None:
    """The number in ``key`` if the whole key fits ``pattern`` (``E_<n>`` or ``n_<n>``)."""
    match = pattern.fullmatch(key) if isinstance(key, str) else None
    return None if match is None else int(match.group(1))


def _wrong_axis(key: str, axis: str) -> KeyError:
    """The error for a key or signature of the other axis than the trace's."""
    given = "an epoch" if _AXIS_OF_PREFIX[key[0]] == "epoch" else "a step"
    return KeyError(
        f"{key!r} names {given}, but this trace counts {axis}s: use "
        f"{PREFIXES[axis]}_<{axis}> (e.g. {PREFIXES[axis]}_0)"
    )


def signature_axis(signature: str) -> str:
    """The axis a signature names: ``"epoch"`` for ``E_…``, ``"step"`` for ``S_…``.

    Raises :class:`KeyError` for a string that is not a signature.
    """
    parse_signature(signature)
    return _AXIS_OF_PREFIX[signature[0]]


def parse_signature(signature: str, axis: str | None = None) -> tuple[int, str, int]:
    """Split ``"E_30/L_hidden_1/n_20"`` into ``(30, "hidden_1", 20)`` (``"S_1200/…"`` into
    ``(1200, …)``: a step trace's signature).

    With ``axis`` (``"epoch"`` or ``"step"``), a signature of the other axis is refused with a
    :class:`KeyError` that says which to use. Raises :class:`KeyError` for anything else (also
    for numbers of more than nine digits or digits other than ASCII ``0-9``).
    """
    match = _SIGNATURE.fullmatch(signature) if isinstance(signature, str) else None
    if match is None:
        raise KeyError(
            f"{signature!r} is not a neuron signature; the form is E_<epoch>/L_<layer>/n_<id> "
            "(S_<step>/L_<layer>/n_<id> in a step trace), e.g. E_30/L_hidden_1/n_20"
        )
    if axis is not None and _AXIS_OF_PREFIX[match.group(1)] != axis:
        raise _wrong_axis(signature, axis)
    return int(match.group(2)), match.group(3), int(match.group(4))


def format_signature(epoch: int, layer: str, neuron_id: int, axis: str | None = None) -> str:
    """``E_<epoch>/L_<layer>/n_<id>`` (``S_<step>/…`` on the step axis), the name of one
    neuron at one recorded point.

    The inverse of :func:`parse_signature`; every tooltip, table and deep link uses it.
    ``axis``: ``"epoch"`` or ``"step"``; without it, the current axis
    (:func:`nn_tracing.timeaxis.current_axis`, the shown trace's in the app).

    >>> format_signature(30, "hidden_1", 20, "epoch")
    'E_30/L_hidden_1/n_20'
    >>> format_signature(1200, "hidden_1", 20, "step")
    'S_1200/L_hidden_1/n_20'
    """
    return f"{time_key(epoch, axis)}/L_{layer}/n_{neuron_id}"


def _column(value: object) -> list[Any] | None:
    """``value`` as a list when it is a column of values (not a string), else ``None``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return None
    return list(value)


def signature_column(epoch: Any, layer: Any, neuron_id: Any, axis: str | None = None) -> list[str]:
    """The ``signature`` column of a frame: one :func:`format_signature` per row.

    Each argument is one value for every row or a column of values (a sequence, array or
    Series); the columns must have one length, the number of rows. ``axis`` as in
    :func:`format_signature`.

    >>> signature_column(3, "hidden_1", [4, 5])
    ['E_3/L_hidden_1/n_4', 'E_3/L_hidden_1/n_5']
    >>> signature_column([0, 1], ["input", "hidden_1"], 2)
    ['E_0/L_input/n_2', 'E_1/L_hidden_1/n_2']
    """
    columns = [_column(value) for value in (epoch, layer, neuron_id)]
    lengths = {len(column) for column in columns if column is not None}
    if len(lengths) > 1:
        raise ValueError(f"signature columns of different lengths: {sorted(lengths)}")
    n = lengths.pop() if lengths else 1
    rows = [
        column if column is not None else [value] * n
        for column, value in zip(columns, (epoch, layer, neuron_id), strict=True)
    ]
    return [format_signature(e, name, i, axis) for e, name, i in zip(*rows, strict=True)]


@dataclass(frozen=True)
class LayerInfo:
    """One traced layer.

    Attributes
    ----------
    name : the layer name (``hidden_1``, ``output``, ``input`` or a module's qualified name)
    kind : ``input``, ``linear``, ``conv1d`` or ``conv2d``
    n_neurons : output features (Linear) or channels (Conv)
    first_id : global id of its first neuron; ids run to ``first_id + n_neurons - 1``
    activation : the activation module whose output is the neuron's activation (class name),
        or ``None`` when the layer's own output is used (pre-activation, logits)
    module : qualified name of the traced module (``""`` for the input layer)
    weight_key, bias_key : ``state_dict`` keys of its weight and bias, if any
    """

    name: str
    kind: str
    n_neurons: int
    first_id: int
    activation: str | None = None
    module: str = ""
    weight_key: str | None = None
    bias_key: str | None = None
    fan_in: int = 0

    @property
    def last_id(self) -> int:
        return self.first_id + self.n_neurons - 1

    @property
    def ids(self) -> range:
        return range(self.first_id, self.first_id + self.n_neurons)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerInfo:
        return cls(**dict(data))


@dataclass(frozen=True)
class NeuronTrace:
    """One neuron at one recorded epoch.

    Metric values are attributes (``neuron.act_mean``) and ``neuron.metrics`` (a dict).
    ``neuron.activations`` is its activation on every probe sample (array of shape
    ``(n_probe,)``), read on first use.
    """

    epoch: int
    layer: str
    neuron_id: int
    metrics: dict[str, float]
    _trace: NetworkTrace = field(repr=False, compare=False)

    @property
    def signature(self) -> str:
        return format_signature(self.epoch, self.layer, self.neuron_id, self._trace.axis)

    @property
    def index_in_layer(self) -> int:
        return self.neuron_id - self._trace.layer(self.layer).first_id

    @property
    def activations(self) -> np.ndarray | None:
        """Probe activations of shape ``(n_probe,)``, or ``None`` if the trace has none."""
        acts = self._trace.probe_activations(self.epoch)
        return None if acts is None else acts[:, self.neuron_id]

    @property
    def incoming_weights(self) -> np.ndarray | None:
        """Incoming weights (flattened per neuron) at this epoch, if the trace kept them."""
        info = self._trace.layer(self.layer)
        if info.weight_key is None:
            return None
        weights = self._trace.weights(self.epoch)
        if weights is None or info.weight_key not in weights:
            return None
        w = weights[info.weight_key]
        return w.reshape(w.shape[0], -1)[self.index_in_layer]

    def __getattr__(self, name: str) -> float:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(self.metrics.items())[:4])
        return f"NeuronTrace({self.signature}: {shown}, ...)"


class _LayerView(Mapping[str, NeuronTrace]):
    def __init__(self, trace: NetworkTrace, epoch: int, layer: LayerInfo) -> None:
        self._trace, self._epoch, self._layer = trace, epoch, layer

    def __getitem__(self, key: str) -> NeuronTrace:
        neuron_id = _number_in(_NEURON_KEY, key)
        if neuron_id is None or neuron_id not in self._layer.ids:
            raise KeyError(
                f"{key!r} is not a neuron of layer {self._layer.name!r} at "
                f"{self._trace.time_key(self._epoch)}; "
                f"its neurons are n_{self._layer.first_id} … n_{self._layer.last_id}"
            )
        return self._trace._neuron(self._epoch, self._layer, neuron_id)

    def __iter__(self) -> Iterator[str]:
        return (f"n_{i}" for i in self._layer.ids)

    def __len__(self) -> int:
        return self._layer.n_neurons

    def __repr__(self) -> str:
        return (
            f"<layer {self._layer.name} at {self._trace.time_key(self._epoch)}: neurons "
            f"n_{self._layer.first_id} … n_{self._layer.last_id}>"
        )


class _EpochView(Mapping[str, _LayerView]):
    def __init__(self, trace: NetworkTrace, epoch: int) -> None:
        self._trace, self._epoch = trace, epoch

    def __getitem__(self, key: str) -> _LayerView:
        name = key[2:] if isinstance(key, str) and key.startswith("L_") else None
        layers = {info.name: info for info in self._trace.layers}
        if name not in layers:
            raise KeyError(
                f"{key!r} is not a layer of this trace; layers: "
                f"{', '.join('L_' + n for n in layers)}"
            )
        return _LayerView(self._trace, self._epoch, layers[name])

    def __iter__(self) -> Iterator[str]:
        return ("L_" + info.name for info in self._trace.layers)

    def __len__(self) -> int:
        return len(self._trace.layers)

    def __repr__(self) -> str:
        axis = self._trace.axis
        return f"<{axis} {self._trace.time_key(self._epoch)}: layers {', '.join(self)}>"


EpochLoader = Callable[[int], dict[str, np.ndarray]]


class NetworkTrace:
    """The trace of a network over training.

    Time is counted on one axis, :attr:`axis`: epochs (keys ``E_<n>``) or optimizer steps
    (``S_<n>``, a step schedule). Either way a recorded point is an integer, named ``epoch``
    in ``epochs``, the frame's index and the history (a step number in a step trace).

    Parameters
    ----------
    layers
        The traced layers in order, ``input`` first.
    epoch_metrics
        ``{epoch: array of shape (n_neurons, len(METRICS)) float32}`` for each recorded epoch
        (a dict, or a mapping that reads each epoch on demand, epochs ascending).
    meta
        Config, dataset, status, versions, timings (JSON-ready).
    history
        One row per epoch: ``epoch`` and :data:`HISTORY_COLUMNS` (and ``recorded``).
    steps
        Optional per-step training statistics (``drop_batches=False``).
    probe
        ``(x, y)`` arrays of the probe set, or ``None`` when statistics were streamed over
        training batches.
    epoch_tensors
        ``{epoch: {"activations", "logits", "predictions", "weights/<key>"...}}`` or a loader
        ``epoch -> dict`` used to read an epoch's tensors on demand.
    final_weights
        The ``state_dict`` at the end of training (numpy arrays).
    query
        A :class:`~nn_tracing.trace_query.NeuronQuery` over the neuron table on disk: questions
        over every epoch (:meth:`metric`, :meth:`layer_metric`, :meth:`neuron_history`) go to it
        instead of reading every epoch into memory.
    """

    def __init__(
        self,
        layers: list[LayerInfo],
        epoch_metrics: Mapping[int, np.ndarray],
        meta: dict[str, Any],
        history: pd.DataFrame | None = None,
        steps: pd.DataFrame | None = None,
        probe: tuple[np.ndarray, np.ndarray] | None = None,
        epoch_tensors: dict[int, dict[str, np.ndarray]] | EpochLoader | None = None,
        final_weights: dict[str, np.ndarray] | None = None,
        digest: str | None = None,
        query: NeuronQuery | None = None,
    ) -> None:
        self.layers = list(layers)
        # a dict is sorted here; any other mapping (a run directory's, read on demand) is
        # kept as it is: its epochs ascend already
        self._epoch_metrics: Mapping[int, np.ndarray] = epoch_metrics
        if isinstance(epoch_metrics, dict):
            self._epoch_metrics = dict(sorted(epoch_metrics.items()))
        self.meta = meta
        self.history = history if history is not None else _empty_history()
        self.steps = steps
        self.probe = probe
        self._epoch_tensors = epoch_tensors if epoch_tensors is not None else {}
        self.final_weights = final_weights or {}
        self.digest = digest
        #: DuckDB over the neuron table's Parquet parts (a run directory's), or ``None``
        #: when the table is in memory (:mod:`nn_tracing.trace_query`).
        self.query = query
        self._frame: pd.DataFrame | None = None
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        #: a module of the traced architecture, set by :func:`nn_tracing.attach_model`
        self.attached_model: Any = None

    # -- structure -----------------------------------------------------------------------
    @property
    def epochs(self) -> list[int]:
        """The recorded epochs, ascending (``0`` is the untrained network)."""
        return list(self._epoch_metrics)

    @property
    def n_neurons(self) -> int:
        return sum(info.n_neurons for info in self.layers)

    @property
    def neural_index(self) -> dict[str, tuple[int, int]]:
        """``{layer: (first_id, last_id)}``, inclusive global ids, in layer order."""
        return {info.name: (info.first_id, info.last_id) for info in self.layers}

    @property
    def status(self) -> str:
        return str(self.meta.get("status", "complete"))

    @property
    def axis(self) -> str:
        """``"epoch"`` or ``"step"``: what the recorded points count (``meta["axis"]``;
        ``"epoch"`` when absent). In a step trace ``epochs``, the frame's ``epoch`` level and
        the history's ``epoch`` column hold step numbers (:mod:`nn_tracing.timeaxis`)."""
        return axis_of(self.meta)

    def time_key(self, point: int) -> str:
        """``E_<n>`` or ``S_<n>``, the key of recorded point ``point`` on this trace's axis."""
        return time_key(point, self.axis)

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise KeyError(f"no layer {name!r}; layers: {', '.join(info.name for info in self.layers)}")

    def layer_of(self, neuron_id: int) -> LayerInfo:
        """The layer that holds global neuron ``neuron_id``."""
        for info in self.layers:
            if info.first_id <= neuron_id <= info.last_id:
                return info
        raise KeyError(f"no neuron n_{neuron_id}; ids run from n_0 to n_{self.n_neurons - 1}")

    def signature(self, epoch: int, neuron_id: int) -> str:
        """The signature of global neuron ``neuron_id`` at ``epoch``."""
        return format_signature(epoch, self.layer_of(neuron_id).name, neuron_id, self.axis)

    def layer_names(self) -> list[str]:
        return [info.name for info in self.layers]

    # -- names of the dataset's classes and features -------------------------------------
    def _dataset_names(self, key: str, n: int) -> list[str] | None:
        """``meta["dataset"][key]`` as strings when it names exactly ``n`` things."""
        dataset = self.meta.get("dataset")
        names = dataset.get(key) if isinstance(dataset, dict) else None
        if isinstance(names, list) and len(names) == n:
            return [str(name) for name in names]
        return None

    def class_name(self, label: int) -> str:
        """The name of integer class ``label``: the dataset's, else ``class <label>``."""
        names = self.class_names
        return names[label] if 0 <= label < len(names) else f"class {label}"

    @property
    def class_names(self) -> list[str]:
        """One name per output (class): the dataset's (``meta["dataset"]["class_names"]``) when
        it names every output, else ``class 0``, ``class 1``, …"""
        n = self.layers[-1].n_neurons if self.layers else 0
        named = self._dataset_names("class_names", n)
        return named if named is not None else [f"class {i}" for i in range(n)]

    @property
    def feature_names(self) -> list[str]:
        """One name per input feature: the dataset's (``meta["dataset"]["feature_names"]``)
        when it names every input, else ``x0``, ``x1``, … (the built-in datasets' own)."""
        n = self.layers[0].n_neurons if self.layers else 0
        named = self._dataset_names("feature_names", n)
        return named if named is not None else [f"x{i}" for i in range(n)]

    def neuron_layers(self) -> np.ndarray:
        """Layer name of every global neuron id, array of shape (n_neurons,)."""
        return np.concatenate([[info.name] * info.n_neurons for info in self.layers])

    # -- frames --------------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        """Every metric of every neuron at every recorded epoch.

        MultiIndex ``(epoch, layer, neuron)``; one float32 column per name in :data:`METRICS`.
        ``trace.frame.loc[(30, "hidden_1", 20)]`` is neuron ``n_20`` of ``hidden_1`` at epoch 30.
        """
        if self._frame is None:
            self._frame = self._build_frame()
        return self._frame

    def _build_frame(self) -> pd.DataFrame:
        epochs = self.epochs
        n = self.n_neurons
        if epochs:
            values = np.concatenate([self._epoch_metrics[e] for e in epochs]).astype(np.float32)
        else:
            values = np.zeros((0, len(METRICS)), dtype=np.float32)
        layer_codes = (
            np.concatenate(
                [np.full(info.n_neurons, i, dtype=np.int32) for i, info in enumerate(self.layers)]
            )
            if self.layers
            else np.zeros(0, dtype=np.int32)
        )
        layer_names = self.layer_names()
        index = pd.MultiIndex(
            levels=[
                pd.Index(epochs, dtype="int64"),
                pd.Index(layer_names, dtype="object"),
                pd.RangeIndex(n),
            ],
            codes=[
                np.repeat(np.arange(len(epochs)), n),
                np.tile(layer_codes, len(epochs)),
                np.tile(np.arange(n), len(epochs)),
            ],
            names=["epoch", "layer", "neuron"],
            verify_integrity=False,
        )
        return pd.DataFrame(values, index=index, columns=list(METRICS))

    def metrics_at(self, epoch: int) -> np.ndarray:
        """Metrics at ``epoch``: array of shape (n_neurons, len(METRICS)), float32."""
        self._check_epoch(epoch)
        return self._epoch_metrics[epoch]

    def metric(self, name: str) -> np.ndarray:
        """One metric over time: array of shape (n_epochs, n_neurons), rows in ``epochs`` order."""
        return self._metric_block(name, 0, self.n_neurons - 1)

    def layer_metric(self, name: str, layer: str) -> np.ndarray:
        """One metric of one layer's neurons over time: array of shape
        (n_epochs, n_neurons of the layer), rows in ``epochs`` order."""
        info = self.layer(layer)
        return self._metric_block(name, info.first_id, info.last_id)

    def _metric_block(self, name: str, first: int, last: int) -> np.ndarray:
        if name not in METRICS:
            raise KeyError(f"no metric {name!r}; metrics: {', '.join(METRICS)}")
        if not self._epoch_metrics:
            return np.zeros((0, last - first + 1), dtype=np.float32)
        if self.query is not None:
            return self.query.metric_matrix(name, first, last)
        col = METRICS.index(name)
        return np.stack([self._epoch_metrics[e][first : last + 1, col] for e in self.epochs])

    def neuron_history(self, neuron_id: int) -> pd.DataFrame:
        """Every metric of global neuron ``neuron_id`` at every recorded epoch: ``epoch``,
        ``layer`` and one float32 column per metric, one row per recorded epoch."""
        info = self.layer_of(neuron_id)
        if self.query is not None:
            frame = self.query.neuron_history(neuron_id)
        else:
            rows = [self._epoch_metrics[e][neuron_id] for e in self.epochs]
            values = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(METRICS))
            frame = pd.DataFrame(values, columns=list(METRICS))
            frame.insert(0, "epoch", np.asarray(self.epochs, dtype=np.int64))
        frame.insert(1, "layer", info.name)
        return frame

    # -- lookups -------------------------------------------------------------------------
    def _check_epoch(self, epoch: int) -> None:
        if epoch not in self._epoch_metrics:
            axis = self.axis
            raise KeyError(
                f"{axis} {epoch} was not recorded; recorded {axis}s: {_shown_keys(self.keys())}"
            )

    def __getitem__(self, key: str) -> _EpochView:
        axis = self.axis
        match = _TIME_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            prefix = PREFIXES[axis]
            raise KeyError(
                f"{key!r} is not {'an epoch' if axis == 'epoch' else 'a step'} key; use "
                f"{prefix}_<{axis}>, one of {_shown_keys(self.keys())}"
            )
        if _AXIS_OF_PREFIX[match.group(1)] != axis:
            raise _wrong_axis(key, axis)
        epoch = int(match.group(2))
        self._check_epoch(epoch)
        return _EpochView(self, epoch)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def keys(self) -> list[str]:
        """``E_<n>`` (``S_<n>`` in a step trace) of every recorded point, ascending."""
        axis = self.axis
        return [time_key(e, axis) for e in self.epochs]

    def neuron(self, signature: str) -> NeuronTrace:
        """The neuron named by ``"E_<epoch>/L_<layer>/n_<id>"`` (``"S_<step>/…"`` in a step
        trace; a signature of the other axis is a :class:`KeyError` that says so)."""
        epoch, layer, neuron_id = parse_signature(signature, self.axis)
        return self[self.time_key(epoch)][f"L_{layer}"][f"n_{neuron_id}"]

    def _neuron(self, epoch: int, layer: LayerInfo, neuron_id: int) -> NeuronTrace:
        row = self._epoch_metrics[epoch][neuron_id]
        metrics = {name: float(value) for name, value in zip(METRICS, row)}
        return NeuronTrace(epoch, layer.name, neuron_id, metrics, self)

    # -- tensors -------------------------------------------------------------------------
    def epoch_tensors(self, epoch: int) -> dict[str, np.ndarray]:
        """The tensors recorded at ``epoch`` (read from the file on first use).

        Keys: ``activations`` (n_probe, n_neurons), ``logits`` (n_probe, n_outputs),
        ``predictions`` (n_probe,), and ``weights/<state_dict key>`` when weights were kept.
        """
        self._check_epoch(epoch)
        if epoch in self._cache:
            return self._cache[epoch]
        source = self._epoch_tensors
        if callable(source):
            tensors = source(epoch)
            # keep a few epochs around: pages often move between neighbours
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[epoch] = tensors
            return tensors
        return source.get(epoch, {})

    def probe_activations(self, epoch: int) -> np.ndarray | None:
        """Probe activations at ``epoch``, array of shape (n_probe, n_neurons), or ``None``.

        float32 (or float64 if stored so) even when the trace stores them as float16
        (``activation_dtype="float16"``): every analysis sums over them.
        """
        return _upcast(self.epoch_tensors(epoch).get("activations"))

    def logits(self, epoch: int) -> np.ndarray | None:
        """Logits at ``epoch``, (n_probe, n_outputs), float32 at least (as activations)."""
        return _upcast(self.epoch_tensors(epoch).get("logits"))

    def predictions(self, epoch: int) -> np.ndarray | None:
        return self.epoch_tensors(epoch).get("predictions")

    def weights(self, epoch: int) -> dict[str, np.ndarray] | None:
        """The full ``state_dict`` at ``epoch`` if it was kept (always at the final epoch)."""
        tensors = self.epoch_tensors(epoch)
        kept = {k[len("weights/") :]: v for k, v in tensors.items() if k.startswith("weights/")}
        if kept:
            return kept
        if self.final_weights and epoch == self.meta.get("final_weights_epoch"):
            return self.final_weights
        return None

    @property
    def epochs_with_weights(self) -> list[int]:
        """The recorded epochs at which the model's weights are in the trace.

        Every recorded epoch when the run kept weights (``meta["keep_weights"]``), else the
        epoch of the final weights if it was recorded, else none.
        """
        if self.meta.get("keep_weights"):
            return list(self.epochs)
        final = self.meta.get("final_weights_epoch")
        return [int(final)] if self.final_weights and final in self._epoch_metrics else []

    @property
    def has_probe(self) -> bool:
        return self.probe is not None

    def __repr__(self) -> str:
        return (
            f"NetworkTrace({len(self.layers)} layers, {self.n_neurons} neurons, {self.axis}s "
            f"{self.epochs[:1]}…{self.epochs[-1:]}, status={self.status!r})"
        )


def _shown_keys(keys: list[str], limit: int = 12) -> str:
    """Keys for an error message: the first and last few of a long list."""
    if len(keys) <= limit:
        return ", ".join(keys)
    half = limit // 2
    return f"{', '.join(keys[:half])}, … ({len(keys) - limit} more), {', '.join(keys[-half:])}"


def _upcast(values: np.ndarray | None) -> np.ndarray | None:
    """float16 values as float32 (a stored half-precision tensor); anything else unchanged."""
    if values is not None and values.dtype == np.float16:
        return values.astype(np.float32)
    return values


def _empty_history() -> pd.DataFrame:
    frame = pd.DataFrame({"epoch": pd.Series([], dtype="int64")})
    for column in HISTORY_COLUMNS:
        frame[column] = pd.Series([], dtype="float64")
    frame["recorded"] = pd.Series([], dtype="bool")
    return frame
