"""Export a pruned model: its config, its weights as safetensors, and its trace.

What :class:`~nn_tracing.analysis.intervention.Pruning` builds is a smaller ``nn.Module``;
this module turns it into things to save or download:

* :func:`pruned_config` — a JSON-ready description: architecture, the run's config with the new
  hidden sizes, the source trace and epoch, what was removed, accuracy and parameter counts.
* :func:`pruned_files` — the model as safetensors bytes (the config JSON in its metadata too)
  and the config as JSON bytes.
* :func:`pruned_trace` — the pruned model traced on the source trace's probe set, so the app
  can open it like any other trace.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .tracer import TraceableNN

if TYPE_CHECKING:
    from .analysis.intervention import Pruning
    from .trace import NetworkTrace

__all__ = ["pruned_config", "pruned_files", "pruned_trace"]


def pruned_config(
    trace: NetworkTrace,
    pruning: Pruning,
    *,
    epoch: int | None,
) -> dict[str, Any]:
    """A JSON-ready description of a pruned built-in MLP: architecture, the run's config with
    the new hidden sizes, where it came from and what was removed."""
    config = trace.meta.get("config") if isinstance(trace.meta.get("config"), dict) else None
    dataset = trace.meta.get("dataset") if isinstance(trace.meta.get("dataset"), dict) else {}
    module = pruning.pruned_
    architecture = {
        "class": type(module).__name__,
        "n_inputs": trace.layers[0].n_neurons,
        "hidden_sizes": list(pruning.sizes_after_),
        "n_outputs": trace.layers[-1].n_neurons,
        "activation": getattr(module, "activation", None),
        "dropout": getattr(module, "dropout", None),
    }
    train_config = dict(config) if config else None
    if train_config is not None:
        train_config["hidden_sizes"] = list(pruning.sizes_after_)
    return {
        "format": "nn_tracing.pruned_model",
        "format_version": 1,
        "architecture": architecture,
        "train_config": train_config,
        "dataset": {k: v for k, v in dataset.items() if k not in ("feature_mean", "feature_scale")},
        "source": {"trace_digest": trace.digest, "epoch": epoch},
        "removed": {layer: ids for layer, ids in pruning.removed_.items()},
        "fill": pruning.fill,
        "probe_accuracy_before": pruning.accuracy_before_,
        "probe_accuracy_after": pruning.accuracy_after_,
        "n_parameters_before": pruning.parameters_before_,
        "n_parameters_after": pruning.parameters_after_,
        "load": "nn_tracing.MLP(n_inputs, hidden_sizes, n_outputs, activation, dropout)"
        ".load_state_dict(safetensors.torch.load_file(path))",
    }


def pruned_files(module: nn.Module, config: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The pruned model as safetensors (the config JSON in its metadata too) and the config.

    Returns
    -------
    ``(safetensors bytes, JSON bytes)``
    """
    from safetensors.torch import save

    text = json.dumps(config, indent=2, default=_json_default)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return save(tensors, metadata={"nn_tracing_config": text}), text.encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def pruned_trace(
    module: nn.Module,
    trace: NetworkTrace,
    config: Mapping[str, Any],
) -> NetworkTrace:
    """The pruned model traced on the source trace's probe set (one recorded epoch, ``E_0``,
    which here is the pruned model — not an untrained one; ``meta["pruned_from"]`` says so).

    A pruned built-in MLP stays rebuildable: its trace carries the config with the new hidden
    sizes, so the app can attribute, ablate and prune it again.
    """
    assert trace.probe is not None
    x, y = trace.probe
    builtin = bool((trace.meta.get("model") or {}).get("builtin")) and isinstance(module, nn.Module)
    meta: dict[str, Any] = {
        "dataset": trace.meta.get("dataset"),
        "model": {
            "class": type(module).__name__,
            "builtin": builtin and config.get("train_config") is not None,
            "architecture": "pruned "
            + "-".join(str(s) for s in config["architecture"]["hidden_sizes"]),
        },
        "pruned_from": {
            **dict(config.get("source") or {}),
            "removed": config.get("removed"),
            "fill": config.get("fill"),
            "note": "E_0 of this trace is the pruned model, not an untrained network",
        },
    }
    if config.get("train_config") is not None:
        meta["config"] = dict(config["train_config"])
    tracer = TraceableNN(
        copy.deepcopy(module),
        probe=(torch.as_tensor(x), torch.as_tensor(y)),
        epoch_intervals=-1,
        num_epochs=1,
        meta=meta,
    )
    return tracer.finish()
