"""The neuron-level HMM that several pages share: one fit per trace, with fixed defaults.

The Dynamics page fits :class:`~nn_tracing.analysis.hmm.NeuronHMM` with the user's settings;
other pages (Clusters colours its map by HMM state) want *the* neuron states of a trace without
settings of their own. Both ask the analysis worker for the same result: :data:`WHAT` with
:func:`default_params` as parameters, so the model is fitted once per trace and shared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analysis.hmm import NEURON_FEATURES, NeuronHMM
from ..analysis.sampling import DEFAULT_MAX_NEURONS
from ..progress import Progress
from ..timeaxis import time_word
from ..trace import NetworkTrace

__all__ = [
    "WHAT",
    "default_params",
    "fit_label",
    "fit_neuron_hmm",
    "modelled_layers",
    "state_matrix",
]

#: The worker's name for a neuron-level HMM fit (the Dynamics page's own fits use it too).
WHAT = "dynamics:neurons"


def modelled_layers(trace: NetworkTrace) -> list[str]:
    """The layers a neuron-level HMM models by default: every layer but the input."""
    return [i.name for i in trace.layers if i.kind != "input"] or trace.layer_names()


def default_params(trace: NetworkTrace) -> dict[str, Any]:
    """The parameters of the shared fit (the Dynamics page's defaults; k is chosen by BIC).

    Returns
    -------
    ``{"random_state", "features", "layers", "standardize", "max_neurons"}``: what
    :func:`fit_neuron_hmm` takes, and the result's key on the worker.
    """
    return {
        "random_state": 0,
        "features": list(NEURON_FEATURES),
        "layers": modelled_layers(trace),
        "standardize": "layer",
        "max_neurons": DEFAULT_MAX_NEURONS,
    }


def fit_label(trace: NetworkTrace, layers: list[str]) -> str:
    """What the progress bar says while the HMM of ``layers`` is fitted."""
    n = min(sum(trace.layer(name).n_neurons for name in layers), DEFAULT_MAX_NEURONS)
    return (
        f"Fitting one HMM to {n:,} neurons × {len(trace.epochs)} {time_word(plural=True)} "
        "(k = 2…8 by BIC)"
    )


def fit_neuron_hmm(trace: NetworkTrace, params: dict[str, Any], progress: Progress) -> NeuronHMM:
    """One :class:`NeuronHMM` over the neurons of ``params["layers"]`` (k = 2…8 by BIC).

    Parameters
    ----------
    trace
        The trace.
    params
        As :func:`default_params` returns (any features, layers, standardisation, seed).
    progress
        ``progress(fraction, message)`` — the worker's callback.
    """
    return NeuronHMM(
        params["features"],
        layers=params["layers"],
        standardize=params["standardize"],
        random_state=params["random_state"],
        max_neurons=params.get("max_neurons"),
    ).fit(trace, progress=progress)


def state_matrix(model: NeuronHMM, trace: NetworkTrace) -> np.ndarray:
    """Every neuron's state at every recorded epoch.

    Returns
    -------
    int array of shape (n_neurons, n_epochs), by global neuron id; −1 for a neuron the HMM does
    not model.

    Raises
    ------
    ValueError
        When the model's states do not have that shape (fitted on another trace).
    """
    states = np.asarray(model.states_)
    if states.shape != (trace.n_neurons, len(trace.epochs)):
        raise ValueError(f"its states have shape {states.shape}")
    return states
