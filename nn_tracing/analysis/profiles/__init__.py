"""One neuron's profile: everything the Neurons page computes, as pure functions over a trace.

* **Over time** — :func:`metric_history`: every metric of the neuron at every recorded epoch
  against its layer's median and interquartile band (:func:`layer_bands`).
* **Inputs and outputs** — :func:`incoming_weights`, :func:`outgoing_weights`,
  :func:`strongest_connections` (with the neuron signatures at both ends and where each weight
  stands among all weights of its matrix), :func:`incoming_weight_history` (every epoch with
  kept weights) and :func:`incoming_weight_image` (the first layer of an image dataset, e.g.
  ``digits``: its 64 incoming weights as the 8×8 image they look at). A Linear layer's sources
  are the previous traced layer's neurons when its fan-in equals that layer's width
  (:func:`source_layer`); otherwise the weights are listed by position only.
* **Responses on the probe set** — :func:`probe_responses`, :func:`class_distributions`,
  :func:`selectivity_over_epochs` (the class selectivity index of Morcos et al. (2018) at every
  recorded epoch, against a label-permutation null: the same activations with the probe labels
  shuffled), :func:`top_activating` (the probe samples it responds to most, with their feature
  values in the dataset's own units, labels and predictions) and :func:`class_enrichment`
  (whether a class is over-represented among them, against the hypergeometric null).
* **Activation field** — :func:`activation_field`: for 2-D inputs, the neuron's activation over
  the input plane, computed by rebuilding the traced model at that epoch
  (:func:`nn_tracing.models.model_from_trace`) and running it through
  :meth:`nn_tracing.TraceableNN.activations`, so the definition is the trace's own. Weights exist
  at every recorded epoch when the run kept them, and at the final epoch otherwise
  (:func:`field_epochs`).

Nothing here imports Streamlit. An analysis that cannot run on a trace (no probe set, no
weights at that epoch, a custom model that was not attached, inputs that are not 2-D) raises
:class:`ProfileUnavailable` with a message meant for a person.

The package, one idea a module:

* ``_common`` — what the others share: :class:`ProfileUnavailable`, :func:`class_names`,
  :func:`destandardise`, and the checked reads of a neuron's probe labels and activations;
* ``history`` — metrics over time (:func:`metric_history`, :func:`layer_bands`);
* ``weights`` — incoming and outgoing weights, their history and image, and which layer feeds
  which (:func:`source_layer`, :func:`target_layer`);
* ``connections`` — :func:`strongest_connections`;
* ``responses`` — :func:`probe_responses`, :func:`class_distributions`;
* ``selectivity`` — :func:`class_selectivity`, :func:`selectivity_null`,
  :func:`selectivity_over_epochs`;
* ``top_samples`` — :func:`top_activating` (:data:`TOP_COLUMNS`), :func:`class_enrichment`;
* ``field`` — :class:`ActivationField`, :func:`activation_field`, :func:`field_epochs`.

Examples
--------
>>> import nn_tracing as nt                                          # doctest: +SKIP
>>> from nn_tracing.analysis import profiles                         # doctest: +SKIP
>>> trace = nt.load_trace("runs/moons.nntrace")                      # doctest: +SKIP
>>> profiles.top_activating(trace, 5, epoch=60, k=8)                 # doctest: +SKIP
>>> profiles.selectivity_over_epochs(trace, 5, n_permutations=500)   # doctest: +SKIP
>>> field = profiles.activation_field(trace, 5, epoch=60)           # doctest: +SKIP
>>> field.values.shape                                               # doctest: +SKIP
(60, 60)
"""

from ._common import ProfileUnavailable, class_names, destandardise
from .connections import strongest_connections
from .field import ActivationField, activation_field, field_epochs
from .history import layer_bands, metric_history
from .responses import class_distributions, probe_responses
from .selectivity import class_selectivity, selectivity_null, selectivity_over_epochs
from .top_samples import TOP_COLUMNS, class_enrichment, top_activating
from .weights import (
    incoming_weight_history,
    incoming_weight_image,
    incoming_weights,
    outgoing_weights,
    source_layer,
    target_layer,
)

__all__ = [
    "TOP_COLUMNS",
    "ActivationField",
    "ProfileUnavailable",
    "activation_field",
    "class_distributions",
    "class_enrichment",
    "class_names",
    "class_selectivity",
    "destandardise",
    "field_epochs",
    "incoming_weight_history",
    "incoming_weight_image",
    "incoming_weights",
    "layer_bands",
    "metric_history",
    "outgoing_weights",
    "probe_responses",
    "selectivity_null",
    "selectivity_over_epochs",
    "source_layer",
    "strongest_connections",
    "target_layer",
    "top_activating",
]
