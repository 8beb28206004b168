"""nn_tracing: a brain scan for PyTorch models.

Record what every neuron of a network does while it trains — weights, bias, activations and
gradients, epoch by epoch — into a :class:`NetworkTrace`, save it as one ``.nntrace`` file, and
explore it in the Streamlit app.

>>> import nn_tracing as nt
>>> cfg = nt.TrainConfig(dataset="moons", hidden_sizes=(16, 16), epochs=5, epoch_intervals=2)
>>> run = nt.train(cfg)                                  # doctest: +SKIP
>>> run.trace["E_4"]["L_hidden_1"]["n_2"].act_mean       # doctest: +SKIP

The names below are the public API. They are imported on first use, so that reading a trace
(``load_trace``) does not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "ACTIVATIONS": "config",
    "DATASETS": "config",
    "OPTIMIZERS": "config",
    "TrainConfig": "config",
    "BUILTIN_DATASETS": "data",
    "Dataset": "data",
    "DataSplits": "data",
    "load_csv": "data",
    "load_dataset": "data",
    "prepare_data": "data",
    "RunEstimate": "estimate",
    "RunTooLarge": "estimate",
    "check_budget": "estimate",
    "estimate_run": "estimate",
    "MLP": "models",
    "attach_model": "models",
    "build_model": "models",
    "model_from_trace": "models",
    "EntryPointRefused": "model_entry",
    "trusted_models": "model_entry",
    "normalize_epoch_intervals": "schedule",
    "recorded_epochs": "schedule",
    "should_record": "schedule",
    "normalize_step_intervals": "step_schedule",
    "recorded_steps": "step_schedule",
    "should_record_step": "step_schedule",
    "RunWriteError": "rundir",
    "MAX_TRACE_BYTES": "store",
    "TraceFormatError": "store",
    "load_trace": "store",
    "read_manifest": "store",
    "save_trace": "store",
    "trace_to_bytes": "store",
    "HISTORY_COLUMNS": "trace",
    "METRICS": "trace",
    "STEP_COLUMNS": "trace",
    "LayerInfo": "trace",
    "NetworkTrace": "trace",
    "NeuronTrace": "trace",
    "TraceableNN": "tracer",
    "Progress": "training",
    "TracedRun": "training",
    "TrainingDiverged": "training",
    "TrainingProgress": "training",
    "train": "training",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nn_tracing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # pragma: no cover
    from .config import ACTIVATIONS, DATASETS, OPTIMIZERS, TrainConfig
    from .data import BUILTIN_DATASETS, Dataset, DataSplits, load_csv, load_dataset, prepare_data
    from .estimate import RunEstimate, RunTooLarge, check_budget, estimate_run
    from .model_entry import EntryPointRefused, trusted_models
    from .models import MLP, attach_model, build_model, model_from_trace
    from .rundir import RunWriteError
    from .schedule import normalize_epoch_intervals, recorded_epochs, should_record
    from .step_schedule import normalize_step_intervals, recorded_steps, should_record_step
    from .store import (
        MAX_TRACE_BYTES,
        TraceFormatError,
        load_trace,
        read_manifest,
        save_trace,
        trace_to_bytes,
    )
    from .trace import HISTORY_COLUMNS, METRICS, STEP_COLUMNS, LayerInfo, NetworkTrace, NeuronTrace
    from .tracer import TraceableNN
    from .training import Progress, TracedRun, TrainingDiverged, TrainingProgress, train
