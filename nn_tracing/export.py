"""Export a pruned model: its config, its weights as safetensors, and its trace.

What :class:`~nn_tracing.analysis.intervention.Pruning` builds is a smaller ``nn.Module``;
this module turns it into things to save or download:

* :func:`pruned_config` — a JSON-ready description: architecture, the run's config with the new
  hidden sizes, the source trace and epoch, what was removed, accuracy and parameter counts.
* :func:`pruned_channels_config` — the same for the built-in CNN with channels pruned
  (:func:`~nn_tracing.analysis.intervention.channel_pruning.channel_pruning`): the config's
  ``model_kwargs.channels`` become the narrower widths, so the pruned CNN is a built-in CNN
  again. Any other convolutional model is refused with the reason (``ValueError``): no config
  field describes which of its channels are gone.
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
    from .analysis.intervention.channel_pruning import ChannelPruningResult
    from .trace import NetworkTrace

__all__ = ["pruned_channels_config", "pruned_config", "pruned_files", "pruned_trace"]


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


def pruned_channels_config(
    trace: NetworkTrace, result: ChannelPruningResult, *, epoch: int | None
) -> dict[str, Any]:
    """A JSON-ready description of the built-in CNN with ``result``'s channels removed: its
    architecture, the run's config with ``model_kwargs.channels`` narrowed (so
    :func:`nn_tracing.model_from_trace` rebuilds the pruned trace), where it came from and what
    was removed.

    Raises
    ------
    ValueError
        The trace's model is not the built-in CNN (an entry point or a module traced from
        Python): no config describes it without the removed channels.
    """
    from .config import TrainConfig
    from .model_entry import cnn_options

    model = trace.meta.get("model") if isinstance(trace.meta.get("model"), dict) else {}
    config = trace.meta.get("config") if isinstance(trace.meta.get("config"), dict) else None
    if not (model.get("builtin") and model.get("name") == "cnn" and config is not None):
        raise ValueError(
            f"the pruned {model.get('class', 'model')} is not exported: only the built-in "
            "CNN's channels are a config field (model_kwargs.channels), so only its pruned "
            "model can be described, rebuilt and traced again"
        )
    options = cnn_options(config.get("model_kwargs"))
    channels = list(options["channels"])
    index = int(result.layer.removeprefix("conv_")) - 1
    channels[index] -= len(result.removed)
    train_config = TrainConfig.from_dict(config).replace(
        model_kwargs={**(config.get("model_kwargs") or {}), "channels": channels}
    )
    dataset = trace.meta.get("dataset") if isinstance(trace.meta.get("dataset"), dict) else {}
    input_shape = [int(v) for v in model.get("input_shape") or []]
    info = trace.layer(result.layer)
    return {
        "format": "nn_tracing.pruned_model",
        "format_version": 1,
        "architecture": {
            "class": "CNN",
            "input_shape": input_shape,
            "n_outputs": trace.layers[-1].n_neurons,
            **options,
            "channels": channels,
            "activation": train_config.activation,
            "dropout": train_config.dropout,
        },
        "train_config": train_config.to_dict(),
        "dataset": {k: v for k, v in dataset.items() if k not in ("feature_mean", "feature_scale")},
        "source": {"trace_digest": trace.digest, "epoch": epoch},
        "removed": {result.layer: [int(n) for n in result.removed]},
        "removed_channels": {result.layer: [int(n) - info.first_id for n in result.removed]},
        "fill": "zero",
        "probe_accuracy_before": result.accuracy_before,
        "probe_accuracy_after": result.accuracy_after,
        "n_parameters_before": result.parameters_before,
        "n_parameters_after": result.parameters_after,
        "load": "nn_tracing.models_cnn.CNN(input_shape, n_outputs, channels, kernel_size, pool, "
        "activation, dropout).load_state_dict(safetensors.torch.load_file(path))",
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

    A pruned built-in MLP or CNN stays rebuildable: its trace carries the config with the new
    hidden sizes (``model_kwargs.channels``), so the app can attribute, ablate and prune it
    again.
    """
    assert trace.probe is not None
    x, y = trace.probe
    builtin = bool((trace.meta.get("model") or {}).get("builtin")) and isinstance(module, nn.Module)
    meta: dict[str, Any] = {
        "dataset": trace.meta.get("dataset"),
        "model": _pruned_model_meta(module, config, builtin),
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


def _pruned_model_meta(module: nn.Module, config: Mapping[str, Any], builtin: bool) -> dict:
    """``meta["model"]`` of a pruned model's trace: a built-in CNN's as the training run
    writes it (name, kwargs, input shape), so it is rebuilt like one."""
    architecture = config["architecture"]
    if architecture.get("class") == "CNN" and config.get("train_config") is not None:
        from .config import TrainConfig
        from .models import model_meta

        train_config = TrainConfig.from_dict(dict(config["train_config"]))
        meta = model_meta(train_config, architecture["input_shape"], module)
        meta["architecture"] = "pruned " + train_config.architecture
        return meta
    return {
        "class": type(module).__name__,
        "builtin": builtin and config.get("train_config") is not None,
        "architecture": "pruned " + "-".join(str(s) for s in architecture["hidden_sizes"]),
    }
