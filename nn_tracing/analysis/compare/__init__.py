"""Comparing runs: side by side, neuron by neuron, representation by representation.

* :mod:`.runs` — training curves on one axis, per-layer metric quantiles, config differences.
* :mod:`.probes` — which probe activations two runs can be compared on (:class:`RunPair`).
* :mod:`.matching` — neurons matched across runs (Li et al. 2015) against a null; partner
  stability over training.
* :mod:`.similarity` — linear CKA, SVCCA and PWCCA, and their permutation baseline.
* :mod:`.convergence` — layer × layer between runs, each layer against its final self.
"""

from .convergence import (
    convergence_order,
    convergence_to_final,
    layer_similarity,
    layer_similarity_over_epochs,
)
from .matching import (
    NeuronMatching,
    correlation_matrix,
    match_neurons,
    partner_stability,
    stable_from,
)
from .probes import (
    CompareUnavailable,
    ProbeCheck,
    RunPair,
    check_probes,
    common_layers,
    probe_digest,
)
from .runs import (
    CURVE_QUANTITIES,
    config_differences,
    layer_quantile_bands,
    smooth,
    training_curves,
)
from .similarity import (
    canonical_correlations,
    cka_matrix,
    linear_cka,
    permutation_null,
    pwcca,
    similarity,
    svcca,
)

__all__ = [
    "CURVE_QUANTITIES",
    "CompareUnavailable",
    "NeuronMatching",
    "ProbeCheck",
    "RunPair",
    "canonical_correlations",
    "check_probes",
    "cka_matrix",
    "common_layers",
    "config_differences",
    "convergence_order",
    "convergence_to_final",
    "correlation_matrix",
    "layer_quantile_bands",
    "layer_similarity",
    "layer_similarity_over_epochs",
    "linear_cka",
    "match_neurons",
    "partner_stability",
    "permutation_null",
    "probe_digest",
    "pwcca",
    "similarity",
    "smooth",
    "stable_from",
    "svcca",
    "training_curves",
]
