"""Altair chart builders (no Streamlit): each chart kind has a data builder and a chart builder.

Every chart's tooltip carries a neuron signature (``E_<epoch>/L_<layer>/n_<id>``) or, for a
whole layer or epoch, its prefix; charts above :data:`MARK_BUDGET` marks aggregate and say so.

* :mod:`.common` — what every chart shares: mark budget, signatures, colour scales, binning.
* :mod:`.curves` — training curves (loss and accuracy per epoch).
* :mod:`.brain` — the brain scan: every neuron coloured by a metric, at one epoch and over time.
* :mod:`.health` — dead, saturated and gradient-starved neurons per layer and epoch.
* :mod:`.neuron` — one neuron's metrics over training and its activations at one epoch.
* :mod:`.profile` — the Neurons page: weights, connections, responses and field of a neuron.
* :mod:`.clusters` — the Clusters page: the neuron map, its nulls, what each cluster holds.
* :mod:`.dynamics` — the Dynamics page: training maps, neuron states, decision entropy.
* :mod:`.breadcrumbs` — the Breadcrumbs page: attribution, the trail, ablation, pruning.
* :mod:`.channels` — convolution channels: kernels, top images with receptive fields,
  activation maps, pixel attribution.

The builders of the Overview and Neurons pages' shared charts are re-exported here.
"""

from .brain import (
    PICK,
    BrainScan,
    brain_scan_chart,
    brain_scan_frame,
    layer_epoch_chart,
    layer_epoch_frame,
    neuron_epoch_chart,
    neuron_epoch_frame,
)
from .common import MARK_BUDGET, element_height, metric_title, signature
from .curves import curves_frame, training_curves_chart
from .health import health_chart, health_frame
from .neuron import (
    HISTORY_DATA,
    activation_histogram_chart,
    activation_histogram_frame,
    history_layout_key,
    layer_quantiles,
    neuron_history_chart,
    neuron_history_data,
    neuron_history_frame,
    neuron_history_layout,
)

__all__ = [
    "HISTORY_DATA",
    "MARK_BUDGET",
    "PICK",
    "BrainScan",
    "activation_histogram_chart",
    "activation_histogram_frame",
    "brain_scan_chart",
    "brain_scan_frame",
    "curves_frame",
    "element_height",
    "health_chart",
    "health_frame",
    "history_layout_key",
    "layer_epoch_chart",
    "layer_epoch_frame",
    "layer_quantiles",
    "metric_title",
    "neuron_epoch_chart",
    "neuron_epoch_frame",
    "neuron_history_chart",
    "neuron_history_data",
    "neuron_history_frame",
    "neuron_history_layout",
    "signature",
    "training_curves_chart",
]
