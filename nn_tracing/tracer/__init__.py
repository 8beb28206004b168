"""``TraceableNN``: wrap any ``nn.Module`` and record its neurons while it trains.

How it works
------------
* **Discovery** (:mod:`._discovery`). A dry run on ``example_input`` (inference mode, RNG and
  BatchNorm statistics untouched) finds the traceable layers — ``Linear``, ``Conv1d`` and
  ``Conv2d`` — in the order they run, and for each the activation module that consumes its
  output (through normalisation or dropout modules). The neuron's activation is that module's
  output, else the layer's own. Neurons get global ids ``n_0 … n_m``, input features first.
* **Probe measurement** (:mod:`._probe`). At every recorded epoch (see
  :mod:`nn_tracing.schedule`) the model runs on the fixed probe set in eval mode; temporary
  hooks reduce each layer's output on the device (vectorised: no Python loop over neurons) and
  ``torch.autograd.grad`` gives the probe-loss gradient without touching any ``.grad``. One host
  copy per recorded epoch; nothing at all in epochs that are not recorded.
* **Batch streaming** (:mod:`._streaming`). Without a probe, hooks stream the statistics over
  the training batches of each recorded epoch and weight-gradient hooks accumulate the
  root-mean-square gradient norm.
* **Distributed** (:mod:`._distributed`). On the ranks of a ``torch.distributed`` job (DDP,
  FSDP2) each rank measures its shard of the probe (or its own batches) and the ranks merge
  sufficient statistics in one ``all_reduce`` per recorded epoch (plus one for the maxima);
  rank 0 gathers the probe activations and writes the run directory.
* **Storage and budget** (:mod:`._storage`, :mod:`._budget`). What a recorded epoch keeps of
  the probe's per-sample tensors (a seeded subset of samples, float16), and the trace budget
  ``max_trace_bytes`` checked before every recorded epoch.
* **Per-step recording** (:mod:`._steps`). ``drop_batches=False`` adds per-step statistics per
  layer, kept on the device and copied to the host once per epoch.

:class:`TraceableNN` (:mod:`._traceable`) composes them. Every hook lives and dies in one context
manager, :func:`._hooks.hooks`. The statistics themselves are in :mod:`._stats`, the hooks that
feed them in :mod:`._capture`.

Tracing never changes what the model computes: a traced and an untraced run with the same seed
end with bitwise identical weights (tested).
"""

from ._discovery import ACTIVATION_TYPES as ACTIVATION_TYPES
from ._discovery import PASSTHROUGH_TYPES as PASSTHROUGH_TYPES
from ._discovery import TRACEABLE_TYPES as TRACEABLE_TYPES
from ._discovery import discover_layers as discover_layers
from ._discovery import logits_of as logits_of
from ._discovery import module_device as module_device
from ._probe import chunk_rows as chunk_rows
from ._stats import as_positions as as_positions
from ._stats import class_onehot as class_onehot
from ._stats import class_selectivity as class_selectivity
from ._storage import kept_rows as kept_rows
from ._traceable import TraceableNN as TraceableNN
from ._traceable import TraceBudgetWarning as TraceBudgetWarning

__all__ = ["ACTIVATION_TYPES", "TRACEABLE_TYPES", "TraceBudgetWarning", "TraceableNN", "kept_rows"]
