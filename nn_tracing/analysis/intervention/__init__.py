"""Test attribution by changing the network: ablation, ablation curves, pruning, intervention.

Every claim that a neuron matters is checked here by removing it and measuring what changes on
the probe set — against the same removal of random neurons (the null). One idea per module:

* :mod:`.ablation` — the engine: :func:`batched_logits` (the outputs with each of many
  ablation sets applied, many sets per forward pass) and :func:`ablate` (one set: an
  :class:`AblationResult` with the change per class, the confusion matrices, the flipped
  samples); :func:`layer_importance`, the order the others remove neurons in.
* :mod:`.chain` — :func:`prunable`: whether the model is a chain of Linear layers, in which
  one layer's ablation is a low-rank update of the next layer's input.
* :mod:`.trail` — :func:`trail_check`: the breadcrumb trail's neurons against random sets of
  the same size (an empirical p-value).
* :mod:`.curves` — :class:`AblationCurves`: accuracy against the number of a layer's neurons
  ablated, in order of attribution, reverse attribution, selectivity and at random, and
  whether selectivity predicts importance (Morcos et al. 2018).
* :mod:`.pruning` — :func:`prune_model` / :class:`Pruning`: structured pruning of the ``k``
  least important neurons of each hidden layer (new, smaller ``nn.Linear`` layers), against
  ``k`` random ones.
* :mod:`.channel_pruning` — :func:`prune_channels` / :func:`channel_pruning`: convolution
  channels removed for real (and the matching inputs of the next layer), against random ones.
* :mod:`.interventions` — :func:`intervene`: clamp or scale a neuron's activation, or edit
  one weight; accuracy, flipped predictions, activations and, for 2-D inputs, the decision
  boundary before and after.
* :mod:`.recycling` — :func:`recycle_dormant`: ReDo (Sokar et al. 2023), τ-dormant neurons
  re-initialised (incoming) and cut off (outgoing); dormant counts and outputs before and after.

Writing the pruned model and its trace to files is :mod:`nn_tracing.export`'s;
``pruned_config``, ``pruned_files`` and ``pruned_trace`` are re-exported here for old imports.

Nothing here imports Streamlit.
"""

from ...export import pruned_config, pruned_files, pruned_trace
from .ablation import (
    FILLS,
    AblationResult,
    ablate,
    batched_logits,
    hidden_layers,
    layer_importance,
    neuron_means,
)
from .chain import prunable
from .channel_pruning import ChannelPruningResult, channel_pruning, prune_channels
from .curves import ORDERS, AblationCurves, selectivity_sentence
from .interventions import (
    INTERVENTIONS,
    DecisionBoundary,
    Intervention,
    InterventionResult,
    decision_grid,
    intervene,
)
from .pruning import Pruning, count_parameters, prune_model
from .recycling import Recycling, recycle_dormant
from .trail import trail_check

__all__ = [
    "FILLS",
    "INTERVENTIONS",
    "ORDERS",
    "AblationCurves",
    "AblationResult",
    "ChannelPruningResult",
    "DecisionBoundary",
    "Intervention",
    "InterventionResult",
    "Pruning",
    "Recycling",
    "ablate",
    "batched_logits",
    "channel_pruning",
    "count_parameters",
    "decision_grid",
    "hidden_layers",
    "intervene",
    "layer_importance",
    "neuron_means",
    "prunable",
    "prune_channels",
    "prune_model",
    "pruned_config",
    "pruned_files",
    "pruned_trace",
    "recycle_dormant",
    "selectivity_sentence",
    "trail_check",
]
