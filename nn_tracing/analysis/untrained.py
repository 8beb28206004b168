"""The untrained network: fresh initialisations of a traced model, measured like the trace.

The ``untrained`` null of :mod:`nn_tracing.analysis.baselines` asks whether training created
structure that initialisation alone does not have: :func:`fresh_initialisation` rebuilds the
traced architecture with PyTorch's default initialisation (seeded, the global RNG untouched),
:func:`untrained_features` traces it at ``E_0`` on the trace's probe set and describes it with
the same features (kept per trace and seed), and :func:`reinitialisation_problem` says why a
trace's model cannot be rebuilt.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import numpy as np

from ..trace import NetworkTrace
from .embedding import FeatureError, NeuronFeatures, neuron_features

__all__ = [
    "UNTRAINED_CACHE_BYTES",
    "fresh_initialisation",
    "reinitialisation_problem",
    "untrained_features",
]


def reinitialisation_problem(trace: NetworkTrace) -> str | None:
    """Why fresh initialisations of ``trace``'s model cannot be measured (``None``: they can)."""
    if trace.probe is None:
        return (
            "this trace has no probe set, so an untrained network cannot be measured the same way"
        )
    if getattr(trace, "attached_model", None) is not None:
        return None
    model = trace.meta.get("model") if isinstance(trace.meta.get("model"), dict) else {}
    if not model.get("builtin") and not model.get("entry_point"):
        return (
            f"this trace comes from a custom model ({model.get('class', 'unknown')}); attach a "
            "module of the same architecture (nt.attach_model(trace, module)) to compare with "
            "fresh initialisations"
        )
    if not trace.final_weights:
        return "this trace holds no weights to rebuild its model from"
    if model.get("entry_point"):
        from ..model_entry import check_allowed

        try:
            check_allowed(str(model["entry_point"]))
        except ValueError as exc:
            return str(exc)
    return None


#: Builds one model at a time (the test draws untrained networks on two threads).
_build_lock = threading.Lock()


def fresh_initialisation(trace: NetworkTrace, seed: int) -> Any:
    """The traced architecture with freshly initialised weights (an ``nn.Module``).

    ``Linear`` and ``Conv`` layers get PyTorch's default initialisation drawn from a private
    generator seeded with ``seed`` (the global RNG, which a training run in another thread
    may be using, is not touched: the built-in models are even constructed on the ``meta``
    device, so that their constructors draw nothing; an entry point is built with the global
    RNG's state restored); other modules with ``reset_parameters`` (normalisation layers) are
    reset. An attached custom module is copied. The config is first compared with the stored
    weights (:func:`~nn_tracing.models.check_buildable`: a lying or oversized config raises
    before anything is allocated).
    """
    import torch
    from torch import nn

    from ..models import untrained_model_from_trace

    with _build_lock:  # an entry point's fork_rng saves and restores the global RNG: one at a time
        module = untrained_model_from_trace(trace)  # checked; built-ins on the meta device
    if any(p.is_meta for p in module.parameters()):
        module = module.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for part in module.modules():
            if isinstance(part, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_uniform_(part.weight, a=math.sqrt(5), generator=generator)
                if part.bias is not None:
                    fan_in = nn.init._calculate_fan_in_and_fan_out(part.weight)[0]
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                    nn.init.uniform_(part.bias, -bound, bound, generator=generator)
            elif hasattr(part, "reset_parameters") and part is not module:
                part.reset_parameters()
    return module.eval()


#: Bytes of untrained features kept per trace (a test run again with another clusterer, or
#: another P, reuses the fresh networks it already measured).
UNTRAINED_CACHE_BYTES = 256_000_000
_untrained_cache: weakref.WeakKeyDictionary[Any, OrderedDict[str, NeuronFeatures]] = (
    weakref.WeakKeyDictionary()
)
_untrained_lock = threading.Lock()


def untrained_features(trace: NetworkTrace, features: NeuronFeatures, seed: int) -> NeuronFeatures:
    """``features``' feature set measured on a fresh initialisation of ``trace``'s model.

    The fresh network is traced at ``E_0`` on the trace's probe set (same metrics, same
    activations), then described exactly as ``features`` describes the trained one. Feature
    sets that do not read ``grad_norm`` (every one but ``metrics``) skip the backward pass.
    Results are kept per trace and seed (at most :data:`UNTRAINED_CACHE_BYTES` per trace):
    never modify one.

    Raises
    ------
    FeatureError
        When the model cannot be rebuilt or the feature set has no untrained counterpart.
    """
    problem = reinitialisation_problem(trace)
    if problem:
        raise FeatureError(problem)
    if not features.spec.per_epoch:
        raise FeatureError("a trajectory has no counterpart at initialisation")
    spec = replace(features.spec, epoch=0)
    key = f"{seed}:{json.dumps(spec.to_dict(), sort_keys=True, default=str)}"
    with _untrained_lock:
        kept = _untrained_cache.setdefault(trace, OrderedDict())
        if key in kept:
            kept.move_to_end(key)
            return kept[key]
    fresh = neuron_features(_fresh_trace(trace, features, seed), spec)
    with _untrained_lock:
        kept[key] = fresh
        while len(kept) > 1 and sum(_nbytes(f) for f in kept.values()) > UNTRAINED_CACHE_BYTES:
            kept.popitem(last=False)
    return fresh


def _nbytes(features: NeuronFeatures) -> int:
    return int(features.values.nbytes + features.raw.nbytes)


def _fresh_trace(trace: NetworkTrace, features: NeuronFeatures, seed: int) -> NetworkTrace:
    """A fresh initialisation of ``trace``'s model, traced at ``E_0`` on its probe set."""
    import torch
    import torch.nn.functional as F

    from ..tracer import TraceableNN

    module = fresh_initialisation(trace, seed)
    if features.spec.kind != "metrics":  # no grad_norm read: no backward pass
        module.requires_grad_(False)
    assert trace.probe is not None
    x, y = (torch.as_tensor(np.asarray(a)) for a in trace.probe)
    renames = {
        info.module: info.name
        for info in trace.layers
        if info.module and info.kind != "input" and info.module != info.name
    }
    classes = not torch.is_floating_point(y)
    tracer = TraceableNN(
        module,
        probe=(x.float(), y.long() if classes else y),
        epoch_intervals=-1,
        loss_fn=F.cross_entropy if classes else None,
        keep_weights=features.spec.kind == "weights",
        layer_names=renames or None,
        meta={"dataset": trace.meta.get("dataset", {})},
    )
    fresh = tracer.network_trace
    tracer.remove_hooks()
    if fresh.layer_names() != trace.layer_names() or fresh.n_neurons != trace.n_neurons:
        raise FeatureError("the rebuilt model's layers do not match the trace's")
    return fresh
