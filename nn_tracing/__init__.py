"""nn_tracing: a brain scan for PyTorch models.

Record what every neuron of a network does while it trains — weights, bias, activations and
gradients, epoch by epoch — into a :class:`NetworkTrace`, save it as one ``.nntrace`` file, and
explore it in the Streamlit app.

>>> import nn_tracing as nt
>>> cfg = nt.TrainConfig(dataset="moons", hidden_sizes=(16, 16), epochs=5, epoch_intervals=2)
>>> run = nt.train(cfg)                                  # doctest: +SKIP
>>> run.trace["E_4"]["L_hidden_1"]["n_2"].act_mean       # doctest: +SKIP
"""

__version__ = "0.1.0"

from .config import ACTIVATIONS, DATASETS, OPTIMIZERS, TrainConfig
from .data import BUILTIN_DATASETS, Dataset, DataSplits, load_csv, load_dataset, prepare_data
from .models import MLP, build_model
from .schedule import normalize_epoch_intervals, recorded_epochs, should_record
from .store import MAX_TRACE_BYTES, TraceFormatError, load_trace, save_trace, trace_to_bytes
from .trace import HISTORY_COLUMNS, METRICS, STEP_COLUMNS, LayerInfo, NetworkTrace, NeuronTrace
from .tracer import TraceableNN
from .training import Progress, TracedRun, TrainingDiverged, train

__all__ = [
    "ACTIVATIONS",
    "BUILTIN_DATASETS",
    "DATASETS",
    "HISTORY_COLUMNS",
    "MAX_TRACE_BYTES",
    "METRICS",
    "MLP",
    "OPTIMIZERS",
    "STEP_COLUMNS",
    "DataSplits",
    "Dataset",
    "LayerInfo",
    "NetworkTrace",
    "NeuronTrace",
    "Progress",
    "TraceFormatError",
    "TraceableNN",
    "TracedRun",
    "TrainConfig",
    "TrainingDiverged",
    "__version__",
    "build_model",
    "load_csv",
    "load_dataset",
    "load_trace",
    "normalize_epoch_intervals",
    "prepare_data",
    "recorded_epochs",
    "save_trace",
    "should_record",
    "train",
    "trace_to_bytes",
]
