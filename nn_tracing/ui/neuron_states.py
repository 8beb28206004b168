"""The neuron-level HMM every page shares (no page of its own: a page may import this).

:func:`neuron_states` runs :mod:`nn_tracing.views.neuron_states`' fit on the analysis worker
(:func:`~nn_tracing.ui.compute.run_analysis`: a progress bar, the result shared by every
session and by the Dynamics page, whose default fit is the same result).
"""

from __future__ import annotations

from ..analysis.hmm import NeuronHMM
from ..views.neuron_states import WHAT, default_params, fit_label, fit_neuron_hmm
from .compute import run_analysis
from .traces import ActiveTrace

__all__ = ["neuron_states"]


def neuron_states(active: ActiveTrace) -> NeuronHMM:
    """The shared neuron-level HMM of ``active`` with the Dynamics page's default settings
    (fitted once per trace, with a progress bar): pages colour neurons by its
    ``dominant_state_`` or ``states_`` (indexed by global neuron id; −1 for neurons not
    modelled, such as inputs). A failed fit raises its error."""
    trace = active.trace
    params = default_params(trace)
    # no estimate: it never waits for a click, so the result is never None
    return run_analysis(  # type: ignore[return-value]
        WHAT,
        active.key,
        params,
        lambda progress: fit_neuron_hmm(trace, params, progress),
        label=fit_label(trace, params["layers"]),
    )
